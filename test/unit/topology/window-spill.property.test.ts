import assert from 'node:assert/strict';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import fc from 'fast-check';
import {
  TestDriver,
  TopologyBuilder,
  count,
  max,
  memorySink,
  minutes,
  quantiles,
  seconds,
  sum,
  tumbling,
} from '../../../src/index.js';
import type { DeadLetter, WindowResult } from '../../../src/index.js';
import type { PartitionTask } from '../../../src/core/task.js';
import type { TaskRuntime } from '../../../src/topology/graph.js';
import type { GroupWindowStore } from '../../../src/topology/window-store-spec.js';
import { CacheBudget } from '../../../src/core/cache-budget.js';
import { T0, byWindowAndKey, jsonSerde, memoryChangelog, usageRecord } from './helpers.js';
import type { UsageEvent } from './helpers.js';

const WINDOW_STORES = ['reemit-store', 'dlq-store', 'drop-store', 'side-store'];

/**
 * Four window aggregates, one per late policy, over many keys: numeric states with object keys
 * (compact key texts) and JSON states (quantiles) with string keys.
 */
function topology() {
  const builder = new TopologyBuilder();
  const events = builder.stream('usage', jsonSerde<UsageEvent>(), { timestamp: (e) => e.time });
  events
    .groupBy((e) => ({ subject: e.subject, even: e.value % 2 === 0 }))
    .window(tumbling(seconds(30)), {
      grace: seconds(5),
      outOfOrderness: seconds(10),
      late: 're-emit',
      allowedLateness: seconds(40),
      name: 'reemit-store',
    })
    .aggregate({ n: count(), total: sum((e) => e.value) })
    .to(memorySink('reemit'));
  events
    .groupBy((e) => e.subject)
    .window(tumbling(minutes(1)), { grace: seconds(5), late: 'dlq', name: 'dlq-store' })
    .aggregate({ n: count(), p: quantiles((e) => e.value) })
    .to(memorySink('dead-lettered'));
  events
    .groupBy((e) => e.subject)
    .window(tumbling(seconds(20)), { outOfOrderness: seconds(3), late: 'drop', name: 'drop-store' })
    .aggregate({ top: max((e) => e.value) })
    .to(memorySink('drop'));
  const sided = events
    .groupBy((e) => `s/${e.subject}`)
    .window(tumbling(seconds(45)), { late: 'side-output', name: 'side-store' })
    .aggregate({ n: count() });
  sided.to(memorySink('side'));
  sided.lateEvents().to(memorySink<UsageEvent>('late'));
  return builder.build();
}

/** Many keys, times mostly forward with out-of-order and late events, over several windows. */
const eventArbitrary = fc.record({
  id: fc.constant('e'),
  subject: fc.integer({ min: 0, max: 24 }).map((n) => `subject-${n}`),
  value: fc.integer({ min: 1, max: 1000 }),
  time: fc.integer({ min: 0, max: 4 * 60_000 }).map((offset) => T0 + offset),
});

const stepArbitrary = fc.record({
  event: eventArbitrary,
  restartAfter: fc.option(fc.constantFrom<'clean' | 'crash'>('clean', 'crash'), { freq: 12 }),
  commitAfter: fc.boolean(),
});

type Step = { event: UsageEvent; restartAfter: 'clean' | 'crash' | null; commitAfter: boolean };

interface Observed {
  results: Record<string, unknown[]>;
  late: unknown[];
  deadLetters: Array<[string, string]>;
  lateEvents: number;
}

/** What the spilling runs did, summed over all of them (the property proves nothing without it). */
const seen = { evictions: 0, syncReads: 0, prefetches: 0, commitsWithEvictedEntries: 0 };

/** What a task's sink outbox holds (not yet drained), in order. */
async function resultsOf<R>(task: PartitionTask, sink: string): Promise<R[]> {
  const entries =
    (await task
      .outboxes()
      .find((outbox) => outbox.name === sink)
      ?.read(10_000)) ?? [];
  return entries.map((entry) => entry.value as R);
}

