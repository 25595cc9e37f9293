// Two instances on the real broker, each with its own state folder (two machines), one standby replica
// per partition. Every id is seen once; before the first instance leaves, the survivor's standby folder
// has followed that partition's changelog to its end (read from the folder itself); after it leaves,
// the survivor takes the partition over from that copy: the same ids again are all duplicates, the new
// ones pass, and the takeover replayed only a tail of the changelog, as its restore counter says.
import assert from 'node:assert/strict';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, test } from 'node:test';
import { Kafka, logLevel } from 'kafkajs';
import { days, memorySink, string, tributary } from '../../../src/index.js';
import type { App, MemorySink } from '../../../src/index.js';
import { sleep } from '../../../src/core/retry.js';
import { brokers, uniqueName } from '../../helpers/services.js';
import { changelogPositionsOf, describeLag, folderLag, taskFolder } from '../../helpers/standby-folders.js';
import type { FolderLag } from '../../helpers/standby-folders.js';

const kafka = new Kafka({ clientId: 'tributary-standby-test', brokers, logLevel: logLevel.NOTHING });
const topic = uniqueName('standby_ids');
const appId = uniqueName('standby_app');
const folders: string[] = [];

before(async () => {
  const admin = kafka.admin();
  await admin.connect();
  try {
    await admin.createTopics({ topics: [{ topic, numPartitions: 2 }], waitForLeaders: true });
  } finally {
    await admin.disconnect();
  }
});

after(async () => {
  for (const folder of folders) await rm(folder, { recursive: true, force: true });
});

async function startInstance(
  name: string,
): Promise<{ app: App; sink: MemorySink<string>; stateDir: string }> {
  const stateDir = await mkdtemp(join(tmpdir(), `tributary-standby-${name}-`));
  folders.push(stateDir);
  const app = tributary({
    appId,
    instanceId: name,
    brokers,
    stateDir,
    standbyReplicas: 1,
    commitIntervalMs: 200,
    shutdownTimeoutMs: 5000,
    handleSignals: false,
    logLevel: 'warn',
    kafka: { sessionTimeoutMs: 10_000 },
    admin: { port: 0 },
  });
  const sink = memorySink<string>('seen');
  app
    .stream(topic, string())
    .dedupe((id) => id, { horizon: days(1) })
    .to(sink);
  await app.start();
  return { app, sink, stateDir };
}

async function produce(ids: readonly string[]): Promise<void> {
  const producer = kafka.producer();
  await producer.connect();
  try {
    await producer.send({ topic, messages: ids.map((id) => ({ key: id, value: id })) });
  } finally {
    await producer.disconnect();
  }
}

async function get<T>(app: App, path: string): Promise<T> {
  return (await (await fetch(`${app.adminAddress}${path}`)).json()) as T;
}

async function waitFor(what: string, check: () => Promise<boolean> | boolean, timeoutMs = 60_000) {
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline) {
    if (await check()) return;
    await sleep(200);
  }
  throw new Error(`${what}: not within ${timeoutMs} ms`);
}

const RESTORED = 'tributary_restore_records_total';

/**
 * tributary_restore_records_total of one partition, from an instance's /metrics; undefined when the
 * partition has no series (the instance never ran its task). The counter itself must be exported.
 */
async function restoredRecords(app: App, partition: number): Promise<number | undefined> {
  const text = await (await fetch(`${app.adminAddress}/metrics`)).text();
  assert.ok(text.includes(`# TYPE ${RESTORED} counter`), `${RESTORED} is exported`);
  const line = text
    .split('\n')
    .find((l) => l.startsWith(`${RESTORED}{`) && l.includes(`partition="${partition}"`));
  return line === undefined ? undefined : Number(line.slice(line.lastIndexOf(' ') + 1));
}

/**
 * Waits until the standby folder of `partition` is as far as the changelogs go: every record applied,
 * only each changelog's last commit marker beyond it. The changelogs are idle by then (every id went
 * through), so a copy of the folder is consistent; a copy taken mid-write is simply read again.
 */
async function standbyCaughtUp(stateDir: string, partition: number): Promise<FolderLag> {
  const folder = taskFolder(stateDir, appId, partition);
  const deadline = Date.now() + 30_000;
  let last = 'never read';
  while (Date.now() < deadline) {
    const positions = await changelogPositionsOf(folder).catch((error: unknown) => {
      last = `the copy did not open: ${String(error)}`;
      return undefined;
    });
    if (positions !== undefined) {
      const lag = await folderLag(appId, partition, positions);
      if (lag.span > 0 && lag.behind <= lag.changelogsWithData) return lag;
      last = `${lag.behind} of ${lag.span} offsets behind (${describeLag(lag)})`;
    }
    await sleep(500);
  }
  throw new Error(`the standby folder ${folder} did not follow its changelogs: ${last}`);
}

