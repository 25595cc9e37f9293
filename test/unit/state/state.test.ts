import assert from 'node:assert/strict';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import {
  DedupeStore,
  KeyValueStoreImpl,
  OutboxStore,
  StateDb,
  WindowStore,
  decodeValue,
  encodeValue,
} from '../../../src/state/index.js';
import type { ChangeRecord, OutboxOptions } from '../../../src/state/index.js';

async function withDir(fn: (dir: string) => Promise<void>): Promise<void> {
  const dir = await mkdtemp(join(tmpdir(), 'tributary-state-'));
  try {
    await fn(dir);
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
}

async function openAll(dir: string, outboxOptions: OutboxOptions = {}) {
  const db = await StateDb.open(dir);
  const kv = await db.attach(new KeyValueStoreImpl<{ n: number }>(db, 'kv'));
  const windows = await db.attach(
    new WindowStore<number>(db, 'win', { encode: (n) => n, decode: (data) => data as number }),
  );
  const outbox = await db.attach(new OutboxStore<string>(db, 'out', undefined, outboxOptions));
  const dedupe = await db.attach(new DedupeStore(db, 'ids', { horizon: 1000, bucket: 100 }));
  return { db, kv, windows, outbox, dedupe };
}

test('nothing reaches LevelDB before commit; a commit makes all stores and the checkpoint durable together', async () => {
  await withDir(async (dir) => {
    const first = await openAll(dir);
    first.kv.put('a', { n: 1 });
    first.windows.insert(0, 'k', 5);
    first.outbox.append('row-1');
    assert.equal(first.dedupe.checkAndRemember('id-1', 10, 10), false);
    await first.db.close(); // no commit: as if the process died

    const second = await openAll(dir);
    assert.equal(second.kv.get('a'), undefined);
    assert.equal(second.windows.size, 0);
    assert.equal(second.outbox.pending(), 0);
    assert.equal(await second.dedupe.contains('id-1', 10), false);
    assert.equal(await second.db.readCheckpoint(), undefined);
    second.kv.put('a', { n: 2 });
    second.windows.insert(0, 'k', 7);
    second.outbox.append('row-1');
    second.dedupe.checkAndRemember('id-1', 10, 10);
    await second.db.commit({ positions: { t: '5' } });
    await second.db.close();

    const third = await openAll(dir);
    assert.deepEqual(third.kv.get('a'), { n: 2 });
    assert.equal(third.windows.get(0, 'k')?.state, 7);
    assert.deepEqual(await third.outbox.read(10), [{ seq: 0n, value: 'row-1' }]);
    assert.equal(await third.dedupe.contains('id-1', 10), true);
    assert.deepEqual(await third.db.readCheckpoint(), { positions: { t: '5' } });
    await third.db.close();
  });
});

test('every committed write is visible as a change record, deletes as tombstones', async () => {
  await withDir(async (dir) => {
    const { db, kv, windows } = await openAll(dir);
    const changes: ChangeRecord[] = [];
    db.onChange((batch) => changes.push(...batch));
    kv.put('a', { n: 1 });
    kv.put('a', { n: 2 }); // collapsed by the cache: one change
    kv.put('b', { n: 3 });
    windows.insert(60_000, 'k', 1);
    await db.commit({});
    kv.delete('b');
    windows.removeWindow(60_000);
    await db.commit({});
    assert.deepEqual(
      // Binary values (window blobs) shown as their text: a JSON-codec blob is UTF-8 JSON.
      changes.map((change) => [
        change.store,
        change.key,
        change.value instanceof Uint8Array ? Buffer.from(change.value).toString('utf8') : change.value,
      ]),
      [
        ['kv', 'a', '{"n":2}'],
        ['kv', 'b', '{"n":3}'],
        // The window store writes one blob per window and commit; with a JSON state codec, [[key, state], ...].
        ['win', `${(60_000 + 2 ** 52).toString(16).padStart(14, '0')}!00000000`, '[["k",1]]'],
        ['kv', 'b', null],
        ['win', `${(60_000 + 2 ** 52).toString(16).padStart(14, '0')}!00000000`, null],
      ],
    );
    await db.close();
  });
});

test('outbox: entries are readable only after commit; acks are durable with the next commit; sequences continue', async () => {
  await withDir(async (dir) => {
    const first = await openAll(dir);
    first.outbox.append('a');
    first.outbox.append('b');
    assert.deepEqual(await first.outbox.read(10), []);
    await first.db.commit({});
    assert.equal(first.outbox.pending(), 2);
    await first.outbox.ack(0n);
    assert.deepEqual(await first.outbox.read(10), [{ seq: 1n, value: 'b' }]);
    await first.db.close(); // ack not committed: 'a' comes back (at-least-once)

    const second = await openAll(dir);
    assert.deepEqual(
      (await second.outbox.read(10)).map((entry) => entry.value),
      ['a', 'b'],
    );
    await second.outbox.ack(1n);
    second.outbox.append('c');
    await second.db.commit({});
    await second.db.close();

    const third = await openAll(dir);
    assert.deepEqual(await third.outbox.read(10), [{ seq: 2n, value: 'c' }]);
    await third.db.close();
  });
});

// hotRows: the default (every row a value here), 1000 (the second and third segments wait packed
// until a read or an ack reaches them, and stay packed across the reopen), 1 (all but the first).
for (const hotRows of [undefined, 1000, 1])
  test(`outbox: segments left unacked across commits and a reopen keep their sequences; an ack may end inside a segment (hotRows ${hotRows ?? 'default'})`, async () => {
    await withDir(async (dir) => {
      const options = hotRows === undefined ? {} : { hotRows };
      const first = await openAll(dir, options);
      const all: string[] = [];
      // Three commits of 1500 rows each, nothing acked in between: the committed rows pile up.
      for (let commit = 0; commit < 3; commit++) {
        for (let i = 0; i < 1500; i++) {
          const row = `row-${all.length}`;
          all.push(row);
          first.outbox.append(row);
        }
        await first.db.commit({});
      }
      assert.equal(first.outbox.pending(), 4500);
      const firstPage = await first.outbox.read(3);
      assert.deepEqual(firstPage, [
        { seq: 0n, value: 'row-0' },
        { seq: 1n, value: 'row-1' },
        { seq: 2n, value: 'row-2' },
      ]);
      // Acks past the 1024-row mark compact the list of committed rows; sequences must not shift.
      await first.outbox.ack(1999n); // inside the second segment
      await first.outbox.ack(5n); // an old ack changes nothing
      assert.equal(first.outbox.pending(), 2500);
      assert.deepEqual(await first.outbox.read(2), [
        { seq: 2000n, value: 'row-2000' },
        { seq: 2001n, value: 'row-2001' },
      ]);
      first.outbox.append('late-row'); // appended, not committed: in the view, not readable
      const view = first.db
        .allStores()
        .find((store) => store.name === 'out')
        ?.view();
      const rows = (await view?.read({ limit: 10_000 }))?.entries;
      assert.ok(rows);
      assert.equal(rows.length, 2501);
      assert.deepEqual(rows[0], { seq: '2000', committed: true, value: 'row-2000' });
      assert.deepEqual(rows[2500], { seq: '4500', committed: false, value: 'late-row' });
      await first.db.commit({});
      await first.db.close();

      const second = await openAll(dir, options);
      const reread = await second.outbox.read(10_000);
      assert.equal(reread.length, 2501);
      assert.deepEqual(reread[0], { seq: 2000n, value: 'row-2000' });
      assert.deepEqual(reread[2499], { seq: 4499n, value: 'row-4499' });
      assert.deepEqual(reread[2500], { seq: 4500n, value: 'late-row' });
      assert.deepEqual(
        reread.map((entry) => entry.value),
        [...all.slice(2000), 'late-row'],
      );
      await second.outbox.ack(10_000n); // past the end: everything, no more
      assert.equal(second.outbox.pending(), 0);
      second.outbox.append('next');
      await second.db.commit({});
      assert.deepEqual(await second.outbox.read(10), [{ seq: 4501n, value: 'next' }]);
      await second.db.close();
    });
  });

test('dedupe store: ids expire by bucket, and the commit after the expiry deletes their chunks from LevelDB (tombstones for the changelog)', async () => {
  await withDir(async (dir) => {
    const first = await openAll(dir);
    // horizon 1000, bucket 100: an id at t=50 (bucket [0,100)) lives while stream time < 1100.
    assert.equal(first.dedupe.checkAndRemember('x', 50, 50), false);
    assert.equal(first.dedupe.checkAndRemember('y', 1050, 1050), false);
    assert.equal(first.dedupe.checkAndRemember('x', 60, 1099), true);
    assert.equal(await first.dedupe.contains('x', 1100), false);
    await first.db.commit({});
    const changes: ChangeRecord[] = [];
    first.db.onChange((batch) => changes.push(...batch));
    first.dedupe.expire(1100);
    await first.db.commit({});
    await first.db.commit({});
    assert.equal(first.dedupe.size, 1);
    const tombstones = changes.filter((c) => c.store === first.dedupe.name && c.value === null);
    assert.equal(tombstones.length, 1, 'one tombstone: the chunk of bucket 0');
    await first.db.close();
    const second = await openAll(dir);
    assert.equal(second.dedupe.size, 1, 'the chunk of bucket 0 was deleted');
    assert.equal(await second.dedupe.contains('y', 1100), true);
    await second.db.close();
  });
});

test('the value codec round-trips bigints and Buffers inside JSON', () => {
  const value = { offset: 12345678901234567890n, key: Buffer.from([0, 1, 255]), nested: [{ n: 1 }] };
  const decoded = decodeValue<typeof value>(encodeValue(value));
  assert.equal(decoded.offset, value.offset);
  assert.ok(Buffer.isBuffer(decoded.key));
  assert.deepEqual([...decoded.key], [0, 1, 255]);
  assert.deepEqual(decoded.nested, [{ n: 1 }]);
});

test('changelog gate: a commit sends its changes before LevelDB is written, records the offsets, and a failed send writes nothing', async () => {
  await withDir(async (dir) => {
    const first = await openAll(dir);
    first.kv.put('a', { n: 1 });
    const sent: ChangeRecord[][] = [];
    await first.db.commit({ at: 1 }, async (changes) => {
      sent.push([...changes]);
      return new Map([['kv', 41n]]);
    });
    assert.deepEqual(
      sent[0]?.filter((c) => c.store === 'kv').map((c) => c.key),
      ['a'],
    );
    assert.ok(sent[0]?.some((c) => c.store === 'checkpoint' && c.key === 'checkpoint'));
    first.kv.put('b', { n: 2 });
    await assert.rejects(
      first.db.commit({ at: 2 }, async () => {
        throw new Error('broker away');
      }),
    );
    await first.db.close();

    const second = await openAll(dir);
    assert.deepEqual(second.kv.get('a'), { n: 1 });
    assert.equal(second.kv.get('b'), undefined, 'the failed commit wrote nothing');
    assert.deepEqual(await second.db.readCheckpoint(), { at: 1 });
    assert.deepEqual([...second.db.changelogPositions()], [['kv', 41n]]);
    // Nothing changed since: no transaction at all.
    let calls = 0;
    await second.db.commit({ at: 1 }, async () => {
      calls++;
      return new Map();
    });
    await second.db.commit({ at: 1 }, async () => {
      calls++;
      return new Map();
    });
    assert.equal(calls, 1, 'the second identical commit sends nothing');
    await second.db.close();
  });
});

test('state written without a changelog is seeded whole into an empty changelog with the next commit', async () => {
  await withDir(async (dir) => {
    const first = await openAll(dir);
    first.kv.put('a', { n: 1 });
    first.outbox.append('row-1');
    assert.equal(first.dedupe.checkAndRemember('id-1', 10, 10), false);
    await first.db.commit({ at: 1 }); // changelogs off
    await first.db.close();

    const second = await openAll(dir);
    second.db.seedChangelog();
    second.kv.put('b', { n: 2 });
    let sent: ChangeRecord[] = [];
    await second.db.commit({ at: 2 }, async (changes) => {
      sent = [...changes];
      return new Map();
    });
    const stores = new Set(sent.map((c) => c.store));
    for (const store of ['kv', 'out', 'ids', 'checkpoint'])
      assert.ok(stores.has(store), `seed holds ${store}`);
    assert.deepEqual(
      sent.filter((c) => c.store === 'kv').map((c) => c.key),
      ['a', 'b'],
      'the old entry (seed) and the new one',
    );
    await second.db.close();
  });
});

test('local text entries are all written, also in a batch that holds nothing else', async () => {
  await withDir(async (dir) => {
    const db = await StateDb.open(dir);
    const level = db.textLevel('local-text-entries');
    const batch = db.localBatch();
    for (let i = 0; i < 1000; i++) batch.putLocal(level, `key-${i}`, `value-${i}`);
    await batch.write();
    // And mixed with binary entries and deletes.
    const binary = db.binaryLevel('local-binary-entries');
    const mixed = db.localBatch();
    mixed.putLocal(binary, 'b', new Uint8Array([1, 2]));
    mixed.putLocal(level, 'after-binary-1', 'x');
    mixed.putLocal(level, 'after-binary-2', 'y');
    mixed.delLocal(level, 'key-0');
    await mixed.write();
    await db.close();

    const reopened = await StateDb.open(dir);
    const text = reopened.textLevel('local-text-entries');
    const entries = await text.iterator().all();
    assert.equal(entries.length, 1001);
    assert.equal(await text.get('key-0'), undefined);
    assert.equal(await text.get('key-999'), 'value-999');
    assert.equal(await text.get('after-binary-2'), 'y');
    assert.deepEqual([...((await reopened.binaryLevel('local-binary-entries').get('b')) ?? [])], [1, 2]);
    await reopened.close();
  });
});

test('outbox: small segments committed while delivery is behind wait packed and come back whole, in order, also after a reopen', async () => {
  await withDir(async (dir) => {
    const first = await openAll(dir, { hotRows: 1 });
    const all: string[] = [];
    for (let commit = 0; commit < 50; commit++) {
      for (const suffix of ['a', 'b', 'ü€']) {
        all.push(`${commit}-${suffix}`);
        first.outbox.append(`${commit}-${suffix}`);
      }
      await first.db.commit({});
    }
    assert.equal(first.outbox.pending(), 150);
    const page = await first.outbox.read(4);
    assert.deepEqual(
      page.map(({ seq, value }) => [seq, value]),
      [
        [0n, '0-a'],
        [1n, '0-b'],
        [2n, '0-ü€'],
        [3n, '1-a'],
      ],
    );
    await first.outbox.ack(3n);
    await first.db.commit({});
    await first.db.close();
    const second = await openAll(dir, { hotRows: 1 });
    assert.equal(second.outbox.pending(), 146);
    const rest = await second.outbox.read(1000);
    assert.deepEqual(
      rest.map(({ value }) => value),
      all.slice(4),
    );
    assert.equal(rest[rest.length - 1]?.seq, 149n);
    await second.db.close();
  });
});

test('outbox: a large segment still pending at the next commit is packed past the first hotRows rows (some already read), and every row is delivered once, in order', async () => {
  await withDir(async (dir) => {
    const outbox = await openAll(dir, { hotRows: 10 });
    const rows = Array.from({ length: 103 }, (_, i) => `row-${i}`);
    for (const row of rows.slice(0, 100)) outbox.outbox.append(row);
    await outbox.db.commit({}); // delivery had caught up: the 100 rows stay values
    const inFlight = await outbox.outbox.read(25); // a delivery round is writing these
    for (const row of rows.slice(100)) outbox.outbox.append(row);
    await outbox.db.commit({}); // behind: rows past the first 10 are packed again, the new ones too
    assert.equal(outbox.outbox.pending(), 103);
    assert.deepEqual(
      inFlight.map(({ value }) => value),
      rows.slice(0, 25),
    );
    await outbox.outbox.ack(24n);
    const delivered = [...inFlight];
    for (let page = await outbox.outbox.read(7); page.length > 0; page = await outbox.outbox.read(7)) {
      delivered.push(...page);
      await outbox.outbox.ack(page[page.length - 1]!.seq);
      await outbox.db.commit({});
    }
    assert.deepEqual(
      delivered.map(({ seq, value }) => [seq, value]),
      rows.map((row, i) => [BigInt(i), row]),
    );
    assert.equal(outbox.outbox.pending(), 0);
    await outbox.db.close();
  });
});
