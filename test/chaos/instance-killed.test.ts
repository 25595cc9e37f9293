// Three instances, each with its own state folder (three machines); one is SIGKILLed while producing
// and never comes back. Its partitions move to the other two, which restore their state from the
// changelog topics: the ClickHouse totals and the DLQ are exact.
import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import type { TestDatabase } from '../helpers/clickhouse.js';
import { setUpMeteringRun, sleep } from '../helpers/metering.js';
import type { MeteringRun } from '../helpers/metering.js';
import { assertExact, generatorFor, killAll, machine, produce, waitForOwners } from '../helpers/chaos.js';

let db: TestDatabase;
let run: MeteringRun;

before(async () => {
  ({ db, run } = await setUpMeteringRun('chaos_kill'));
});

after(async () => {
  await db?.drop();
});

test('an instance SIGKILLed and never restarted: its partitions move to the others; totals and DLQ exact', async () => {
  const [a, b, c] = [machine(run), machine(run), machine(run)];
  const workers = [a, b, c];
  const generator = generatorFor(run, { seed: 101 });
  try {
    await Promise.all(workers.map((w) => w.ready()));
    const ofC = (await waitForOwners(workers))[2]!;
    await generator.connect();
    const production = produce(generator);

    await sleep(8000); // state and open windows on every machine
    c.kill('SIGKILL');
    assert.equal(await c.exit(), null, 'killed by the signal');
    // The survivors run every partition between them (waitForOwners checks that), the killed one's too.
    const survivors = (await waitForOwners([a, b])).flat();
    assert.ok(
      ofC.every((p) => survivors.includes(p)),
      `partitions ${ofC.join()} moved to the others`,
    );

    const truth = await production;
    await generator.close();
    await assertExact(run, truth, workers);
  } finally {
    generator.stop();
    await generator.close().catch(() => undefined);
    killAll(workers);
  }
});
