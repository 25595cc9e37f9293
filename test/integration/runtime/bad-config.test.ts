// What an operator meets at 3 a.m.: a bad table or setting fails fast and says what is wrong, a second
// signal is obeyed at once, and (without changelogs) a partition that lost its state folder is called out.
import assert from 'node:assert/strict';
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, test } from 'node:test';
import { UsageGenerator } from '../../../examples/metering/generator.js';
import type { TestDatabase } from '../../helpers/clickhouse.js';
import { Worker, setUpMeteringRun, sleep } from '../../helpers/metering.js';
import type { MeteringRun } from '../../helpers/metering.js';
import { brokers, registryUrl } from '../../helpers/services.js';

let db: TestDatabase;
let run: MeteringRun;

before(async () => {
  ({ db, run } = await setUpMeteringRun('badconfig', 2));
});

after(async () => {
  await db?.drop();
});

test('a rollup table with other columns stops the job at start, naming the difference', async () => {
  await db.command(
    `CREATE TABLE ${db.name}.${run.table} (window_start DateTime, subject String, requests UInt64, version UInt64)
     ENGINE = ReplacingMergeTree(version) ORDER BY (subject, window_start)`,
  );
  const worker = new Worker(run);
  assert.equal(await worker.exit(60_000), 1, 'exits non-zero');
  const log = worker.tail(20);
  assert.match(log, /failed to start/);
  assert.match(log, /missing column meter String/);
});

test('an invalid setting stops the job at start, naming the setting and its variable', async () => {
  const worker = new Worker(run, { TRIBUTARY_COMMIT_INTERVAL_MS: 'soon' });
  assert.equal(await worker.exit(60_000), 1, 'exits non-zero');
  assert.match(worker.tail(20), /TRIBUTARY_COMMIT_INTERVAL_MS="soon" is not a whole number/);
});

test('a second SIGTERM during the clean shutdown exits at once', async () => {
  const worker = new Worker(run, { METERING_CLICKHOUSE_TABLE: 'usage_1m_signals' }); // not the mismatched table
  await worker.ready();
  worker.kill('SIGTERM');
  // Leaving the group alone takes longer than this: the second signal lands during the shutdown.
  await sleep(10);
  worker.kill('SIGTERM');
  const started = Date.now();
  assert.equal(await worker.exit(10_000), 130, `exit code of the second signal; log:\n${worker.tail()}`);
  assert.ok(Date.now() - started < 5000, 'without waiting for the shutdown to finish');
  assert.match(worker.tail(), /second signal: exiting at once/);
});

// With changelogs (the default) a lost folder is restored (test/chaos covers it); without them, it is called out.
test('without changelogs, a partition that lost its state folder is called out in the log, not resumed silently', async () => {
  const generator = new UsageGenerator({
    brokers,
    registryUrl,
    topic: run.topic,
    totalEvents: 2000,
    rate: 5000,
    seed: 5,
  });
  await generator.run();
  await generator.close();
  const table = { METERING_CLICKHOUSE_TABLE: 'usage_1m_lost_state', TRIBUTARY_CHANGELOG: 'false' };
  // A state folder of its own: the run's holds the outboxes of the other tests' sinks (other tables),
  // which this topology does not have, and a start refuses to drop them while they hold undelivered outputs.
  const first = new Worker(run, {
    ...table,
    TRIBUTARY_STATE_DIR: mkdtempSync(join(tmpdir(), 'tributary-state-')),
  });
  await first.ready();
  await sleep(3000); // a few commits: the group offsets move past 0
  first.kill('SIGTERM');
  assert.equal(await first.exit(40_000), 0);

  const second = new Worker(run, {
    ...table,
    TRIBUTARY_STATE_DIR: mkdtempSync(join(tmpdir(), 'tributary-lost-state-')),
  });
  try {
    await second.ready();
    const deadline = Date.now() + 20_000;
    while (
      Date.now() < deadline &&
      !/no local state for a partition the group has consumed/.test(second.tail(200))
    ) {
      await sleep(200);
    }
    assert.match(second.tail(200), /no local state for a partition the group has consumed before/);
  } finally {
    second.kill('SIGKILL');
  }
});
