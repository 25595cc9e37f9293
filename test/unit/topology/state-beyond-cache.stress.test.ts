/**
 * The chaos test state-beyond-cache (test/chaos/) in process: the metering topology (dedupe over 32
 * days → 1-minute tumbling windows, count/sum/max, late events re-emitted) on partitions whose stores
 * share a 64 KiB cache per machine, fed the generator's stream (2% recent and 2% old duplicates, out of
 * order, late events) in batches, committed every few hundred records, with clean restarts, crashes
 * (kill -9: reopen the folder at its last commit and replay), crashes after the changelog transaction
 * but before the LevelDB write, and moves to another machine's folder and back (restore of the
 * changelog's tail). Every (window, key) total delivered must equal a reference computed in plain JS.
 *
 * Seeds are deterministic. A longer run: STRESS_SEEDS (default 6), STRESS_FIRST_SEED, STRESS_EVENTS
 * (per seed, default 24,000 over 4 partitions), STRESS_PARTITIONS, STRESS_FAULTS=0 (no restarts).
 */
import assert from 'node:assert/strict';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import {
  TopologyBuilder,
  count,
  days,
  max,
  memorySink,
  minutes,
  seconds,
  sum,
  tumbling,
} from '../../../src/index.js';
import type { WindowResult } from '../../../src/index.js';
import { CacheBudget } from '../../../src/core/cache-budget.js';
import type { PartitionTask } from '../../../src/core/task.js';
import type { RawRecord } from '../../../src/core/records.js';
import type { Topology } from '../../../src/topology/topology.js';
import { RECENT_EVENTS, seededRandom } from '../../../examples/metering/generator.js';
import { jsonSerde, memoryChangelog } from './helpers.js';

interface Usage {
  id: string;
  source: string;
  subject: string;
  meter: string;
  value: number;
  time: number;
}

interface Totals {
  count: number;
  total: number;
  max: number;
}

const WINDOW = minutes(1);
const CACHE_MAX_BYTES = 64 * 1024;
const TOPIC = 'usage';

function meteringTopology(): Topology {
  const builder = new TopologyBuilder();
  builder
    .stream(TOPIC, jsonSerde<Usage>(), { timestamp: (e) => e.time })
    .dedupe((e) => `${e.source}/${e.id}`, { horizon: days(32), name: 'dedupe-source-id' })
    .groupBy((e) => ({ subject: e.subject, meter: e.meter }))
    .window(tumbling(WINDOW), {
      grace: seconds(5),
      outOfOrderness: seconds(5),
      late: 're-emit',
      name: 'usage-1m',
    })
    .aggregate({ count: count(), total: sum((e: Usage) => e.value), max: max((e: Usage) => e.value) })
    .to(memorySink('usage'));
  return builder.build();
}

/** The generator's stream (examples/metering/generator.ts) and its truth, per partition by subject. */
function generate(seed: number, totalEvents: number, partitions: number) {
  const next = seededRandom(seed);
  const pick = <T>(items: readonly T[]): T => items[Math.floor(next() * items.length)] as T;
  const meters = ['api.calls', 'tokens', 'storage.gb'];
  const subjects = 200;
  const span = 4 * 60_000;
  const start = Date.UTC(2024, 0, 1, 12, 0, 0);
  const lateEvery = Math.floor(totalEvents / 11);
  const recent: Usage[] = [];
  const older: Usage[] = [];
  const truth = new Map<string, Totals>();
  const logs: Usage[][] = Array.from({ length: partitions }, () => []);
  let duplicates = 0;
  let oldDuplicates = 0;
  const eventAt = (index: number, time: number): Usage => ({
    id: `evt-${seed}-${index}`,
    source: `gateway/${index % 3}`,
    subject: `customer-${Math.floor(next() * subjects)}`,
    time,
    meter: pick(meters),
    value: 1 + Math.floor(next() * 1000),
  });
  const account = (e: Usage) => {
    const key = `${Math.floor(e.time / WINDOW) * WINDOW}|${e.subject}|${e.meter}`;
    const t = truth.get(key);
    if (t) {
      t.count++;
      t.total += e.value;
      t.max = Math.max(t.max, e.value);
    } else truth.set(key, { count: 1, total: e.value, max: e.value });
  };
  const send = (e: Usage) => logs[Number(e.subject.slice('customer-'.length)) % partitions]!.push(e);
  for (let index = 0; index < totalEvents; index++) {
    const now = start + Math.floor((index * span) / totalEvents);
    if (lateEvery > 0 && index % lateEvery === lateEvery - 1 && now - start > 3 * WINDOW) {
      const event = eventAt(index, now - 2 * WINDOW);
      account(event);
      send(event);
      continue;
    }
    if (older.length > 0 && next() < 0.02) {
      send(pick(older));
      duplicates++;
      oldDuplicates++;
      continue;
    }
    if (recent.length > 0 && next() < 0.02) {
      send(pick(recent));
      duplicates++;
      continue;
    }
    const event = eventAt(index, Math.max(start, now - Math.floor(next() * 5000)));
    recent.push(event);
    if (recent.length > RECENT_EVENTS) older.push(recent.shift() as Usage);
    account(event);
    send(event);
  }
  // One event per partition far ahead: every window closes.
  for (let p = 0; p < partitions; p++)
    logs[p]!.push({
      id: `flush-${p}`,
      source: 'flush',
      subject: 'flush',
      meter: 'flush',
      value: 1,
      time: start + minutes(30),
    });
  return { logs, truth, duplicates, oldDuplicates };
}

