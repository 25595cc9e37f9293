/**
 * The runtime without a broker: a real Instance (real topology, real LevelDB state in a temp folder)
 * on the in-memory Kafka of test/helpers/fake-kafka.ts. Each test checks what a user would: the rows
 * in the sink, the records in the DLQ topic and the group's committed offsets.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { sleep } from '../../../src/core/retry.js';
import { parseDlqMessage } from '../../../src/serde/dlq.js';
import type { Instance } from '../../../src/runtime/instance.js';
import { FakeKafka } from '../../helpers/fake-kafka.js';
import {
  HoldableJson,
  INPUT,
  events,
  idsTopology,
  range,
  startInstance,
  switchableSink,
  instanceHarness,
  testConfig,
} from './instance-fixtures.js';

const GROUP = 'app';
const DLQ = 'app.dlq';

const harness = instanceHarness();

async function start(kafka: FakeKafka, ...args: Parameters<typeof idsTopology>): Promise<Instance> {
  return startWith(kafka, testConfig(harness.dir), ...args);
}

async function startWith(
  kafka: FakeKafka,
  config: ReturnType<typeof testConfig>,
  ...args: Parameters<typeof idsTopology>
): Promise<Instance> {
  const instance = await startInstance(kafka, idsTopology(...args), config);
  harness.track(instance);
  return instance;
}

/** Delivers everything, then stops (which checkpoints the acks), so the next start replays nothing. */
async function settle(instance: Instance): Promise<void> {
  await checkpointAndDeliver(instance);
  await instance.stop();
}

/** Checkpoints and waits for the delivery round it starts. */
async function checkpointAndDeliver(instance: Instance): Promise<void> {
  await instance.commitAll('test');
  await instance.deliverAll();
}

const dlqEntries = (kafka: FakeKafka) =>
  kafka.records(DLQ).map((record) => {
    const letter = parseDlqMessage(record);
    return { id: String(letter.record.key), reason: letter.reason, offset: letter.record.offset };
  });

const committedInput = (kafka: FakeKafka) => Object.fromEntries(kafka.committed(GROUP, INPUT));

test('records reach the sink once and in order, bad ones the DLQ, and group offsets follow the checkpoint', async () => {
  const kafka = new FakeKafka();
  const sink = switchableSink();
  kafka.createTopic(INPUT, 2);
  kafka.produce(INPUT, 0, events(['a0', 'a1', 'a2', 'a3'], ['a2']));
  kafka.produce(INPUT, 1, events(['b0', 'b1']));
  const instance = await start(kafka, sink);
  const consumer = kafka.consumer(GROUP);
  consumer.assign([0, 1]);
  await consumer.pollUntilIdle();

  await checkpointAndDeliver(instance);

  assert.deepEqual(
    sink.rows.filter((row) => row.startsWith('a')),
    ['a0', 'a1', 'a3'],
  );
  assert.deepEqual(
    sink.rows.filter((row) => row.startsWith('b')),
    ['b0', 'b1'],
  );
  assert.deepEqual(dlqEntries(kafka), [{ id: 'a2', reason: 'validation-failed', offset: 2n }]);
  assert.deepEqual(committedInput(kafka), { 0: 4n, 1: 2n });
  assert.deepEqual(
    instance.tasks().map((t) => [t.partition, t.positions[INPUT], t.pendingOutputs]),
    [
      [0, '4', 0],
      [1, '2', 0],
    ],
  );
});