async function windowStores(driver: TestDriver): Promise<GroupWindowStore[]> {
  // The task is the engine's, which is also the TaskRuntime its nodes see.
  const task = (await driver.task()) as unknown as TaskRuntime;
  return WINDOW_STORES.map((name) => task.store<GroupWindowStore>(name));
}

async function countSpills(driver: TestDriver): Promise<void> {
  for (const store of await windowStores(driver)) {
    seen.evictions += store.evictions;
    seen.syncReads += store.syncReads;
    seen.prefetches += store.prefetches;
  }
}

async function run(steps: readonly Step[], cacheMaxBytes: number | undefined): Promise<Observed> {
  const spilling = cacheMaxBytes !== undefined;
  const driver = new TestDriver(topology(), spilling ? { cacheMaxBytes } : {});
  try {
    let offset = 0;
    for (const step of steps) {
      await driver.pipe('usage', { ...step.event, id: `e${offset++}` });
      if (spilling && step.commitAfter) {
        await driver.commit();
        const stores = await windowStores(driver);
        if (stores.some((store) => store.residentEntries < store.size)) seen.commitsWithEvictedEntries++;
      }
      if (spilling && step.restartAfter) {
        await countSpills(driver);
        await driver.restart({ crash: step.restartAfter === 'crash' });
      }
    }
    await driver.pipe('usage', { id: 'flush', subject: 'subject-0', value: 1, time: T0 + minutes(30) });
    if (spilling) await countSpills(driver);
    const results: Record<string, unknown[]> = {};
    for (const sink of ['reemit', 'dead-lettered', 'drop', 'side'])
      results[sink] = byWindowAndKey(await driver.output<WindowResult<unknown, unknown>>(sink));
    return {
      results,
      late: (await driver.output<UsageEvent>('late')).map((e) => e.id).sort(),
      deadLetters: (await driver.deadLetters())
        .map((letter: DeadLetter) => [letter.reason, letter.record.offset.toString()] as [string, string])
        .sort(),
      lateEvents: (await driver.metrics()).lateEvents,
    };
  } finally {
    await driver.close();
  }
}

test('property: windows spilled beyond a tiny cache, with restarts, emit exactly what windows in memory emit', async (t) => {
  await fc.assert(
    fc.asyncProperty(
      fc.array(stepArbitrary, { minLength: 1, maxLength: 200, size: 'max' }),
      // 1 byte: every entry is evicted at each commit; a few KB: some stay resident.
      fc.constantFrom(1, 4_000, 20_000),
      async (steps, cacheMaxBytes) => {
        const normalized = steps.map((step) => ({ ...step, restartAfter: step.restartAfter ?? null }));
        const expected = await run(normalized, undefined);
        const actual = await run(normalized, cacheMaxBytes);
        assert.deepEqual(actual, expected);
      },
    ),
    { numRuns: 25 },
  );
  t.diagnostic(`spilling runs: ${JSON.stringify(seen)}`);
  // The spilling runs really evicted entries and read them back from disk (ahead of each record's
  // batch: the windows follow the source directly, so the pre-pass names their keys).
  assert.ok(seen.commitsWithEvictedEntries > 0, `commits with evicted entries: ${JSON.stringify(seen)}`);
  assert.ok(seen.evictions > 0 && seen.prefetches > 0, JSON.stringify(seen));
});

