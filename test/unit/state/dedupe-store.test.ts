import assert from 'node:assert/strict';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { DedupeStore, StateDb } from '../../../src/state/index.js';
import { RECENT_ID_OVERHEAD_BYTES, dedupeRestoreDeriver } from '../../../src/state/dedupe-store.js';
import { CacheBudget } from '../../../src/core/cache-budget.js';
import type { ChangeRecord } from '../../../src/state/index.js';
import { CHUNK_MAX_BYTES, MalformedIdChunkError, decodeIdChunk } from '../../../src/state/id-chunks.js';

// Small bounds, so that a few hundred ids take the paths of a store of millions: a cache of about 40
// recent ids (the rest spill to the index and the filter) and filter snapshots every 50 spilled ids
// (an open reads the snapshot, not every chunk).
const tuning = { snapshotAfterIds: 50 };
const cacheBytes = 40 * (RECENT_ID_OVERHEAD_BYTES + 6);

async function open(dir: string) {
  const db = await StateDb.open(dir);
  const store = await db.attach(
    new DedupeStore(db, 'ids', { horizon: 1000, bucket: 100 }, new CacheBudget(cacheBytes), tuning),
  );
  return { db, store };
}

test('dedupe store: exact ids survive a reopen from recent chunks, filter snapshots and the index; the recent ids stay within the cache; expiry removes chunks and index entries', async () => {
  const dir = await mkdtemp(join(tmpdir(), 'tributary-dedupe-store-'));
  try {
    const first = await open(dir);
    const changes: ChangeRecord[] = [];
    first.db.onChange((batch) => changes.push(...batch));
    for (let i = 0; i < 200; i++) {
      assert.equal(first.store.checkAndRemember(`id-${i}`, i * 5, i * 5), false);
      if (i % 40 === 39) await first.db.commit({});
    }
    await first.db.commit({});
    assert.ok(first.store.recentIdBytes <= cacheBytes, 'recent ids within the cache after a commit');
    assert.ok(first.store.filterBytes > 0, 'older ids spilled to the filter and the index');
    const chunkRecords = changes.filter((c) => c.store === 'ids' && c.value !== null);
    assert.ok(chunkRecords.length <= 15, `200 ids in a few chunk records (${chunkRecords.length})`);
    await first.db.close();

    const second = await open(dir);
    assert.ok(second.store.filterBytes > 0, 'the filter is loaded');
    assert.equal(second.store.size, 200);
    const ids = Array.from({ length: 200 }, (_, i) => `id-${i}`);
    await second.store.prefetch([...ids, 'id-200', 'other']);
    for (const id of ids) assert.equal(second.store.checkAndRemember(id, 995, 995), true, id);
    assert.equal(second.store.checkAndRemember('id-200', 995, 995), false);
    // Stream time 2100: every bucket up to [1000, 1100) is past the horizon, id-200 (bucket 900) too.
    second.store.expire(2100);
    await second.db.commit({ commit: 1 });
    await second.db.commit({ commit: 2 });
    assert.equal(second.store.size, 0);
    assert.deepEqual(await second.db.binaryLevel('dedupe:ids').keys().all(), [], 'no chunk left');
    assert.deepEqual(await second.db.textLevel('dedupe-index:ids').keys().all(), [], 'no index entry left');
    assert.equal(await second.store.contains('id-5', 2100), false);
    await second.db.close();
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
});

test('id chunks: the ids of a commit of any length and script round-trip exactly in chunks below a Kafka record, and bytes of another format are refused', async () => {
  const dir = await mkdtemp(join(tmpdir(), 'tributary-dedupe-store-'));
  const ids = [
    'a',
    '',
    'ü€𝄞',
    'x'.repeat(300),
    ...Array.from({ length: 20_000 }, (_, i) => `id-${i}-${'y'.repeat(i % 50)}`),
  ];
  try {
    const { db, store } = await open(dir);
    const changes: ChangeRecord[] = [];
    db.onChange((batch) => changes.push(...batch.filter((c) => c.store === 'ids' && c.value !== null)));
    for (const id of ids) assert.equal(store.checkAndRemember(id, 10, 10), false, id);
    await db.commit({});
    await db.close();
    const chunks = changes.map((change) => change.value as Uint8Array);
    assert.deepEqual(
      chunks.flatMap((chunk) => decodeIdChunk(chunk)),
      ids,
    );
    assert.ok(chunks.length > 1 && chunks.every((chunk) => chunk.byteLength <= CHUNK_MAX_BYTES));
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
  // A chunk of the previous format: packed 64-bit hashes.
  const hashes = new Uint8Array(new Uint32Array([0xffffffff, 0x12345678, 0x80808080, 0x81818181]).buffer);
  assert.throws(() => decodeIdChunk(hashes), MalformedIdChunkError);
});

test('dedupe store: ids of any length and script are exact before the commit, in recent chunks, spilled, and after a reopen', async () => {
  const dir = await mkdtemp(join(tmpdir(), 'tributary-dedupe-store-'));
  const ids = [
    'a',
    '',
    'ü€𝄞',
    'x'.repeat(127),
    'x'.repeat(128),
    'y'.repeat(300),
    'ÿ'.repeat(70),
    ...Array.from({ length: 60 }, (_, i) => `id-${i}-${'€'.repeat(i)}`),
  ];
  try {
    const first = await open(dir);
    ids.forEach((id, i) => assert.equal(first.store.checkAndRemember(id, i, i), false, id));
    // Before the commit (the fresh arena), then the neighbours that differ by one byte or a prefix.
    for (const id of ids) assert.equal(first.store.checkAndRemember(id, 70, 70), true, id);
    for (const other of ['x'.repeat(126), 'x'.repeat(129), 'y'.repeat(299), 'ü€', 'id-3-€€'])
      assert.equal(await first.store.contains(other, 70), false, other);
    await first.db.commit({});
    assert.ok(first.store.filterBytes > 0, 'some spilled');
    for (const id of ids) assert.equal(await first.store.contains(id, 70), true, id);
    await first.db.close();
    const second = await open(dir);
    await second.store.prefetch(ids);
    for (const id of ids) assert.equal(second.store.checkAndRemember(id, 80, 80), true, id);
    assert.equal(second.store.checkAndRemember('x'.repeat(129), 80, 80), false);
    await second.db.close();
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
});

test('dedupe store: after a restore the first commit snapshots the filter, so later opens read the snapshot, not every restored chunk', async () => {
  const source = await mkdtemp(join(tmpdir(), 'tributary-dedupe-store-'));
  const target = await mkdtemp(join(tmpdir(), 'tributary-dedupe-store-'));
  const options = { horizon: 1000, bucket: 100 };
  try {
    const first = await open(source);
    const changes: ChangeRecord[] = [];
    first.db.onChange((batch) => changes.push(...batch.filter((c) => c.store === 'ids')));
    for (let i = 0; i < 200; i++) first.store.checkAndRemember(`id-${i}`, i * 4, i * 4);
    await first.db.commit({});
    await first.db.close();

    const db = await StateDb.open(target);
    await db.applyChangelog(
      { level: 'dedupe:ids', binary: true },
      'ids',
      changes,
      BigInt(changes.length - 1),
      dedupeRestoreDeriver(db, 'ids', options),
    );
    await db.close();
    const local = async (dir: string) => {
      const restored = await open(dir);
      const keys = await restored.db.binaryLevel('dedupe-local:ids').keys().all();
      return {
        restored,
        pending: keys.filter((k) => k.startsWith('p')),
        blobs: keys.filter((k) => k.startsWith('g')),
      };
    };
    const second = await local(target);
    assert.ok(second.pending.length > 0, 'restored chunks are marked to be re-read');
    await second.restored.db.commit({});
    await second.restored.db.close();
    const third = await local(target);
    assert.deepEqual(third.pending, [], 'the first commit after the restore snapshotted the filter');
    assert.ok(third.blobs.length > 0);
    for (let i = 0; i < 200; i++) assert.equal(await third.restored.store.contains(`id-${i}`, 800), true);
    await third.restored.db.close();
  } finally {
    await rm(source, { recursive: true, force: true });
    await rm(target, { recursive: true, force: true });
  }
});

test('dedupe store: recent ids spilled at a commit of an idle partition (its cache share shrank) are still known, in memory and after a reopen; no changelog transaction', async () => {
  const dir = await mkdtemp(join(tmpdir(), 'tributary-dedupe-store-'));
  const budget = new CacheBudget(cacheBytes);
  // Another store on the same budget: while it keeps nothing resident, this one may use the whole budget.
  const neighbour = budget.join();
  let transactions = 0;
  const changelog = async () => {
    transactions++;
    return new Map<string, bigint>();
  };
  const ids = Array.from({ length: 30 }, (_, i) => `id-${i}`);
  try {
    const db = await StateDb.open(dir);
    const store = await db.attach(new DedupeStore(db, 'ids', { horizon: 1000, bucket: 100 }, budget, tuning));
    for (const id of ids) assert.equal(store.checkAndRemember(id, 10, 10), false, id);
    await db.commit({ positions: 30 }, changelog);
    assert.equal(store.filterBytes, 0, 'the ids fit the whole budget: none spilled');
    assert.equal(transactions, 1);

    // The neighbour grows to the whole budget: this store's share falls to its even half. Its
    // partition is idle, so the next commit changes nothing the changelog carries, but it spills.
    neighbour.report(cacheBytes);
    await db.commit({ positions: 30 }, changelog);
    assert.ok(store.filterBytes > 0, 'the idle commit spilled the recent ids');
    assert.equal(transactions, 1, 'an idle commit sends no changelog transaction');
    await store.prefetch(ids);
    for (const id of ids) assert.equal(store.checkAndRemember(id, 20, 20), true, id);
    await db.close();

    const reopened = await open(dir);
    await reopened.store.prefetch(ids);
    for (const id of ids) assert.equal(reopened.store.checkAndRemember(id, 20, 20), true, id);
    await reopened.db.close();
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
});

test('dedupe store: an open whose share is smaller than the recent ids written (a smaller cache, more partitions) keeps the newest that fit and spills the rest in batches; every id stays known', async () => {
  const dir = await mkdtemp(join(tmpdir(), 'tributary-dedupe-store-'));
  const openWith = async (bytes: number) => {
    const db = await StateDb.open(dir);
    const store = await db.attach(
      new DedupeStore(db, 'ids', { horizon: 1000, bucket: 100 }, new CacheBudget(bytes), {
        ...tuning,
        spillAtOpenBatchIds: 50,
      }),
    );
    return { db, store };
  };
  // 300 ids over 9 buckets, a commit every 30: many chunks, all recent under a cache 10 times larger.
  const ids = Array.from({ length: 300 }, (_, i) => `id-${i}`);
  try {
    const large = await openWith(cacheBytes * 10);
    for (let i = 0; i < ids.length; i++) {
      assert.equal(large.store.checkAndRemember(ids[i] as string, i * 3, i * 3), false);
      if (i % 30 === 29) await large.db.commit({ commit: i });
    }
    assert.equal(large.store.filterBytes, 0, 'nothing spilled under the large cache');
    await large.db.close();

    const small = await openWith(cacheBytes);
    assert.ok(small.store.recentIdBytes > 0, 'the newest ids are recent');
    assert.ok(
      small.store.recentIdBytes <= cacheBytes,
      `recent ids within the smaller cache (${small.store.recentIdBytes})`,
    );
    assert.ok(small.store.filterBytes > 0, 'the older ids went to the filter and the index');
    const indexed = await small.db.textLevel('dedupe-index:ids').keys().all();
    assert.ok(indexed.length >= 300 - 40 && indexed.length < 300, `older ids indexed (${indexed.length})`);
    await small.store.prefetch([...ids, 'id-300']);
    for (const id of ids) assert.equal(small.store.checkAndRemember(id, 950, 950), true, id);
    assert.equal(small.store.checkAndRemember('id-300', 950, 950), false, 'a new id is new');
    await small.db.close();

    // And back under the large cache: the spilled ids stay spilled, every id is still known.
    const again = await openWith(cacheBytes * 10);
    await again.store.prefetch(ids);
    for (const id of ids) assert.equal(again.store.checkAndRemember(id, 960, 960), true, id);
    await again.db.close();
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
});