test('a partition revoked while a batch is in hand is checkpointed after that batch: the next owner loses and repeats nothing', async () => {
  const kafka = new FakeKafka();
  const sink = switchableSink();
  const serde = new HoldableJson();
  kafka.createTopic(INPUT, 1);
  kafka.produce(INPUT, 0, events(range('a', 0, 10)));
  const first = await start(kafka, sink, serde);
  const crashes: Error[] = [];
  first.onCrash((error) => crashes.push(error));
  const firstConsumer = kafka.consumer(GROUP);
  firstConsumer.assign([0]);
  await firstConsumer.pollUntilIdle();
  await checkpointAndDeliver(first);

  // The next batch is in hand (its decode waits) when the group takes the partition away.
  kafka.produce(INPUT, 0, events(range('b', 0, 5), ['b3']));
  let release = () => {};
  serde.hold = new Promise<void>((resolve) => (release = resolve));
  const inHand = firstConsumer.fetch(INPUT, 0);
  firstConsumer.assign([]);
  serde.hold = undefined;
  release();
  await inHand;
  assert.deepEqual(crashes, [], 'the batch in hand finished on an open task');

  // Another member gets the partition: it starts at the group offset (10), behind the handed-over
  // checkpoint (15), and must neither replay nor drop the batch that was in hand.
  const second = await start(kafka, sink);
  const secondConsumer = kafka.consumer(GROUP);
  secondConsumer.assign([0]);
  await secondConsumer.pollUntilIdle();
  await checkpointAndDeliver(second);

  assert.deepEqual(sink.rows, [...range('a', 0, 10), 'b0', 'b1', 'b2', 'b4']);
  assert.deepEqual(dlqEntries(kafka), [{ id: 'b3', reason: 'validation-failed', offset: 13n }]);
  assert.deepEqual(committedInput(kafka), { 0: 15n });
});

test('when Kafka would start after the checkpoint, the consumer is sought back and nothing is skipped', async () => {
  const kafka = new FakeKafka();
  const sink = switchableSink();
  kafka.createTopic(INPUT, 1);
  kafka.produce(INPUT, 0, events(range('a', 0, 10)));
  const first = await start(kafka, sink);
  kafka.consumer(GROUP).assign([0]);
  await kafka.consumer(GROUP).pollUntilIdle();
  await settle(first);

  // The group offset is moved past what the state reflects (e.g. an operator reset it to latest).
  kafka.produce(INPUT, 0, events(range('b', 0, 10)));
  kafka.commitOffsets(GROUP, [{ topic: INPUT, partition: 0, offset: 15n }]);
  const second = await start(kafka, sink);
  const consumer = kafka.consumer(GROUP);
  consumer.assign([0]);
  await consumer.pollUntilIdle();
  await checkpointAndDeliver(second);

  assert.deepEqual(sink.rows, [...range('a', 0, 10), ...range('b', 0, 10)]);
  assert.deepEqual(committedInput(kafka), { 0: 20n });
});

test('records redelivered from behind the checkpoint are skipped, also inside a batch that straddles it', async () => {
  const kafka = new FakeKafka();
  const sink = switchableSink();
  kafka.createTopic(INPUT, 1);
  kafka.produce(INPUT, 0, events(range('a', 0, 10), ['a8']));
  const first = await start(kafka, sink);
  kafka.consumer(GROUP).assign([0]);
  await kafka.consumer(GROUP).pollUntilIdle();
  await settle(first);

  // The group offset lags the checkpoint (a commit lost in a crash): Kafka redelivers 3..9.
  kafka.produce(INPUT, 0, events(range('b', 0, 5), ['b1']));
  kafka.commitOffsets(GROUP, [{ topic: INPUT, partition: 0, offset: 3n }]);
  const second = await start(kafka, sink);
  const consumer = kafka.consumer(GROUP);
  consumer.maxBatchRecords = 4; // batches 3-6 (all seen), 7-10 (straddling), 11-14 (new)
  consumer.assign([0]);
  await consumer.pollUntilIdle();
  await checkpointAndDeliver(second);

  assert.deepEqual(sink.rows, [...range('a', 0, 8), 'a9', 'b0', 'b2', 'b3', 'b4']);
  assert.deepEqual(
    dlqEntries(kafka).map((e) => e.id),
    ['a8', 'b1'],
  );
  assert.equal(second.tasks()[0]?.metrics.recordsProcessed, 15, 'each input record processed once');
  assert.deepEqual(committedInput(kafka), { 0: 15n });
});