interface Machine {
  readonly root: string;
  cache: CacheBudget;
}

interface Partition {
  readonly partition: number;
  readonly log: RawRecord[];
  readonly changelog: ReturnType<typeof memoryChangelog>;
  machine: Machine;
  task: PartitionTask | undefined;
  /** Next offset to hand over. */
  fed: number;
}

interface Row {
  version: number;
  value: Totals;
}

async function runSeed(seed: number, totalEvents: number, partitionCount: number) {
  const rand = seededRandom(seed * 7919 + 1);
  const topology = meteringTopology();
  const { logs, truth, duplicates, oldDuplicates } = generate(seed, totalEvents, partitionCount);
  const roots = [
    await mkdtemp(join(tmpdir(), 'tributary-beyond-a-')),
    await mkdtemp(join(tmpdir(), 'tributary-beyond-b-')),
  ];
  const machines: Machine[] = roots.map((root) => ({ root, cache: new CacheBudget(CACHE_MAX_BYTES) }));
  const partitions: Partition[] = logs.map((events, partition) => ({
    partition,
    log: events.map((e, offset) => ({
      topic: TOPIC,
      partition,
      offset: BigInt(offset),
      timestamp: e.time,
      key: null,
      value: Buffer.from(JSON.stringify(e)),
      headers: {},
    })),
    changelog: memoryChangelog(),
    machine: machines[partition % 2] as Machine,
    task: undefined,
    fed: 0,
  }));
  /** Per partition|window|key: the row of the highest version delivered. */
  const rows = new Map<string, Row>();
  const conflicts: string[] = [];
  const events: string[] = [];
  let dropped = 0;

  const open = async (p: Partition) => {
    p.task = await topology.openTask({
      partition: p.partition,
      dir: join(p.machine.root, `task-${p.partition}`),
      changelog: p.changelog,
      cache: p.machine.cache,
    });
    p.fed = Number(p.task.positions().get(TOPIC) ?? 0n);
  };
  const deliver = async (p: Partition) => {
    const outbox = (p.task as PartitionTask).outboxes().find((o) => o.name === 'usage');
    assert.ok(outbox);
    for (let batch = await outbox.read(1000); batch.length > 0; batch = await outbox.read(1000)) {
      for (const entry of batch) {
        const result = entry.value as WindowResult<{ subject: string; meter: string }, Totals>;
        const key = `${result.windowStart}|${result.key.subject}|${result.key.meter}`;
        const row = rows.get(key);
        const value = { count: result.value.count, total: result.value.total, max: result.value.max };
        if (row === undefined || result.version > row.version)
          rows.set(key, { version: result.version, value });
        else if (result.version === row.version && JSON.stringify(row.value) !== JSON.stringify(value))
          conflicts.push(
            `${key} v${result.version}: ${JSON.stringify(row.value)} vs ${JSON.stringify(value)}`,
          );
      }
      await outbox.ack((batch[batch.length - 1] as { seq: bigint }).seq);
    }
  };
  /** Commits; false when the process was "killed" after the changelog transaction (then reopened). */
  const commit = async (p: Partition) => {
    try {
      await (p.task as PartitionTask).commit();
    } catch (error) {
      if (!(error instanceof Error) || !error.message.startsWith('killed after')) throw error;
      await (p.task as PartitionTask).close();
      await open(p);
      return;
    }
    await deliver(p);
  };
  const crash = async (p: Partition) => {
    await (p.task as PartitionTask).close();
    await open(p);
  };
  const cleanClose = async (p: Partition) => {
    await commit(p);
    await (p.task as PartitionTask).close();
    p.task = undefined;
  };

  try {
    for (const p of partitions) await open(p);
    let sinceCommit = 0;
    let commitEvery = 100 + Math.floor(rand() * 500);
    for (;;) {
      const pending = partitions.filter((p) => p.fed < p.log.length);
      if (pending.length === 0) break;
      const p = pending[Math.floor(rand() * pending.length)] as Partition;
      const size = 1 + Math.floor(rand() * 200);
      const batch = p.log.slice(p.fed, p.fed + size);
      await (p.task as PartitionTask).process(batch);
      p.fed += batch.length;
      sinceCommit += batch.length;
      if (sinceCommit >= commitEvery) {
        sinceCommit = 0;
        commitEvery = 100 + Math.floor(rand() * 500);
        for (const q of partitions) await commit(q);
      }
      const dice = process.env.STRESS_FAULTS === '0' ? 1 : rand();
      if (dice < 0.004) {
        events.push(`crash p${p.partition}`);
        await crash(p);
      } else if (dice < 0.006) {
        events.push(`kill after changelog p${p.partition}`);
        p.changelog.failNextWrite = true;
        await commit(p);
      } else if (dice < 0.008) {
        // A machine killed: every task on it reopens its folder.
        const machine = p.machine;
        events.push(`kill machine ${machines.indexOf(machine)}`);
        for (const q of partitions) if (q.machine === machine) await (q.task as PartitionTask).close();
        machine.cache = new CacheBudget(CACHE_MAX_BYTES);
        for (const q of partitions) if (q.machine === machine) await open(q);
      } else if (dice < 0.011) {
        // The partition moves to the other machine (its folder there may be stale, or new).
        const other = machines.find((m) => m !== p.machine) as Machine;
        events.push(`move p${p.partition} to ${machines.indexOf(other)}`);
        await cleanClose(p);
        p.machine = other;
        await open(p);
      } else if (dice < 0.012) {
        events.push(`restart p${p.partition}`);
        await cleanClose(p);
        await open(p);
      }
    }
    for (const p of partitions) await commit(p);
    for (const p of partitions) dropped += (p.task as PartitionTask).metrics().duplicatesDropped;
  } finally {
    for (const p of partitions) await p.task?.close();
    for (const root of roots) await rm(root, { recursive: true, force: true });
  }

  const wrong: string[] = [];
  for (const [key, expected] of truth) {
    const row = rows.get(key);
    if (row === undefined || JSON.stringify(row.value) !== JSON.stringify(expected))
      wrong.push(`${key}: expected ${JSON.stringify(expected)}, got ${JSON.stringify(row?.value)}`);
  }
  for (const key of rows.keys())
    if (!truth.has(key) && !key.includes('flush')) wrong.push(`${key}: not in the truth`);
  return { wrong, conflicts, events, dropped, duplicates, oldDuplicates, keys: truth.size };
}

