import assert from 'node:assert/strict';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { CacheBudget } from '../../../src/core/cache-budget.js';
import { storeTime } from '../../../src/core/store-reads.js';
import { sortableHex, sortableTime } from '../../../src/state/codec.js';
import { StateDb } from '../../../src/state/db.js';
import { storeLevelName } from '../../../src/state/store-layout.js';
import { WindowStore } from '../../../src/state/window-store.js';
import type { WindowEntryReader } from '../../../src/state/window-store.js';

const MINUTE = 60_000;
const T0 = Date.UTC(2024, 0, 1);
const codec = { encode: (n: number) => n, decode: (data: unknown) => data as number };
const reader: WindowEntryReader<number> = {
  windowSize: MINUTE,
  read: (entry) => ({ key: entry.keyText, aggregates: { n: entry.state }, version: 0 }),
  keyTextsOf: (userKey) => [userKey],
};

async function withDir(fn: (dir: string) => Promise<void>): Promise<void> {
  const dir = await mkdtemp(join(tmpdir(), 'tributary-window-store-'));
  try {
    await fn(dir);
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
}

/** The key ranges and keys a store reads from its sublevel, recorded by wrapping the sublevel. */
interface Reads {
  ranges: Array<Record<string, string | undefined>>;
  keys: string[];
}

/** A StateDb whose window sublevel records every read the store makes of it. */
async function openRecording(dir: string, reads: Reads): Promise<StateDb> {
  const db = await StateDb.open(dir);
  const binaryLevel = db.binaryLevel.bind(db);
  db.binaryLevel = (name) => {
    const level = binaryLevel(name);
    const record =
      <F extends (...args: never[]) => unknown>(read: F) =>
      (...args: Parameters<F>) => {
        const [first] = args as unknown[];
        if (typeof first === 'string') reads.keys.push(first);
        else reads.ranges.push({ ...((first ?? {}) as Record<string, string | undefined>) });
        return read(...args) as ReturnType<F>;
      };
    // Patched on the instance: a sublevel has private fields a wrapper object would not.
    return Object.assign(level, {
      iterator: record(level.iterator.bind(level)),
      keys: record(level.keys.bind(level)),
      values: record(level.values.bind(level)),
      get: record(level.get.bind(level)),
      getSync: record(level.getSync.bind(level)),
      getMany: record(level.getMany.bind(level)),
    });
  };
  return db;
}

/** Whether a range read could return a per-key record (`k<start>!<key>`) of a spilled window. */
function reachesPerKeyRecords(range: Record<string, string | undefined>): boolean {
  const low = range.gt ?? range.gte ?? '';
  const high = range.lt ?? range.lte ?? '\uffff';
  return low < 'l' && high > 'k';
}

async function openStore(dir: string, cacheMaxBytes: number, reads: Reads = { ranges: [], keys: [] }) {
  const db = await openRecording(dir, reads);
  const store = await db.attach(
    new WindowStore<number>(db, 'win', codec, reader, { cache: new CacheBudget(cacheMaxBytes) }),
  );
  return { db, store, reads };
}

test('beyond its cache share a window spills: entries are evicted, read back one by one, and a new key reads nothing', async () => {
  await withDir(async (dir) => {
    const { db, store } = await openStore(dir, 20_000);
    for (let i = 0; i < 2_000; i++) store.insert(T0, `key-${i}`, i);
    await db.commit({});
    assert.equal(store.size, 2_000);
    assert.ok(
      store.residentEntries < 2_000 && store.residentEntries > 0,
      `${store.residentEntries} resident`,
    );
    assert.ok(store.residentBytes <= store.limitBytes, `${store.residentBytes} > ${store.limitBytes}`);
    assert.equal(store.evictions, 2_000 - store.residentEntries);

    // Every entry, resident or not, answers; only the evicted ones cost a read.
    const evicted = 2_000 - store.residentEntries;
    for (let i = 0; i < 2_000; i++) assert.equal(store.get(T0, `key-${i}`)?.state, i);
    assert.equal(store.syncReads, evicted);
    // New keys: the filter rules (nearly) all of them out.
    for (let i = 0; i < 1_000; i++) assert.equal(store.get(T0, `new-${i}`), undefined);
    assert.ok(store.syncReads - evicted < 20, `${store.syncReads - evicted} reads for 1000 new keys`);
    await db.close();
  });
});

test('reopening a folder with spilled windows reads their spill records, no per-key record; everything stays readable', async () => {
  await withDir(async (dir) => {
    const first = await openStore(dir, 1);
    for (let i = 0; i < 3_000; i++) first.store.insert(T0 + (i % 3) * MINUTE, `key-${i}`, i);
    await first.db.commit({});
    assert.equal(first.store.residentEntries, 0);
    await first.db.close();

    const reopened = await openStore(dir, 1);
    const { store, reads } = reopened;
    assert.deepEqual(reads.keys, [], 'no key read at open');
    assert.deepEqual(
      reads.ranges.filter(reachesPerKeyRecords),
      [],
      `ranges read at open: ${JSON.stringify(reads.ranges)}`,
    );
    assert.equal(store.size, 3_000);
    assert.equal(store.residentEntries, 0);
    assert.deepEqual(store.windowStarts(), [T0, T0 + MINUTE, T0 + 2 * MINUTE]);

    // Updated after the reopen: written per key, read back as updated after another reopen.
    const entry = store.get(T0 + MINUTE, 'key-1');
    assert.equal(entry?.state, 1);
    if (entry) {
      entry.state = 1001;
      store.markDirty(entry);
    }
    store.insert(T0 + MINUTE, 'added', 7);
    await reopened.db.commit({});
    await reopened.db.close();

    const third = await openStore(dir, 1);
    assert.equal(third.store.size, 3_001);
    assert.equal(third.store.get(T0 + MINUTE, 'key-1')?.state, 1001);
    assert.equal(third.store.get(T0 + MINUTE, 'added')?.state, 7);
    assert.equal(third.store.isResident(T0), false);
    await third.store.loadWindow(T0);
    assert.equal(third.store.isResident(T0), true);
    assert.equal([...third.store.entriesOf(T0)].length, 1_000);
    await third.db.close();
  });
});

test('the store view shows every entry of a spilled window, resident or evicted', async () => {
  await withDir(async (dir) => {
    const { db, store } = await openStore(dir, 1);
    for (let i = 0; i < 50; i++) store.insert(T0, `key-${String(i).padStart(2, '0')}`, i);
    store.insert(T0 + MINUTE, 'other', 99);
    await db.commit({});
    assert.equal(store.residentEntries, 0);
    store.get(T0, 'key-07'); // one resident again
    const view = store.view();
    assert.equal(view.approximateSize(), 51);
    const entries = await view.entries();
    assert.equal(entries.length, 51);
    assert.deepEqual(entries[7], { key: `${sortableTime(T0)}!key-07`, value: 7 });
    const page = await view.read({ limit: 60 });
    assert.equal(page.entries.length, 51);
    assert.deepEqual(await view.lookup('key-33'), {
      kind: 'window',
      windows: [
        {
          windowStart: storeTime(T0),
          windowEnd: storeTime(T0 + MINUTE),
          key: 'key-33',
          aggregates: { n: 33 },
          version: 0,
        },
      ],
    });
    assert.equal(await view.lookup('absent'), undefined);
    // Looking does not make entries resident.
    assert.equal(store.residentEntries, 1);
    await db.close();
  });
});

test('a folder written with blobs only (as before spilling existed) opens, spills, and keeps every entry', async () => {
  await withDir(async (dir) => {
    // The layout main writes: blobs `<sortable start>!<seq>` of JSON rows, and the next blob sequence.
    const raw = await StateDb.open(dir);
    const level = raw.binaryLevel(storeLevelName('window', 'win'));
    const blob = (rows: Array<[string, number]>) => Buffer.from(JSON.stringify(rows));
    await level.put(
      `${sortableTime(T0)}!${sortableHex(0, 8)}`,
      blob([
        ['a', 1],
        ['b', 2],
      ]),
    );
    await level.put(`${sortableTime(T0)}!${sortableHex(1, 8)}`, blob([['a', 10]]));
    await level.put(`${sortableTime(T0 + MINUTE)}!${sortableHex(2, 8)}`, blob([['c', 3]]));
    raw.putMeta('window-next-blob:win', '3');
    await raw.commit({});
    await raw.close();

    const opened = await openStore(dir, 1);
    assert.equal(opened.store.size, 3);
    assert.equal(opened.store.get(T0, 'a')?.state, 10);
    opened.store.insert(T0, 'd', 4);
    await opened.db.commit({});
    assert.equal(opened.store.residentEntries, 0, 'spilled and evicted');
    await opened.db.close();

    const reopened = await openStore(dir, 1);
    assert.equal(reopened.store.size, 4);
    assert.deepEqual(
      (await reopened.store.view().entries()).map(({ key, value }) => [
        key.slice(key.indexOf('!') + 1),
        value,
      ]),
      [
        ['a', 10],
        ['b', 2],
        ['d', 4],
        ['c', 3],
      ],
    );
    // No blob is left beside the per-key records.
    const blobs = await reopened.db.binaryLevel(storeLevelName('window', 'win')).keys({ lt: 'g' }).all();
    assert.deepEqual(blobs, []);
    await reopened.db.close();
  });
});

test('removing a spilled window deletes its per-key and spill records with the commit', async () => {
  await withDir(async (dir) => {
    const { db, store } = await openStore(dir, 1);
    for (let i = 0; i < 20; i++) store.insert(T0, `key-${i}`, i);
    store.insert(T0 + MINUTE, 'kept', 1);
    await db.commit({});
    assert.throws(() => store.removeWindow(T0), /before it was loaded/);
    await store.loadWindow(T0);
    store.removeWindow(T0);
    await db.commit({});
    assert.equal(store.size, 1);
    const keys = await db.binaryLevel(storeLevelName('window', 'win')).keys().all();
    assert.deepEqual(
      keys.map((key) => key[0]),
      ['k', 's'],
      `only the kept window's records remain: ${JSON.stringify(keys)}`,
    );
    await db.close();
  });
});

test('a spilled window that outgrows its key filter gets a larger one: old keys found, new keys still ruled out', async () => {
  await withDir(async (dir) => {
    const first = await openStore(dir, 1);
    for (let i = 0; i < 300; i++) first.store.insert(T0, `key-${i}`, i);
    await first.db.commit({});
    // 300 keys spilled with room for 600; 3,000 more pass it.
    for (let i = 300; i < 3_300; i++) first.store.insert(T0, `key-${i}`, i);
    await first.db.commit({});
    await first.db.commit({}); // writes the rebuilt filter
    await first.db.close();

    const { db, store } = await openStore(dir, 1);
    for (let i = 0; i < 3_300; i += 7) assert.equal(store.get(T0, `key-${i}`)?.state, i);
    const reads = store.syncReads;
    for (let i = 0; i < 1_000; i++) assert.equal(store.get(T0, `new-${i}`), undefined);
    assert.ok(store.syncReads - reads < 20, `${store.syncReads - reads} reads for 1000 new keys`);
    await db.close();
  });
});

test('a commit adding keys to a spilled window writes them in a key log, not the whole filter; the logs fold back into it', async () => {
  await withDir(async (dir) => {
    const { db, store } = await openStore(dir, 1);
    // Spilled with a filter for 200k keys: the rounds below stay within it (no rebuild).
    for (let i = 0; i < 100_000; i++) store.insert(T0, `key-${i}`, i);
    await db.commit({});
    const written: Array<{ key: string; bytes: number }> = [];
    db.onChange((changes) => {
      for (const { key, value } of changes) written.push({ key, bytes: value === null ? 0 : value.length });
    });
    for (let i = 0; i < 10; i++) store.insert(T0, `new-${i}`, i);
    await db.commit({});
    const notEntries = written.filter(({ key }) => !key.startsWith('k'));
    assert.deepEqual(
      notEntries.map(({ key }) => key[0]),
      ['n'],
      `one key log beside the entries, no spill record: ${JSON.stringify(notEntries)}`,
    );
    assert.ok((notEntries[0]?.bytes ?? Infinity) < 200, 'the log holds the 10 keys');
    const firstLog = notEntries[0]?.key as string;

    // Logged: 10 + 30k, then 60,010; the third round passes KEY_LOG_MAX_KEYS: the spill record is
    // rewritten and the logs deleted.
    const level = db.binaryLevel(storeLevelName('window', 'win'));
    const logs = () => level.keys({ gt: 'n', lt: 'o' }).all();
    for (let round = 0; round < 3; round++) {
      for (let i = 0; i < 30_000; i++) store.insert(T0, `round-${round}-${i}`, i);
      await db.commit({});
      assert.equal((await logs()).length, round < 2 ? round + 2 : 0, `logs after round ${round}`);
    }
    assert.equal(await level.get(firstLog), undefined);
    await db.close();

    const reopened = await openStore(dir, 1);
    assert.equal(reopened.store.size, 100_010 + 90_000);
    for (const key of ['key-99999', 'new-9', 'round-0-0', 'round-2-29999'])
      assert.notEqual(reopened.store.get(T0, key), undefined, key);
    await reopened.db.close();
  });
});