test('a spilled window closed by idleness (tick) emits every entry, evicted ones included, once', async () => {
  const builder = new TopologyBuilder();
  builder
    .stream('usage', jsonSerde<UsageEvent>(), { timestamp: (e) => e.time })
    .groupBy((e) => e.subject)
    .window(tumbling(minutes(1)), { idleness: seconds(30), name: 'idle-store' })
    .aggregate({ n: count(), total: sum((e) => e.value) })
    .to(memorySink('totals'));
  const driver = new TestDriver(builder.build(), { cacheMaxBytes: 1, wallClock: T0 });
  try {
    for (let i = 0; i < 300; i++)
      await driver.pipe('usage', { id: `e${i}`, subject: `subject-${i % 100}`, value: i, time: T0 + i });
    await driver.commit();
    const task = (await driver.task()) as unknown as TaskRuntime;
    const store = task.store<GroupWindowStore>('idle-store');
    assert.equal(store.residentEntries, 0, 'every entry evicted at the commit');
    assert.equal(store.size, 100);
    await driver.advanceWallClock(minutes(5));
    const totals = await driver.output<WindowResult<string, { n: number; total: number }>>('totals');
    assert.equal(totals.length, 100);
    for (const row of totals) {
      const k = Number(row.key.slice('subject-'.length));
      assert.deepEqual(row.value, { n: 3, total: 3 * k + 300 });
    }
    assert.equal(store.size, 0);
  } finally {
    await driver.close();
  }
});

test('a spilled window restored from the changelog into an empty folder closes with every entry', async () => {
  const dirs = [
    await mkdtemp(join(tmpdir(), 'tributary-window-spill-')),
    await mkdtemp(join(tmpdir(), 'tributary-window-spill-')),
  ];
  const changelog = memoryChangelog();
  const builder = new TopologyBuilder();
  builder
    .stream('usage', jsonSerde<UsageEvent>(), { timestamp: (e) => e.time })
    .groupBy((e) => ({ subject: e.subject }))
    .window(tumbling(minutes(1)), { name: 'restored-store' })
    .aggregate({ n: count(), total: sum((e) => e.value) })
    .to(memorySink('totals'));
  const topology = builder.build();
  const event = (i: number) => ({ id: `e${i}`, subject: `subject-${i % 200}`, value: i, time: T0 + i });
  try {
    // Tiny cache: the window spills at the first commit; later commits write updated entries per key.
    const owner = await topology.openTask({
      partition: 0,
      dir: dirs[0] as string,
      changelog,
      cache: new CacheBudget(1),
    });
    for (let i = 0; i < 1_000; i += 250) {
      await owner.process(Array.from({ length: 250 }, (_, j) => usageRecord(i + j, event(i + j))));
      await owner.commit();
    }
    const spilled = (owner as unknown as TaskRuntime).store<GroupWindowStore>('restored-store');
    assert.equal(spilled.residentEntries, 0);
    await owner.close();

    const next = await topology.openTask({
      partition: 0,
      dir: dirs[1] as string,
      changelog,
      cache: new CacheBudget(1),
    });
    const restored = (next as unknown as TaskRuntime).store<GroupWindowStore>('restored-store');
    assert.equal(restored.size, 200);
    assert.equal(restored.residentEntries, 0, 'restored spilled: nothing loaded at open');
    await next.process([
      usageRecord(1_000, { id: 'late-flush', subject: 'other', value: 0, time: T0 + minutes(5) }),
    ]);
    await next.commit();
    const totals = await resultsOf<WindowResult<{ subject: string }, { n: number; total: number }>>(
      next,
      'totals',
    );
    assert.equal(totals.length, 200);
    for (const row of totals) {
      const k = Number(row.key.subject.slice('subject-'.length));
      // Keys k, k + 200, ..., k + 800.
      assert.deepEqual(row.value, { n: 5, total: 5 * k + 2_000 }, row.key.subject);
    }
    await next.close();
  } finally {
    for (const dir of dirs) await rm(dir, { recursive: true, force: true });
  }
});

