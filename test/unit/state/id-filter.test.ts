import assert from 'node:assert/strict';
import { test } from 'node:test';
import { IdFilter } from '../../../src/state/id-filter.js';
import { hashId, idHash } from '../../../src/state/id-hash.js';

const BUCKETS_PER_GENERATION = 8;

function hashOf(id: string): { high: number; low: number } {
  hashId(id);
  return { high: idHash.high, low: idHash.low };
}

function add(filter: IdFilter, id: string, generation: number): void {
  const { high, low } = hashOf(id);
  filter.add(high, low, generation * BUCKETS_PER_GENERATION);
}

function generationsOf(filter: IdFilter, id: string): number[] {
  const { high, low } = hashOf(id);
  const out: number[] = [];
  filter.generationsMaybeHolding(high, low, out);
  return out;
}

/** Share of `count` ids never added that the filter still names a generation for. */
function falsePositiveRate(filter: IdFilter, count: number): number {
  let maybe = 0;
  for (let i = 0; i < count; i++) if (generationsOf(filter, `never-${i}`).length > 0) maybe++;
  return maybe / count;
}

test('every id added is found under its generation, through segments that outgrow the first (no false negative)', () => {
  const filter = new IdFilter(BUCKETS_PER_GENERATION);
  // Generation 0 grows from the smallest segment through three more; later ones start at its size.
  const sizes = [1_200_000, 300_000, 900_000];
  sizes.forEach((size, generation) => {
    for (let i = 0; i < size; i++) add(filter, `g${generation}-${i}`, generation);
  });
  sizes.forEach((size, generation) => {
    for (let i = 0; i < size; i += 7)
      assert.ok(generationsOf(filter, `g${generation}-${i}`).includes(generation), `g${generation}-${i}`);
  });
  const rate = falsePositiveRate(filter, 100_000);
  assert.ok(rate < 0.03, `false positive rate ${rate}`);
  // Growing from nothing, and uneven generations, cost more than a steady stream (see the next test).
  assert.ok(filter.bytes / 2_400_000 < 3, `${filter.bytes / 2_400_000} bytes per id`);
});

test('a generation whose ids are known ahead (a store spilling or re-reading it whole) gets one segment of its size', () => {
  const sizes = [2_000_000, 1_500_000];
  const hinted = new IdFilter(BUCKETS_PER_GENERATION, (generation) => sizes[generation] ?? 0);
  const unhinted = new IdFilter(BUCKETS_PER_GENERATION);
  sizes.forEach((size, generation) => {
    for (let i = 0; i < size; i++) {
      add(hinted, `g${generation}-${i}`, generation);
      add(unhinted, `g${generation}-${i}`, generation);
    }
  });
  for (const [generation, size] of sizes.entries())
    for (let i = 0; i < size; i += 13)
      assert.ok(generationsOf(hinted, `g${generation}-${i}`).includes(generation), `g${generation}-${i}`);
  const ids = sizes[0]! + sizes[1]!;
  // One segment per generation: a steady stream's cost from the first generation on. Grown from the
  // smallest segment, the first generation holds four, a third of their room unused.
  assert.ok(hinted.bytes / ids <= 2, `${hinted.bytes / ids} bytes per id`);
  assert.ok(unhinted.bytes > hinted.bytes * 1.2, `${unhinted.bytes} vs ${hinted.bytes} bytes`);
  const rate = falsePositiveRate(hinted, 100_000);
  assert.ok(rate < 0.01, `false positive rate ${rate}`);
});

test('a dropped generation is forgotten, its memory goes to the next generation, and a steady stream keeps one table under 2 bytes per id', () => {
  const filter = new IdFilter(BUCKETS_PER_GENERATION);
  const perGeneration = 300_000;
  const held = 8;
  let peakBytes = 0;
  for (let generation = 0; generation < 20; generation++) {
    for (let i = 0; i < perGeneration; i++) add(filter, `g${generation}-${i}`, generation);
    // The horizon moves on: keep the last `held` generations.
    filter.dropBefore((generation - held + 1) * BUCKETS_PER_GENERATION);
    if (generation >= held) peakBytes = Math.max(peakBytes, filter.bytes);
  }
  for (let i = 0; i < perGeneration; i += 11) {
    assert.ok(generationsOf(filter, `g19-${i}`).includes(19));
    assert.ok(generationsOf(filter, `g12-${i}`).includes(12));
    assert.ok(!generationsOf(filter, `g11-${i}`).includes(11), 'generation 11 was dropped');
  }
  // Old ids are as unknown as ids never added.
  let oldMaybe = 0;
  for (let i = 0; i < 50_000; i++) if (generationsOf(filter, `g5-${i}`).length > 0) oldMaybe++;
  assert.ok(oldMaybe / 50_000 < 0.03, `dropped ids still named: ${oldMaybe / 50_000}`);
  const liveIds = held * perGeneration;
  assert.ok(peakBytes / liveIds <= 2, `${peakBytes / liveIds} bytes per live id at most`);
});

test('serialize and loadAll give back the same answers; a blob of one contiguous segment (the earlier layout) loads', () => {
  const filter = new IdFilter(BUCKETS_PER_GENERATION);
  for (let generation = 0; generation < 4; generation++)
    for (let i = 0; i < 400_000; i++) add(filter, `g${generation}-${i}`, generation);
  const blobs = [0, 1, 2, 3].map((number) => ({ number, bytes: filter.serialize(number) as Uint8Array }));
  // What the earlier code wrote: [1 segment, capacity, count, words] with block = high * blocks / 2^32.
  const capacity = 262_144;
  const blocks = Math.ceil((capacity * 12) / 256);
  const words = new Uint32Array(3 + blocks * 8);
  words[0] = 1;
  words[1] = capacity;
  const salt = [
    0x47b6137b, 0x44974d91, 0x8824ad5b, 0xa2b7289d, 0x705495c7, 0x2df1424b, 0x9efc4947, 0x5c6bfb31,
  ];
  for (let i = 0; i < 1_000; i++) {
    const { high, low } = hashOf(`old-${i}`);
    const base = 3 + Math.floor((high * blocks) / 4294967296) * 8;
    for (let w = 0; w < 8; w++)
      words[base + w] = (words[base + w] as number) | (1 << (Math.imul(low, salt[w] as number) >>> 27));
    words[2] = (words[2] as number) + 1;
  }
  // An odd offset, as LevelDB may hand a value over.
  const unaligned = new Uint8Array(words.byteLength + 1).subarray(1);
  unaligned.set(new Uint8Array(words.buffer));
  const loaded = new IdFilter(BUCKETS_PER_GENERATION);
  loaded.loadAll([...blobs, { number: 9, bytes: unaligned }]);
  for (let i = 0; i < 1_000; i++) assert.ok(generationsOf(loaded, `old-${i}`).includes(9), `old-${i}`);
  for (let generation = 0; generation < 4; generation++)
    for (let i = 0; i < 400_000; i += 13) {
      const id = `g${generation}-${i}`;
      assert.deepEqual(generationsOf(loaded, id).sort(), generationsOf(filter, id).sort(), id);
    }
  for (let i = 0; i < 20_000; i++)
    assert.deepEqual(
      generationsOf(loaded, `x-${i}`)
        .filter((g) => g !== 9)
        .sort(),
      generationsOf(filter, `x-${i}`).sort(),
    );
  // Loaded generations go on growing and serialize as they were.
  assert.deepEqual(loaded.serialize(2), blobs[2]?.bytes);
  add(loaded, 'late', 3);
  assert.ok(generationsOf(loaded, 'late').includes(3));
});
