/**
 * `npm run bench:restore`: how long a partition's state takes to come back from its changelog topics.
 *
 *  1. Fill: one partition's state grows to BENCH_RESTORE_IDS dedupe ids (default 5,000,000) and
 *     BENCH_RESTORE_KEYS window keys (default 100,000) through the real runtime: an instance
 *     (bench/restore/runner.ts) reads input records that each carry 1,000 ids, flatMapped into one
 *     event per id (dedupe over 32 days, a count per key in 1-minute windows that never close),
 *     committing its changelog every second; then it stops. By default all keys share one window, as
 *     100k keys a minute would; BENCH_RESTORE_KEYS_PER_WINDOW spreads them over several windows. The
 *     window store writes a window's changed entries as one changelog record (several MB for 100k
 *     keys), so this needs changelog topics that accept records above the broker's default 1 MB; where
 *     a commit is refused, the benchmark stops saying so.
 *  2. Restore: a second instance with an empty state folder takes the partition and restores it; the
 *     figure is the time from the runtime's "restoring" log line until the task is open (the changelog
 *     replay into LevelDB, which also writes the dedupe index of every restored id, then the stores'
 *     open: the dedupe filter built over the restored ids, the newest ids that fit the cache read into
 *     memory, the rest left on disk; the replay alone is printed too). The
 *     restored task must hold every id and key and resume where the fill stopped.
 *  3. Standby takeover: a third instance joins with `standbyReplicas: 1` (so does the second), is given
 *     the standby copy of the partition and time to catch up; the active one is stopped (SIGTERM), and
 *     the figure is the time from that signal until the survivor has processed the partition's next
 *     record (its dedupe store holds that record's new id). A survivor without a warm standby copy
 *     restores the whole changelog first, and the output says so.
 *
 * Last line: `restore: <ids> ids + <keys> keys in <s> s (<records/s>), standby takeover <s> s`, where
 * records/s is state entries (ids + keys) restored per second. Goals: ≥ 1M ids/s, takeover ≤ 2 s.
 * Cleanup: the topics (changelogs included), groups and state folders are always removed.
 * BENCH_RESTORE_PROFILE_DIR=<dir> writes a CPU profile of the restoring instance there.
 */
import { randomBytes } from 'node:crypto';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Kafka, Partitioners, logLevel } from 'kafkajs';
import type { Message } from 'kafkajs';
import { removeRunResources } from './e2e/cleanup.js';
import { createTopicIfMissing } from '../examples/metering/setup.js';
import { startChild } from './e2e/protocol.js';
import type { BenchChild } from './e2e/protocol.js';
import type { IdRange, RunnerMessage } from './restore/protocol.js';
import { runnerMessage } from './restore/protocol.js';

const env = process.env;
const IDS = wholeNumber('BENCH_RESTORE_IDS', env.BENCH_RESTORE_IDS ?? '5000000');
const KEYS = wholeNumber('BENCH_RESTORE_KEYS', env.BENCH_RESTORE_KEYS ?? '100000');
const KEYS_PER_WINDOW = Math.min(
  KEYS,
  wholeNumber('BENCH_RESTORE_KEYS_PER_WINDOW', env.BENCH_RESTORE_KEYS_PER_WINDOW ?? String(KEYS)),
);
const WINDOWS = Math.ceil(KEYS / KEYS_PER_WINDOW);
const IDS_PER_RECORD = 1000;
const RECORDS_PER_SEND = 500;
/** The event time of the first window; window w is w minutes later. */
const EVENT_TIME = Date.UTC(2026, 0, 1, 12, 0, 0);
const FILL_TIMEOUT_MS = 240_000;
const RESTORE_TIMEOUT_MS = 240_000;
const STOP_TIMEOUT_MS = 60_000;
/** Time the standby gets to catch up before the active instance stops: at least this, or 1.5 × the restore. */
const MIN_STANDBY_WARMUP_MS = 5_000;

const brokers = (env.TRIBUTARY_BROKERS ?? '127.0.0.1:9092').split(',');
const runId = `${new Date().toISOString().slice(0, 19).replace(/[-:T]/g, '')}_${randomBytes(3).toString('hex')}`;
const topic = `bench-restore.${runId}`;
const appId = `bench-restore-${runId}`;

