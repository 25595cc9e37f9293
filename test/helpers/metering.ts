/**
 * Harness for the end-to-end tests: runs the reference metering job (examples/metering/worker.ts) as
 * child processes that a test can SIGKILL, stop and restart, and reads back what reached the DLQ.
 */
import { spawn, spawnSync } from 'node:child_process';
import type { ChildProcess } from 'node:child_process';
import { mkdtempSync, openSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Kafka, logLevel } from 'kafkajs';
import { DLQ_HEADERS } from '../../src/serde/dlq.js';
import { sleep } from '../../src/core/retry.js';
import { ensureInputTopic, registerUsageSchema } from '../../examples/metering/setup.js';
import { createTestDatabase } from './clickhouse.js';
import type { TestDatabase } from './clickhouse.js';
import { brokers, clickhouseUrl, registryUrl } from './services.js';

export interface MeteringRun {
  appId: string;
  topic: string;
  database: string;
  table: string;
  stateDir: string;
  logDir: string;
}

export function newRun(label: string, database: string): MeteringRun {
  const id = `${label}_${Date.now().toString(36)}_${Math.floor(Math.random() * 1e6).toString(36)}`;
  const logDir = mkdtempSync(join(tmpdir(), `tributary-${label}-logs-`));
  return {
    appId: `test-${id}`,
    topic: `usage-${id}`,
    database,
    table: 'usage_1m',
    stateDir: mkdtempSync(join(tmpdir(), `tributary-${label}-state-`)),
    logDir,
  };
}

export interface MeteringFixture {
  db: TestDatabase;
  run: MeteringRun;
}

/** A fresh database, topic (with its registered schema), app id and state folder for one test file. */
export async function setUpMeteringRun(label: string, partitions = 8): Promise<MeteringFixture> {
  const db = await createTestDatabase(label);
  const run = newRun(label, db.name);
  await ensureInputTopic(brokers, run.topic, partitions);
  await registerUsageSchema(registryUrl, run.topic);
  return { db, run };
}

/** A state folder of its own, as on a machine of its own (under the system's temp folder). */
export function newStateDir(label: string): string {
  return mkdtempSync(join(tmpdir(), `tributary-${label}-state-`));
}

export interface WorkerOptions {
  /** This worker's own state folder (another machine); default: the run's `stateDir`, shared by its workers. */
  stateDir?: string;
}

let workerCount = 0;

/** One metering worker process. Its log (pino JSON on stderr) goes to a file the test can show on failure. */
export class Worker {
  readonly process: ChildProcess;
  readonly logFile: string;
  readonly stateDir: string;
  private readonly exited: Promise<number | null>;
  adminAddress: string | undefined;

  constructor(run: MeteringRun, extraEnv: Record<string, string> = {}, options: WorkerOptions = {}) {
    this.logFile = join(run.logDir, `worker-${++workerCount}.log`);
    this.stateDir = options.stateDir ?? run.stateDir;
    const log = openSync(this.logFile, 'a');
    this.process = spawn(process.execPath, ['--import', 'tsx', 'examples/metering/worker.ts'], {
      env: {
        ...process.env,
        TRIBUTARY_APP_ID: run.appId,
        TRIBUTARY_BROKERS: brokers.join(','),
        TRIBUTARY_SCHEMA_REGISTRY_URL: registryUrl,
        TRIBUTARY_CLICKHOUSE_URL: clickhouseUrl,
        TRIBUTARY_STATE_DIR: this.stateDir,
        TRIBUTARY_ADMIN_PORT: '0',
        // A killed member leaves the group after the session timeout: keep restarts quick.
        TRIBUTARY_KAFKA_SESSION_TIMEOUT_MS: '6000',
        TRIBUTARY_LOG_LEVEL: 'info',
        METERING_TOPIC: run.topic,
        METERING_CLICKHOUSE_DATABASE: run.database,
        METERING_CLICKHOUSE_TABLE: run.table,
        ...extraEnv,
      },
      stdio: ['ignore', log, log],
    });
    this.exited = new Promise((resolve) => this.process.once('exit', (code) => resolve(code)));
  }

  get alive(): boolean {
    return this.process.exitCode === null && this.process.signalCode === null;
  }

