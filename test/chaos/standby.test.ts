// Standby replicas: two instances on machines of their own with standbyReplicas 1, so each keeps a
// copy of the other's partitions. The active instance of half the partitions is SIGKILLed while
// producing; the standby takes them over: the totals and the DLQ are exact. The standby's copy was
// warm, seen from both sides: just before the kill its folders held all but a tail of the moved
// partitions' changelogs (read from the folders themselves), and the takeover restored only a tail,
// as its restore counter (which must have a series for each moved partition) says.
import assert from 'node:assert/strict';
import { existsSync, readFileSync } from 'node:fs';
import { after, before, test } from 'node:test';
import type { TestDatabase } from '../helpers/clickhouse.js';
import { setUpMeteringRun, sleep } from '../helpers/metering.js';
import type { MeteringRun, Worker } from '../helpers/metering.js';
import { changelogPositionsOf, describeLag, folderLag, taskFolder } from '../helpers/standby-folders.js';
import {
  assertExact,
  changelogSpans,
  generatorFor,
  killAll,
  machine,
  produce,
  waitForOwners,
} from '../helpers/chaos.js';

/**
 * At most this share of the moved partitions' changelog is restored at takeover (a full restore: ~60 %+),
 * and at most this share is beyond the standby's folders just before the kill (a standby that never
 * followed: all of it).
 */
const TAIL_SHARE = 0.25;
const RESTORED = 'tributary_restore_records_total';

let db: TestDatabase;
let run: MeteringRun;

before(async () => {
  ({ db, run } = await setUpMeteringRun('chaos_standby'));
});

after(async () => {
  await db?.drop();
});

interface Cluster {
  members: Array<{ thisInstance: boolean; active: number[]; standby: number[] }>;
}

/** The partitions this worker keeps a standby copy of, as its /cluster says once the group is settled. */
async function standbysOf(worker: ReturnType<typeof machine>, expected: number[]): Promise<number[]> {
  const deadline = Date.now() + 30_000;
  let standby: number[] = [];
  while (Date.now() < deadline) {
    const { body } = await worker.admin<Cluster>('/cluster');
    standby = body.members?.find((m) => m.thisInstance)?.standby ?? [];
    if (standby.join() === expected.join()) break;
    await sleep(250);
  }
  return standby;
}

/**
 * Per partition, the changelog positions of the worker's folders, read while it is frozen (SIGSTOP,
 * well under its session timeout): nothing writes the folders while they are copied.
 */
async function frozenPositions(
  worker: Worker,
  partitions: readonly number[],
): Promise<Map<number, Map<string, bigint>>> {
  const positions = new Map<number, Map<string, bigint>>();
  worker.kill('SIGSTOP');
  try {
    await stopped(worker);
    for (const p of partitions)
      positions.set(p, await changelogPositionsOf(taskFolder(worker.stateDir, run.appId, p)));
  } finally {
    worker.kill('SIGCONT');
  }
  return positions;
}

/** Resolves once the worker's process is stopped (Linux: its state in /proc is T), at most a second. */
async function stopped(worker: Worker): Promise<void> {
  const stat = `/proc/${worker.process.pid}/stat`;
  const deadline = Date.now() + 1000;
  // The state follows the command name, which is in parentheses.
  while (existsSync(stat) && !/\) T /.test(readFileSync(stat, 'utf8')) && Date.now() < deadline)
    await sleep(10);
}

/** The worker's restore counter per partition, once it has a series for each of `partitions`. */
async function restoredOnceListed(
  worker: Worker,
  partitions: readonly number[],
): Promise<Map<number, number>> {
  const deadline = Date.now() + 30_000;
  for (;;) {
    const restored = await worker.metricByPartition(RESTORED);
    if (partitions.every((p) => restored.has(p))) return restored;
    if (Date.now() > deadline)
      assert.fail(
        `${RESTORED} has no series for some of partitions ${partitions.join()}: ${[...restored.keys()].join()}`,
      );
    await sleep(250);
  }
}

test('standbyReplicas 1: the active instance is killed, the standby takes over from its warm copy; exact', async (t) => {
  const env = { TRIBUTARY_STANDBY_REPLICAS: '1' };
  const [active, standby] = [machine(run, env), machine(run, env)];
  const workers = [active, standby];
  const generator = generatorFor(run, { seed: 606, totalEvents: 60_000 });
  try {
    await Promise.all(workers.map((w) => w.ready()));
    const [moved] = await waitForOwners(workers);
    assert.deepEqual(await standbysOf(standby, moved!), moved, 'the survivor keeps a copy of the victim');
    await generator.connect();
    const production = produce(generator);

    await sleep(15_000); // fifteen commits into the changelogs of every partition
    assert.deepEqual(await active.partitions(), moved, 'no rebalance since');
    const { body: metricsText } = await standby.admin<string>('/metrics');
    assert.ok(String(metricsText).includes(`# TYPE ${RESTORED} counter`), `${RESTORED} is exported`);
    // A partition the standby never ran has no series yet: nothing restored there.
    const restoredBefore = await standby.metricByPartition(RESTORED);
    // The standby's copies just before the kill, against the changelogs' ends read right after them
    // (the active keeps committing: the ends only grow, so this overstates the standby's lag).
    const standbyPositions = await frozenPositions(standby, moved!);
    let behind = 0;
    let span = 0;
    const lags: string[] = [];
    for (const p of moved!) {
      const lag = await folderLag(run.appId, p, standbyPositions.get(p)!);
      behind += lag.behind;
      span += lag.span;
      lags.push(`partition ${p}: ${describeLag(lag)}`);
    }
    active.kill('SIGKILL');
    assert.equal(await active.exit(), null, 'killed by the signal');
    // Nothing writes the victim's changelog partitions until the standby owns them (session timeout).
    const spans = await changelogSpans(run.appId);
    await waitForOwners([standby]);
    // Each moved partition's task has a series once it committed (0 when its copy needed nothing more).
    const restoredAfter = await restoredOnceListed(standby, moved!);

    const truth = await production;
    await generator.close();
    await assertExact(run, truth, workers);

    let restored = 0;
    let changelog = 0;
    for (const p of moved!) {
      restored += (restoredAfter.get(p) ?? 0) - (restoredBefore.get(p) ?? 0);
      changelog += spans.get(p) ?? 0;
    }
    assert.ok(changelog > 0, 'the moved partitions have changelogs');
    t.diagnostic(
      `just before the kill the standby's folders were ${behind} of ${span} offsets behind; ` +
        `the takeover restored ${restored} records`,
    );
    assert.ok(
      span > 0 && behind <= TAIL_SHARE * span,
      `the standby's folders followed the changelogs: ${behind} of ${span} offsets were beyond them ` +
        `just before the kill (at most ${TAIL_SHARE * 100} % expected)\n${lags.join('\n')}`,
    );
    assert.ok(
      restored <= TAIL_SHARE * changelog,
      `the takeover restored only a tail: ${restored} records restored for partitions ${moved!.join()} ` +
        `whose changelogs span ${changelog} offsets (at most ${TAIL_SHARE * 100} % expected)`,
    );
  } finally {
    generator.stop();
    await generator.close().catch(() => undefined);
    killAll(workers);
  }
});
