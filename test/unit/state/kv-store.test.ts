import assert from 'node:assert/strict';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import fc from 'fast-check';
import { CacheBudget } from '../../../src/core/cache-budget.js';
import { KeyValueStoreImpl, StateDb } from '../../../src/state/index.js';
import { KEY_VALUE_ENTRY_OVERHEAD_BYTES, compareKeys } from '../../../src/state/kv-store.js';

async function withDir(fn: (dir: string) => Promise<void>): Promise<void> {
  const dir = await mkdtemp(join(tmpdir(), 'tributary-kv-'));
  try {
    await fn(dir);
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
}

interface Account {
  balance: number;
  owner: string;
}

async function openStore(dir: string, cacheMaxBytes: number) {
  const db = await StateDb.open(dir);
  const store = await db.attach(
    new KeyValueStoreImpl<Account>(db, 'accounts', { cache: new CacheBudget(cacheMaxBytes) }),
  );
  return { db, store };
}

async function allEntries<V>(store: KeyValueStoreImpl<V>): Promise<Array<[string, V]>> {
  const entries: Array<[string, V]> = [];
  for await (const entry of store.entries()) entries.push(entry);
  return entries;
}

function sortedEntries<V>(map: ReadonlyMap<string, V>): Array<[string, V]> {
  return [...map].sort(([a], [b]) => compareKeys(a, b));
}

const KEYS = 100_000;
const keyOf = (i: number) => `acct-${i.toString().padStart(6, '0')}`;

test('a store of 100k keys with a 4 KB cache stays exact through commits, reopens and a crash before commit', async () => {
  await withDir(async (dir) => {
    const reference = new Map<string, Account>();
    let { db, store } = await openStore(dir, 4096);
    // Fill in commits of 10k, checking after each that only the share stays resident.
    for (let i = 0; i < KEYS; i++) {
      const value = { balance: i, owner: `owner-${i % 97}` };
      store.put(keyOf(i), value);
      reference.set(keyOf(i), value);
      if ((i + 1) % 10_000 === 0) {
        await db.commit({ filled: i + 1 });
        assert.ok(store.residentBytes <= store.limitBytes, `${store.residentBytes} > ${store.limitBytes}`);
        assert.equal(store.size, reference.size);
      }
    }
    assert.equal(store.limitBytes, 4096);

    // Updates and deletes across the key space, most of them of keys long evicted.
    for (let i = 0; i < KEYS; i += 7) {
      const current = store.get(keyOf(i));
      assert.deepEqual(current, reference.get(keyOf(i)));
      if (i % 3 === 0) {
        store.delete(keyOf(i));
        reference.delete(keyOf(i));
      } else {
        const value = { balance: (current?.balance ?? 0) + 1, owner: 'updated' };
        store.put(keyOf(i), value);
        reference.set(keyOf(i), value);
      }
    }
    store.put('zz-new', { balance: -1, owner: 'new' });
    reference.set('zz-new', { balance: -1, owner: 'new' });
    assert.equal(store.size, reference.size);
    await db.commit({ phase: 'updated' });
    assert.ok(store.residentBytes <= store.limitBytes);
    await db.close();

    // Reopen: constant-time open (no entry read), everything exact.
    ({ db, store } = await openStore(dir, 4096));
    assert.equal(store.residentBytes, 0);
    assert.equal(store.size, reference.size);
    for (let i = 0; i < KEYS; i += 13) {
      assert.deepEqual(store.get(keyOf(i)), reference.get(keyOf(i)));
      assert.equal(store.has(keyOf(i)), reference.has(keyOf(i)));
    }
    assert.deepEqual(await allEntries(store), sortedEntries(reference));

    // A crash between writes and the commit: the reopened store is the last commit's.
    for (let i = 0; i < 5_000; i++) store.put(keyOf(i), { balance: 0, owner: 'lost' });
    for (let i = 5_000; i < 8_000; i++) store.delete(keyOf(i));
    store.put('never-committed', { balance: 1, owner: 'lost' });
    assert.notEqual(store.size, reference.size);
    await db.close(); // no commit: as if the process died

    ({ db, store } = await openStore(dir, 4096));
    assert.equal(store.size, reference.size);
    assert.equal(store.get('never-committed'), undefined);
    for (let i = 0; i < 8_000; i += 3) assert.deepEqual(store.get(keyOf(i)), reference.get(keyOf(i)));
    assert.deepEqual(await allEntries(store), sortedEntries(reference));
    const view = store.view();
    assert.equal(view.approximateSize(), reference.size);
    assert.deepEqual(
      await view.entries({ after: keyOf(50_000), limit: 3 }),
      sortedEntries(reference)
        .filter(([key]) => key > keyOf(50_000))
        .slice(0, 3)
        .map(([key, value]) => ({ key, value })),
    );
    await db.close();
  });
});

test('entries() and the store view merge LevelDB with uncommitted puts and deletes, in LevelDB key order', async () => {
  await withDir(async (dir) => {
    const { db, store } = await openStore(dir, 1024);
    for (const key of ['b', 'd', 'f', '\u{1F600}', '\uFFFD']) store.put(key, { balance: 1, owner: key });
    await db.commit({});
    store.put('a', { balance: 2, owner: 'a' });
    store.put('d', { balance: 3, owner: 'd' });
    store.delete('f');
    store.put('e', { balance: 4, owner: 'e' });
    store.delete('never-there');
    const expected: Array<[string, Account]> = [
      ['a', { balance: 2, owner: 'a' }],
      ['b', { balance: 1, owner: 'b' }],
      ['d', { balance: 3, owner: 'd' }],
      ['e', { balance: 4, owner: 'e' }],
      // UTF-8 order: U+FFFD before U+1F600 (in UTF-16 units the surrogate would come first).
      ['\uFFFD', { balance: 1, owner: '\uFFFD' }],
      ['\u{1F600}', { balance: 1, owner: '\u{1F600}' }],
    ];
    assert.deepEqual(await allEntries(store), expected);
    assert.equal(store.size, expected.length);
    assert.deepEqual(
      (await store.view().entries({ after: 'b', limit: 2 })).map(({ key }) => key),
      ['d', 'e'],
    );
    await db.commit({});
    assert.deepEqual(await allEntries(store), expected);
    await db.close();
  });
});

test('stores share the cache budget: each may use what the others leave unused, and gives it back', async () => {
  await withDir(async (dir) => {
    const budget = new CacheBudget(10_000);
    const db = await StateDb.open(dir);
    const first = await db.attach(new KeyValueStoreImpl<number>(db, 'first', { cache: budget }));
    const second = await db.attach(new KeyValueStoreImpl<number>(db, 'second', { cache: budget }));
    assert.equal(budget.shares, 2);
    // First holds nothing yet: second may use the whole budget.
    for (let i = 0; i < 1_000; i++) second.put(`k${i}`, i);
    await db.commit({});
    assert.ok(second.residentBytes <= 10_000);
    // At least one entry short of the limit: the cache is used, not just emptied.
    assert.ok(second.residentBytes > 10_000 - (KEY_VALUE_ENTRY_OVERHEAD_BYTES + 10));
    // First grows to its even part; at the next commit second gives back what it borrowed.
    for (let i = 0; i < 1_000; i++) first.put(`k${i}`, i);
    await db.commit({});
    assert.ok(
      first.residentBytes <= 5_000 && first.residentBytes > 5_000 - (KEY_VALUE_ENTRY_OVERHEAD_BYTES + 10),
    );
    second.put('one-more', 1);
    await db.commit({});
    assert.ok(second.residentBytes <= 10_000 - first.residentBytes);
    assert.ok(first.residentBytes + second.residentBytes <= 10_000);
    await db.close();
    assert.equal(budget.shares, 0);
  });
});

test('getMany reads what is not cached in one go: the gets after it make no synchronous read', async () => {
  await withDir(async (dir) => {
    let { db, store } = await openStore(dir, 64 * 1024);
    for (let i = 0; i < 100; i++) store.put(keyOf(i), { balance: i, owner: 'o' });
    await db.commit({});
    await db.close();
    ({ db, store } = await openStore(dir, 64 * 1024));
    const keys = [keyOf(3), keyOf(50), 'missing', keyOf(99)];
    await store.getMany(keys);
    const reads = store.syncReads;
    assert.deepEqual(
      keys.map((key) => store.get(key)?.balance),
      [3, 50, undefined, 99],
    );
    assert.equal(store.has('missing'), false);
    assert.equal(store.syncReads, reads);
    // A key not named is still answered, from a synchronous read.
    assert.equal(store.get(keyOf(7))?.balance, 7);
    assert.equal(store.syncReads, reads + 1);
    await db.close();
  });
});

type Op =
  | { op: 'put'; key: number; value: number }
  | { op: 'delete'; key: number }
  | { op: 'get'; key: number }
  | { op: 'size' }
  | { op: 'commit' }
  | { op: 'reopen' }
  | { op: 'entries' }
  | { op: 'getMany'; keys: number[] };

const KEY_SPACE = 300;
const opArbitrary: fc.Arbitrary<Op> = fc.oneof(
  {
    weight: 10,
    arbitrary: fc.record({ op: fc.constant('put' as const), key: fc.nat(KEY_SPACE), value: fc.integer() }),
  },
  { weight: 4, arbitrary: fc.record({ op: fc.constant('delete' as const), key: fc.nat(KEY_SPACE) }) },
  { weight: 10, arbitrary: fc.record({ op: fc.constant('get' as const), key: fc.nat(KEY_SPACE) }) },
  { weight: 1, arbitrary: fc.record({ op: fc.constant('size' as const) }) },
  { weight: 2, arbitrary: fc.record({ op: fc.constant('commit' as const) }) },
  { weight: 1, arbitrary: fc.record({ op: fc.constant('reopen' as const) }) },
  { weight: 1, arbitrary: fc.record({ op: fc.constant('entries' as const) }) },
  {
    weight: 1,
    arbitrary: fc.record({
      op: fc.constant('getMany' as const),
      keys: fc.array(fc.nat(KEY_SPACE), { maxLength: 20 }),
    }),
  },
);

test('property: random puts, deletes, gets, commits and reopens with a cache far smaller than the data equal a Map', async () => {
  await fc.assert(
    fc.asyncProperty(fc.array(opArbitrary, { minLength: 1, maxLength: 400 }), async (ops) => {
      await withDir(async (dir) => {
        // About 4 entries fit the cache; the data grows to hundreds of keys.
        const cacheMaxBytes = 4 * (KEY_VALUE_ENTRY_OVERHEAD_BYTES + 20);
        let committed = new Map<string, number>();
        let current = new Map<string, number>();
        const db0 = await StateDb.open(dir);
        let db = db0;
        let store = await db.attach(
          new KeyValueStoreImpl<number>(db, 'kv', { cache: new CacheBudget(cacheMaxBytes) }),
        );
        try {
          for (const step of ops) {
            switch (step.op) {
              case 'put':
                store.put(`k${step.key}`, step.value);
                current.set(`k${step.key}`, step.value);
                break;
              case 'delete':
                store.delete(`k${step.key}`);
                current.delete(`k${step.key}`);
                break;
              case 'get':
                assert.equal(store.get(`k${step.key}`), current.get(`k${step.key}`));
                assert.equal(store.has(`k${step.key}`), current.has(`k${step.key}`));
                break;
              case 'size':
                assert.equal(store.size, current.size);
                break;
              case 'commit':
                await db.commit({});
                committed = new Map(current);
                assert.ok(store.residentBytes <= store.limitBytes);
                break;
              case 'reopen':
                // Without a commit first: what was not committed is gone, as after a crash.
                await db.close();
                db = await StateDb.open(dir);
                store = await db.attach(
                  new KeyValueStoreImpl<number>(db, 'kv', { cache: new CacheBudget(cacheMaxBytes) }),
                );
                current = new Map(committed);
                assert.equal(store.size, current.size);
                break;
              case 'entries':
                assert.deepEqual(await allEntries(store), sortedEntries(current));
                break;
              case 'getMany':
                await store.getMany(step.keys.map((key) => `k${key}`));
                break;
            }
          }
          assert.equal(store.size, current.size);
          assert.deepEqual(await allEntries(store), sortedEntries(current));
        } finally {
          await db.close();
        }
      });
    }),
    { numRuns: 60 },
  );
});

test('a folder written before entry counts were kept is counted once at open, and the count is written with the next commit', async () => {
  await withDir(async (dir) => {
    let { db, store } = await openStore(dir, 4096);
    for (let i = 0; i < 1_000; i++) store.put(keyOf(i), { balance: i, owner: 'o' });
    await db.commit({});
    // As an older version left it: the entries, no count.
    const local = db.localBatch();
    local.delLocal(db.textLevel('meta'), 'kv-count:accounts');
    await local.write();
    assert.equal(await db.getMeta('kv-count:accounts'), undefined);
    await db.close();

    ({ db, store } = await openStore(dir, 4096));
    assert.equal(store.size, 1_000);
    await db.commit({});
    assert.equal(await db.getMeta('kv-count:accounts'), '1000');
    await db.close();
  });
});
