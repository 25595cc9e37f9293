// Exactly-once on one instance: the metering job is SIGKILLed at random moments while the producer
// keeps producing, and restarted each time; ClickHouse must end up with exactly the ground truth and
// the DLQ with exactly the malformed records.
import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import { UsageGenerator } from '../../../examples/metering/generator.js';
import type { GroundTruth } from '../../../examples/metering/generator.js';
import { describeMismatch, readRollup, waitForMatch } from '../../../examples/metering/verify.js';
import type { TestDatabase } from '../../helpers/clickhouse.js';
import { Worker, setUpMeteringRun, readDlq, sleep } from '../../helpers/metering.js';
import type { MeteringRun } from '../../helpers/metering.js';
import { brokers, clickhouseUrl, registryUrl } from '../../helpers/services.js';

const EXPECTED_REASON = {
  'bad-magic-byte': 'bad-magic-byte',
  'unknown-schema-id': 'unknown-schema-id',
  truncated: 'truncated',
  'validation-failed': 'validation-failed',
} as const;

let db: TestDatabase;
let run: MeteringRun;

before(async () => {
  ({ db, run } = await setUpMeteringRun('eos'));
});

after(async () => {
  await db?.drop();
});

test('SIGKILL at random moments, 5+ times while producing: ClickHouse totals and the DLQ are exact', async () => {
  const generator = new UsageGenerator({
    brokers,
    registryUrl,
    topic: run.topic,
    totalEvents: 100_000,
    rate: 3500,
    subjects: 200,
    // Four windows of event time: the last ones receive late events for windows already closed.
    eventTimeSpanMs: 4 * 60_000,
    seed: 7,
  });
  await generator.connect();
  const production = generator.run();
  let producing = true;
  production.finally(() => (producing = false)).catch(() => undefined); // awaited below

  let worker = new Worker(run);
  let kills = 0;
  const random = (min: number, max: number) => min + Math.random() * (max - min);
  try {
    while (producing || kills < 5) {
      await worker.ready();
      // Anywhere from right after the group join to a few commits in.
      await sleep(random(300, 4500));
      worker.kill('SIGKILL');
      assert.equal(await worker.exit(), null, 'killed by the signal');
      kills++;
      worker = new Worker(run);
    }
    const truth: GroundTruth = await production;
    await generator.close();
    assert.ok(kills >= 5, `killed ${kills} times`);

    const comparison = await waitForMatch(
      truth,
      () => readRollup(clickhouseUrl, run.database, run.table),
      150_000,
    );
    assert.ok(
      comparison.matches,
      `after ${kills} kills: ${describeMismatch(comparison)}\nworker log:\n${worker.tail()}`,
    );
    assert.ok(truth.duplicates > 0 && truth.late > 0, 'the run had duplicates and late events to get right');

    const dlq = await readDlq(`${run.appId}.dlq`, truth.malformed.length);
    const expected = truth.malformed
      .map((m) => `${m.partition}:${m.offset}:${EXPECTED_REASON[m.kind]}`)
      .sort();
    const actual = dlq.map((d) => `${d.partition}:${d.offset}:${d.reason}`).sort();
    assert.deepEqual(actual, expected, 'the DLQ holds each malformed record once, with its reason');
    assert.equal(expected.length, 8);

    worker.kill('SIGTERM');
    assert.equal(await worker.exit(40_000), 0, `clean exit on SIGTERM; log:\n${worker.tail()}`);
  } finally {
    generator.stop();
    await generator.close().catch(() => undefined);
    worker.kill('SIGKILL');
  }
});
