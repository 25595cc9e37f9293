// A machine loses its disk: the instance is SIGKILLed while producing, its state folder is deleted,
// and it comes back on the same (now empty) folder. It restores its partitions from the changelog
// topics before processing: the ClickHouse totals and the DLQ are exact.
import assert from 'node:assert/strict';
import { rmSync } from 'node:fs';
import { after, before, test } from 'node:test';
import type { TestDatabase } from '../helpers/clickhouse.js';
import { Worker, setUpMeteringRun, sleep } from '../helpers/metering.js';
import type { MeteringRun } from '../helpers/metering.js';
import { assertExact, generatorFor, killAll, machine, produce, waitForOwners } from '../helpers/chaos.js';

let db: TestDatabase;
let run: MeteringRun;

before(async () => {
  ({ db, run } = await setUpMeteringRun('chaos_lost'));
});

after(async () => {
  await db?.drop();
});

test('a state folder deleted while its instance is down: the restart restores it from the changelog; exact', async () => {
  const first = machine(run);
  const workers = [first];
  const generator = generatorFor(run, { seed: 303 });
  try {
    await first.ready();
    await waitForOwners([first]);
    await generator.connect();
    const production = produce(generator);

    await sleep(8000); // dedupe ids and open windows in the folder
    first.kill('SIGKILL');
    assert.equal(await first.exit(), null, 'killed by the signal');
    rmSync(first.stateDir, { recursive: true, force: true });

    const second = new Worker(run, {}, { stateDir: first.stateDir });
    workers.push(second);
    await second.ready();
    await waitForOwners([second]);

    const truth = await production;
    await generator.close();
    await assertExact(run, truth, workers);
    assert.ok(second.logged('state restored from the changelog'), `restored; log:\n${second.tail()}`);
    assert.ok(
      (await second.metric('tributary_restore_records_total')) > 0,
      'tributary_restore_records_total counts the records restored',
    );
  } finally {
    generator.stop();
    await generator.close().catch(() => undefined);
    killAll(workers);
  }
});
