/**
 * A wrong address fails at start, within seconds, with one line naming the endpoint, what answered
 * and the fix, instead of a minute of kafkajs retry warnings or a registry 404 retried forever.
 * Runs `tributary run` in a child process, as a user would.
 */
import assert from 'node:assert/strict';
import { spawn, spawnSync } from 'node:child_process';
import { test } from 'node:test';
import { brokers, registryUrl, uniqueName } from '../../helpers/services.js';
import { createTopic } from '../serde/kafka-helpers.js';
import { closedPort } from '../../helpers/ports.js';

function runCli(env: Record<string, string>): { status: number | null; stderr: string; ms: number } {
  const started = Date.now();
  const result = spawnSync(
    process.execPath,
    ['--import', 'tsx', 'src/cli/main.ts', 'run', 'test/helpers/avro-app.ts'],
    {
      env: {
        ...process.env,
        TRIBUTARY_APP_ID: uniqueName('startup-probe'),
        TRIBUTARY_BROKERS: brokers.join(','),
        TRIBUTARY_SCHEMA_REGISTRY_URL: registryUrl,
        // Warnings would show a kafkajs retry storm; the start-up failure itself is one line.
        TRIBUTARY_LOG_LEVEL: 'warn',
        ...env,
      },
      encoding: 'utf8',
      timeout: 60_000,
    },
  );
  return { status: result.status, stderr: result.stderr, ms: Date.now() - started };
}

const kafkaHost = brokers[0]!.split(':')[0]!;

test("the KRaft controller's port is called what it is, with the broker port to use", () => {
  const controller = `${kafkaHost}:9093`;
  const { status, stderr, ms } = runCli({ TRIBUTARY_BROKERS: controller });
  assert.equal(status, 1, stderr);
  assert.deepEqual(stderr.trim().split('\n'), [
    `tributary: Kafka at ${controller} answered like a KRaft controller, not a broker ` +
      '(it refuses client requests): point brokers at the broker listener (usually 9092)',
  ]);
  assert.ok(ms < 15_000, `failed after ${ms} ms`);
});

test('a closed port fails at once with one line, without kafkajs retry warnings', () => {
  const closed = `${kafkaHost}:9`;
  const { status, stderr, ms } = runCli({ TRIBUTARY_BROKERS: closed });
  assert.equal(status, 1, stderr);
  assert.deepEqual(stderr.trim().split('\n'), [
    `tributary: Kafka at ${closed}: connection refused, nothing listens there; check brokers (TRIBUTARY_BROKERS)`,
  ]);
  assert.ok(ms < 15_000, `failed after ${ms} ms`);
});

test('a registry URL without the Confluent API path fails at start and suggests the path', () => {
  const root = registryUrl.replace(/\/apis\/ccompat\/v\d+\/?$/, '');
  assert.notEqual(root, registryUrl, 'the test registry is Apicurio, served under /apis/ccompat/v7');
  const { status, stderr, ms } = runCli({ TRIBUTARY_SCHEMA_REGISTRY_URL: root });
  assert.equal(status, 1, stderr);
  assert.deepEqual(stderr.trim().split('\n'), [
    `tributary: schema registry at ${root}: GET /config answered HTTP 404, so this is not the root of the ` +
      `Confluent API; ${root}/apis/ccompat/v7 answers it (Apicurio Registry): use that URL`,
  ]);
  assert.ok(ms < 15_000, `failed after ${ms} ms`);
});

test('a registry port where nothing listens fails at start naming the URL', async () => {
  const url = `http://127.0.0.1:${await closedPort()}/apis/ccompat/v7`;
  const { status, stderr } = runCli({ TRIBUTARY_SCHEMA_REGISTRY_URL: url });
  assert.equal(status, 1, stderr);
  assert.deepEqual(stderr.trim().split('\n'), [
    `tributary: schema registry at ${url}: connection refused, nothing listens there; ` +
      'check the registry URL (TRIBUTARY_SCHEMA_REGISTRY_URL)',
  ]);
});

test('a controller port beside a broker still fails at start (kafkajs would not move on from it)', () => {
  const { status, stderr } = runCli({ TRIBUTARY_BROKERS: `${kafkaHost}:9093,${brokers.join(',')}` });
  assert.equal(status, 1, stderr);
  assert.match(
    stderr.trim(),
    /^tributary: Kafka at [^ ]+:9093 answered like a KRaft controller, not a broker/,
  );
  assert.equal(stderr.trim().split('\n').length, 1, stderr);
});

test('a broker down beside one that answers is one warning of the checks, and the app starts', async () => {
  const topic = await createTopic('startup-probe-input');
  const down = `127.0.0.1:${await closedPort()}`;
  const child = spawn(
    process.execPath,
    ['--import', 'tsx', 'src/cli/main.ts', 'run', 'test/helpers/avro-app.ts'],
    {
      env: {
        ...process.env,
        TRIBUTARY_APP_ID: uniqueName('startup-probe'),
        TRIBUTARY_BROKERS: `${down},${brokers.join(',')}`,
        TRIBUTARY_SCHEMA_REGISTRY_URL: registryUrl,
        TRIBUTARY_LOG_LEVEL: 'info',
        TEST_INPUT_TOPIC: topic,
      },
      stdio: ['ignore', 'ignore', 'pipe'],
    },
  );
  let stderr = '';
  child.stderr.on('data', (chunk: Buffer) => (stderr += chunk.toString()));
  const exited = new Promise((resolve) => child.once('exit', resolve));
  try {
    const deadline = Date.now() + 60_000;
    while (!stderr.includes('instance started') && Date.now() < deadline && child.exitCode === null) {
      await new Promise((resolve) => setTimeout(resolve, 100));
    }
    assert.match(stderr, /instance started/, stderr);
    // kafkajs' own log of its connection attempts is another matter (it runs after the checks).
    const warnings = stderr
      .split('\n')
      .filter((line) => line.includes('"level":40') && !line.includes('"component":"kafkajs"'));
    assert.equal(warnings.length, 1, stderr);
    assert.ok(warnings[0]!.includes(`Kafka at ${down}: connection refused, nothing listens there`), stderr);
    assert.ok(
      stderr.indexOf('start-up checks passed') < stderr.indexOf('instance started'),
      'the checks run before joining the group',
    );
  } finally {
    child.kill('SIGTERM');
    await exited;
  }
});