const say = (line: string): void => void process.stdout.write(`${line}\n`);
const warn = (line: string): void => void process.stderr.write(`${line}\n`);
const fmt = (n: number): string => Math.round(n).toLocaleString('en-US');
const secs = (ms: number): string => `${(ms / 1000).toFixed(1)} s`;

const children: Array<BenchChild<RunnerMessage>> = [];
const stateDirs: string[] = [];
let cleanedUp: Promise<void> | undefined;

async function main(): Promise<number> {
  say(
    `tributary restore benchmark: ${fmt(IDS)} ids over ${fmt(KEYS)} keys (${WINDOWS} windows) in one partition, ` +
      `app ${appId}`,
  );
  const kafka = new Kafka({ clientId: 'bench-restore', brokers, logLevel: logLevel.WARN });
  const records = await produceInput(kafka, 0, IDS);

  // 1. Fill.
  say(`fill: one instance processes ${fmt(records)} records (${fmt(IDS)} ids)...`);
  const filler = await startInstance(0);
  const fillStart = Date.now();
  const filled = await filler.next(
    (m) => (m.type === 'commitFailed' || (m.type === 'processed' && m.records >= records) ? m : undefined),
    FILL_TIMEOUT_MS,
    'the fill',
  );
  if (filled.type === 'commitFailed') {
    say(`restore: failed: a changelog commit of the fill failed: ${filled.error.slice(0, 300)}`);
    return 1;
  }
  const fillMs = Date.now() - fillStart;
  await stopInstance(filler);
  const failedCommit = filler.messages.find((m) => m.type === 'commitFailed');
  if (failedCommit?.type === 'commitFailed') {
    say(`restore: failed: a changelog commit of the fill failed: ${failedCommit.error.slice(0, 300)}`);
    return 1;
  }
  const changelog = await changelogRecords(kafka);
  say(
    `  done in ${secs(fillMs)} (${fmt(IDS / (fillMs / 1000))} ids/s, from the instance's start); the changelog ` +
      `holds ${fmt(changelog.records)} records in ${changelog.topics} topics`,
  );

  // 2. Restore into an empty folder.
  say('restore: a new instance with an empty state folder...');
  // BENCH_RESTORE_PROFILE_DIR: a CPU profile of the restoring instance (written when it exits).
  const profileDir = env.BENCH_RESTORE_PROFILE_DIR;
  const active = await startInstance(1, profileDir ? ['--cpu-prof', `--cpu-prof-dir=${profileDir}`] : []);
  const restoring = await active.next(
    (m) => (m.type === 'restoring' ? m : undefined),
    RESTORE_TIMEOUT_MS,
    'the restore to begin',
  );
  const restored = await active.next(
    (m) => (m.type === 'restored' ? m : undefined),
    RESTORE_TIMEOUT_MS,
    'the restore',
  );
  const opened = await active.next((m) => (m.type === 'opened' ? m : undefined), 30_000, 'the task to open');
  if (env.BENCH_RESTORE_DEBUG)
    for (const m of active.messages) warn(`[restoring instance] ${JSON.stringify(m)}`);
  // Until the task can process: the changelog replay into LevelDB, then the stores' open (the dedupe
  // filter over every restored id, the newest ids that fit the cache; the others stay on disk).
  const restoreMs = opened.at - restoring.at;
  const entries = opened.ids + opened.keys;
  say(
    `  ${fmt(restored.records)} changelog records replayed in ${secs(restored.seconds * 1000)}, task ready ` +
      `${secs(restoreMs)} after the restore began (replay, then the stores' open): ${fmt(opened.ids)} ids ` +
      `(${fmt(opened.ids / (restoreMs / 1000))} ids/s) and ${fmt(opened.keys)} keys`,
  );
  // A restored task resumes after the input the fill processed; one that starts over resumes at 0.
  if (restored.records === 0 || opened.position !== records) {
    say(
      `restore: failed: the new instance replayed ${restored.records} changelog records and resumes at input ` +
        `offset ${opened.position}, not ${records} (did the fill commit its changelog?)`,
    );
    return 1;
  }
  if (opened.ids !== IDS || opened.keys !== KEYS) {
    say(
      `restore: failed: the restored state holds ${opened.ids} ids and ${opened.keys} keys, not ${IDS} and ${KEYS}`,
    );
    return 1;
  }

  // 3. Standby takeover.
  say('standby: a third instance joins with standbyReplicas 1...');
  const survivor = await startInstance(1);
  await survivor.next((m) => (m.type === 'started' ? m : undefined), 60_000, 'the third instance to join');
  const standby = await survivor
    .next(
      (m) => (m.type === 'standbys' && m.partitions.includes(0) ? m : undefined),
      60_000,
      'a standby copy',
    )
    .then(() => true)
    .catch(() => false);
  const warmupMs = Math.max(MIN_STANDBY_WARMUP_MS, 1.5 * restoreMs);
  say(
    standby
      ? `  it keeps the standby copy of partition 0; giving it ${secs(warmupMs)} to catch up`
      : '  it was given no standby copy of partition 0 (the takeover below restores from the changelog)',
  );
  await sleepMs(standby ? warmupMs : 0);
  const stopAt = Date.now();
  active.process.kill('SIGTERM');
  await active.next(
    (m) => (m.type === 'stopped' ? m : undefined),
    STOP_TIMEOUT_MS,
    'the active instance to stop',
  );
  await active.exited;
  const activeGoneMs = Date.now() - stopAt;
  await produceInput(kafka, IDS, 1);
  const next = await survivor.next(
    // The next record carries one new id.
    (m) => (m.type === 'processed' && m.ids > IDS ? m : undefined),
    RESTORE_TIMEOUT_MS,
    "the survivor to process the partition's next record",
  );
  const takeoverMs = next.at - stopAt;
  const coldRestore = survivor.messages.find((m) => m.type === 'restored' && m.at >= stopAt);
  const survivorOpened = survivor.messages.find((m) => m.type === 'opened' && m.at >= stopAt);
  say(
    `  takeover ${secs(takeoverMs)} from SIGTERM to the next record processed (the active instance took ` +
      `${secs(activeGoneMs)} to stop cleanly` +
      (survivorOpened ? `; the survivor's task was open after ${secs(survivorOpened.at - stopAt)}` : '') +
      ')',
  );
  if (coldRestore?.type === 'restored' && coldRestore.records > 0) {
    // A warm standby replays the last seconds at most; half the changelog or more is a restore from scratch.
    const cold = coldRestore.records >= restored.records / 2;
    say(
      `  the survivor replayed ${fmt(coldRestore.records)} changelog records after the takeover ` +
        `(${secs(coldRestore.seconds * 1000)})` +
        (cold
          ? ': its standby copy was not warm (it had not followed the changelog), so this takeover was ' +
            'a restore from scratch'
          : ' on top of its standby copy'),
    );
  }
  await stopInstance(survivor);

  say(
    `restore: ${IDS} ids + ${KEYS} keys in ${(restoreMs / 1000).toFixed(1)} s (${Math.round(entries / (restoreMs / 1000))} records/s), ` +
      `standby takeover ${(takeoverMs / 1000).toFixed(1)} s`,
  );
  return 0;
}

