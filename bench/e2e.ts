/**
 * `npm run bench`: the reference metering pipeline end to end, beside the Kafka client's ceiling, in
 * one run over the same topic.
 *
 *  1. Produce BENCH_EVENTS records (default 1,000,000) once, at full speed, into a fresh 8-partition
 *     topic with the metering generator, which keeps the ground truth.
 *  2. Ceiling: a bare kafkajs consumer in a child process (fresh group, from the beginning, counting
 *     only) reads them all; events/s from its first batch to the last record.
 *  3. Pipeline: the reference topology in a child process (fresh app id, state in a temp folder, fresh
 *     ClickHouse table in the `bench` database), timed like the ceiling: from its first record processed
 *     until its tasks have processed every record; then the ClickHouse rollup must equal the ground
 *     truth exactly (exit 1 if not). Both readers are timed from their first record, not from their
 *     start: the start-up (group join, first fetch; the pipeline's changelog checks and store opens) is
 *     a fixed cost that would make the ratio depend on BENCH_EVENTS, so it is printed on its own.
 *     It runs twice over the same topic: with changelog topics and Kafka transactions (the default,
 *     the main figures) and then without them (`changelog.enabled` false), so that the cost of the
 *     changelogs is measured in the same run on the same machine.
 *
 * The readers start after production finished, one after the other: they measure catch-up throughput
 * over a topic that is already full, and none competes with the generator or another for the
 * machine's cores. The last line is
 *   e2e: <N> events/s, ceiling <C> events/s, ratio <N/C>, rows/event <R>, inserts/s <I>, peak RSS <M> MB,
 *   changelog <L> MB/s, without changelogs <N0> events/s, with/without <N/N0>
 * (one line). Every pipeline rate counts what happened between its first and its last record and divides
 * by that span: events/s the records processed in it, inserts/s the inserts that succeeded in it, L the
 * changelog bytes committed in it (the inserts of the last windows, closed on idleness after the last
 * record, are counted in the totals, not in the rates).
 *
 * Cleanup: the topics (changelogs included), consumer groups, schema subject and temp state are always
 * removed; a rollup table (and its totals view) is dropped after a matching run and kept for inspection
 * after a mismatch.
 */
import { randomBytes } from 'node:crypto';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Kafka, logLevel } from 'kafkajs';
import type { GroundTruth } from '../examples/metering/generator.js';
import { UsageGenerator } from '../examples/metering/generator.js';
import { ensureInputTopic, registerUsageSchema } from '../examples/metering/setup.js';
import { describeMismatch, readRollup, waitForMatch } from '../examples/metering/verify.js';
import { removeRunResources } from './e2e/cleanup.js';
import type { RunResources } from './e2e/cleanup.js';
import { busyShare, coreCount, cpuSnapshot } from './e2e/machine.js';
import type { CpuSnapshot } from './e2e/machine.js';
import { ceilingMessage, pipelineMessage, startChild } from './e2e/protocol.js';
import type { BenchChild, CeilingMessage, PipelineMessage } from './e2e/protocol.js';

const PARTITIONS = 8;
/** The generator paces itself to `rate`; this one is never reached, so it produces as fast as it can. */
const FULL_SPEED = 1e9;
const DATABASE = 'bench';
const PROGRESS_EVERY_MS = 5000;
const CEILING_TIMEOUT_MS = 180_000;
/** Time for the last windows to close (idleness), be committed and be inserted, with a wide margin. */
const ROLLUP_TIMEOUT_MS = 120_000;
const STOP_TIMEOUT_MS = 60_000;

const env = process.env;
// The generator picks every message's partition itself, so kafkajs's note about its default partitioner is noise.
env.KAFKAJS_NO_PARTITIONER_WARNING ??= '1';
const events = parseEventCount(env.BENCH_EVENTS ?? '1000000');
const brokers = (env.TRIBUTARY_BROKERS ?? '127.0.0.1:9092').split(',');
const registryUrl = env.TRIBUTARY_SCHEMA_REGISTRY_URL ?? 'http://127.0.0.1:8081/apis/ccompat/v7';
const clickhouseUrl = env.TRIBUTARY_CLICKHOUSE_URL ?? 'http://127.0.0.1:8123';
const runId = `${new Date().toISOString().slice(0, 19).replace(/[-:T]/g, '')}_${randomBytes(3).toString('hex')}`;
const topic = `bench-e2e.${runId}`;
const ceilingGroup = `bench-e2e-ceiling-${runId}`;