for (const before of ['lookaheads', 'processor'] as const)
  test(`a batch touching a spilled window (${before} before it) reads the window's evicted entries ${before === 'lookaheads' ? 'ahead, in one getMany per batch' : 'synchronously'}; totals exact`, async () => {
    const dir = await mkdtemp(join(tmpdir(), 'tributary-window-prefetch-'));
    const builder = new TopologyBuilder();
    const events = builder.stream('usage', jsonSerde<UsageEvent>(), { timestamp: (e) => e.time });
    // A process() hides the window's keys from the pre-pass; filter and map do not.
    const steps =
      before === 'lookaheads'
        ? events.filter((e) => e.value >= 0).map((e) => ({ ...e, subject: `s/${e.subject}` }))
        : events.process<UsageEvent>(() => (e) => ({ ...e, subject: `s/${e.subject}` }));
    steps
      .groupBy((e) => ({ subject: e.subject }))
      .window(tumbling(minutes(1)), { name: 'prefetched-store' })
      .aggregate({ n: count(), total: sum((e) => e.value) })
      .to(memorySink('totals'));
    const event = (i: number) => ({ id: `e${i}`, subject: `subject-${i % 200}`, value: i, time: T0 + i });
    try {
      // A cache of 1 byte: every entry is evicted at each commit, so each later batch finds its 200
      // keys on disk only.
      const task = await builder.build().openTask({ partition: 0, dir, cache: new CacheBudget(1) });
      for (let i = 0; i < 1_000; i += 250) {
        await task.process(Array.from({ length: 250 }, (_, j) => usageRecord(i + j, event(i + j))));
        await task.commit();
      }
      const store = (task as unknown as TaskRuntime).store<GroupWindowStore>('prefetched-store');
      assert.equal(store.residentEntries, 0);
      await task.process([
        usageRecord(1_000, { id: 'flush', subject: 'x', value: 0, time: T0 + minutes(5) }),
      ]);
      await task.commit();
      const totals = await resultsOf<WindowResult<{ subject: string }, { n: number; total: number }>>(
        task,
        'totals',
      );
      assert.equal(totals.length, 200);
      for (const row of totals) {
        const k = Number(row.key.subject.slice('s/subject-'.length));
        assert.deepEqual(row.value, { n: 5, total: 5 * k + 2_000 }, row.key.subject);
      }
      // Three batches after a commit evicted everything, 200 keys each: each key read once per batch.
      const reads = { prefetches: store.prefetches, syncReads: store.syncReads };
      assert.deepEqual(
        reads,
        before === 'lookaheads' ? { prefetches: 600, syncReads: 0 } : { prefetches: 0, syncReads: 600 },
      );
      await task.close();
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });

test('after a reopen, a batch touching an object key of a spilled window adds to its one entry, read ahead or not', async () => {
  const dir = await mkdtemp(join(tmpdir(), 'tributary-window-prefetch-'));
  const builder = new TopologyBuilder();
  builder
    .stream('usage', jsonSerde<UsageEvent>(), { timestamp: (e) => e.time })
    .groupBy((e) => ({ subject: e.subject, even: e.value % 2 === 0 }))
    .window(tumbling(minutes(1)), { name: 'object-key-store' })
    .aggregate({ n: count() })
    .to(memorySink('counts'));
  const topology = builder.build();
  const event = (i: number, time: number) => usageRecord(i, { id: `e${i}`, subject: 's', value: 1, time });
  try {
    const first = await topology.openTask({ partition: 0, dir, cache: new CacheBudget(1) });
    await first.process([event(0, T0)]);
    await first.commit();
    await first.close();
    // Reopened, the operator has not seen a key yet: the pre-pass cannot know the key's text as the
    // operator will write it, and must not make the entry resident under another text.
    const next = await topology.openTask({ partition: 0, dir, cache: new CacheBudget(1) });
    await next.process([event(1, T0 + 1), event(2, T0 + minutes(5))]);
    await next.commit();
    const counts = await resultsOf<WindowResult<unknown, { n: number }>>(next, 'counts');
    assert.deepEqual(
      counts.map((row) => [row.windowStart - T0, row.key, row.value.n]),
      [[0, { subject: 's', even: false }, 2]],
    );
    await next.close();
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
});
