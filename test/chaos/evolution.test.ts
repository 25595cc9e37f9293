// Topology evolution across machines: the metering job is stopped while producing and redeployed with
// an extra stateless step on a machine with an EMPTY state folder, so its dedupe ids and open windows
// can only come from the changelog topics: the totals are exact. A deployment whose dedupe store was
// renamed refuses to start (again on an empty folder: the store names come from the changelog).
import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import type { TestDatabase } from '../helpers/clickhouse.js';
import { setUpMeteringRun, sleep } from '../helpers/metering.js';
import type { MeteringRun } from '../helpers/metering.js';
import { assertExact, generatorFor, killAll, machine, produce, waitForOwners } from '../helpers/chaos.js';

let db: TestDatabase;
let run: MeteringRun;

before(async () => {
  ({ db, run } = await setUpMeteringRun('chaos_evolve'));
});

after(async () => {
  await db?.drop();
});

test('redeployed with an extra stateless step on a fresh folder: state from the changelog, exact; a renamed store refuses to start', async () => {
  const first = machine(run);
  const workers = [first];
  const generator = generatorFor(run, { seed: 707, totalEvents: 40_000 });
  try {
    await first.ready();
    await waitForOwners([first]);
    await generator.connect();
    const production = produce(generator);
    await sleep(6000); // windows are open and ids remembered when the first version stops
    first.kill('SIGTERM');
    assert.equal(await first.exit(), 0, `clean exit; log:\n${first.tail()}`);

    const evolved = machine(run, { METERING_EXTRA_STEP: '1' });
    workers.push(evolved);
    await evolved.ready();
    const truth = await production;
    await generator.close();
    await assertExact(run, truth, workers);
    assert.ok(evolved.logged('state restored from the changelog'), `restored; log:\n${evolved.tail()}`);
    evolved.kill('SIGTERM');
    assert.equal(await evolved.exit(), 0, `clean exit; log:\n${evolved.tail()}`);

    const renamed = machine(run, { METERING_EXTRA_STEP: '1', METERING_DEDUPE_STORE: 'source-ids' });
    workers.push(renamed);
    assert.equal(await renamed.exit(), 1, `the renamed deployment stops; log:\n${renamed.tail()}`);
    assert.ok(
      renamed.logged('dedupe store \\"dedupe-source-id\\" is in the state folder but not in the topology'),
      `names the store it would lose; log:\n${renamed.tail()}`,
    );
    assert.ok(renamed.logged('resetStores: [\\"dedupe-source-id\\"]'), 'and the way out');
  } finally {
    generator.stop();
    await generator.close().catch(() => undefined);
    killAll(workers);
  }
});