  /** Waits until the worker has joined the group and serves its admin endpoint. */
  async ready(timeoutMs = 60_000): Promise<string> {
    const deadline = Date.now() + timeoutMs;
    while (Date.now() < deadline) {
      if (!this.alive) throw new Error(`worker exited during start-up; log:\n${this.tail()}`);
      const match = /"address":"(http:\/\/[^"]+)"[^\n]*admin endpoint listening/.exec(
        readFileSync(this.logFile, 'utf8'),
      );
      if (match?.[1]) {
        this.adminAddress = match[1];
        return match[1];
      }
      await sleep(100);
    }
    throw new Error(`worker not ready after ${timeoutMs} ms; log:\n${this.tail()}`);
  }

  /** Sends a signal: SIGKILL, SIGTERM, or SIGSTOP/SIGCONT to freeze and wake it (a stopped worker is alive). */
  kill(signal: NodeJS.Signals): void {
    if (this.alive) this.process.kill(signal);
  }

  /** Whether the worker's log has a line with `text` (e.g. a log message). */
  logged(text: string): boolean {
    try {
      return readFileSync(this.logFile, 'utf8').includes(text);
    } catch {
      return false;
    }
  }

  /** The partitions whose task is open on this worker (its /health). */
  async partitions(token?: string): Promise<number[]> {
    const { body } = await this.admin<{ partitions?: number[] }>('/health', token);
    return [...(body.partitions ?? [])].sort((a, b) => a - b);
  }

  /** Resolves with the exit code (null when killed by a signal). */
  async exit(timeoutMs = 60_000): Promise<number | null> {
    let timer: NodeJS.Timeout | undefined;
    const timeout = new Promise<never>((_, reject) => {
      timer = setTimeout(
        () => reject(new Error(`worker did not exit within ${timeoutMs} ms; log:\n${this.tail()}`)),
        timeoutMs,
      );
    });
    try {
      return await Promise.race([this.exited, timeout]);
    } finally {
      clearTimeout(timer);
    }
  }

  /** GET on the admin endpoint, parsed as JSON. */
  async admin<T>(path: string, token?: string): Promise<{ status: number; body: T }> {
    if (!this.adminAddress) throw new Error('worker not ready');
    const response = await fetch(`${this.adminAddress}${path}`, {
      headers: token ? { authorization: `Bearer ${token}` } : {},
      // A frozen (SIGSTOPped) worker never answers.
      signal: AbortSignal.timeout(10_000),
    });
    const text = await response.text();
    return { status: response.status, body: (text.startsWith('{') ? JSON.parse(text) : text) as T };
  }

  /** Value of one metric summed over its labels, from the admin endpoint's Prometheus text. */
  async metric(name: string): Promise<number> {
    const { body } = await this.admin<string>('/metrics');
    let total = 0;
    for (const line of String(body).split('\n')) {
      if (line.startsWith(`${name}{`) || line.startsWith(`${name} `))
        total += Number(line.slice(line.lastIndexOf(' ') + 1));
    }
    return total;
  }

  /** Value of one metric per `partition` label (summed over its other labels). */
  async metricByPartition(name: string): Promise<Map<number, number>> {
    const { body } = await this.admin<string>('/metrics');
    const values = new Map<number, number>();
    for (const line of String(body).split('\n')) {
      if (!line.startsWith(`${name}{`)) continue;
      const partition = /[{,]partition="(\d+)"/.exec(line)?.[1];
      if (partition === undefined) continue;
      const value = Number(line.slice(line.lastIndexOf(' ') + 1));
      values.set(Number(partition), (values.get(Number(partition)) ?? 0) + value);
    }
    return values;
  }

  tail(lines = 40): string {
    try {
      return readFileSync(this.logFile, 'utf8').split('\n').slice(-lines).join('\n');
    } catch {
      return '(no log)';
    }
  }
}

/** The code base's one sleep, for the tests that take it from this helper. */
export { sleep };

export interface DlqEntry {
  reason: string;
  partition: number;
  offset: string;
}