/** One run of the pipeline: its own app id (group, changelogs, DLQ), state folder and rollup table. */
interface PipelineVariant {
  label: string;
  appId: string;
  table: string;
  changelog: boolean;
}

// Neither app id is a prefix of the other, so their changelog topics cannot be confused.
const withChangelogs: PipelineVariant = {
  label: 'with changelogs',
  appId: `bench-e2e-${runId}-cl`,
  table: `e2e_${runId}_cl`,
  changelog: true,
};
const withoutChangelogs: PipelineVariant = {
  label: 'without changelogs',
  appId: `bench-e2e-${runId}-nocl`,
  table: `e2e_${runId}_nocl`,
  changelog: false,
};

const say = (line: string): void => void process.stdout.write(`${line}\n`);
const warn = (line: string): void => void process.stderr.write(`${line}\n`);
const fmt = (n: number): string => Math.round(n).toLocaleString('en-US');
const secs = (ms: number): string => `${(ms / 1000).toFixed(1)} s`;
const mb = (bytes: number): number => bytes / 1024 / 1024;
const pct = (share: number): string => `${Math.round(share * 100)}%`;

/** Pipeline processing time above this fails the run: BENCH_EVENTS scales it (2,000 events/s at worst). */
const pipelineTimeoutMs = 60_000 + (events / 2000) * 1000;

const children: Array<BenchChild<unknown>> = [];
const stateDirs: string[] = [];
/** Tables of runs that matched the ground truth; the others are kept for inspection. */
const matchedTables = new Set<string>();
let cleanedUp: Promise<void> | undefined;

interface ProduceResult {
  truth: GroundTruth;
  records: number;
  elapsedMs: number;
}

interface CeilingResult {
  records: number;
  elapsedMs: number;
  joinMs: number;
  batches: number;
  cpuMs: number;
  peakRssBytes: number;
  machineBusy: number;
}

interface PipelineResult {
  /** From the first record seen processed to the last: the span of every rate below. */
  processingMs: number;
  /** Records processed in that span (the first check already saw a batch or so done). */
  recordsProcessed: number;
  /** Inserts that succeeded in that span. */
  insertsProcessing: number;
  /** Changelog bytes committed in that span. */
  changelogBytesProcessing: number;
  /** From `app.start()` to the first record processed: group join, changelog checks, store opens. */
  startupMs: number;
  /** From `app.start()` to the last record processed (the span of the CPU and machine figures). */
  startToLastMs: number;
  cpuMs: number;
  rowsWritten: number;
  /** Every insert the run needed, including those after the last record (the last windows close on idleness). */
  inserts: number;
  sinkFailures: number;
  deadLetters: number;
  changelogBytes: number;
  maxPausedPartitions: number;
  peakRssBytes: number;
  machineBusy: number;
  rollupMs: number;
  rollupKeys: number;
}

