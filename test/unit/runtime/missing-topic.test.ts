/**
 * An instance started before its input topic exists: it waits (not ready, naming the topic, with a
 * log line saying how to create it), and once the topic is created it joins and processes records.
 * A stop while it waits ends the wait.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { pino } from 'pino';
import { sleep } from '../../../src/core/retry.js';
import { startAdminServer } from '../../../src/admin/server.js';
import { Instance } from '../../../src/runtime/instance.js';
import type { Readiness } from '../../../src/runtime/instance.js';
import { FakeKafka } from '../../helpers/fake-kafka.js';
import {
  INPUT,
  events,
  idsTopology,
  instanceHarness,
  range,
  switchableSink,
  testConfig,
} from './instance-fixtures.js';

const harness = instanceHarness();

/** A logger whose lines the test reads. */
function capturedLogger() {
  const lines: Array<{ level: number; msg: string; missing?: string[] }> = [];
  const logger = pino({ level: 'info' }, { write: (line: string) => lines.push(JSON.parse(line)) });
  return { logger, lines };
}

async function waitFor(condition: () => boolean, what: string, timeoutMs = 5_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!condition()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await sleep(10);
  }
}

test('started before its input topic exists, the instance waits, says which topic, then runs once it is created', async () => {
  const kafka = new FakeKafka();
  const sink = switchableSink();
  const { logger, lines } = capturedLogger();
  const instance = harness.track(new Instance(idsTopology(sink), testConfig(harness.dir), kafka, logger));
  let started = false;
  const starting = instance.start().then(() => (started = true));

  await waitFor(() => lines.some((line) => line.missing !== undefined), 'the missing-topic log line');
  const waiting = lines.find((line) => line.missing !== undefined);
  assert.deepEqual(waiting?.missing, [INPUT]);
  assert.match(
    waiting?.msg ?? '',
    /waiting for input topic events to exist; create it, e\.g\. kafka-topics\.sh .*--topic events/,
  );
  const admin = await startAdminServer(instance, { host: '127.0.0.1', port: 0, describe: () => '' });
  const address = admin.server.address();
  assert.ok(address && typeof address !== 'string');
  const probe = await fetch(`http://127.0.0.1:${address.port}/health/ready`);
  await admin.close();
  assert.equal(probe.status, 503);
  const readiness = (await probe.json()) as Readiness;
  assert.equal(readiness.ready, false);
  assert.deepEqual(readiness.missingTopics, [INPUT]);
  assert.ok(
    readiness.reasons.includes('waiting for input topic events to exist'),
    readiness.reasons.join('\n'),
  );
  await sleep(50);
  assert.equal(started, false, 'start() resolved while the input topic was missing');

  kafka.createTopic(INPUT, 1);
  kafka.produce(INPUT, 0, events(range('a', 0, 3)));
  await starting;
  assert.equal(instance.state, 'running');
  assert.deepEqual(instance.readiness().missingTopics, []);
  const consumer = kafka.consumer('app');
  consumer.assign([0]);
  await consumer.pollUntilIdle();
  await instance.commitAll('test');
  await instance.deliverAll();
  assert.deepEqual(sink.rows, range('a', 0, 3));
  assert.equal(instance.readiness().ready, true);
});

test(
  'a stop while the instance waits for its input topic ends the wait promptly',
  { timeout: 5_000 },
  async () => {
    const kafka = new FakeKafka();
    const instance = new Instance(
      idsTopology(switchableSink()),
      testConfig(harness.dir),
      kafka,
      pino({ level: 'silent' }),
    );
    const starting = instance.start();
    await waitFor(() => instance.readiness().missingTopics.length > 0, 'the wait for the topic');
    const before = Date.now();
    await instance.stop();
    await starting;
    assert.ok(Date.now() - before < 500, `stop took ${Date.now() - before} ms`);
    assert.equal(instance.state, 'stopped');
  },
);
