/**
 * Shared steps of the reliability tests (test/chaos/): metering workers on machines of their own (a
 * state folder each), the generator's run, who owns which partition, and the exactness check of
 * ClickHouse and the DLQ against the ground truth.
 */
import assert from 'node:assert/strict';
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { Kafka, logLevel } from 'kafkajs';
import { SINGLE_SUBTOPOLOGY, taskIdOf } from '../../src/core/task-id.js';
import { StateDb } from '../../src/state/db.js';
import { storeLevelName, storeLocalLevels } from '../../src/state/store-manifest.js';
import { UsageGenerator } from '../../examples/metering/generator.js';
import type { GeneratorOptions, GroundTruth } from '../../examples/metering/generator.js';
import { describeMismatch, readRollup, waitForMatch } from '../../examples/metering/verify.js';
import { Worker, newStateDir, readDlq, sleep } from './metering.js';
import type { MeteringRun } from './metering.js';
import { brokers, clickhouseUrl, registryUrl } from './services.js';

/** Partitions of the input topic in these tests. */
export const PARTITIONS = 8;

/** A metering worker with a state folder of its own, as on a separate machine. */
export function machine(run: MeteringRun, env: Record<string, string> = {}): Worker {
  return new Worker(run, env, { stateDir: newStateDir(run.appId) });
}

/** A worker on a stopped worker's state folder: the same machine, started again. */
export function sameMachine(run: MeteringRun, stopped: Worker, env: Record<string, string> = {}): Worker {
  assert.ok(!stopped.alive, "the machine's previous worker has stopped (it holds the folder's lock)");
  return new Worker(run, env, { stateDir: stopped.stateDir });
}

/**
 * Per partition, the ids a dedupe store has spilled to disk in a stopped worker's folder (its local
 * index entries; 0 for a partition the folder has no task of). Opens the task folders read-only in
 * effect: nothing is written.
 */
export async function spilledDedupeIds(
  run: MeteringRun,
  stopped: Worker,
  partitions: readonly number[],
  store = 'dedupe-source-id',
): Promise<Map<number, number>> {
  assert.ok(!stopped.alive, "the worker has stopped (it holds its folders' locks)");
  const [indexLevel] = storeLocalLevels('dedupe', store) as [string];
  const spilled = new Map<number, number>();
  for (const partition of partitions) {
    const folder = join(stopped.stateDir, run.appId, taskIdOf(SINGLE_SUBTOPOLOGY, partition).folderName);
    if (!existsSync(folder)) {
      spilled.set(partition, 0);
      continue;
    }
    const db = await StateDb.open(folder);
    try {
      let count = 0;
      for await (const _key of db.textLevel(indexLevel).keys()) count++;
      spilled.set(partition, count);
    } finally {
      await db.close();
    }
  }
  return spilled;
}

/**
 * Per partition, the per-key records of spilled windows in the stopped worker's window stores: entries
 * written one per key because the window outgrew the store's cache share (window-spill.ts).
 */
export async function spilledWindowEntries(
  run: MeteringRun,
  stopped: Worker,
  partitions: readonly number[],
): Promise<Map<number, number>> {
  assert.ok(!stopped.alive, "the worker has stopped (it holds its folders' locks)");
  const spilled = new Map<number, number>();
  for (const partition of partitions) {
    const folder = join(stopped.stateDir, run.appId, taskIdOf(SINGLE_SUBTOPOLOGY, partition).folderName);
    let count = 0;
    if (existsSync(folder)) {
      const db = await StateDb.open(folder);
      try {
        for (const store of await db.heldStores())
          if (store.kind === 'window')
            for await (const _key of db
              .binaryLevel(storeLevelName('window', store.name))
              .keys({ gte: 'k', lt: 'l' }))
              count++;
      } finally {
        await db.close();
      }
    }
    spilled.set(partition, count);
  }
  return spilled;
}