async function main(): Promise<number> {
  say(
    `tributary e2e benchmark: ${fmt(events)} events, topic ${topic} (${PARTITIONS} partitions), ` +
      `rollups ${DATABASE}.${withChangelogs.table} and ${DATABASE}.${withoutChangelogs.table}, ${coreCount()} CPUs`,
  );
  const produced = await produce();
  const ceiling = await measureCeiling(produced.records);
  const pipeline = await measurePipeline(produced, withChangelogs);
  if (pipeline === undefined) return 1;
  const plain = await measurePipeline(produced, withoutChangelogs);
  if (plain === undefined) return 1;

  // Rates over each reader's span from its first record to its last, numerators counted in that span.
  const perSecond = (count: number, ms: number) => count / (Math.max(1, ms) / 1000);
  const pipelineRate = perSecond(pipeline.recordsProcessed, pipeline.processingMs);
  const plainRate = perSecond(plain.recordsProcessed, plain.processingMs);
  const changelogMBps = perSecond(mb(pipeline.changelogBytesProcessing), pipeline.processingMs);
  const ceilingRate = perSecond(ceiling.records, ceiling.elapsedMs);
  const rowsPerEvent = pipeline.rowsWritten / produced.records;
  const insertsPerSecond = perSecond(pipeline.insertsProcessing, pipeline.processingMs);
  const fromStart = (run: PipelineResult) => perSecond(produced.records, run.startToLastMs);
  say('');
  say('summary');
  say(
    `  ceiling   ${fmt(ceilingRate)} events/s  (${fmt(ceiling.records)} records in ${secs(ceiling.elapsedMs)}, ` +
      `first batch to last record; group join and first fetch took ${secs(ceiling.joinMs)} more)`,
  );
  say(
    `            ${fmt(ceiling.batches)} batches (${fmt(ceiling.records / ceiling.batches)} records each), ` +
      `CPU ${secs(ceiling.cpuMs)} (${pct(ceiling.cpuMs / (ceiling.joinMs + ceiling.elapsedMs))} of a core from run() on), ` +
      `peak RSS ${fmt(mb(ceiling.peakRssBytes))} MB, machine ${pct(ceiling.machineBusy)} busy`,
  );
  say(
    `  pipeline  ${fmt(pipelineRate)} events/s  (${fmt(pipeline.recordsProcessed)} records in ` +
      `${secs(pipeline.processingMs)}, first record processed to last; app.start() to first record took ` +
      `${secs(pipeline.startupMs)} more: ${fmt(fromStart(pipeline))} events/s from app.start())`,
  );
  say(
    `            CPU ${secs(pipeline.cpuMs)} (${pct(pipeline.cpuMs / pipeline.startToLastMs)} of a core from app.start() on), ` +
      `peak RSS ${fmt(mb(pipeline.peakRssBytes))} MB, machine ${pct(pipeline.machineBusy)} busy, ` +
      `partitions paused by backpressure at most ${pipeline.maxPausedPartitions}`,
  );
  say(
    `  sink      ${fmt(pipeline.rowsWritten)} rows in ${fmt(pipeline.inserts)} inserts ` +
      `(${fmt(pipeline.rowsWritten / Math.max(1, pipeline.inserts))} rows/insert, ${rowsPerEvent.toFixed(4)} rows/event, ` +
      `${insertsPerSecond.toFixed(2)} inserts/s: ${fmt(pipeline.insertsProcessing)} inserts between the first and the ` +
      `last record), ${pipeline.sinkFailures} failed writes`,
  );
  say(
    `  rollup    equal to the ground truth (${fmt(pipeline.rollupKeys)} (window, key) totals) ` +
      `${secs(pipeline.rollupMs)} after the last record was processed; ${pipeline.deadLetters} dead letters ` +
      `(generator sent ${produced.truth.malformed.length} malformed)`,
  );
  say(
    `  changelog ${fmt(mb(pipeline.changelogBytes))} MB committed (${changelogMBps.toFixed(2)} MB/s: ` +
      `${mb(pipeline.changelogBytesProcessing).toFixed(1)} MB between the first and the last record; ` +
      `${(pipeline.changelogBytes / produced.records).toFixed(1)} bytes/event over the run); without ` +
      `changelogs the same pipeline ran at ${fmt(plainRate)} events/s (${fmt(plain.recordsProcessed)} records in ` +
      `${secs(plain.processingMs)}, CPU ${secs(plain.cpuMs)}, peak RSS ${fmt(mb(plain.peakRssBytes))} MB): ` +
      `with/without ${(pipelineRate / plainRate).toFixed(2)}; from each run's app.start() ` +
      `${(fromStart(pipeline) / fromStart(plain)).toFixed(2)} (start-up: first record after ` +
      `${secs(pipeline.startupMs)} with, ${secs(plain.startupMs)} without)`,
  );
  say(
    `  ratio     pipeline/ceiling ${(pipelineRate / ceilingRate).toFixed(2)} (both from their first record); producing took ${secs(produced.elapsedMs)} ` +
      `(${fmt(produced.records / (produced.elapsedMs / 1000))} events/s, not part of any figure)`,
  );
  say(
    `e2e: ${Math.round(pipelineRate)} events/s, ceiling ${Math.round(ceilingRate)} events/s, ` +
      `ratio ${(pipelineRate / ceilingRate).toFixed(2)}, rows/event ${rowsPerEvent.toFixed(4)}, ` +
      `inserts/s ${insertsPerSecond.toFixed(2)}, peak RSS ${Math.round(mb(pipeline.peakRssBytes))} MB, ` +
      `changelog ${changelogMBps.toFixed(2)} MB/s, without changelogs ${Math.round(plainRate)} events/s, ` +
      `with/without ${(pipelineRate / plainRate).toFixed(2)}`,
  );
  return 0;
}