/** Produces the ids `from` .. `from + ids - 1`, IDS_PER_RECORD per record; returns the record count. */
async function produceInput(kafka: Kafka, from: number, ids: number): Promise<number> {
  const admin = kafka.admin();
  await admin.connect();
  try {
    await createTopicIfMissing(admin, topic, 1);
  } finally {
    await admin.disconnect();
  }
  const producer = kafka.producer({ createPartitioner: Partitioners.DefaultPartitioner });
  await producer.connect();
  let records = 0;
  try {
    let batch: Message[] = [];
    for (let start = from; start < from + ids; start += IDS_PER_RECORD) {
      // Record r goes to window r mod WINDOWS, its ids to the next IDS_PER_RECORD keys of that window.
      const record = Math.floor(start / IDS_PER_RECORD);
      const window = record % WINDOWS;
      const range: IdRange = {
        from: start,
        count: Math.min(IDS_PER_RECORD, from + ids - start),
        time: EVENT_TIME + window * 60_000,
        keyBase: window * KEYS_PER_WINDOW,
        keyOffset: Math.floor(record / WINDOWS) * IDS_PER_RECORD,
        keys: Math.min(KEYS_PER_WINDOW, KEYS - window * KEYS_PER_WINDOW),
      };
      batch.push({ value: JSON.stringify(range), partition: 0 });
      records++;
      if (batch.length >= RECORDS_PER_SEND) {
        await producer.send({ topic, messages: batch });
        batch = [];
      }
    }
    if (batch.length > 0) await producer.send({ topic, messages: batch });
  } finally {
    await producer.disconnect();
  }
  return records;
}