/** Every committed record of a DLQ topic, with its source coordinates (read_committed). */
export async function readDlq(topic: string, expectAtLeast: number, timeoutMs = 30_000): Promise<DlqEntry[]> {
  const kafka = new Kafka({ clientId: 'dlq-reader', brokers, logLevel: logLevel.NOTHING });
  const deadline = Date.now() + timeoutMs;
  // Dead letters go out after the records that caused them are counted as processed: an empty topic
  // may only be early, so wait for the first letter when one is expected.
  const admin = kafka.admin();
  await admin.connect();
  let total = 0;
  try {
    for (;;) {
      const offsets = await admin.fetchTopicOffsets(topic);
      total = offsets.reduce((sum, p) => sum + Number(p.high) - Number(p.low), 0);
      if (total > 0 || expectAtLeast === 0 || Date.now() > deadline) break;
      await sleep(200);
    }
  } finally {
    await admin.disconnect();
  }
  const entries: DlqEntry[] = [];
  if (total === 0) return entries;
  const consumer = kafka.consumer({
    groupId: `dlq-reader-${Date.now()}-${Math.random()}`,
    readUncommitted: false,
  });
  await consumer.connect();
  await consumer.subscribe({ topic, fromBeginning: true });
  const header = (value: Buffer | string | (Buffer | string)[] | undefined) =>
    String(Array.isArray(value) ? value[0] : value);
  await consumer.run({
    eachMessage: async ({ message }) => {
      entries.push({
        reason: header(message.headers?.[DLQ_HEADERS.reason]),
        partition: Number(header(message.headers?.[DLQ_HEADERS.sourcePartition])),
        offset: header(message.headers?.[DLQ_HEADERS.sourceOffset]),
      });
    },
  });
  // Transaction markers take offsets too: wait for at least what the test expects, then for quiet.
  while (entries.length < expectAtLeast && Date.now() < deadline) await sleep(200);
  await sleep(1500);
  await consumer.disconnect();
  return entries;
}

/**
 * Stops the stack's ClickHouse process (a real outage, not a proxy) and returns a function that brings
 * it back through the stack script. Only for the native stack, whose pid file names the process.
 */
export async function stopClickHouse(): Promise<() => Promise<void>> {
  const pidFile = join(process.env.TRIBUTARY_STACK_DIR ?? '.stack', 'run', 'clickhouse.pid');
  let pid: number;
  try {
    pid = Number(readFileSync(pidFile, 'utf8').trim());
  } catch {
    throw new Error(`no ${pidFile}: this test stops the ClickHouse that 'npm run stack:up' started natively`);
  }
  process.kill(pid, 'SIGKILL');
  const deadline = Date.now() + 10_000;
  while (Date.now() < deadline && (await clickhouseAnswers())) await sleep(100);
  if (await clickhouseAnswers()) throw new Error('ClickHouse still answers after SIGKILL');
  return async () => {
    const result = spawnSync('bash', ['scripts/stack/stack.sh', 'up', '--quiet'], { stdio: 'inherit' });
    if (result.status !== 0) throw new Error('bringing ClickHouse back failed');
  };
}

/**
 * Stops the stack's Kafka broker (SIGTERM, as `stack.sh down` does, and waits until the process is
 * gone) and returns a function that brings it back through the stack script, which waits until it
 * answers. Only for the native stack. The broker is shared: never in a suite that runs by default.
 */
export async function stopKafka(): Promise<() => Promise<void>> {
  const pidFile = join(process.env.TRIBUTARY_STACK_DIR ?? '.stack', 'run', 'kafka.pid');
  let pid: number;
  try {
    pid = Number(readFileSync(pidFile, 'utf8').trim());
  } catch {
    throw new Error(`no ${pidFile}: this test stops the Kafka that 'npm run stack:up' started natively`);
  }
  const running = () => {
    try {
      process.kill(pid, 0);
      return true;
    } catch {
      return false;
    }
  };
  process.kill(pid, 'SIGTERM');
  const deadline = Date.now() + 60_000;
  while (running() && Date.now() < deadline) await sleep(200);
  if (running()) process.kill(pid, 'SIGKILL');
  return async () => {
    const result = spawnSync('bash', ['scripts/stack/stack.sh', 'up', '--quiet'], { stdio: 'inherit' });
    if (result.status !== 0) throw new Error('bringing Kafka back failed');
  };
}

async function clickhouseAnswers(): Promise<boolean> {
  try {
    const response = await fetch(`${clickhouseUrl}/?query=SELECT%201`, { signal: AbortSignal.timeout(1000) });
    return response.ok;
  } catch {
    return false;
  }
}
