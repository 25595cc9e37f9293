import assert from 'node:assert/strict';
import { test } from 'node:test';
import { TopologyBuilder, count, minutes, tumbling } from '../../../src/index.js';
import type { TumblingWindows, WindowOptions } from '../../../src/index.js';
import { jsonSerde } from './helpers.js';
import type { UsageEvent } from './helpers.js';

/** Declares a window with these options, up to window() (where they are checked). */
function declareWindow(options: WindowOptions, windows: TumblingWindows = tumbling(minutes(1))): void {
  new TopologyBuilder()
    .stream('usage', jsonSerde<UsageEvent>())
    .groupBy((event) => event.subject)
    .window(windows, options);
}

const DURATIONS = ['grace', 'outOfOrderness', 'idleness', 'allowedLateness'] as const;
const INVALID: Array<[value: number, shown: string]> = [
  [-1, '-1'],
  [NaN, 'NaN'],
  [Infinity, 'Infinity'],
  [-Infinity, '-Infinity'],
];

for (const option of DURATIONS) {
  for (const [value, shown] of INVALID) {
    test(`window() rejects ${option}: ${shown}, naming the option and the value`, () => {
      assert.throws(
        () => declareWindow({ [option]: value }),
        (error: Error) => {
          assert.match(
            error.message,
            new RegExp(`^window option ${option} must be a finite number of ms >= 0`),
          );
          assert.ok(error.message.endsWith(`, got ${shown}`), error.message);
          return true;
        },
      );
    });
  }
}

test('window() tells how to say "never" when idleness is not a finite duration', () => {
  assert.throws(
    () => declareWindow({ idleness: Infinity }),
    /^Error: window option idleness must be a finite number of ms >= 0 \(leave it out for never\), got Infinity$/,
  );
});

test('window() rejects a duration that is not a number, and a late policy it does not know', () => {
  assert.throws(
    () => declareWindow({ grace: '5000' as unknown as number }),
    /^Error: window option grace must be a finite number of ms >= 0, got "5000"$/,
  );
  assert.throws(
    () => declareWindow({ late: 'ignore' as unknown as 'drop' }),
    /^Error: window option late must be one of drop, dlq, side-output, re-emit, got "ignore"$/,
  );
});

test('window() accepts zero durations, and describe() shows the options with their defaults applied', () => {
  assert.doesNotThrow(() => declareWindow({ grace: 0, outOfOrderness: 0, idleness: 0, allowedLateness: 0 }));
  const builder = new TopologyBuilder();
  builder
    .stream('usage', jsonSerde<UsageEvent>())
    .groupBy((event) => event.subject)
    .window(tumbling(minutes(1)), { name: 'defaults' })
    .aggregate({ count: count() });
  const node = builder
    .build()
    .describe()
    .processors.find((processor) => processor.name === 'defaults');
  assert.match(
    node?.detail ?? '',
    /^tumbling 60000 ms, grace 0 ms, out-of-orderness 0 ms, late drop; group by .*subject; \{ count: count \}; per input partition$/,
  );
});

test('a window size must be a positive integer of ms, from tumbling() and in a hand-made window', () => {
  for (const size of [0, -60_000, 1.5, NaN, Infinity]) {
    const message = `tumbling window size must be a positive integer of ms, got ${size}`;
    assert.throws(() => tumbling(size), { message });
    assert.throws(() => declareWindow({}, { kind: 'tumbling', size }), { message });
  }
});
