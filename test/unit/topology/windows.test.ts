import assert from 'node:assert/strict';
import { test } from 'node:test';
import {
  TestDriver,
  TopologyBuilder,
  count,
  memorySink,
  minutes,
  seconds,
  sum,
  tumbling,
} from '../../../src/index.js';
import type { DeadLetter, LatePolicy, WindowOptions, WindowResult } from '../../../src/index.js';
import { T0, byWindowAndKey, jsonSerde } from './helpers.js';
import type { UsageEvent } from './helpers.js';

type Totals = WindowResult<string, { count: number; total: number }>;

function meteringTopology(options: WindowOptions = {}) {
  const builder = new TopologyBuilder();
  const aggregated = builder
    .stream('usage', jsonSerde<UsageEvent>(), { timestamp: (event) => event.time })
    .groupBy((event) => event.subject)
    .window(tumbling(minutes(1)), options)
    .aggregate({ count: count(), total: sum((event) => event.value) });
  aggregated.to(memorySink('totals'));
  return { builder, aggregated };
}

let nextId = 0;
const event = (subject: string, time: number, value = 1): UsageEvent => ({
  id: `e${nextId++}`,
  subject,
  value,
  time,
});

test('a window [t, t+60s) takes t+59.999s and emits once the watermark reaches its end; t+60s opens the next one', async () => {
  const driver = new TestDriver(meteringTopology().builder.build());
  try {
    await driver.pipe('usage', event('a', T0));
    await driver.pipe('usage', event('a', T0 + 59_999, 2));
    assert.deepEqual(await driver.output('totals'), [], 'window still open at watermark t+59.999s');
    await driver.pipe('usage', event('a', T0 + 60_000, 4));
    const rows = await driver.output<Totals>('totals');
    assert.deepEqual(rows, [
      {
        windowStart: T0,
        windowEnd: T0 + 60_000,
        key: 'a',
        value: { count: 2, total: 3 },
        version: 1,
        partition: 0,
      },
    ]);
    await driver.pipe('usage', event('a', T0 + 120_000));
    const all = await driver.output<Totals>('totals');
    assert.equal(all.length, 2);
    assert.deepEqual(all[1]?.value, { count: 1, total: 4 });
    assert.equal(all[1]?.windowStart, T0 + 60_000);
  } finally {
    await driver.close();
  }
});

test('grace delays the close: the window emits when the watermark reaches end + grace', async () => {
  const driver = new TestDriver(meteringTopology({ grace: seconds(10) }).builder.build());
  try {
    await driver.pipe('usage', event('a', T0));
    await driver.pipe('usage', event('b', T0 + 69_999));
    await driver.pipe('usage', event('a', T0 + 5_000)); // late by event order, inside the grace: counted
    assert.deepEqual(await driver.output('totals'), []);
    await driver.pipe('usage', event('b', T0 + 70_000));
    const rows = await driver.output<Totals>('totals');
    assert.deepEqual(
      rows.map((row) => [row.key, row.value.count]),
      [['a', 2]],
    );
    assert.equal((await driver.metrics()).lateEvents, 0);
  } finally {
    await driver.close();
  }
});

test('out-of-order events inside the out-of-orderness allowance all count; the watermark trails max event time', async () => {
  const driver = new TestDriver(meteringTopology({ outOfOrderness: seconds(30) }).builder.build());
  try {
    const times = [T0 + 50_000, T0 + 10_000, T0 + 80_000, T0 + 59_000, T0 + 55_000, T0 + 1, T0 + 89_999];
    for (const time of times) await driver.pipe('usage', event('k', time));
    assert.deepEqual(await driver.output('totals'), [], 'watermark t+59.999s: first window still open');
    assert.equal((await driver.metrics()).watermark, T0 + 59_999);
    await driver.pipe('usage', event('k', T0 + 90_000));
    const rows = await driver.output<Totals>('totals');
    assert.deepEqual(
      rows.map((row) => [row.windowStart, row.value.count]),
      [[T0, 5]],
    );
    assert.equal((await driver.metrics()).lateEvents, 0);
  } finally {
    await driver.close();
  }
});

async function runLateScenario(late: LatePolicy) {
  const { builder, aggregated } = meteringTopology({ late, allowedLateness: minutes(5) });
  if (late === 'side-output') aggregated.lateEvents().to(memorySink<UsageEvent>('late'));
  const driver = new TestDriver(builder.build());
  await driver.pipe('usage', event('a', T0, 1));
  await driver.pipe('usage', event('a', T0 + 61_000, 1)); // closes [T0, T0+60s)
  await driver.pipe('usage', event('a', T0 + 30_000, 10)); // late for the closed window
  return driver;
}

test("late policy 'drop': the late event is counted and changes no result", async () => {
  const driver = await runLateScenario('drop');
  try {
    assert.deepEqual(
      (await driver.output<Totals>('totals')).map((row) => row.value),
      [{ count: 1, total: 1 }],
    );
    assert.equal((await driver.metrics()).lateEvents, 1);
    assert.deepEqual(await driver.deadLetters(), []);
  } finally {
    await driver.close();
  }
});