/** A generator into the run's topic; the options override a short, mixed run (about 20 s). */
export function generatorFor(run: MeteringRun, options: Partial<GeneratorOptions> = {}): UsageGenerator {
  return new UsageGenerator({
    brokers,
    registryUrl,
    topic: run.topic,
    totalEvents: 50_000,
    rate: 2500,
    subjects: 200,
    eventTimeSpanMs: 4 * 60_000,
    seed: 1,
    ...options,
  });
}

/** Starts producing; the promise is awaited by the test (an early failure is not left unhandled). */
export function produce(generator: UsageGenerator): Promise<GroundTruth> {
  const production = generator.run();
  production.catch(() => undefined);
  return production;
}

/**
 * Waits until `workers` together run every partition exactly once, each of them at least one, and
 * returns each worker's partitions.
 */
export async function waitForOwners(workers: readonly Worker[], timeoutMs = 90_000): Promise<number[][]> {
  const deadline = Date.now() + timeoutMs;
  let last: number[][] = [];
  while (Date.now() < deadline) {
    last = await Promise.all(workers.map((w) => w.partitions().catch(() => [] as number[])));
    const all = last.flat().sort((a, b) => a - b);
    const everyOnce = all.join() === [...Array(PARTITIONS).keys()].join();
    if (everyOnce && last.every((owned) => owned.length > 0)) return last;
    await sleep(250);
  }
  throw new Error(
    `the workers did not split the ${PARTITIONS} partitions: ${JSON.stringify(last)}\n` +
      workers.map((w, i) => `worker ${i}:\n${w.tail(15)}`).join('\n'),
  );
}

/**
 * The totals in ClickHouse equal the ground truth, and the DLQ holds each malformed record once with
 * its reason (the generator's malformed classes are the DLQ's reasons).
 */
export async function assertExact(
  run: MeteringRun,
  truth: GroundTruth,
  workers: readonly Worker[],
  timeoutMs = 120_000,
): Promise<void> {
  const logs = () => workers.map((w, i) => `worker ${i}:\n${w.tail(20)}`).join('\n');
  const comparison = await waitForMatch(
    truth,
    () => readRollup(clickhouseUrl, run.database, run.table),
    timeoutMs,
  );
  assert.ok(comparison.matches, `ClickHouse totals: ${describeMismatch(comparison)}\n${logs()}`);
  assert.ok(truth.duplicates > 0 && truth.late > 0, 'the run had duplicates and late events to get right');

  const expected = truth.malformed.map((m) => `${m.partition}:${m.offset}:${m.kind}`).sort();
  assert.ok(expected.length > 0, 'the run had malformed records');
  const dlq = await readDlq(`${run.appId}.dlq`, expected.length);
  const actual = dlq.map((d) => `${d.partition}:${d.offset}:${d.reason}`).sort();
  assert.deepEqual(actual, expected, `the DLQ holds each malformed record once\n${logs()}`);
}

/** Offsets each changelog partition spans now (high − low, all changelog topics of the app), by partition. */
export async function changelogSpans(appId: string): Promise<Map<number, number>> {
  const kafka = new Kafka({ clientId: 'changelog-spans', brokers, logLevel: logLevel.NOTHING });
  const admin = kafka.admin();
  await admin.connect();
  try {
    const topics = (await admin.listTopics()).filter(
      (t) => t.startsWith(`${appId}-`) && t.endsWith('-changelog'),
    );
    assert.ok(topics.length > 0, `changelog topics of ${appId} exist`);
    const spans = new Map<number, number>();
    for (const topic of topics) {
      for (const { partition, low, high } of await admin.fetchTopicOffsets(topic))
        spans.set(partition, (spans.get(partition) ?? 0) + Number(high) - Number(low));
    }
    return spans;
  } finally {
    await admin.disconnect();
  }
}

/** Stops every worker still running, frozen ones included (SIGKILL). */
export function killAll(workers: readonly Worker[]): void {
  for (const worker of workers) worker.kill('SIGKILL');
}
