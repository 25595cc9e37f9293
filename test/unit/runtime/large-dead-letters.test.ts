/**
 * Large bad records through a real Instance on the in-memory Kafka, whose broker refuses record
 * batches over the default `message.max.bytes` like a real one: they reach the DLQ (whole when they
 * fit, as a reference when they cannot), and the dead letters behind them are not held up.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { parseDlqMessage, truncatedSize } from '../../../src/serde/dlq.js';
import { FakeKafka } from '../../helpers/fake-kafka.js';
import {
  INPUT,
  idsTopology,
  startInstance,
  switchableSink,
  instanceHarness,
  testConfig,
} from './instance-fixtures.js';

const harness = instanceHarness();

/** Not JSON: a decode failure of `bytes` bytes. */
const malformed = (id: string, bytes: number) => ({ key: id, value: Buffer.alloc(bytes, 'x') });

async function runToDlq(kafka: FakeKafka, records: Array<{ key: string; value: Buffer | string }>) {
  const sink = switchableSink();
  kafka.createTopic(INPUT, 1);
  kafka.produce(INPUT, 0, records);
  const instance = harness.track(await startInstance(kafka, idsTopology(sink), testConfig(harness.dir)));
  const consumer = kafka.consumer('app');
  consumer.assign([0]);
  await consumer.pollUntilIdle();
  await instance.commitAll('test');
  await instance.deliverAll();
  await instance.deliverAll();
  return { sink, instance };
}

test('two ~900 KB bad records next to each other and a small one behind them all reach the DLQ, in order', async () => {
  const kafka = new FakeKafka();
  const { sink, instance } = await runToDlq(kafka, [
    malformed('big-1', 900_000),
    malformed('big-2', 900_000),
    malformed('small', 20),
    { key: 'good', value: JSON.stringify({ id: 'good' }) },
  ]);

  const dlq = kafka.records('app.dlq');
  assert.deepEqual(
    dlq.map((m) => [String(m.key), m.value?.length, parseDlqMessage(m).reason]),
    [
      ['big-1', 900_000, 'decode-failed'],
      ['big-2', 900_000, 'decode-failed'],
      ['small', 20, 'decode-failed'],
    ],
  );
  assert.equal(kafka.rejectedTransactions, 0, 'no batch over the broker limit was tried');
  assert.equal(instance.tasks()[0]?.pendingOutputs, 0);
  assert.deepEqual(sink.rows, ['good']);
});

test('a bad record too large for the broker reaches the DLQ as a reference with its reason, and what follows is not stuck', async () => {
  const kafka = new FakeKafka();
  const { instance } = await runToDlq(kafka, [malformed('huge', 2_000_000), malformed('after', 20)]);

  const [huge, after, ...rest] = kafka.records('app.dlq');
  assert.deepEqual(rest, []);
  assert.equal(huge?.value, null, 'the value is left out');
  assert.ok(Number(truncatedSize(huge!)) > 2_000_000, 'the letter says how large it was');
  const letter = parseDlqMessage(huge!);
  assert.deepEqual(
    [letter.reason, letter.errorClass, letter.record.topic, letter.record.partition, letter.record.offset],
    ['decode-failed', 'DeserializationError', INPUT, 0, 0n],
  );
  assert.equal(String(after?.key), 'after');
  assert.equal(after?.value?.length, 20);
  assert.equal(kafka.rejectedTransactions, 0);
  assert.equal(instance.tasks()[0]?.pendingOutputs, 0);
});