/** Records in the app's changelog topics (end − start offsets, transaction markers included). */
async function changelogRecords(kafka: Kafka): Promise<{ records: number; topics: number }> {
  const admin = kafka.admin();
  await admin.connect();
  try {
    const topics = (await admin.listTopics()).filter(
      (t) => t.startsWith(`${appId}-`) && t.endsWith('-changelog'),
    );
    let records = 0;
    for (const t of topics)
      for (const { high, low } of await admin.fetchTopicOffsets(t)) records += Number(high) - Number(low);
    return { records, topics: topics.length };
  } finally {
    await admin.disconnect();
  }
}

async function startInstance(
  standbyReplicas: number,
  nodeOptions: readonly string[] = [],
): Promise<BenchChild<RunnerMessage>> {
  const stateDir = await mkdtemp(join(tmpdir(), 'tributary-bench-restore-'));
  stateDirs.push(stateDir);
  const child = startChild<RunnerMessage>(
    '../restore/runner.ts',
    runnerMessage,
    {
      BENCH_TOPIC: topic,
      BENCH_WINDOWS: String(WINDOWS),
      // Set here rather than only in the runner's code: environment overrides win in the runtime's config.
      TRIBUTARY_APP_ID: appId,
      TRIBUTARY_STATE_DIR: stateDir,
      TRIBUTARY_STANDBY_REPLICAS: String(standbyReplicas),
      TRIBUTARY_CHANGELOG: 'true',
      TRIBUTARY_BROKERS: brokers.join(','),
    },
    undefined,
    nodeOptions,
  );
  children.push(child);
  await child.next((m) => (m.type === 'starting' ? m : undefined), 60_000, 'the instance to start');
  return child;
}

async function stopInstance(child: BenchChild<RunnerMessage>): Promise<void> {
  child.process.kill('SIGTERM');
  await child.next((m) => (m.type === 'stopped' ? m : undefined), STOP_TIMEOUT_MS, 'the instance to stop');
  await child.exited;
}

function sleepMs(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

function wholeNumber(name: string, raw: string): number {
  const value = Number(raw.replace(/_/g, ''));
  if (!Number.isInteger(value) || value <= 0)
    throw new Error(`${name}="${raw}" is not a positive whole number`);
  return value;
}

/** Idempotent: runs once, whether the run ends, fails or is interrupted. */
function cleanUp(): Promise<void> {
  cleanedUp ??= (async () => {
    for (const child of children)
      if (child.process.exitCode === null && child.process.signalCode === null) child.process.kill('SIGKILL');
    await Promise.all(children.map((child) => child.exited));
    await removeRunResources(
      {
        brokers,
        topics: [topic, `${appId}.dlq`],
        changelogsOf: [appId],
        consumerGroups: [appId, `${appId}.dlq-progress`],
        registryUrl: env.TRIBUTARY_SCHEMA_REGISTRY_URL ?? 'http://127.0.0.1:8081/apis/ccompat/v7',
        registrySubject: `${topic}-value`,
        clickhouse: {
          url: env.TRIBUTARY_CLICKHOUSE_URL ?? 'http://127.0.0.1:8123',
          database: 'bench',
          tables: [],
        },
      },
      warn,
    );
    for (const dir of stateDirs) await rm(dir, { recursive: true, force: true });
  })();
  return cleanedUp;
}

process.once('SIGINT', () => {
  warn('interrupted: cleaning up');
  void cleanUp().finally(() => process.exit(130));
});

let exitCode: number;
try {
  exitCode = await main();
} catch (error) {
  warn(error instanceof Error ? (error.stack ?? error.message) : String(error));
  say(`restore: failed: ${error instanceof Error ? error.message : String(error)}`);
  exitCode = 1;
}
await cleanUp();
process.exit(exitCode);
