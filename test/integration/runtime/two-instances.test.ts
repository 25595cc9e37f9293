// Two instances of one app share an 8-partition topic; one leaves and comes back while the producer
// keeps producing (two rebalances with state handovers). The ClickHouse totals must stay exact.
import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import { UsageGenerator } from '../../../examples/metering/generator.js';
import { describeMismatch, readRollup, waitForMatch } from '../../../examples/metering/verify.js';
import type { TestDatabase } from '../../helpers/clickhouse.js';
import { Worker, setUpMeteringRun, sleep } from '../../helpers/metering.js';
import type { MeteringRun } from '../../helpers/metering.js';
import { brokers, clickhouseUrl, registryUrl } from '../../helpers/services.js';

const TOKEN = 'test-admin-token';

let db: TestDatabase;
let run: MeteringRun;

before(async () => {
  ({ db, run } = await setUpMeteringRun('two'));
});

after(async () => {
  await db?.drop();
});

interface Health {
  state: string;
  partitions: number[];
}

/** Waits until the two instances own disjoint, non-empty partition sets covering all eight. */
async function waitForSplit(a: Worker, b: Worker, timeoutMs = 60_000): Promise<[number[], number[]]> {
  const deadline = Date.now() + timeoutMs;
  let last: [number[], number[]] = [[], []];
  while (Date.now() < deadline) {
    const [ha, hb] = await Promise.all([
      a.admin<Health>('/health', TOKEN),
      b.admin<Health>('/health', TOKEN),
    ]);
    last = [ha.body.partitions ?? [], hb.body.partitions ?? []];
    const all = [...last[0], ...last[1]].sort((x, y) => x - y);
    if (last[0].length > 0 && last[1].length > 0 && all.join() === '0,1,2,3,4,5,6,7') return last;
    await sleep(250);
  }
  throw new Error(`instances did not split the partitions: ${JSON.stringify(last)}`);
}

/**
 * Polls the worker's /health until it runs exactly `expected` (or the deadline passes); returns the
 * partitions it ran last, for the caller to assert on.
 */
async function waitForPartitions(worker: Worker, expected: number[], timeoutMs = 60_000): Promise<number[]> {
  const deadline = Date.now() + timeoutMs;
  let partitions: number[] = [];
  while (Date.now() < deadline) {
    partitions = [...((await worker.admin<Health>('/health', TOKEN)).body.partitions ?? [])].sort(
      (x, y) => x - y,
    );
    if (partitions.join() === expected.join()) break;
    await sleep(250);
  }
  return partitions;
}

test('two instances split the partitions, survive a leave and a rejoin while producing, totals exact', async () => {
  const env = { TRIBUTARY_ADMIN_TOKEN: TOKEN };
  const a = new Worker(run, env);
  let b = new Worker(run, env);
  const generator = new UsageGenerator({
    brokers,
    registryUrl,
    topic: run.topic,
    totalEvents: 90_000,
    rate: 3000,
    subjects: 200,
    eventTimeSpanMs: 4 * 60_000,
    seed: 11,
  });
  try {
    await Promise.all([a.ready(), b.ready()]);

    // The admin endpoint is on loopback and demands the token.
    assert.match(a.adminAddress ?? '', /^http:\/\/127\.0\.0\.1:\d+$/);
    assert.equal((await a.admin('/health')).status, 401);
    assert.equal((await a.admin('/health', 'wrong')).status, 401);

    const [first, second] = await waitForSplit(a, b);
    assert.equal(first.length + second.length, 8);

    await generator.connect();
    const production = generator.run();
    production.catch(() => undefined); // awaited below; this only keeps an early failure from going unhandled

    await sleep(8000);
    b.kill('SIGTERM'); // a clean leave: B checkpoints and releases its partitions to A
    assert.equal(await b.exit(40_000), 0, `B stops cleanly; log:\n${b.tail()}`);
    assert.deepEqual(
      await waitForPartitions(a, [0, 1, 2, 3, 4, 5, 6, 7]),
      [0, 1, 2, 3, 4, 5, 6, 7],
      'A took over every partition',
    );

    b = new Worker(run, env); // and B comes back: a second handover, from A to B
    await b.ready();
    await waitForSplit(a, b);

    const truth = await production;
    await generator.close();
    const comparison = await waitForMatch(
      truth,
      () => readRollup(clickhouseUrl, run.database, run.table),
      150_000,
    );
    assert.ok(comparison.matches, `${describeMismatch(comparison)}\nA:\n${a.tail()}\nB:\n${b.tail()}`);

    const { body: tasks } = await a.admin<{ tasks: Array<{ partition: number; pendingOutputs: number }> }>(
      '/tasks',
      TOKEN,
    );
    assert.ok(
      tasks.tasks.length > 0 && tasks.tasks.every((t) => t.pendingOutputs === 0),
      'outputs all delivered',
    );
    const { body: stores } = await a.admin<{ stores: Array<{ name: string }> }>(
      `/tasks/${tasks.tasks[0]!.partition}/stores`,
      TOKEN,
    );
    assert.deepEqual(
      stores.stores.map((s) => s.name).sort(),
      ['dedupe-source-id', 'dlq', `clickhouse:${run.database}.${run.table}`, 'usage-1m'].sort(),
    );
  } finally {
    generator.stop();
    await generator.close().catch(() => undefined);
    a.kill('SIGKILL');
    b.kill('SIGKILL');
  }
});
