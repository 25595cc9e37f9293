// Standby replicas: two instances on machines of their own with standbyReplicas 1, so each keeps a
// copy of the other's partitions. The active instance of half the partitions is SIGKILLed while
// producing; the standby takes them over: the totals and the DLQ are exact, and the takeover restored
// only a tail of their changelogs (the standby's copy was warm), not the whole of them.
import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import type { TestDatabase } from '../helpers/clickhouse.js';
import { setUpMeteringRun, sleep } from '../helpers/metering.js';
import type { MeteringRun } from '../helpers/metering.js';
import {
  assertExact,
  changelogSpans,
  generatorFor,
  killAll,
  machine,
  produce,
  waitForOwners,
} from '../helpers/chaos.js';

/** At most this share of the moved partitions' changelog is restored at takeover (a full restore: ~60 %+). */
const TAIL_SHARE = 0.25;

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

test('standbyReplicas 1: the active instance is killed, the standby takes over from its warm copy; exact', async () => {
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
    const restoredBefore = await standby.metricByPartition('tributary_restore_records_total');
    active.kill('SIGKILL');
    assert.equal(await active.exit(), null, 'killed by the signal');
    // Nothing writes the victim's changelog partitions until the standby owns them (session timeout).
    const spans = await changelogSpans(run.appId);
    await waitForOwners([standby]);
    const restoredAfter = await standby.metricByPartition('tributary_restore_records_total');

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
