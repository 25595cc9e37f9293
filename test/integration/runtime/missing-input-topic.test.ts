// An app started before its input topic exists waits for it (start() does not return, nothing
// fails), and once the topic is created a few seconds later it joins the group and processes the
// records written to it, with changelogs on as by default.
import assert from 'node:assert/strict';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { Kafka, logLevel } from 'kafkajs';
import { memorySink, string, tributary } from '../../../src/index.js';
import { sleep } from '../../../src/core/retry.js';
import { brokers, uniqueName } from '../../helpers/services.js';

const kafka = new Kafka({ clientId: 'tributary-missing-topic-test', brokers, logLevel: logLevel.NOTHING });

test('an app started before its input topic exists waits, then processes the topic once it is created', async () => {
  const topic = uniqueName('late_input');
  const stateDir = await mkdtemp(join(tmpdir(), 'tributary-missing-topic-'));
  const sink = memorySink<string>('seen');
  const app = tributary({
    appId: uniqueName('late_input_app'),
    brokers,
    stateDir,
    commitIntervalMs: 200,
    admin: { enabled: false },
    logLevel: 'error',
  });
  app.stream(topic, string()).to(sink);
  const admin = kafka.admin();
  const producer = kafka.producer();
  await admin.connect();
  await producer.connect();
  let started = false;
  let startError: unknown;
  const starting = app.start().then(
    () => (started = true),
    (error: unknown) => (startError = error),
  );
  try {
    await sleep(2_500);
    assert.equal(startError, undefined, 'start() failed while the topic was missing');
    assert.equal(started, false, 'start() returned before the input topic existed');

    await admin.createTopics({ topics: [{ topic, numPartitions: 2 }], waitForLeaders: true });
    const values = Array.from({ length: 20 }, (_, i) => `e${i}`);
    await producer.send({ topic, messages: values.map((value) => ({ key: value, value })) });
    await starting;
    assert.equal(startError, undefined, String(startError));
    const deadline = Date.now() + 45_000;
    while (sink.rows.length < values.length && Date.now() < deadline) await sleep(100);
    assert.deepEqual([...sink.rows].sort(), [...values].sort());
  } finally {
    // Stopping first also ends a wait that never saw the topic (a failed assertion above).
    await app.stop().catch(() => undefined);
    await starting;
    await producer.disconnect();
    await admin.deleteTopics({ topics: [topic] }).catch(() => undefined);
    await admin.disconnect();
    await rm(stateDir, { recursive: true, force: true });
  }
});
