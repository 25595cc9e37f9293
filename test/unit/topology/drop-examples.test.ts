/** The engine remembers where its latest late event and dead letter per reason were (examples for the log). */
import assert from 'node:assert/strict';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { TopologyBuilder, count, memorySink, minutes, tumbling } from '../../../src/index.js';
import type { RawRecord } from '../../../src/index.js';
import { T0, jsonSerde } from './helpers.js';
import type { UsageEvent } from './helpers.js';

function record(offset: number, time: number, value: string | null): RawRecord {
  return {
    topic: 'usage',
    partition: 0,
    offset: BigInt(offset),
    timestamp: time,
    key: null,
    value: value === null ? null : Buffer.from(value),
    headers: {},
  };
}

const event = (id: string, time: number) => JSON.stringify({ id, subject: 'alpha', value: 1, time });

test('a task reports the offsets of its latest late event and dead letter per reason, with the counts', async () => {
  const builder = new TopologyBuilder();
  builder
    .stream('usage', jsonSerde<UsageEvent>())
    .groupBy((e) => e.subject)
    .window(tumbling(minutes(1)))
    .aggregate({ count: count() })
    .to(memorySink('per-minute'));
  const dir = await mkdtemp(join(tmpdir(), 'tributary-drop-examples-'));
  const task = await builder.build().openTask({ partition: 0, dir });
  try {
    assert.deepEqual(task.dropExamples?.(), { deadLetters: {} }, 'nothing dropped yet');
    await task.process([
      record(0, T0 + minutes(10), event('a', T0 + minutes(10))),
      record(1, T0, event('b', T0)), // its window closed long ago: late
      record(2, T0 + minutes(10), 'not json'),
      record(3, T0 + minutes(1), event('c', T0 + minutes(1))), // late too
      record(4, T0 + minutes(10), null),
    ]);
    assert.equal(task.metrics().lateEvents, 2);
    assert.deepEqual(task.metrics().deadLetters, { 'decode-failed': 2 });
    assert.deepEqual(task.dropExamples?.(), { lateEvent: 3n, deadLetters: { 'decode-failed': 4n } });
  } finally {
    await task.close();
    await rm(dir, { recursive: true, force: true });
  }
});
