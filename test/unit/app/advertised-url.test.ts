// The admin URL an App advertises to its consumer group (the /cluster view of its peers): the
// configured one, else the bound address of the admin endpoint.
import assert from 'node:assert/strict';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { pino } from 'pino';
import { memorySink, string, tributary } from '../../../src/index.js';
import type { TributaryConfigInput } from '../../../src/index.js';
import { FakeKafka } from '../../helpers/fake-kafka.js';

async function startedWith(admin: TributaryConfigInput['admin']) {
  const stateDir = await mkdtemp(join(tmpdir(), 'tributary-advertised-'));
  const kafka = new FakeKafka();
  kafka.createTopic('events', 1);
  const app = tributary(
    {
      appId: 'app',
      stateDir,
      handleSignals: false,
      standbyReplicas: 2,
      admin,
      changelog: { enabled: false },
    },
    { kafkaClient: kafka, logger: pino({ level: 'silent' }) },
  );
  app.stream('events', string()).to(memorySink<string>('seen'));
  await app.start();
  return {
    app,
    joinedWith: kafka.consumer('app').options,
    stop: async () => {
      await app.stop();
      await rm(stateDir, { recursive: true, force: true });
    },
  };
}

test('by default the group learns the bound admin address; the standby count comes from the config', async () => {
  const { app, joinedWith, stop } = await startedWith({ port: 0 });
  try {
    assert.match(app.adminAddress ?? '', /^http:\/\/127\.0\.0\.1:\d+$/);
    assert.deepEqual(joinedWith, { standbyReplicas: 2, adminUrl: app.adminAddress });
  } finally {
    await stop();
  }
});

test('admin.advertisedUrl is what the group learns when set (an address peers reach)', async () => {
  const { joinedWith, stop } = await startedWith({
    port: 0,
    advertisedUrl: 'http://tributary-0.tributary:7400',
  });
  try {
    assert.equal(joinedWith?.adminUrl, 'http://tributary-0.tributary:7400');
  } finally {
    await stop();
  }
});

test('without an admin endpoint nothing is advertised', async () => {
  const { joinedWith, stop } = await startedWith({ enabled: false });
  try {
    assert.equal(joinedWith?.adminUrl, undefined);
  } finally {
    await stop();
  }
});
