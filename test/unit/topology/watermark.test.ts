import assert from 'node:assert/strict';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import {
  TestDriver,
  TopologyBuilder,
  count,
  memorySink,
  minutes,
  seconds,
  tumbling,
} from '../../../src/index.js';
import { Watermark } from '../../../src/topology/watermark.js';
import { T0, jsonSerde } from './helpers.js';
import type { UsageEvent } from './helpers.js';

test('the watermark trails stream time by the out-of-orderness and never goes back', () => {
  const watermark = new Watermark(seconds(5), undefined, undefined);
  assert.equal(watermark.value, -Infinity, 'no event yet');
  assert.equal(watermark.follow(T0 + 10_000), T0 + 5_000);
  assert.equal(watermark.follow(T0 + 8_000), T0 + 5_000, 'an older stream time does not pull it back');
  assert.equal(watermark.follow(T0 + 20_000), T0 + 15_000);
  assert.equal(watermark.value, T0 + 15_000);
});

test('past the idleness the watermark follows the wall clock; before it, and without idleness, it stays', () => {
  const watermark = new Watermark(seconds(5), seconds(30), undefined);
  watermark.follow(T0 + 100_000);
  assert.equal(watermark.idle(T0 + 100_000, 29_999), false, 'not idle yet');
  assert.equal(watermark.value, T0 + 95_000);
  assert.equal(watermark.idle(T0 + 100_000, 30_000), true);
  assert.equal(watermark.value, T0 + 95_000, 'idle from now on: nothing gained yet');
  assert.equal(watermark.idle(T0 + 100_000, 42_000), true);
  assert.equal(watermark.value, T0 + 107_000, 'gains the 12 s of wall time beyond the idleness');
  watermark.idle(T0 + 100_000, 31_000);
  assert.equal(
    watermark.value,
    T0 + 107_000,
    'a shorter idle time (a new record came) does not pull it back',
  );
  assert.equal(watermark.follow(T0 + 110_000), T0 + 107_000, 'stream time catches up only past it');

  const never = new Watermark(seconds(5), undefined, undefined);
  never.follow(T0 + 100_000);
  assert.equal(never.idle(T0 + 100_000, minutes(60)), false);
  assert.equal(never.value, T0 + 95_000);
});

test('a watermark restored from its checkpoint starts there and still only goes forward', () => {
  const restored = new Watermark(seconds(5), undefined, T0 + 50_000);
  assert.equal(restored.value, T0 + 50_000);
  assert.equal(
    restored.follow(T0 + 40_000),
    T0 + 50_000,
    'stream time behind the checkpoint changes nothing',
  );
  assert.equal(restored.follow(T0 + 60_000), T0 + 55_000);
});

/** Per-subject counts in 1-minute windows, whose watermark follows wall time after 30 s idle. */
function idleWindowTopology() {
  const builder = new TopologyBuilder();
  builder
    .stream('usage', jsonSerde<UsageEvent>(), { timestamp: (event) => event.time })
    .groupBy((event) => event.subject)
    .window(tumbling(minutes(1)), { idleness: seconds(30) })
    .aggregate({ count: count() })
    .to(memorySink('totals'));
  return builder.build();
}

test('the watermark an idle task reached is checkpointed and comes back after a restart', async () => {
  const driver = new TestDriver(idleWindowTopology());
  try {
    await driver.pipe('usage', { id: 'e1', subject: 'a', value: 1, time: T0 + 1_000 });
    await driver.advanceWallClock(seconds(30 + 58));
    assert.equal((await driver.metrics()).watermark, T0 + 59_000, 'stream time + 58 s of idle wall time');
    assert.deepEqual(await driver.output('totals'), [], 'one second short of the window end');
    await driver.restart();
    assert.equal((await driver.metrics()).watermark, T0 + 59_000);
  } finally {
    await driver.close();
  }
});

test('after a restart an idle partition counts its idleness from its last record, not from the reopen', async () => {
  const topology = idleWindowTopology();
  const dir = await mkdtemp(join(tmpdir(), 'tributary-idle-restart-'));
  let wallClock = T0 + 100_000;
  const open = () => topology.openTask({ partition: 0, dir, now: () => wallClock });
  try {
    const first = await open();
    const event: UsageEvent = { id: 'e1', subject: 'a', value: 1, time: T0 + 59_000 };
    await first.process([
      {
        topic: 'usage',
        partition: 0,
        offset: 0n,
        timestamp: event.time,
        key: null,
        value: Buffer.from(JSON.stringify(event)),
        headers: {},
      },
    ]);
    await first.commit();
    await first.close();

    wallClock += seconds(40); // down for 40 s: idle for longer than the idleness
    const reopened = await open();
    try {
      await reopened.tick(wallClock);
      const metrics = reopened.metrics();
      assert.equal(
        metrics.watermark,
        T0 + 59_000 + seconds(10),
        'stream time + the 10 s idle beyond the idleness',
      );
      assert.equal(metrics.windowsEmitted, 1, 'the window [T0, T0 + 1 min) closes at the first tick');
    } finally {
      await reopened.close();
    }
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
});
