// The schema registry unreachable for 10 s while records with a schema id the job has never seen
// arrive: the job holds those partitions and retries; nothing is dead-lettered and nothing is lost.
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { after, before, test } from 'node:test';
import { UsageGenerator, combineTruths } from '../../../examples/metering/generator.js';
import { describeMismatch, readRollup, waitForMatch } from '../../../examples/metering/verify.js';
import { startTcpProxy } from '../../helpers/clickhouse.js';
import type { TcpProxy, TestDatabase } from '../../helpers/clickhouse.js';
import { Worker, setUpMeteringRun, readDlq, sleep } from '../../helpers/metering.js';
import type { MeteringRun } from '../../helpers/metering.js';
import { brokers, clickhouseUrl, registryUrl } from '../../helpers/services.js';

let db: TestDatabase;
let run: MeteringRun;
let proxy: TcpProxy;

before(async () => {
  ({ db, run } = await setUpMeteringRun('registry'));
  proxy = await startTcpProxy(registryUrl);
});

after(async () => {
  await proxy?.stop();
  await db?.drop();
});

test('registry down for 10 s while a new schema version arrives: partitions held, none dead-lettered, none lost', async () => {
  // The job reaches the registry only through the proxy; producers reach it directly.
  const worker = new Worker(run, {
    TRIBUTARY_SCHEMA_REGISTRY_URL: `${proxy.url}${new URL(registryUrl).pathname}`,
  });
  const common = {
    brokers,
    registryUrl,
    topic: run.topic,
    rate: 4000,
    subjects: 100,
    malformedPerClass: 0,
    lateEvents: 0,
  };
  const v1 = new UsageGenerator({ ...common, totalEvents: 20_000, eventTimeSpanMs: 2 * 60_000, seed: 31 });
  let v2: UsageGenerator | undefined;
  try {
    await worker.ready();
    const truthV1 = await v1.run();
    await v1.close();

    await proxy.stop();
    // v2 adds an optional field: a compatible evolution, and a schema id the job has not cached.
    v2 = new UsageGenerator({
      ...common,
      totalEvents: 20_000,
      eventTimeSpanMs: 2 * 60_000,
      eventTimeStart: v1.eventTimeEnd,
      writerSchema: readFileSync('test/unit/serde/fixtures/usage-event.v2.avsc', 'utf8'),
      seed: 32,
    });
    const producingV2 = v2.run();
    producingV2.catch(() => undefined); // awaited below
    await sleep(10_000);
    assert.ok(worker.alive, `the job waits out the outage; log:\n${worker.tail()}`);
    assert.ok(
      (await worker.metric('tributary_retriable_stalls_total')) > 0,
      'partitions were held while the registry was away',
    );
    await proxy.start();

    const truth = combineTruths(truthV1, await producingV2);
    await v2.close();
    const comparison = await waitForMatch(
      truth,
      () => readRollup(clickhouseUrl, run.database, run.table),
      120_000,
    );
    assert.ok(comparison.matches, `${describeMismatch(comparison)}\nlog:\n${worker.tail()}`);
    assert.equal(await worker.metric('tributary_dead_letters_total'), 0, 'nothing dead-lettered');
    assert.deepEqual(await readDlq(`${run.appId}.dlq`, 0), [], 'the DLQ is empty');
  } finally {
    await proxy.start().catch(() => undefined);
    v1.stop();
    v2?.stop();
    await v1.close().catch(() => undefined);
    await v2?.close().catch(() => undefined);
    worker.kill('SIGKILL');
  }
});
