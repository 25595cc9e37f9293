// Topology evolution on the real stack: the reference job's shape with unnamed stateful operators is
// stopped while producing and redeployed with extra stateless steps; its dedupe ids and open windows
// carry over, so the ClickHouse totals equal the ground truth exactly. Then a deployment whose dedupe
// store was renamed refuses to start, naming the store and the way out.
import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import { avro, clickhouse, count, days, max, sum, tributary, tumbling } from '../../../src/index.js';
import type { App, Stream } from '../../../src/index.js';
import { METERING_WINDOW } from '../../../examples/metering/pipeline.js';
import { usageEventSchema, validateUsageEvent } from '../../../examples/metering/usage-event.js';
import type { UsageEvent } from '../../../examples/metering/usage-event.js';
import { UsageGenerator } from '../../../examples/metering/generator.js';
import { describeMismatch, readRollup, waitForMatch } from '../../../examples/metering/verify.js';
import type { TestDatabase } from '../../helpers/clickhouse.js';
import { setUpMeteringRun, sleep } from '../../helpers/metering.js';
import type { MeteringRun } from '../../helpers/metering.js';
import { brokers, clickhouseUrl, registryUrl } from '../../helpers/services.js';

let db: TestDatabase;
let run: MeteringRun;

before(async () => {
  ({ db, run } = await setUpMeteringRun('evolve', 4));
});

after(async () => {
  await db?.drop();
});

interface Deployment {
  /** A peek, a filter and a map around the dedupe: stateless steps that were not there before. */
  extraSteps?: boolean;
  dedupeName?: string;
}

/** The metering job's topology, but with its stateful operators left unnamed (derived store names). */
function meteringShapedApp(deployment: Deployment): App {
  const app = tributary({
    appId: run.appId,
    brokers,
    stateDir: run.stateDir,
    commitIntervalMs: 500,
    schemaRegistry: { url: registryUrl },
    clickhouse: { url: clickhouseUrl },
    admin: { enabled: false },
    handleSignals: false,
    kafka: { sessionTimeoutMs: 6000 },
    logLevel: 'warn',
  });
  let events: Stream<UsageEvent> = app
    .stream(run.topic, avro<UsageEvent>({ readerSchema: usageEventSchema() }), { timestamp: (e) => e.time })
    .validate(validateUsageEvent);
  if (deployment.extraSteps) events = events.peek(() => {}).filter((e) => e.value >= 0);
  let unique = events.dedupe((e) => `${e.source}/${e.id}`, {
    horizon: days(32),
    ...(deployment.dedupeName === undefined ? {} : { name: deployment.dedupeName }),
  });
  if (deployment.extraSteps) unique = unique.map((e) => ({ ...e }));
  unique
    .groupBy((e) => ({ subject: e.subject, meter: e.meter }))
    .window(tumbling(METERING_WINDOW.size), {
      grace: METERING_WINDOW.grace,
      outOfOrderness: METERING_WINDOW.outOfOrderness,
      idleness: METERING_WINDOW.idleness,
      late: 're-emit',
    })
    .aggregate({
      count: count(),
      total: sum((e: UsageEvent) => e.value),
      max: max((e: UsageEvent) => e.value),
    })
    .to(
      clickhouse({
        database: run.database,
        table: run.table,
        keyColumns: [
          { name: 'subject', type: 'String' },
          { name: 'meter', type: 'String' },
        ],
      }),
    );
  return app;
}

test('redeployed with extra stateless steps while producing: state carries over, totals exact; a renamed store refuses to start', async () => {
  const generator = new UsageGenerator({
    brokers,
    registryUrl,
    topic: run.topic,
    totalEvents: 30_000,
    rate: 3000,
    subjects: 100,
    eventTimeSpanMs: 3 * 60_000,
    seed: 29,
  });
  const first = meteringShapedApp({});
  let second: App | undefined;
  try {
    await first.start();
    await generator.connect();
    const production = generator.run();
    production.catch(() => undefined); // awaited below; this only keeps an early failure from going unhandled
    await sleep(4000); // windows are open and ids remembered when the first deployment stops
    await first.stop();

    second = meteringShapedApp({ extraSteps: true });
    await second.start();
    const truth = await production;
    await generator.close();
    const comparison = await waitForMatch(
      truth,
      () => readRollup(clickhouseUrl, run.database, run.table),
      120_000,
    );
    assert.ok(comparison.matches, describeMismatch(comparison));
    assert.ok(truth.duplicates > 0, 'the run re-sent ids, some across the redeployment');
    await second.stop();
    second = undefined;

    const renamed = meteringShapedApp({ extraSteps: true, dedupeName: 'source-ids' });
    const crashed = new Promise<Error>((resolve) => {
      void renamed.start().then(() => renamed.runtime?.onCrash(resolve));
    });
    const error = await Promise.race([
      crashed,
      sleep(60_000).then(() => new Error('the renamed deployment did not stop')),
    ]);
    await renamed.stop().catch(() => undefined);
    const cause = error.cause instanceof Error ? error.cause.message : error.message;
    assert.match(error.message, /cannot open the state of partition \d/);
    assert.match(
      cause,
      new RegExp(`dedupe store "${run.topic}-dedupe" is in the state folder but not in the topology`),
    );
    assert.match(cause, /resetStores: \[/);
  } finally {
    generator.stop();
    await generator.close().catch(() => undefined);
    await first.stop().catch(() => undefined);
    await second?.stop().catch(() => undefined);
  }
});
