// A zombie: one of two instances (each with its own state folder) is frozen with SIGSTOP past the
// group's session timeout while producing; its partitions move to the other, which fences their
// transactional ids and restores them from the changelog. Then the zombie wakes up (SIGCONT) with
// its stale state and its open transactions: nothing it does changes the totals or the DLQ.
import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import type { TestDatabase } from '../helpers/clickhouse.js';
import { setUpMeteringRun, sleep } from '../helpers/metering.js';
import type { MeteringRun } from '../helpers/metering.js';
import { assertExact, generatorFor, killAll, machine, produce, waitForOwners } from '../helpers/chaos.js';
import { PARTITIONS } from '../helpers/chaos.js';

/** The broker's smallest session timeout (group.min.session.timeout.ms): the zombie is out after 6 s. */
const SESSION_TIMEOUT_MS = 6000;

let db: TestDatabase;
let run: MeteringRun;

before(async () => {
  ({ db, run } = await setUpMeteringRun('chaos_zombie'));
});

after(async () => {
  await db?.drop();
});

test('a zombie SIGSTOPped past the session timeout, then woken: its partitions moved, it changes nothing; exact', async () => {
  const env = { TRIBUTARY_KAFKA_SESSION_TIMEOUT_MS: String(SESSION_TIMEOUT_MS) };
  const [zombie, survivor] = [machine(run, env), machine(run, env)];
  const workers = [zombie, survivor];
  const generator = generatorFor(run, { seed: 404, totalEvents: 60_000 });
  try {
    await Promise.all(workers.map((w) => w.ready()));
    const zombieHad = (await waitForOwners(workers))[0]!;
    await generator.connect();
    const production = produce(generator);

    await sleep(6000); // the zombie holds state, open windows and uncommitted work when it freezes
    zombie.kill('SIGSTOP');
    const frozenAt = Date.now();
    await waitForOwners([survivor]); // the group dropped the zombie: the survivor runs all partitions
    assert.ok(Date.now() - frozenAt >= SESSION_TIMEOUT_MS - 1000, 'moved only after the session timeout');
    assert.ok(zombieHad.length > 0 && zombieHad.length < PARTITIONS);
    await sleep(2000); // the survivor processes and commits the moved partitions

    zombie.kill('SIGCONT'); // wakes with a stale assignment, state and open transactions
    await waitForOwners(workers); // it learns it was dropped, rejoins and gets partitions again
    assert.ok(zombie.alive, `the zombie recovered by itself; log:\n${zombie.tail()}`);
    // Its first transactions after waking were refused: the survivor's fence held.
    assert.ok(zombie.logged('was fenced by a newer owner'), `the zombie was fenced; log:\n${zombie.tail()}`);

    const truth = await production;
    await generator.close();
    await assertExact(run, truth, workers);
  } finally {
    generator.stop();
    await generator.close().catch(() => undefined);
    killAll(workers);
  }
});
