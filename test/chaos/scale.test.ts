// Scaling out and back in while producing: one instance, then three (two more machines, each with
// its own state folder), then one again. Every partition that moves is restored on its new machine
// from the changelog topics (fully on a new folder, the tail on a folder that had it before): the
// ClickHouse totals and the DLQ are exact.
import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import type { TestDatabase } from '../helpers/clickhouse.js';
import { setUpMeteringRun, sleep } from '../helpers/metering.js';
import type { MeteringRun } from '../helpers/metering.js';
import { assertExact, generatorFor, killAll, machine, produce, waitForOwners } from '../helpers/chaos.js';

let db: TestDatabase;
let run: MeteringRun;

before(async () => {
  ({ db, run } = await setUpMeteringRun('chaos_scale'));
});

after(async () => {
  await db?.drop();
});

test('scale 1 → 3 → 1 while producing, each instance on its own state folder: totals and DLQ exact', async () => {
  const first = machine(run);
  const workers = [first];
  const generator = generatorFor(run, { seed: 202, totalEvents: 80_000, rate: 2000 });
  try {
    await first.ready();
    await waitForOwners([first]);
    await generator.connect();
    const production = produce(generator);

    await sleep(5000);
    const added = [machine(run), machine(run)];
    workers.push(...added);
    await Promise.all(added.map((w) => w.ready()));
    await waitForOwners(workers); // 1 → 3: each runs some partitions, restored from the changelog
    await sleep(4000);

    for (const worker of added) worker.kill('SIGTERM'); // 3 → 1: clean leaves
    for (const worker of added) assert.equal(await worker.exit(), 0, `clean exit; log:\n${worker.tail()}`);
    await waitForOwners([first]);
    assert.ok(generator.truth.produced < 80_000, 'scaled back in while still producing');

    const truth = await production;
    await generator.close();
    await assertExact(run, truth, workers);
    // The partitions came back to a folder that was behind their changelog: it caught up from there.
    assert.ok(first.logged('state restored from the changelog'), `restored; log:\n${first.tail()}`);
  } finally {
    generator.stop();
    await generator.close().catch(() => undefined);
    killAll(workers);
  }
});
