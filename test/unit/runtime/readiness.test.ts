/**
 * Readiness as an operator reads it from /health/ready: a real Instance on the in-memory Kafka, made
 * unready by a held partition (a RetriableError from the serde) and by a failing sink, and ready
 * again once they recover. The admin endpoint serves the probes without the token when configured.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { sleep } from '../../../src/core/retry.js';
import { startAdminServer } from '../../../src/admin/server.js';
import { Instance } from '../../../src/runtime/instance.js';
import { RetriableError } from '../../../src/serde/types.js';
import { FakeKafka } from '../../helpers/fake-kafka.js';
import {
  HoldableJson,
  INPUT,
  events,
  idsTopology,
  quietLogger,
  range,
  startInstance,
  switchableSink,
  instanceHarness,
  testConfig,
} from './instance-fixtures.js';
import type { Event } from './instance-fixtures.js';

const GROUP = 'app';

/** JSON events whose decoding fails with a RetriableError while `unavailable` (a registry away). */
class FlakyRegistryJson extends HoldableJson {
  unavailable = false;

  override deserialize(data: Buffer | null): Event | Promise<Event> {
    if (this.unavailable) throw new RetriableError('schema registry unreachable');
    return super.deserialize(data);
  }
}

const harness = instanceHarness();

async function waitFor(condition: () => boolean, what: string, timeoutMs = 5_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!condition()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await sleep(10);
  }
}

test('not ready before start; a partition held on a RetriableError makes it unready with the reason, until it goes through', async () => {
  const kafka = new FakeKafka();
  kafka.createTopic(INPUT, 1);
  kafka.produce(INPUT, 0, events(range('a', 0, 3)));
  const serde = new FlakyRegistryJson();
  const created = new Instance(idsTopology(switchableSink()), testConfig(harness.dir), kafka, quietLogger());
  assert.deepEqual(
    { ready: created.readiness().ready, reasons: created.readiness().reasons },
    { ready: false, reasons: ['instance created'] },
  );
  const instance = await startInstance(kafka, idsTopology(switchableSink(), serde), testConfig(harness.dir));
  harness.track(instance);
  const consumer = kafka.consumer(GROUP);
  consumer.assign([0]);

  serde.unavailable = true;
  const polling = consumer.pollUntilIdle();
  await waitFor(() => instance.readiness().heldPartitions.length > 0, 'the partition to be held');
  const held = instance.readiness();
  assert.equal(held.ready, false);
  assert.deepEqual(held.heldPartitions, [{ partition: 0, error: 'schema registry unreachable' }]);
  assert.match(
    held.reasons.join('\n'),
    /partition 0 held: dependency unavailable \(schema registry unreachable\)/,
  );

  serde.unavailable = false;
  await polling;
  assert.deepEqual(instance.readiness(), {
    ready: true,
    state: 'running',
    reasons: [],
    heldPartitions: [],
    failingSinks: [],
    openingPartitions: [],
    missingTopics: [],
  });
});

/** An instance that processed three records and tried to deliver them while its sink is down. */
async function processedWithSinkDown() {
  const kafka = new FakeKafka();
  const sink = switchableSink();
  kafka.createTopic(INPUT, 1);
  kafka.produce(INPUT, 0, events(range('a', 0, 3)));
  const instance = harness.track(await startInstance(kafka, idsTopology(sink), testConfig(harness.dir)));
  const consumer = kafka.consumer(GROUP);
  consumer.assign([0]);
  await consumer.pollUntilIdle();
  sink.failing = true;
  await instance.commitAll('test');
  await instance.deliverAll();
  return { instance, sink };
}

test('a failing sink makes the instance unready naming the sink, and ready again once a write succeeds', async () => {
  const { instance, sink } = await processedWithSinkDown();
  const failing = instance.readiness();
  assert.equal(failing.ready, false);
  assert.deepEqual(failing.failingSinks, [{ sink: 'ids', error: 'sink unavailable' }]);
  assert.deepEqual(failing.reasons, ['sink failing: ids (sink unavailable)']);

  sink.failing = false;
  await instance.deliverAll();
  assert.equal(instance.readiness().ready, true);
  assert.deepEqual(sink.rows, range('a', 0, 3));
});

test('the admin endpoint: /health/ready 503 with reasons, /health/live 200; the probes answer without the token, nothing else does', async () => {
  const { instance, sink } = await processedWithSinkDown();

  const options = { host: '127.0.0.1', port: 0, token: 'secret', describe: () => '' };
  const open = await startAdminServer(instance, { ...options, probesWithoutToken: true });
  const closed = await startAdminServer(instance, { ...options, probesWithoutToken: false });
  const url = (server: typeof open, path: string) => {
    const address = server.server.address();
    assert.ok(address && typeof address !== 'string');
    return `http://127.0.0.1:${address.port}${path}`;
  };
  try {
    const ready = await fetch(url(open, '/health/ready'));
    assert.equal(ready.status, 503);
    const body = (await ready.json()) as { ready: boolean; reasons: string[] };
    assert.equal(body.ready, false);
    assert.deepEqual(body.reasons, ['sink failing: ids (sink unavailable)']);
    assert.equal((await fetch(url(open, '/health/live'))).status, 200);
    assert.equal((await fetch(url(open, '/tasks'))).status, 401, 'other paths still need the token');
    assert.equal((await fetch(url(open, '/health'))).status, 401);

    assert.equal((await fetch(url(closed, '/health/ready'))).status, 401);
    assert.equal((await fetch(url(closed, '/health/live'))).status, 401);
    const withToken = await fetch(url(closed, '/health/live'), {
      headers: { authorization: 'Bearer secret' },
    });
    assert.equal(withToken.status, 200);

    sink.failing = false;
    await instance.deliverAll();
    assert.equal((await fetch(url(open, '/health/ready'))).status, 200);
  } finally {
    await open.close();
    await closed.close();
  }
});
