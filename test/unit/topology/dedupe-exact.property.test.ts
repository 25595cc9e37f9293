import assert from 'node:assert/strict';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import fc from 'fast-check';
import { TestDriver, TopologyBuilder, memorySink, minutes, seconds } from '../../../src/index.js';
import { RECENT_ID_OVERHEAD_BYTES } from '../../../src/state/dedupe-store.js';
import { hashId, idHash } from '../../../src/state/id-hash.js';
import { T0, jsonSerde, memoryChangelog, usageRecord } from './helpers.js';
import type { UsageEvent } from './helpers.js';

const HORIZON = minutes(2);
const BUCKET = seconds(20);
/** A cache of about 4 recent ids: most remembered ids spill to the index and the filter on disk. */
const SMALL_CACHE = 4 * (RECENT_ID_OVERHEAD_BYTES + 10);

/**
 * The dedupe behind the steps a pre-pass can run ahead (filter, map, peek: the store prefetches from
 * disk), or behind a process() (no pre-pass: an id the filter cannot rule out is read synchronously).
 */
function dedupeTopology(prefix: 'stateless' | 'processor', onPeek: () => void = () => {}) {
  const builder = new TopologyBuilder();
  const events = builder.stream('usage', jsonSerde<UsageEvent>(), { timestamp: (e) => e.time });
  const before =
    prefix === 'stateless'
      ? events
          .filter((e) => e.subject !== 'ignored')
          .peek(onPeek)
          .map((e) => ({ ...e, id: `src/${e.id}` }))
      : events.process<UsageEvent>(
          () => (e) => (e.subject === 'ignored' ? undefined : { ...e, id: `src/${e.id}` }),
        );
  before
    .dedupe((e) => e.id, { horizon: HORIZON, bucket: BUCKET, name: 'ids' })
    .map((e) => `${e.id}@${e.time - T0}`)
    .to(memorySink<string>('unique'));
  return builder.build();
}

/** The reference: exact ids in a Map, with the store's documented horizon (bucket end + horizon). */
function reference(events: readonly UsageEvent[]): { unique: string[]; duplicates: number } {
  const seen = new Map<string, number>();
  let streamTime = -Infinity;
  let duplicates = 0;
  const unique: string[] = [];
  for (const e of events) {
    // Stream time is the task's: every record's time counts, a filtered one too.
    streamTime = Math.max(streamTime, e.time);
    if (e.subject === 'ignored') continue;
    const id = `src/${e.id}`;
    const liveFrom = Math.floor((streamTime - HORIZON) / BUCKET);
    const bucket = seen.get(id);
    if (bucket !== undefined && bucket >= liveFrom) {
      duplicates++;
      continue;
    }
    if (Math.floor(e.time / BUCKET) >= liveFrom) seen.set(id, Math.floor(e.time / BUCKET));
    unique.push(`${id}@${e.time - T0}`);
  }
  return { unique, duplicates };
}

/** Ids from a small pool (many repeats), times that mostly advance and sometimes jump past the horizon. */
const stepArbitrary = fc.record({
  id: fc.integer({ min: 0, max: 60 }).map((n) => `id-${n}`),
  subject: fc.constantFrom('a', 'b', 'ignored'),
  advance: fc.oneof(
    // Mostly forward (out of order by up to 10 s), so that many ids stay live and spill to disk.
    { weight: 8, arbitrary: fc.integer({ min: -seconds(10), max: seconds(15) }) },
    { weight: 1, arbitrary: fc.integer({ min: minutes(1), max: minutes(3) }) },
  ),
  after: fc.option(fc.constantFrom<'commit' | 'restart' | 'crash'>('commit', 'restart', 'crash'), {
    freq: 4,
  }),
});

for (const prefix of ['stateless', 'processor'] as const) {
  test(`dedupe (${prefix} steps before it) equals a reference of exact ids in a Map, through commits, restarts and crashes`, async () => {
    await fc.assert(
      fc.asyncProperty(fc.array(stepArbitrary, { minLength: 40, maxLength: 150 }), async (steps) => {
        const driver = new TestDriver(dedupeTopology(prefix), { cacheMaxBytes: SMALL_CACHE });
        try {
          let time = T0 + minutes(10);
          const events: UsageEvent[] = [];
          for (const step of steps) {
            time = Math.max(T0, time + step.advance);
            const event = { id: step.id, subject: step.subject, value: 1, time };
            events.push(event);
            await driver.pipe('usage', event);
            if (step.after === 'commit') await driver.commit();
            else if (step.after === 'restart') await driver.restart();
            else if (step.after === 'crash') await driver.restart({ crash: true });
          }
          await driver.commit();
          const expected = reference(events);
          assert.deepEqual(await driver.output('unique'), expected.unique);
          assert.equal((await driver.metrics()).duplicatesDropped, expected.duplicates);
        } finally {
          await driver.close();
        }
      }),
      { numRuns: 25 },
    );
  });
}