test('a partition whose outputs back up is paused, and resumed once they drain below half the limit', async () => {
  const kafka = new FakeKafka();
  const sink = switchableSink();
  kafka.createTopic(INPUT, 2);
  kafka.produce(INPUT, 0, events(range('a', 0, 10)));
  // Partition 1's records are bad: its outputs go to the DLQ, which stays up.
  kafka.produce(INPUT, 1, events(['other0'], ['other0']));
  const config = testConfig(harness.dir, { outputs: { maxPendingPerPartition: 4, batchSize: 7 } });
  const instance = await startWith(kafka, config, sink);
  const consumer = kafka.consumer(GROUP);
  consumer.assign([0, 1]);
  await consumer.pollUntilIdle();

  sink.failing = true;
  await checkpointAndDeliver(instance);
  assert.equal(consumer.isPaused(INPUT, 0), true, '10 undelivered outputs > 4: paused');
  assert.equal(consumer.isPaused(INPUT, 1), false, 'a partition within the limit keeps running');
  assert.deepEqual(
    instance.tasks().map((t) => [t.partition, t.paused]),
    [
      [0, true],
      [1, false],
    ],
  );

  // While paused, new input of that partition stays in Kafka.
  kafka.produce(INPUT, 0, events(range('a', 10, 12)));
  kafka.produce(INPUT, 1, events(['other1'], ['other1']));
  await consumer.pollUntilIdle();
  assert.equal(instance.tasks()[0]?.positions[INPUT], '10');

  // One write of 7 leaves 3 pending: below the limit but above half of it, so still paused.
  sink.failing = false;
  sink.remainingWrites = 1;
  await instance.deliverAll();
  assert.equal(consumer.isPaused(INPUT, 0), true, '3 pending > 2: still paused');

  sink.remainingWrites = Infinity;
  await instance.deliverAll();
  assert.equal(consumer.isPaused(INPUT, 0), false, 'drained: resumed');
  await consumer.pollUntilIdle();
  await checkpointAndDeliver(instance);

  assert.deepEqual(sink.rows, range('a', 0, 12));
  assert.deepEqual(
    dlqEntries(kafka).map((e) => e.id),
    ['other0', 'other1'],
  );
  assert.deepEqual(committedInput(kafka), { 0: 12n, 1: 2n });
});

test('a sink that fails and recovers gets every output once, in order, after the retry', async () => {
  const kafka = new FakeKafka();
  const sink = switchableSink();
  kafka.createTopic(INPUT, 1);
  kafka.produce(INPUT, 0, events(range('a', 0, 5)));
  const instance = await start(kafka, sink);
  const consumer = kafka.consumer(GROUP);
  consumer.assign([0]);
  await consumer.pollUntilIdle();

  sink.failing = true;
  await checkpointAndDeliver(instance);
  await instance.deliverAll();
  assert.deepEqual(sink.rows, []);
  assert.equal(instance.sinksHealthy, false);
  assert.ok(sink.attempts >= 2, 'delivery was retried');

  // More input arrives during the outage; the retry delivers the old outputs before the new ones.
  kafka.produce(INPUT, 0, events(range('a', 5, 8)));
  await consumer.pollUntilIdle();
  await instance.commitAll('test');
  sink.failing = false;
  await instance.deliverAll();
  assert.equal(instance.sinksHealthy, true);
  await checkpointAndDeliver(instance);

  assert.deepEqual(sink.rows, range('a', 0, 8));
});

