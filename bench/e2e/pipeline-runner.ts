/**
 * Runs the reference metering pipeline for the end-to-end benchmark and reports its progress on
 * stdout (see protocol.ts). Unlike examples/metering/worker.ts it watches its own tasks: the live
 * per-task counters tell when the last input record went through the topology, while the Prometheus
 * counters only move at commits (every second).
 *
 * Environment: BENCH_TOPIC, BENCH_CLICKHOUSE_DATABASE, BENCH_CLICKHOUSE_TABLE, BENCH_EXPECTED_RECORDS,
 * and the runtime's own TRIBUTARY_APP_ID, TRIBUTARY_STATE_DIR and TRIBUTARY_CHANGELOG (set by the
 * parent, so that an override inherited from the caller's shell cannot point the run at old state or
 * change what it measures), plus the usual TRIBUTARY_* endpoints.
 * SIGTERM stops the app cleanly and reports the final counters.
 */
import { pino } from 'pino';
import { meteringApp } from '../../examples/metering/pipeline.js';
import type { Instance } from '../../src/index.js';
import { emit, usageOfThisProcess } from './protocol.js';

/** How often the live counters are checked: the resolution of the "all processed" instant. */
const CHECK_EVERY_MS = 50;
/** How often a progress line goes to the parent. */
const REPORT_EVERY_MS = 1000;

const env = process.env;
const expected = Number(requiredEnv('BENCH_EXPECTED_RECORDS'));
const logger = pino({ level: env.TRIBUTARY_LOG_LEVEL ?? 'warn' }, pino.destination(2));
const app = meteringApp({
  logger,
  topic: requiredEnv('BENCH_TOPIC'),
  registryUrl: env.TRIBUTARY_SCHEMA_REGISTRY_URL ?? 'http://127.0.0.1:8081/apis/ccompat/v7',
  clickhouse: {
    url: env.TRIBUTARY_CLICKHOUSE_URL ?? 'http://127.0.0.1:8123',
    database: requiredEnv('BENCH_CLICKHOUSE_DATABASE'),
    table: requiredEnv('BENCH_CLICKHOUSE_TABLE'),
  },
  config: {
    appId: requiredEnv('TRIBUTARY_APP_ID'),
    stateDir: requiredEnv('TRIBUTARY_STATE_DIR'),
    // The parent watches stdout; a fixed admin port could collide with another instance on this machine.
    admin: { enabled: false },
    // This runner owns SIGTERM: it must report the final counters after the app stopped.
    handleSignals: false,
  },
});

emit({ type: 'starting', at: Date.now(), cpuMs: usageOfThisProcess().cpuMs });
await app.start();
emit({ type: 'started', at: Date.now() });
const runtime = app.runtime as Instance;
const { metrics } = runtime;

/** Records through the topology right now, summed over this instance's tasks (not only at commits). */
function liveProcessed(): number {
  return runtime.tasks().reduce((sum, task) => sum + task.metrics.recordsProcessed, 0);
}

interface Counters {
  at: number;
  processed: number;
  inserts: number;
  changelogBytes: number;
}

/** The counters now; `processed` is read by the caller at the same instant as `at`. */
async function countersAt(at: number, processed: number): Promise<Counters> {
  return {
    at,
    processed,
    inserts: await metrics.total(metrics.sinkWrites),
    changelogBytes: await metrics.total(metrics.changelogBytes),
  };
}

/** The counters at the first check that saw a record processed: where the run's rates start. */
let firstRecord: Promise<Counters> | undefined;
let allProcessed = false;
let maxPausedPartitions = 0;

const checker = setInterval(() => {
  const processed = liveProcessed();
  if (processed > 0) firstRecord ??= countersAt(Date.now(), processed);
  if (allProcessed || processed < expected) return;
  allProcessed = true;
  const at = Date.now();
  const { cpuMs } = usageOfThisProcess();
  void (async () => {
    emit({
      type: 'processed',
      at,
      firstRecord: await (firstRecord ?? countersAt(at, processed)),
      cpuMs,
      processed,
      rowsWritten: await metrics.total(metrics.sinkRows),
      inserts: await metrics.total(metrics.sinkWrites),
      changelogBytes: await metrics.total(metrics.changelogBytes),
    });
  })();
}, CHECK_EVERY_MS);

const reporter = setInterval(() => {
  void (async () => {
    const pending = runtime.tasks().reduce((sum, task) => sum + task.pendingOutputs, 0);
    maxPausedPartitions = Math.max(maxPausedPartitions, await metrics.total(metrics.pausedPartitions));
    emit({
      type: 'progress',
      at: Date.now(),
      processed: liveProcessed(),
      rowsWritten: await metrics.total(metrics.sinkRows),
      inserts: await metrics.total(metrics.sinkWrites),
      pendingOutputs: pending,
      rssBytes: process.memoryUsage.rss(),
    });
  })();
}, REPORT_EVERY_MS);

process.once('SIGTERM', () => {
  clearInterval(checker);
  clearInterval(reporter);
  void (async () => {
    // Read before stop(): stopping closes the tasks, and their live counters go with them.
    const processed = liveProcessed();
    await app.stop();
    emit({
      type: 'stopped',
      processed,
      rowsWritten: await metrics.total(metrics.sinkRows),
      inserts: await metrics.total(metrics.sinkWrites),
      sinkFailures: await metrics.total(metrics.sinkFailures),
      deadLetters: await metrics.total(metrics.deadLetters),
      changelogBytes: await metrics.total(metrics.changelogBytes),
      maxPausedPartitions,
      usage: usageOfThisProcess(),
    });
    process.exit(0);
  })();
});

function requiredEnv(name: string): string {
  const value = env[name];
  if (value === undefined || value === '') throw new Error(`${name} is not set`);
  return value;
}