test("late policy 'dlq': the late event becomes a dead letter with reason late-event and its raw record", async () => {
  const driver = await runLateScenario('dlq');
  try {
    const letters = await driver.deadLetters();
    assert.equal(letters.length, 1);
    const letter = letters[0] as DeadLetter;
    assert.equal(letter.reason, 'late-event');
    assert.equal(letter.record.offset, 2n);
    assert.equal((JSON.parse((letter.record.value as Buffer).toString()) as UsageEvent).value, 10);
    assert.deepEqual((await driver.metrics()).deadLetters, { 'late-event': 1 });
    assert.equal((await driver.metrics()).lateEvents, 1);
  } finally {
    await driver.close();
  }
});

test("late policy 'side-output': the late event goes to lateEvents() and not into the window", async () => {
  const driver = await runLateScenario('side-output');
  try {
    assert.deepEqual(
      (await driver.output<UsageEvent>('late')).map((e) => e.value),
      [10],
    );
    assert.deepEqual(
      (await driver.output<Totals>('totals')).map((row) => row.value),
      [{ count: 1, total: 1 }],
    );
  } finally {
    await driver.close();
  }
});

test("late policy 're-emit': the window's updated result is emitted again with version 2; beyond allowedLateness it is dropped", async () => {
  const driver = await runLateScenario('re-emit');
  try {
    const rows = await driver.output<Totals>('totals');
    assert.deepEqual(
      rows.map((row) => [row.windowStart, row.version, row.value.count, row.value.total]),
      [
        [T0, 1, 1, 1],
        [T0, 2, 2, 11],
      ],
    );
    // Watermark past T0+60s+5min: the window is gone, a later straggler is only counted.
    await driver.pipe('usage', event('a', T0 + 60_000 + minutes(5) + 1));
    await driver.pipe('usage', event('a', T0 + 1_000, 100));
    const after = (await driver.output<Totals>('totals')).filter((row) => row.windowStart === T0);
    assert.equal(after.length, 2);
    assert.equal((await driver.metrics()).lateEvents, 2);
  } finally {
    await driver.close();
  }
});

test('many keys: one result per (window, key) with exact totals', async () => {
  const driver = new TestDriver(meteringTopology().builder.build());
  try {
    const keys = 500;
    for (let minute = 0; minute < 3; minute++) {
      for (let i = 0; i < keys * 2; i++) {
        await driver.pipe('usage', event(`key-${i % keys}`, T0 + minute * 60_000 + i, i));
      }
    }
    await driver.pipe('usage', event('flush', T0 + 10 * 60_000));
    const rows = await driver.output<Totals>('totals');
    assert.equal(rows.length, 3 * keys);
    for (const row of rows) {
      const index = Number(row.key.slice(4));
      assert.equal(row.value.count, 2);
      assert.equal(row.value.total, index + (index + keys), `key ${row.key}`);
    }
    assert.equal(new Set(rows.map((row) => `${row.windowStart}/${row.key}`)).size, rows.length);
  } finally {
    await driver.close();
  }
});

test('an idle partition advances its watermark with wall time after the idleness and emits its windows', async () => {
  const driver = new TestDriver(
    meteringTopology({ idleness: seconds(30), grace: seconds(5) }).builder.build(),
    { partitions: 2 },
  );
  try {
    await driver.pipe('usage', event('a', T0 + 1_000), { partition: 1 });
    await driver.advanceWallClock(seconds(29));
    assert.deepEqual(await driver.output('totals'), [], 'not idle yet');
    // The watermark must gain end + grace - max event time = 64s of wall time beyond the 30s idleness.
    await driver.advanceWallClock(seconds(30 + 63 - 29));
    assert.deepEqual(await driver.output('totals'), [], 'watermark one second short of end + grace');
    await driver.advanceWallClock(seconds(1));
    const rows = await driver.output<Totals>('totals');
    assert.deepEqual(
      rows.map((row) => [row.key, row.partition, row.value.count]),
      [['a', 1, 1]],
    );
  } finally {
    await driver.close();
  }
});

test('results carry the partition of the task that computed them', async () => {
  const driver = new TestDriver(meteringTopology().builder.build(), { partitions: 3 });
  try {
    for (const partition of [0, 1, 2]) {
      await driver.pipe('usage', event('same-key', T0, partition + 1), { partition });
      await driver.pipe('usage', event('same-key', T0 + 60_000), { partition });
    }
    const rows = byWindowAndKey(await driver.output<Totals>('totals'));
    assert.deepEqual(rows.map((row) => [row.partition, row.value.total]).sort(), [
      [0, 1],
      [1, 2],
      [2, 3],
    ]);
  } finally {
    await driver.close();
  }
});