test('a DLQ transaction that fails is retried and every dead letter is written once', async () => {
  const kafka = new FakeKafka();
  const sink = switchableSink();
  kafka.createTopic(INPUT, 1);
  kafka.produce(INPUT, 0, events(range('a', 0, 5), ['a1', 'a3', 'a4']));
  const instance = await start(kafka, sink);
  const consumer = kafka.consumer(GROUP);
  consumer.assign([0]);
  await consumer.pollUntilIdle();

  kafka.failTransactions(1, 'before-commit');
  await checkpointAndDeliver(instance);
  await instance.deliverAll();
  assert.equal(kafka.rejectedTransactions, 1, 'the first transaction failed');
  assert.deepEqual(
    dlqEntries(kafka).map((e) => e.id),
    ['a1', 'a3', 'a4'],
  );

  // The transaction commits but its answer is lost: the retry must not write the letters again.
  kafka.produce(INPUT, 0, events(range('a', 5, 8), ['a5', 'a7']));
  await consumer.pollUntilIdle();
  kafka.failTransactions(1, 'after-commit');
  await checkpointAndDeliver(instance);
  await instance.deliverAll();
  kafka.produce(INPUT, 0, events(['a8'], ['a8']));
  await consumer.pollUntilIdle();
  await checkpointAndDeliver(instance);

  assert.deepEqual(dlqEntries(kafka), [
    { id: 'a1', reason: 'validation-failed', offset: 1n },
    { id: 'a3', reason: 'validation-failed', offset: 3n },
    { id: 'a4', reason: 'validation-failed', offset: 4n },
    { id: 'a5', reason: 'validation-failed', offset: 5n },
    { id: 'a7', reason: 'validation-failed', offset: 7n },
    { id: 'a8', reason: 'validation-failed', offset: 8n },
  ]);
  assert.equal(instance.tasks()[0]?.pendingOutputs, 0);
  assert.deepEqual(sink.rows, ['a0', 'a2', 'a6']);
});

test('shutdown checkpoints, delivers what was processed, commits the group offsets and leaves the group', async () => {
  const kafka = new FakeKafka();
  const sink = switchableSink();
  kafka.createTopic(INPUT, 2);
  kafka.produce(INPUT, 0, events(range('a', 0, 6), ['a4']));
  kafka.produce(INPUT, 1, events(range('b', 0, 3)));
  const instance = await start(kafka, sink);
  const consumer = kafka.consumer(GROUP);
  consumer.assign([0, 1]);
  await consumer.pollUntilIdle();

  await instance.stop();

  assert.equal(instance.state, 'stopped');
  assert.equal(consumer.stopped, true);
  assert.deepEqual(
    sink.rows.filter((row) => row.startsWith('a')),
    ['a0', 'a1', 'a2', 'a3', 'a5'],
  );
  assert.deepEqual(
    sink.rows.filter((row) => row.startsWith('b')),
    ['b0', 'b1', 'b2'],
  );
  assert.deepEqual(
    dlqEntries(kafka).map((e) => e.id),
    ['a4'],
  );
  assert.deepEqual(committedInput(kafka), { 0: 6n, 1: 3n });

  // The acks of what shutdown delivered are checkpointed too: the next start writes nothing again.
  const rowsDelivered = [...sink.rows];
  const next = await start(kafka, sink);
  const nextConsumer = kafka.consumer(GROUP);
  nextConsumer.assign([0, 1]);
  await nextConsumer.pollUntilIdle();
  while (next.tasks().length < 2) await sleep(5);
  await checkpointAndDeliver(next);
  assert.deepEqual(sink.rows, rowsDelivered);
});

test('shutdown with the sink down stops within the timeout; the next start delivers the outputs once', async () => {
  const kafka = new FakeKafka();
  const sink = switchableSink();
  kafka.createTopic(INPUT, 1);
  kafka.produce(INPUT, 0, events(range('a', 0, 4)));
  const config = testConfig(harness.dir, { shutdownTimeoutMs: 300, outputs: { retryBackoffMs: 20 } });
  const first = await startWith(kafka, config, sink);
  kafka.consumer(GROUP).assign([0]);
  await kafka.consumer(GROUP).pollUntilIdle();

  sink.failing = true;
  const stopping = Date.now();
  await first.stop();
  assert.ok(Date.now() - stopping < 2_000, 'the shutdown timeout bounds the wait for the sink');
  assert.deepEqual(sink.rows, []);
  assert.deepEqual(committedInput(kafka), { 0: 4n });

  sink.failing = false;
  const second = await startWith(kafka, config, sink);
  const consumer = kafka.consumer(GROUP);
  consumer.assign([0]);
  kafka.produce(INPUT, 0, events(['a4']));
  await consumer.pollUntilIdle();
  await checkpointAndDeliver(second);

  assert.deepEqual(sink.rows, range('a', 0, 5));
});
