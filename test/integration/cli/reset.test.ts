/**
 * `tributary reset <appId>` on the real broker, run as a user would (a child process): the metering
 * job processes a few records (one of them bad, so the DLQ progress group exists) and is stopped; the
 * reset refuses while it runs and without confirmation, then deletes its group offsets, changelog
 * topics, DLQ progress and state folder, keeps its input and DLQ topics, and a restarted job processes
 * its input again from the beginning with empty state.
 */
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, test } from 'node:test';
import type { Message } from 'kafkajs';
import { registerUsageSchema } from '../../../examples/metering/setup.js';
import type { TestDatabase } from '../../helpers/clickhouse.js';
import { Worker, readDlq, setUpMeteringRun, sleep } from '../../helpers/metering.js';
import type { MeteringRun } from '../../helpers/metering.js';
import { brokers, registryUrl } from '../../helpers/services.js';
import { frame, sampleEvent, usageEventV1 } from '../../unit/serde/fixtures.js';
import { kafka, produce } from '../serde/kafka-helpers.js';

const GOOD_RECORDS = 12;
let db: TestDatabase;
let run: MeteringRun;
const workers: Worker[] = [];

function reset(...args: string[]): { status: number | null; stdout: string; stderr: string } {
  const result = spawnSync(
    process.execPath,
    ['--import', 'tsx', 'src/cli/main.ts', 'reset', run.appId, ...args],
    { env: { ...process.env, TRIBUTARY_BROKERS: brokers.join(',') }, encoding: 'utf8', timeout: 90_000 },
  );
  return { status: result.status, stdout: result.stdout, stderr: result.stderr };
}

async function clusterView(): Promise<{ topics: string[]; groups: string[] }> {
  const admin = kafka.admin();
  await admin.connect();
  try {
    const topics = await admin.listTopics();
    const groups = (await admin.listGroups()).groups.map((group) => group.groupId);
    return { topics, groups };
  } finally {
    await admin.disconnect();
  }
}

const changelogsOf = (topics: string[]) =>
  topics.filter((topic) => topic.startsWith(`${run.appId}-`) && topic.endsWith('-changelog')).sort();

async function processedAtLeast(worker: Worker, count: number, timeoutMs = 60_000): Promise<number> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const processed = await worker.metric('tributary_records_processed_total');
    if (processed >= count) return processed;
    if (Date.now() > deadline)
      throw new Error(`processed ${processed} of ${count} records; log:\n${worker.tail()}`);
    await sleep(250);
  }
}

function startWorker(): Worker {
  const worker = new Worker(run);
  workers.push(worker);
  return worker;
}

before(async () => {
  ({ db, run } = await setUpMeteringRun('reset', 2));
  const schemaId = await registerUsageSchema(registryUrl, run.topic);
  const messages: Array<Message & { partition: number }> = [];
  for (let n = 1; n <= GOOD_RECORDS; n++)
    messages.push({
      partition: n % 2,
      key: `customer-${n}`,
      value: frame(schemaId, usageEventV1, sampleEvent(n)),
    });
  messages.push({ partition: 0, key: 'bad', value: Buffer.from('not avro') });
  await produce(run.topic, messages);
});

after(async () => {
  for (const worker of workers) {
    worker.kill('SIGKILL');
    await worker.exit().catch(() => undefined);
  }
  // The restarted job created its changelogs again: leave nothing behind on the shared broker.
  if (run) reset('--yes');
  await db?.drop();
});

test('reset refuses while the app runs, naming its instances, and without confirmation', async () => {
  const worker = startWorker();
  await worker.ready();
  await processedAtLeast(worker, GOOD_RECORDS + 1);
  // The bad record's letter went out in a DLQ transaction with the progress offset.
  assert.equal((await readDlq(`${run.appId}.dlq`, 1)).length, 1);

  const running = reset('--yes');
  assert.equal(running.status, 1, `stdout:\n${running.stdout}\nstderr:\n${running.stderr}`);
  assert.match(running.stderr, new RegExp(`${run.appId} is running: its consumer group has members`));
  assert.match(running.stderr, new RegExp(`group ${run.appId}, member `), 'names the member');

  worker.kill('SIGTERM');
  assert.equal(await worker.exit(), 0, worker.tail());
  const unconfirmed = reset('--state-dir', run.stateDir);
  assert.equal(unconfirmed.status, 1);
  assert.match(
    unconfirmed.stderr,
    /refusing to reset without confirmation: no terminal to ask on; pass --yes/,
  );
  const { topics, groups } = await clusterView();
  assert.ok(changelogsOf(topics).length >= 3, `the changelogs are still there: ${changelogsOf(topics)}`);
  assert.ok(groups.includes(run.appId) && groups.includes(`${run.appId}.dlq-progress`), groups.join(' '));
  assert.ok(existsSync(join(run.stateDir, run.appId)));
});

test('reset --yes deletes offsets, changelogs, DLQ progress and state; a restart starts from scratch', async () => {
  const before = await clusterView();
  const changelogs = changelogsOf(before.topics);
  const result = reset('--yes', '--state-dir', run.stateDir);
  assert.equal(result.status, 0, result.stderr);
  for (const topic of changelogs) assert.match(result.stdout, new RegExp(`changelog topic ${topic}$`, 'm'));
  assert.match(result.stdout, new RegExp(`consumer group ${run.appId}$`, 'm'));
  assert.match(result.stdout, new RegExp(`consumer group ${run.appId}\\.dlq-progress$`, 'm'));
  assert.match(result.stdout, new RegExp(`the input topics and the DLQ topic ${run.appId}\\.dlq`));
  assert.match(result.stdout, /^reset .*: deleted \d+ consumer groups, \d+ changelog topics and /m);

  // Topic deletion completes asynchronously on the broker.
  const deadline = Date.now() + 30_000;
  let after = await clusterView();
  while (changelogsOf(after.topics).length > 0 && Date.now() < deadline) {
    await sleep(250);
    after = await clusterView();
  }
  assert.deepEqual(changelogsOf(after.topics), []);
  assert.ok(!after.groups.includes(run.appId), 'the group offsets are gone');
  assert.ok(!after.groups.includes(`${run.appId}.dlq-progress`), 'the DLQ progress is gone');
  assert.ok(
    after.topics.includes(run.topic) && after.topics.includes(`${run.appId}.dlq`),
    'input and DLQ kept',
  );
  assert.ok(!existsSync(join(run.stateDir, run.appId)), 'the state folder is gone');

  // From scratch: every input record is processed again and nothing is restored.
  const worker = startWorker();
  await worker.ready();
  assert.equal(await processedAtLeast(worker, GOOD_RECORDS + 1), GOOD_RECORDS + 1);
  assert.equal(await worker.metric('tributary_restore_records_total'), 0);
  worker.kill('SIGTERM');
  assert.equal(await worker.exit(), 0, worker.tail());
});
