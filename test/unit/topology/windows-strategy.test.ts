import assert from 'node:assert/strict';
import { test } from 'node:test';
import {
  Stream,
  TestDriver,
  TopologyBuilder,
  count,
  memorySink,
  minutes,
  tumbling,
} from '../../../src/index.js';
import type { WindowResult } from '../../../src/index.js';
import { TumblingWindowStrategy, windowStartsFor } from '../../../src/topology/windows.js';
import type { Windows } from '../../../src/topology/windows.js';
import { resolveWindowOptions } from '../../../src/topology/window-options.js';
import { windowAggregateOperator } from '../../../src/topology/operators/window-aggregate.js';
import { windowStartOf } from '../../../src/topology/time.js';
import { T0, jsonSerde } from './helpers.js';
import type { UsageEvent } from './helpers.js';

const MINUTE = minutes(1);

test('tumbling windows: one window per time, boundaries belong to the window they start', () => {
  const windows = new TumblingWindowStrategy(MINUTE, 0);
  assert.deepEqual(windowStartsFor(windows, 0), [0]);
  assert.deepEqual(windowStartsFor(windows, MINUTE - 1), [0]);
  assert.deepEqual(windowStartsFor(windows, MINUTE), [MINUTE]);
  assert.deepEqual(windowStartsFor(windows, T0 + 59_999), [T0]);
  assert.deepEqual(windowStartsFor(windows, T0 + 60_000), [T0 + 60_000]);
  assert.equal(windows.advanceMs, MINUTE, 'tumbling windows advance by their size');
});

test('tumbling windows before the epoch: -1 is in the window starting at -size, -size too', () => {
  const windows = new TumblingWindowStrategy(MINUTE, 0);
  assert.deepEqual(windowStartsFor(windows, -1), [-MINUTE]);
  assert.deepEqual(windowStartsFor(windows, -MINUTE), [-MINUTE]);
  assert.deepEqual(windowStartsFor(windows, -MINUTE - 1), [-2 * MINUTE]);
});

test('a tumbling size that is not a positive integer of ms is refused', () => {
  assert.throws(() => new TumblingWindowStrategy(0, 0), /positive integer of ms, got 0/);
  assert.throws(() => new TumblingWindowStrategy(1.5, 0), /positive integer of ms, got 1.5/);
});

test("window()'s grace option becomes the strategy's grace; absent, it is 0", () => {
  const graced = resolveWindowOptions(tumbling(MINUTE), { grace: 5000 }).windows;
  assert.deepEqual(
    { kind: graced.kind, sizeMs: graced.sizeMs, advanceMs: graced.advanceMs, graceMs: graced.graceMs },
    { kind: 'tumbling', sizeMs: MINUTE, advanceMs: MINUTE, graceMs: 5000 },
  );
  assert.equal(resolveWindowOptions(tumbling(MINUTE), {}).windows.graceMs, 0);
});

test("a tumbling window store's format is tagged by its size alone, as before the strategy", () => {
  const builder = new TopologyBuilder();
  builder
    .stream('usage', jsonSerde<UsageEvent>())
    .groupBy((event) => event.subject)
    .window(tumbling(MINUTE), { grace: 5000 })
    .aggregate({ count: count() });
  assert.deepEqual(
    builder
      .build()
      .describe()
      .stores.map((store) => store.name),
    ['usage-1m-count'],
  );
  const format = (builder.build() as unknown as { storeSpecs: Array<{ format: string }> }).storeSpecs[0]
    ?.format;
  assert.equal(format, 'window-numeric/2:count@60000ms');
});

/** Hopping windows as a test strategy (no such kind yet): 10 s long, one every 5 s. */
const hopping: Windows = {
  kind: 'hopping' as 'tumbling',
  sizeMs: 10_000,
  advanceMs: 5_000,
  graceMs: 0,
  latestStartFor: (timestamp) => windowStartOf(timestamp, 5_000),
};

test('overlapping windows: a time is in every window whose start is within a size before it, earliest first', () => {
  assert.deepEqual(windowStartsFor(hopping, 7_000), [0, 5_000]);
  assert.deepEqual(windowStartsFor(hopping, 5_000), [0, 5_000]);
  assert.deepEqual(windowStartsFor(hopping, 4_999), [-5_000, 0]);
});

test('the window aggregate adds a record to each window of its time that the strategy gives', async () => {
  const builder = new TopologyBuilder();
  const usage = builder.stream('usage', jsonSerde<UsageEvent>(), { timestamp: (event) => event.time });
  const options = { ...resolveWindowOptions(tumbling(MINUTE), {}), windows: hopping };
  const node = builder.addOperator(
    [usage.edge()],
    windowAggregateOperator({
      name: 'hopping-count',
      keyOf: (value) => (value as UsageEvent).subject,
      options,
      spec: { count: count() },
    }),
  );
  new Stream<WindowResult<string, { count: number }>>(builder, node).to(memorySink('counts'));
  const driver = new TestDriver(builder.build());
  try {
    await driver.pipe('usage', { id: 'e1', subject: 'a', value: 1, time: T0 + 7_000 });
    await driver.pipe('usage', { id: 'e2', subject: 'a', value: 1, time: T0 + 60_000 });
    const rows = await driver.output<WindowResult<string, { count: number }>>('counts');
    assert.deepEqual(
      rows.map((row) => [row.windowStart - T0, row.windowEnd - T0, row.key, row.value.count]),
      [
        [0, 10_000, 'a', 1],
        [5_000, 15_000, 'a', 1],
      ],
    );
  } finally {
    await driver.close();
  }
});
