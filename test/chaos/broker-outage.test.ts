// The Kafka broker stopped for 20 s in the middle of a run and started again. Two instances (each with
// its own state folder) are mid-run when it goes: the last second of processing is not committed,
// windows are closing, outputs and dead letters are on their way. Their transactions fail, they hold
// their partitions and retry; once the broker is back they carry on by themselves (no restart), and
// after a second production run the totals and the DLQ are exact.
//
// This stops THE stack's broker (SIGTERM, then `stack.sh up` starts it again): never run it while
// anything else uses that broker.
import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import { combineTruths } from '../../examples/metering/generator.js';
import type { TestDatabase } from '../helpers/clickhouse.js';
import { setUpMeteringRun, sleep, stopKafka } from '../helpers/metering.js';
import type { MeteringRun } from '../helpers/metering.js';
import { assertExact, generatorFor, killAll, machine, produce, waitForOwners } from '../helpers/chaos.js';

const OUTAGE_MS = 20_000;
const MINUTE = 60_000;

let db: TestDatabase;
let run: MeteringRun;

before(async () => {
  ({ db, run } = await setUpMeteringRun('chaos_broker'));
});

after(async () => {
  await db?.drop();
});

test('Kafka stopped for 20 s mid-run and restarted: no instance needs a restart; totals and DLQ exact', async () => {
  const [a, b] = [machine(run), machine(run)];
  const workers = [a, b];
  // Two production runs, one before the outage and one after it, on consecutive stretches of event
  // time that end a minute before now (so every window closes): 4 minutes (with late events), then 2.
  const start = Math.floor(Date.now() / MINUTE) * MINUTE - 7 * MINUTE;
  const first = generatorFor(run, {
    seed: 505,
    totalEvents: 36_000,
    rate: 3000,
    eventTimeSpanMs: 4 * MINUTE,
    eventTimeStart: start,
  });
  const second = generatorFor(run, {
    seed: 506,
    totalEvents: 24_000,
    rate: 3000,
    eventTimeSpanMs: 2 * MINUTE,
    eventTimeStart: start + 4 * MINUTE,
  });
  let restartKafka: (() => Promise<void>) | undefined;
  try {
    await Promise.all(workers.map((w) => w.ready()));
    await waitForOwners(workers);
    await first.connect();
    const truthBefore = await produce(first);
    await first.close();

    // Right after production: the instances are still processing, committing and delivering.
    restartKafka = await stopKafka();
    const outageEnds = Date.now() + OUTAGE_MS;
    while (Date.now() < outageEnds) {
      for (const worker of workers)
        assert.ok(worker.alive, `an instance died while Kafka was down; log:\n${worker.tail()}`);
      await sleep(500);
    }
    await restartKafka();
    restartKafka = undefined;

    await second.connect();
    const truthAfter = await produce(second);
    await second.close();

    await waitForOwners(workers); // both run partitions again, neither was restarted
    for (const worker of workers) assert.ok(worker.alive, `still running; log:\n${worker.tail()}`);
    await assertExact(run, combineTruths(truthBefore, truthAfter), workers, 180_000);
  } finally {
    if (restartKafka) await restartKafka();
    first.stop();
    second.stop();
    await first.close().catch(() => undefined);
    await second.close().catch(() => undefined);
    killAll(workers);
  }
});
