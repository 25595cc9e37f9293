import assert from 'node:assert/strict';
import { test } from 'node:test';
import { TestDriver, TopologyBuilder, count, memorySink, minutes, tumbling } from '../../../src/index.js';
import type { WindowResult } from '../../../src/index.js';
import type { TaskRuntime } from '../../../src/topology/graph.js';
import { groupByStep } from '../../../src/topology/operators/group-by.js';
import { T0, jsonSerde } from './helpers.js';
import type { UsageEvent } from './helpers.js';

test('the window aggregate groups by the key groupBy sets, not by the Kafka key', async () => {
  const builder = new TopologyBuilder();
  builder
    .stream('usage', jsonSerde<UsageEvent>(), { timestamp: (event) => event.time })
    .groupBy((event) => event.subject)
    .window(tumbling(minutes(1)))
    .aggregate({ count: count() })
    .to(memorySink('counts'));
  const driver = new TestDriver(builder.build());
  try {
    // The Kafka keys cut across the subjects: grouping by them would give k1: 2, k2: 1.
    await driver.pipe('usage', { id: 'e1', subject: 'a', value: 1, time: T0 }, { key: 'k1' });
    await driver.pipe('usage', { id: 'e2', subject: 'b', value: 1, time: T0 + 1 }, { key: 'k1' });
    await driver.pipe('usage', { id: 'e3', subject: 'a', value: 1, time: T0 + 2 }, { key: 'k2' });
    await driver.pipe('usage', { id: 'e4', subject: 'a', value: 1, time: T0 + minutes(1) }, { key: 'k2' });
    const rows = await driver.output<WindowResult<string, { count: number }>>('counts');
    assert.deepEqual(
      rows.map((row) => [row.key, row.value.count]),
      [
        ['a', 2],
        ['b', 1],
      ],
    );
  } finally {
    await driver.close();
  }
});

test("groupBy's step sets the key for the steps it feeds and puts the previous one back after them", () => {
  const task = { key: 'kafka-key' } as unknown as TaskRuntime;
  const seen: unknown[] = [];
  const push = groupByStep(
    (value) => (value as { subject: string }).subject,
    task,
    () => seen.push(task.key),
  );
  push({ subject: 'a' });
  assert.deepEqual(seen, ['a']);
  assert.equal(task.key, 'kafka-key', 'a sibling branch of the record sees its own key');
  const failing = groupByStep(
    () => 'b',
    task,
    () => {
      throw new Error('user function threw');
    },
  );
  assert.throws(() => failing({}), /user function threw/);
  assert.equal(task.key, 'kafka-key', 'put back when a step after it throws');
});