/** Step 1: the topic, the schema and every record, once. */
async function produce(): Promise<ProduceResult> {
  await ensureInputTopic(brokers, topic, PARTITIONS);
  await registerUsageSchema(registryUrl, topic);
  const generator = new UsageGenerator({
    brokers,
    registryUrl,
    topic,
    rate: FULL_SPEED,
    totalEvents: events,
  });
  await generator.connect();
  say(`producing ${fmt(events)} records at full speed...`);
  const started = Date.now();
  let sent = 0;
  const progress = setInterval(
    () => say(`  produced ${fmt(sent)} (${fmt(sent / ((Date.now() - started) / 1000))}/s)`),
    PROGRESS_EVERY_MS,
  );
  let truth: GroundTruth;
  try {
    truth = await generator.run((n) => (sent = n));
  } finally {
    clearInterval(progress);
    await generator.close();
  }
  const elapsedMs = Date.now() - started;
  // Both readers stop at this count, so it must be what the topic really holds.
  const records = await recordsInTopic();
  if (records !== truth.produced) {
    throw new Error(`the topic holds ${records} records but the generator produced ${truth.produced}`);
  }
  say(
    `  done: ${fmt(records)} records in ${secs(elapsedMs)}: ${fmt(truth.unique)} unique events, ` +
      `${fmt(truth.duplicates)} duplicates, ${truth.late} late, ${truth.malformed.length} malformed`,
  );
  return { truth, records, elapsedMs };
}

/** Sum of the partitions' end offsets: the idempotent producer writes no control records, so offsets are records. */
async function recordsInTopic(): Promise<number> {
  const admin = new Kafka({ clientId: 'bench-e2e', brokers, logLevel: logLevel.WARN }).admin();
  await admin.connect();
  try {
    const offsets = await admin.fetchTopicOffsets(topic);
    return offsets.reduce((sum, p) => sum + Number(p.high) - Number(p.low), 0);
  } finally {
    await admin.disconnect();
  }
}

/** Step 2: the bare consumer's throughput over the same records. */
async function measureCeiling(records: number): Promise<CeilingResult> {
  say('ceiling: bare kafkajs consumer, counting only...');
  let runningCpu: CpuSnapshot | undefined;
  let doneCpu: CpuSnapshot | undefined;
  const child = startChild<CeilingMessage>(
    'ceiling-consumer.ts',
    ceilingMessage,
    { BENCH_TOPIC: topic, BENCH_GROUP_ID: ceilingGroup, BENCH_EXPECTED_RECORDS: String(records) },
    (message) => {
      if (message.type === 'running') runningCpu = cpuSnapshot();
      else doneCpu = cpuSnapshot();
    },
  );
  children.push(child);
  const running = await child.next((m) => (m.type === 'running' ? m : undefined), 60_000, 'the consumer');
  const done = await child.next(
    (m) => (m.type === 'done' ? m : undefined),
    CEILING_TIMEOUT_MS,
    'the ceiling consumer to read every record',
  );
  await child.exited;
  const result: CeilingResult = {
    records: done.records,
    elapsedMs: Math.max(1, done.lastRecordAt - done.firstBatchAt),
    joinMs: done.firstBatchAt - done.runAt,
    batches: done.batches,
    cpuMs: done.cpuMs - running.cpuMs,
    peakRssBytes: done.usage.maxRssBytes,
    machineBusy: runningCpu && doneCpu ? busyShare(runningCpu, doneCpu) : 0,
  };
  say(`  done: ${fmt(result.records)} records in ${secs(result.elapsedMs)}`);
  return result;
}

