// ClickHouse stopped for 30 s in the middle of a run: the job pauses its partitions once outputs
// back up, loses nothing, and the totals are exact once ClickHouse is back.
import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import { UsageGenerator } from '../../../examples/metering/generator.js';
import { describeMismatch, readRollup, waitForMatch } from '../../../examples/metering/verify.js';
import type { TestDatabase } from '../../helpers/clickhouse.js';
import { Worker, setUpMeteringRun, sleep, stopClickHouse } from '../../helpers/metering.js';
import type { MeteringRun } from '../../helpers/metering.js';
import { brokers, clickhouseUrl, registryUrl } from '../../helpers/services.js';

let db: TestDatabase;
let run: MeteringRun;

before(async () => {
  ({ db, run } = await setUpMeteringRun('outage'));
});

after(async () => {
  await db?.drop();
});

test('ClickHouse down for 30 s mid-run: partitions pause, nothing is lost, totals exact afterwards', async () => {
  // A low backpressure limit, so that a few closed windows per partition are enough to pause it, and
  // small delivery rounds, so that the rows waiting past one round's worth are kept packed (the
  // outbox's memory-saving form while a sink is down) and delivered from there once it is back.
  const worker = new Worker(run, {
    TRIBUTARY_OUTPUTS_MAX_PENDING_PER_PARTITION: '60',
    TRIBUTARY_OUTPUTS_BATCH_SIZE: '10',
  });
  const generator = new UsageGenerator({
    brokers,
    registryUrl,
    topic: run.topic,
    totalEvents: 80_000,
    rate: 2000,
    subjects: 200,
    // Eight windows over 40 s: a window closes every 5 s, so outputs pile up during the outage.
    eventTimeSpanMs: 8 * 60_000,
    seed: 23,
  });
  let restart: (() => Promise<void>) | undefined;
  try {
    await worker.ready();
    await generator.connect();
    const production = generator.run();
    production.catch(() => undefined); // awaited below; this only keeps an early failure from going unhandled

    await sleep(6000);
    restart = await stopClickHouse();
    let pausedSeen = 0;
    let peakRss = 0;
    const outageEnds = Date.now() + 30_000;
    while (Date.now() < outageEnds) {
      pausedSeen = Math.max(pausedSeen, await worker.metric('tributary_paused_partitions'));
      peakRss = Math.max(peakRss, await worker.metric('process_resident_memory_bytes'));
      assert.ok(worker.alive, `the job survives the outage; log:\n${worker.tail()}`);
      await sleep(500);
    }
    await restart();
    restart = undefined;

    assert.ok(pausedSeen > 0, 'backed-up partitions were paused during the outage');
    assert.ok(
      peakRss < 1024 * 1024 * 1024,
      `memory stayed bounded (peak RSS ${Math.round(peakRss / 2 ** 20)} MB)`,
    );
    assert.ok((await worker.metric('tributary_sink_failures_total')) > 0, 'the sink saw the outage');

    const truth = await production;
    await generator.close();
    const comparison = await waitForMatch(
      truth,
      () => readRollup(clickhouseUrl, run.database, run.table),
      150_000,
    );
    assert.ok(comparison.matches, `${describeMismatch(comparison)}\nlog:\n${worker.tail()}`);
    assert.equal(await worker.metric('tributary_paused_partitions'), 0, 'every partition resumed');
  } finally {
    if (restart) await restart();
    generator.stop();
    worker.kill('SIGKILL');
  }
});