/** Offsets in every changelog topic of the app, for one partition (markers included). */
async function changelogOffsets(partition: number): Promise<number> {
  const admin = kafka.admin();
  await admin.connect();
  try {
    let total = 0;
    for (const name of (await admin.listTopics()).filter(
      (t) => t.startsWith(`${appId}-`) && t.endsWith('-changelog'),
    )) {
      const range = (await admin.fetchTopicOffsets(name)).find((p) => p.partition === partition);
      if (range) total += Number(range.high) - Number(range.low);
    }
    return total;
  } finally {
    await admin.disconnect();
  }
}

const ids = (prefix: string, n: number) => Array.from({ length: n }, (_, i) => `${prefix}-${i}`);

test('a standby replica takes over with the dedupe state: no id passes twice, and only a tail is restored', async () => {
  const a = await startInstance('a');
  const b = await startInstance('b');
  try {
    await waitFor('each instance runs one partition and keeps a standby of the other', async () => {
      const [ta, tb] = await Promise.all([
        get<{ tasks: { partition: number }[]; standbys: number[] }>(a.app, '/tasks'),
        get<{ tasks: { partition: number }[]; standbys: number[] }>(b.app, '/tasks'),
      ]);
      return (
        ta.tasks.length === 1 && tb.tasks.length === 1 && ta.standbys.length === 1 && tb.standbys.length === 1
      );
    });
    // Many small sends over a few seconds: many commits, so the changelog holds many records.
    const first = ids('first', 3000);
    for (let i = 0; i < first.length; i += 100) {
      await produce(first.slice(i, i + 100));
      await sleep(100);
    }
    await waitFor(
      'every id reaches a sink once',
      () => a.sink.rows.length + b.sink.rows.length === first.length,
    );
    const partitionOfA = (await get<{ tasks: { partition: number }[] }>(a.app, '/tasks')).tasks[0]?.partition;
    assert.ok(partitionOfA !== undefined);
    // Before A leaves: B's standby folder holds everything A committed, read from the folder itself.
    const standbyLag = await standbyCaughtUp(b.stateDir, partitionOfA);
    assert.ok(
      standbyLag.span > 40,
      `the changelog of partition ${partitionOfA} spans ${standbyLag.span} offsets (${describeLag(standbyLag)})`,
    );
    // B never ran this partition's task (no series yet), or ran it briefly before the group settled.
    const restoredBefore = (await restoredRecords(b.app, partitionOfA)) ?? 0;

    await a.app.stop();
    await waitFor('the survivor runs both partitions', async () => {
      const tasks = await get<{ tasks: unknown[] }>(b.app, '/tasks');
      return tasks.tasks.length === 2;
    });
    const again = [...first, ...ids('second', 500)];
    await produce(again);
    await waitFor(
      'the new ids reach the sink',
      () => b.sink.rows.filter((r) => r.startsWith('second-')).length === 500,
    );
    await sleep(1000); // duplicates arriving late would show now

    const all = [...a.sink.rows, ...b.sink.rows];
    assert.equal(
      all.length,
      first.length + 500,
      'every id once: the repeated ids were dropped as duplicates',
    );
    assert.equal(new Set(all).size, all.length);
    // The task's series exists once it committed (at 0 when the standby copy needed nothing more).
    const restoredAfter = await restoredRecords(b.app, partitionOfA);
    assert.ok(
      restoredAfter !== undefined,
      `${RESTORED} has a series for partition ${partitionOfA} on the survivor`,
    );
    const restoredAtTakeover = restoredAfter - restoredBefore;
    const changelogSize = await changelogOffsets(partitionOfA);
    assert.ok(
      changelogSize > 40,
      `the changelog of partition ${partitionOfA} holds ${changelogSize} offsets`,
    );
    assert.ok(
      restoredAtTakeover * 4 < changelogSize,
      `the takeover restored ${restoredAtTakeover} of ${changelogSize} changelog offsets: the standby had the rest`,
    );
  } finally {
    await a.app.stop().catch(() => undefined);
    await b.app.stop();
  }
});