/** Step 3: the reference pipeline, then the exact rollup check. Undefined when the rollup is wrong. */
async function measurePipeline(
  produced: ProduceResult,
  variant: PipelineVariant,
): Promise<PipelineResult | undefined> {
  const { appId, table } = variant;
  say(`pipeline: reference metering topology, ${variant.label}...`);
  const stateDir = await mkdtemp(join(tmpdir(), 'tributary-bench-e2e-'));
  stateDirs.push(stateDir);
  let startCpu: CpuSnapshot | undefined;
  let processedCpu: CpuSnapshot | undefined;
  let lastReportAt = 0;
  const child = startChild<PipelineMessage>(
    'pipeline-runner.ts',
    pipelineMessage,
    {
      BENCH_TOPIC: topic,
      BENCH_EXPECTED_RECORDS: String(produced.records),
      BENCH_CLICKHOUSE_DATABASE: DATABASE,
      BENCH_CLICKHOUSE_TABLE: table,
      // Set here rather than only in the runner's code: environment overrides win in the runtime's config.
      TRIBUTARY_APP_ID: appId,
      TRIBUTARY_STATE_DIR: stateDir,
      TRIBUTARY_CHANGELOG: String(variant.changelog),
      TRIBUTARY_ADMIN_ENABLED: 'false',
      // The ClickHouse sink logs through its own pino logger on stdout (info by default), not the app's.
      TRIBUTARY_LOG_LEVEL: env.TRIBUTARY_LOG_LEVEL ?? 'warn',
    },
    (message) => {
      if (message.type === 'starting') startCpu = cpuSnapshot();
      else if (message.type === 'processed') processedCpu = cpuSnapshot();
      else if (message.type === 'progress' && message.at - lastReportAt >= PROGRESS_EVERY_MS) {
        lastReportAt = message.at;
        say(
          `  processed ${fmt(message.processed)} | rows written ${fmt(message.rowsWritten)} in ` +
            `${fmt(message.inserts)} inserts | pending outputs ${fmt(message.pendingOutputs)} | ` +
            `RSS ${fmt(mb(message.rssBytes))} MB`,
        );
      }
    },
  );
  children.push(child);
  const starting = await child.next((m) => (m.type === 'starting' ? m : undefined), 60_000, 'the pipeline');
  const processed = await child.next(
    (m) => (m.type === 'processed' ? m : undefined),
    pipelineTimeoutMs,
    'the pipeline to process every record',
  );
  const startToLastMs = processed.at - starting.at;
  say(
    `  every record processed after ${secs(startToLastMs)}; waiting for the rollup to equal the ground truth...`,
  );

  const comparison = await waitForMatch(
    produced.truth,
    () => readRollup(clickhouseUrl, DATABASE, table),
    ROLLUP_TIMEOUT_MS,
  );
  const rollupMs = Date.now() - processed.at;
  // A clean stop delivers whatever is still pending, so the sink counters it reports are final.
  child.process.kill('SIGTERM');
  const stopped = await child.next(
    (m) => (m.type === 'stopped' ? m : undefined),
    STOP_TIMEOUT_MS,
    'the pipeline to stop',
  );
  await child.exited;
  if (!comparison.matches) {
    say(`rollup does NOT match the ground truth: ${describeMismatch(comparison)}`);
    say(`the table ${DATABASE}.${table} is kept for inspection`);
    say(`e2e: failed: the rollup (${variant.label}) does not match the ground truth`);
    return undefined;
  }
  matchedTables.add(table);
  const { firstRecord } = processed;
  return {
    processingMs: processed.at - firstRecord.at,
    recordsProcessed: processed.processed - firstRecord.processed,
    insertsProcessing: processed.inserts - firstRecord.inserts,
    changelogBytesProcessing: processed.changelogBytes - firstRecord.changelogBytes,
    startupMs: firstRecord.at - starting.at,
    startToLastMs,
    cpuMs: processed.cpuMs - starting.cpuMs,
    rowsWritten: stopped.rowsWritten,
    inserts: stopped.inserts,
    sinkFailures: stopped.sinkFailures,
    deadLetters: stopped.deadLetters,
    changelogBytes: stopped.changelogBytes,
    maxPausedPartitions: stopped.maxPausedPartitions,
    peakRssBytes: stopped.usage.maxRssBytes,
    machineBusy: startCpu && processedCpu ? busyShare(startCpu, processedCpu) : 0,
    rollupMs,
    rollupKeys: comparison.actualKeys,
  };
}

function parseEventCount(raw: string): number {
  const value = Number(raw.replace(/_/g, ''));
  if (!Number.isInteger(value) || value <= 0)
    throw new Error(`BENCH_EVENTS="${raw}" is not a positive whole number`);
  return value;
}

/** Idempotent: runs once, whether the run ends, fails or is interrupted. */
function cleanUp(): Promise<void> {
  cleanedUp ??= (async () => {
    for (const child of children) {
      if (child.process.exitCode === null && child.process.signalCode === null) child.process.kill('SIGKILL');
    }
    await Promise.all(children.map((child) => child.exited));
    const apps = [withChangelogs.appId, withoutChangelogs.appId];
    const resources: RunResources = {
      brokers,
      topics: [topic, ...apps.map((appId) => `${appId}.dlq`)],
      changelogsOf: apps,
      consumerGroups: [ceilingGroup, ...apps, ...apps.map((appId) => `${appId}.dlq-progress`)],
      registryUrl,
      registrySubject: `${topic}-value`,
      clickhouse: { url: clickhouseUrl, database: DATABASE, tables: [...matchedTables] },
    };
    await removeRunResources(resources, warn);
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
  say(`e2e: failed: ${error instanceof Error ? error.message : String(error)}`);
  exitCode = 1;
}
await cleanUp();
process.exit(exitCode);