const seeds = Number(process.env.STRESS_SEEDS ?? 6);
const firstSeed = Number(process.env.STRESS_FIRST_SEED ?? 1);
const eventsPerSeed = Number(process.env.STRESS_EVENTS ?? 24_000);
const partitionCount = Number(process.env.STRESS_PARTITIONS ?? 4);

test('metering state beyond a 64 KiB cache, through crashes, moves and restarts: every (window, key) total exact', async (t) => {
  const failures: string[] = [];
  for (let seed = firstSeed; seed < firstSeed + seeds; seed++) {
    const started = Date.now();
    const result = await runSeed(seed, eventsPerSeed, partitionCount);
    t.diagnostic(
      `seed ${seed}: ${Date.now() - started} ms, ${result.keys} (window, key) totals, ${result.duplicates} duplicates ` +
        `(${result.oldDuplicates} old), ${result.dropped} dropped, ${result.wrong.length} wrong; ${result.events.join(', ')}`,
    );
    // The run had old duplicates, which only the ids spilled to disk still know.
    assert.ok(result.oldDuplicates > 100, `seed ${seed}: ${result.oldDuplicates} old duplicates`);
    if (result.conflicts.length > 0 || result.wrong.length > 0)
      failures.push(
        `seed ${seed}: ${result.wrong.length} totals wrong, e.g. ${result.wrong.slice(0, 3).join('; ')}; ` +
          `${result.conflicts.length} rows of one version with two values ${result.conflicts.slice(0, 3).join('; ')}; ` +
          `faults: ${result.events.join(', ')}`,
      );
  }
  assert.deepEqual(failures, []);
});
