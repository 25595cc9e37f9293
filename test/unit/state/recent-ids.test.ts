import assert from 'node:assert/strict';
import { test } from 'node:test';
import { CHUNK_MAX_BYTES, appendIdEntry, maxEntryBytes } from '../../../src/state/id-chunks.js';
import { hashId, idHash } from '../../../src/state/id-hash.js';
import { RecentIds } from '../../../src/state/recent-ids.js';

const ABSENT = -Infinity;

/** Encodes `ids` as chunks of the store's format, at most CHUNK_MAX_BYTES each. */
function chunksOf(ids: readonly string[]): Buffer[] {
  const chunks: Buffer[] = [];
  let buffer = Buffer.alloc(CHUNK_MAX_BYTES);
  let used = 0;
  for (const id of ids) {
    if (used + maxEntryBytes(id) > CHUNK_MAX_BYTES) {
      chunks.push(buffer.subarray(0, used));
      buffer = Buffer.alloc(CHUNK_MAX_BYTES);
      used = 0;
    }
    used = appendIdEntry(buffer, used, id);
  }
  if (used > 0) chunks.push(buffer.subarray(0, used));
  return chunks;
}

function lookup(recent: RecentIds, id: string, liveFrom = 0): number {
  hashId(id);
  return recent.lookup(id, idHash.high, idHash.low, liveFrom);
}

test('a bulk load of many chunks finds every loaded id under its chunk bucket, and no other id', () => {
  // Ids of several lengths and non-ASCII ones, over enough chunks to fill many ordering runs.
  const ids = Array.from({ length: 120_000 }, (_, i) =>
    i % 5 === 0 ? `événement-${i}` : i % 3 === 0 ? `a-much-longer-id/source-${i}/${i * 31}` : `id-${i}`,
  );
  const bucketOfId = (i: number) => 10 + Math.floor(i / 40_000);
  const chunks = [0, 1, 2].flatMap((part) =>
    chunksOf(ids.slice(part * 40_000, (part + 1) * 40_000)).map((bytes, n) => ({
      key: `b${part}!${n}`,
      bucket: 10 + part,
      bytes,
    })),
  );
  assert.ok(chunks.length >= 6, `${chunks.length} chunks`);
  const recent = new RecentIds();
  recent.loadChunks(chunks);

  ids.forEach((id, i) => assert.equal(lookup(recent, id), bucketOfId(i), id));
  for (let i = 0; i < 20_000; i++) assert.equal(lookup(recent, `never-${i}`), ABSENT);
  // Expiry still applies to loaded ids: the first bucket's ids no longer count from bucket 11 on.
  assert.equal(lookup(recent, 'id-1', 11), ABSENT);
  assert.equal(lookup(recent, 'id-40001', 11), 11);
});

test('after a bulk load, new ids go in beside the loaded ones and both stay found', () => {
  const loaded = Array.from({ length: 30_000 }, (_, i) => `loaded-${i}`);
  const recent = new RecentIds();
  recent.loadChunks(chunksOf(loaded).map((bytes, n) => ({ key: `k${n}`, bucket: 3, bytes })));
  for (let i = 0; i < 30_000; i++) {
    const id = `fresh-${i}`;
    assert.equal(lookup(recent, id), ABSENT);
    recent.insertFresh(id, idHash.high, idHash.low, 4);
  }
  for (const id of loaded) assert.equal(lookup(recent, id), 3, id);
  for (let i = 0; i < 30_000; i++) assert.equal(lookup(recent, `fresh-${i}`), 4);
});
