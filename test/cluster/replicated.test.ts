/**
 * The ClickHouse sink on a replicated cluster, for real: ZooKeeper and two ClickHouse 18.16 servers
 * (one shard, two replicas, `tributary_cluster`) started by `scripts/stack/cluster.sh` on their own
 * ports. The metering job writes through replica 1 with `cluster: 'tributary_cluster'`; replica 2 is
 * stopped and restarted mid-run; the totals read through the distributed view are exact, on both
 * replicas once replica 2 has caught up. Run with `npm run test:cluster`.
 */
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { after, before, test } from 'node:test';
import { createClient } from '@clickhouse/client';
import { UsageGenerator } from '../../examples/metering/generator.js';
import { describeMismatch, readRollup, waitForMatch } from '../../examples/metering/verify.js';
import { ensureInputTopic, registerUsageSchema } from '../../examples/metering/setup.js';
import { Worker, newRun, sleep, type MeteringRun } from '../helpers/metering.js';
import { brokers, registryUrl, uniqueName } from '../helpers/services.js';

const CLUSTER = 'tributary_cluster';
const REPLICA_URLS = ['http://127.0.0.1:8131', 'http://127.0.0.1:8132'] as const;

let run: MeteringRun;

async function onReplica<T>(replica: 0 | 1, sql: string): Promise<T[]> {
  const client = createClient({ url: REPLICA_URLS[replica], request_timeout: 60_000 });
  try {
    if (!/^\s*SELECT/i.test(sql)) {
      await client.command({ query: sql });
      return [];
    }
    return await (await client.query({ query: sql, format: 'JSONEachRow' })).json<T>();
  } finally {
    await client.close();
  }
}

function cluster(...args: string[]): void {
  const result = spawnSync('bash', ['scripts/stack/cluster.sh', ...args], { stdio: 'inherit' });
  assert.equal(result.status, 0, `cluster.sh ${args.join(' ')}`);
}

async function replicaAnswers(replica: 0 | 1): Promise<boolean> {
  try {
    return (await fetch(`${REPLICA_URLS[replica]}/?query=SELECT%201`, { signal: AbortSignal.timeout(1000) }))
      .ok;
  } catch {
    return false;
  }
}

before(async () => {
  for (const replica of [0, 1] as const) {
    assert.ok(
      await replicaAnswers(replica),
      `replica ${replica + 1} is down: run npm run stack:up -- --cluster`,
    );
  }
  run = newRun('cluster', uniqueName('tributary_cluster'));
  await ensureInputTopic(brokers, run.topic, 8);
  await registerUsageSchema(registryUrl, run.topic);
});

after(async () => {
  if (run !== undefined) await onReplica(0, `DROP DATABASE IF EXISTS ${run.database} ON CLUSTER ${CLUSTER}`);
});

test('on a replicated cluster, with a replica stopped and restarted mid-run, the distributed totals are exact', async () => {
  const worker = new Worker(run, {
    TRIBUTARY_CLICKHOUSE_URL: REPLICA_URLS[0],
    METERING_CLICKHOUSE_CLUSTER: CLUSTER,
  });
  const generator = new UsageGenerator({
    brokers,
    registryUrl,
    topic: run.topic,
    totalEvents: 40_000,
    rate: 3000,
    subjects: 100,
    eventTimeSpanMs: 4 * 60_000,
    lateEvents: 50,
    seed: 13,
  });
  let replica2Stopped = false;
  try {
    await worker.ready();
    await generator.connect();
    const production = generator.run();
    production.catch(() => undefined); // awaited below

    // Replica 2 goes away while windows are being written, and comes back.
    await sleep(4000);
    cluster('stop', '2');
    replica2Stopped = true;
    assert.equal(await replicaAnswers(1), false, 'replica 2 is down');
    await sleep(6000);
    cluster('start', '2');
    replica2Stopped = false;

    const truth = await production;
    await generator.close();
    const comparison = await waitForMatch(
      truth,
      () => readRollup(REPLICA_URLS[0], run.database, run.table),
      150_000,
    );
    assert.ok(comparison.matches, `${describeMismatch(comparison)}\nworker:\n${worker.tail()}`);

    // The layout the sink created, on both servers.
    for (const replica of [0, 1] as const) {
      const tables = await onReplica<{ name: string; engine: string }>(
        replica,
        `SELECT name, engine FROM system.tables WHERE database = '${run.database}' ORDER BY name`,
      );
      assert.deepEqual(tables, [
        { name: run.table, engine: 'Distributed' },
        { name: `${run.table}_local`, engine: 'ReplicatedReplacingMergeTree' },
        { name: `${run.table}_totals`, engine: 'View' },
      ]);
    }
    // Replica 2 catches up from the replication log; then its own totals are exact too, and it holds
    // the same rows as replica 1.
    await onReplica(1, `SYSTEM SYNC REPLICA ${run.database}.${run.table}_local`);
    const local = async (replica: 0 | 1) =>
      onReplica<{ rows: string }>(
        replica,
        `SELECT toString(count()) AS rows FROM ${run.database}.${run.table}_local FINAL`,
      );
    assert.deepEqual(await local(1), await local(0));
    const onSecond = await waitForMatch(
      truth,
      () => readRollup(REPLICA_URLS[1], run.database, run.table),
      60_000,
    );
    assert.ok(onSecond.matches, `replica 2: ${describeMismatch(onSecond)}`);
  } finally {
    generator.stop();
    await generator.close().catch(() => undefined);
    worker.kill('SIGKILL');
    if (replica2Stopped) cluster('start', '2');
  }
});
