import assert from 'node:assert/strict';
import { test } from 'node:test';
import fc from 'fast-check';
import {
  TestDriver,
  TopologyBuilder,
  count,
  memorySink,
  minutes,
  quantiles,
  seconds,
  sum,
  tumbling,
} from '../../../src/index.js';
import type { DeadLetter, WindowResult } from '../../../src/index.js';
import { T0, byWindowAndKey, jsonSerde } from './helpers.js';
import type { UsageEvent } from './helpers.js';

/** Dedupe, two windowed aggregates with different late policies, and a stateful processor. */
function topology() {
  const builder = new TopologyBuilder();
  const events = builder
    .stream('usage', jsonSerde<UsageEvent>(), { timestamp: (e) => e.time })
    .dedupe((e) => e.id, { horizon: minutes(3), bucket: seconds(20) });
  events
    .groupBy((e) => e.subject)
    .window(tumbling(minutes(1)), {
      grace: seconds(5),
      outOfOrderness: seconds(10),
      late: 're-emit',
      allowedLateness: minutes(1),
    })
    .aggregate({ n: count(), total: sum((e) => e.value), p: quantiles((e) => e.value) })
    .to(memorySink('reemitted'));
  events
    .groupBy((e) => ({ subject: e.subject, even: e.value % 2 === 0 }))
    .window(tumbling(seconds(30)), { late: 'dlq' })
    .aggregate({ n: count() })
    .to(memorySink('strict'));
  events
    .process<string>(
      (ctx) => {
        const running = ctx.getStore<number>('running');
        ctx.schedule(seconds(45), 'event-time', async (time) => {
          const entries: Array<[string, number]> = [];
          for await (const entry of running.entries()) entries.push(entry);
          ctx.forward(`punctuation@${time}:${entries.sort().join(',')}`);
        });
        return (e) => {
          const total = (running.get(e.subject) ?? 0) + e.value;
          running.put(e.subject, total);
          ctx.forward(`${e.id}:${total}`);
        };
      },
      { stores: ['running'] },
    )
    .to(memorySink<string>('running-totals'));
  return builder.build();
}

const eventArbitrary = fc.record({
  id: fc.integer({ min: 0, max: 60 }).map((n) => `id-${n}`),
  subject: fc.constantFrom('alpha', 'beta', 'gamma'),
  value: fc.integer({ min: 1, max: 1000 }),
  time: fc.integer({ min: 0, max: 6 * 60_000 }).map((offset) => T0 + offset),
});

const stepArbitrary = fc.record({
  event: eventArbitrary,
  restartAfter: fc.option(fc.constantFrom<'clean' | 'crash'>('clean', 'crash'), { freq: 6 }),
  commitAfter: fc.boolean(),
});

interface Observed {
  reemitted: unknown[];
  strict: unknown[];
  running: unknown[];
  deadLetters: Array<[string, string]>;
  metrics: unknown;
}

async function run(
  steps: Array<{ event: UsageEvent; restartAfter: 'clean' | 'crash' | null; commitAfter: boolean }>,
  interrupted: boolean,
): Promise<Observed> {
  const driver = new TestDriver(topology());
  try {
    for (const step of steps) {
      await driver.pipe('usage', step.event);
      if (interrupted && step.commitAfter) await driver.commit();
      if (interrupted && step.restartAfter) await driver.restart({ crash: step.restartAfter === 'crash' });
    }
    await driver.pipe('usage', { id: 'flush', subject: 'alpha', value: 1, time: T0 + minutes(30) });
    const sortResults = (rows: Array<WindowResult<unknown, unknown>>) => byWindowAndKey(rows);
    const metrics = await driver.metrics();
    return {
      reemitted: sortResults(await driver.output('reemitted')),
      strict: sortResults(await driver.output('strict')),
      // The processor's outputs depend only on input order: compare them in order.
      running: await driver.output('running-totals'),
      deadLetters: (await driver.deadLetters())
        .map((letter: DeadLetter) => [letter.reason, letter.record.offset.toString()] as [string, string])
        .sort(),
      metrics,
    };
  } finally {
    await driver.close();
  }
}

test('property: random event orders with random clean and crash restarts give exactly the results of an uninterrupted run', async () => {
  await fc.assert(
    fc.asyncProperty(fc.array(stepArbitrary, { minLength: 1, maxLength: 60 }), async (steps) => {
      const normalized = steps.map((step) => ({ ...step, restartAfter: step.restartAfter ?? null }));
      const expected = await run(normalized, false);
      const actual = await run(normalized, true);
      assert.deepEqual(actual, expected);
    }),
    { numRuns: 40 },
  );
});
