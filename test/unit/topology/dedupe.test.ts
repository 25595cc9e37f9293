import assert from 'node:assert/strict';
import { test } from 'node:test';
import { TestDriver, TopologyBuilder, memorySink, minutes } from '../../../src/index.js';
import { T0, jsonSerde } from './helpers.js';
import type { UsageEvent } from './helpers.js';

function dedupeTopology(horizon: number, bucket?: number) {
  const builder = new TopologyBuilder();
  builder
    .stream('usage', jsonSerde<UsageEvent>(), { timestamp: (e) => e.time })
    .dedupe((e) => e.id, { horizon, name: 'seen-ids', ...(bucket ? { bucket } : {}) })
    .map((e) => `${e.id}@${(e.time - T0) / 1000}`)
    .to(memorySink<string>('unique'));
  return builder.build();
}

const event = (id: string, secondsAfterT0: number): UsageEvent => ({
  id,
  subject: 's',
  value: 1,
  time: T0 + secondsAfterT0 * 1000,
});

test('dedupe drops an id seen again inside the horizon, also across a restart and a crash', async () => {
  const driver = new TestDriver(dedupeTopology(minutes(10), minutes(1)));
  try {
    await driver.pipe('usage', event('a', 0));
    await driver.pipe('usage', event('b', 1));
    await driver.pipe('usage', event('a', 2));
    await driver.restart();
    await driver.pipe('usage', event('a', 300));
    await driver.pipe('usage', event('b', 60));
    await driver.restart({ crash: true });
    await driver.pipe('usage', event('b', 500));
    assert.deepEqual(await driver.output('unique'), ['a@0', 'b@1']);
    assert.equal((await driver.metrics()).duplicatesDropped, 4);
  } finally {
    await driver.close();
  }
});

test('dedupe forgets an id once stream time passes its bucket end + horizon, and expiry empties the store', async () => {
  // horizon 10 min, bucket 1 min: an id seen at t=0 lives while stream time < 1 min + 10 min.
  const driver = new TestDriver(dedupeTopology(minutes(10), minutes(1)));
  try {
    await driver.pipe('usage', event('a', 0));
    await driver.pipe('usage', event('other', 659.999));
    await driver.pipe('usage', event('a', 659.999));
    assert.deepEqual(await driver.output('unique'), ['a@0', 'other@659.999'], 'still inside the horizon');
    await driver.pipe('usage', event('tick', 660));
    await driver.pipe('usage', event('a', 660));
    assert.deepEqual(
      (await driver.output('unique')).slice(2),
      ['tick@660', 'a@660'],
      'forgotten after the horizon',
    );
    // After a commit, the expired bucket of t=0 is gone from memory and from LevelDB.
    const buckets = (await driver.store('seen-ids')) as Array<{
      value: { bucketStart: number; ids: number };
    }>;
    assert.deepEqual(
      buckets.map((row) => [(row.value.bucketStart - T0) / 1000, row.value.ids]),
      [
        [600, 1],
        [660, 2],
      ],
    );
    await driver.restart({ crash: true });
    const reloaded = (await driver.store('seen-ids')) as Array<{ value: { bucketStart: number } }>;
    assert.deepEqual(
      reloaded.map((row) => (row.value.bucketStart - T0) / 1000),
      [600, 660],
      'reopen loads no expired chunk',
    );
  } finally {
    await driver.close();
  }
});

test('dedupe keeps many ids exactly: 20k distinct ids with every id sent twice yield 20k records', async () => {
  const driver = new TestDriver(dedupeTopology(minutes(60)));
  try {
    const task = await driver.task();
    const records = [];
    for (let i = 0; i < 40_000; i++) {
      const e = event(`id-${i % 20_000}`, i / 1000);
      records.push({
        topic: 'usage',
        partition: 0,
        offset: BigInt(i),
        timestamp: e.time,
        key: null,
        value: Buffer.from(JSON.stringify(e)),
        headers: {},
      });
    }
    await task.process(records.slice(0, 25_000));
    await task.commit();
    await driver.restart({ crash: true });
    const reopened = await driver.task();
    assert.deepEqual(reopened.positions(), new Map([['usage', 25_000n]]));
    await reopened.process(records.slice(25_000));
    assert.equal((await driver.output('unique')).length, 20_000);
    assert.equal(reopened.metrics().duplicatesDropped, 20_000);
  } finally {
    await driver.close();
  }
});