test('two ids with the same 64-bit hash of the previous scheme are two ids, before and after a restart', async () => {
  // A real collision of the cyrb53-style hash the store used to keep (and its filter still uses).
  const first = 'id-\u55f0\u3d2c!';
  const second = 'id-\u6dd7\u3ee8\u8c22';
  assert.notEqual(first, second);
  assert.deepEqual(oldHash(first), oldHash(second), 'the two ids collide in the old 64-bit hash');
  // A cache of 1 byte: every id spills to disk at its commit.
  const driver = new TestDriver(dedupeTopology('stateless'), { cacheMaxBytes: 1 });
  try {
    await driver.pipe('usage', { id: first, subject: 'a', value: 1, time: T0 });
    await driver.pipe('usage', { id: second, subject: 'a', value: 1, time: T0 + 1 });
    await driver.restart({ crash: true });
    await driver.pipe('usage', { id: first, subject: 'a', value: 1, time: T0 + 2 });
    await driver.restart();
    const task = await driver.task();
    // Once committed, the second id reaches the filter's "maybe" and is told apart on disk.
    await task.process([
      usageRecord(3, { id: second, subject: 'a', value: 1, time: T0 + 3 }),
      usageRecord(4, { id: 'other', subject: 'a', value: 1, time: T0 + 4 }),
    ]);
    await driver.commit();
    assert.deepEqual(await driver.output('unique'), [`src/${first}@0`, `src/${second}@1`, 'src/other@4']);
    assert.equal((await driver.metrics()).duplicatesDropped, 2);
  } finally {
    await driver.close();
  }
});

test('the pre-pass that names a batch ids runs no peek action: each runs once per record', async () => {
  let peeks = 0;
  // A cache of 1 byte: the first batch's ids spill at its commit, so the second batch has a pre-pass.
  const driver = new TestDriver(
    dedupeTopology('stateless', () => peeks++),
    { cacheMaxBytes: 1 },
  );
  try {
    const task = await driver.task();
    const batch = (from: number) =>
      Array.from({ length: 50 }, (_, i) =>
        usageRecord(from + i, { id: `id-${(from + i) % 30}`, subject: 'a', value: 1, time: T0 }),
      );
    await task.process(batch(0));
    await driver.commit();
    await task.process(batch(50));
    await driver.commit();
    assert.equal(peeks, 100);
    assert.equal((await driver.output('unique')).length, 30);
  } finally {
    await driver.close();
  }
});

test('a task restored from the changelog into an empty folder knows every remembered id, and not the expired ones', async () => {
  const dirs = [
    await mkdtemp(join(tmpdir(), 'tributary-dedupe-')),
    await mkdtemp(join(tmpdir(), 'tributary-dedupe-')),
  ];
  const changelog = memoryChangelog();
  const topology = dedupeTopology('stateless');
  try {
    const owner = await topology.openTask({ partition: 0, dir: dirs[0] as string, changelog });
    const events = Array.from({ length: 3000 }, (_, i) => ({
      id: `id-${i}`,
      subject: 'a',
      value: 1,
      time: T0 + i * 100,
    }));
    for (let i = 0; i < events.length; i += 500) {
      await owner.process(events.slice(i, i + 500).map((e, j) => usageRecord(i + j, e)));
      await owner.commit();
    }
    const chunks = changelog.records.get('ids') ?? [];
    assert.ok(chunks.length < 40, `3000 ids travel in a few chunk records (${chunks.length})`);
    await owner.close();

    const next = await topology.openTask({ partition: 0, dir: dirs[1] as string, changelog });
    // Stream time is T0 + 299.9 s: ids of buckets ending before T0 + 179.9 s - 2 min... are expired.
    await next.process([
      usageRecord(3000, { id: 'id-2999', subject: 'a', value: 1, time: T0 + 300_000 }),
      usageRecord(3001, { id: 'id-2000', subject: 'a', value: 1, time: T0 + 300_000 }),
      usageRecord(3002, { id: 'id-0', subject: 'a', value: 1, time: T0 + 300_000 }),
      usageRecord(3003, { id: 'fresh', subject: 'a', value: 1, time: T0 + 300_000 }),
    ]);
    assert.equal(next.metrics().duplicatesDropped, 2, 'id-2999 and id-2000 are known after the restore');
    await next.commit();
    const unique =
      (await next
        .outboxes()
        .find((o) => o.name === 'unique')
        ?.read(10_000)) ?? [];
    assert.deepEqual(
      unique.slice(-2).map((entry) => entry.value),
      ['src/id-0@300000', 'src/fresh@300000'],
      'an id past the horizon passes again, a new one passes',
    );
    await next.close();
  } finally {
    for (const dir of dirs) await rm(dir, { recursive: true, force: true });
  }
});

/** The hash the previous dedupe store kept per id: the one the filter and the recent ids use now. */
function oldHash(id: string): [number, number] {
  hashId(id);
  return [idHash.high, idHash.low];
}
