/**
 * `npm run demo`: the reference metering pipeline end to end on the local stack.
 *
 * Creates a fresh input topic (8 partitions), registers the usage-event schema, produces a synthetic
 * usage stream (METERING_RATE events/s for METERING_DURATION_S seconds; default 20,000/s for 60 s)
 * with duplicates, out-of-order, late and malformed records, runs the topology in this process,
 * prints progress, and ends with the ClickHouse rollup beside the generator's ground truth.
 */
import { randomBytes } from 'node:crypto';
import { join } from 'node:path';
import type { GroundTruth } from './metering/generator.js';
import { UsageGenerator } from './metering/generator.js';
import { meteringApp } from './metering/pipeline.js';
import { ensureInputTopic, registerUsageSchema } from './metering/setup.js';
import { describeMismatch, readRollup, waitForMatch } from './metering/verify.js';
import type { Comparison } from './metering/verify.js';

const env = process.env;
const rate = Number(env.METERING_RATE ?? 20_000);
const durationS = Number(env.METERING_DURATION_S ?? 60);
const partitions = Number(env.METERING_PARTITIONS ?? 8);
const brokers = (env.TRIBUTARY_BROKERS ?? '127.0.0.1:9092').split(',');
const registryUrl = env.TRIBUTARY_SCHEMA_REGISTRY_URL ?? 'http://127.0.0.1:8081/apis/ccompat/v7';
const clickhouseUrl = env.TRIBUTARY_CLICKHOUSE_URL ?? 'http://127.0.0.1:8123';
const runId = `${new Date().toISOString().slice(0, 19).replace(/[-:T]/g, '')}_${randomBytes(2).toString('hex')}`;
const topic = `usage-events.${runId}`;
const database = 'metering';
const table = `usage_1m_${runId}`;
const appId = `metering-${runId}`;

const fmt = (n: number) => Math.round(n).toLocaleString('en-US');
const say = (line: string) => process.stdout.write(`${line}\n`);

async function main(): Promise<number> {
  say(`tributary demo: ${fmt(rate)} events/s for ${durationS} s into ${topic} (${partitions} partitions)`);
  say(`rollup table: ${database}.${table} (final totals: ${database}.${table}_totals)`);
  await ensureInputTopic(brokers, topic, partitions);
  await registerUsageSchema(registryUrl, topic);

  // The demo prints its own progress; the runtime logs only warnings and errors (TRIBUTARY_LOG_LEVEL
  // wins), through the App's default logger: readable lines on a terminal, JSON when redirected.
  const app = meteringApp({
    topic,
    registryUrl,
    clickhouse: { url: clickhouseUrl, database, table },
    config: {
      appId,
      brokers,
      stateDir: join('.tributary-state', 'demo'),
      admin: { port: 0 },
      handleSignals: true,
      logLevel: 'warn',
    },
  });
  await app.start();
  say(
    app.adminAddress === undefined
      ? 'admin endpoint: disabled'
      : `web console: ${app.adminAddress}/  (JSON: /tasks, /metrics, /topology.json)`,
  );
  say(app.describe());

  const generator = new UsageGenerator({
    brokers,
    registryUrl,
    topic,
    rate,
    totalEvents: Math.round(rate * durationS),
    logger: app.logger.child({ component: 'generator' }),
  });
  await generator.connect();
  const started = Date.now();
  let produced = 0;
  const metrics = app.runtime!.metrics;
  let last = { at: started, produced: 0, processed: 0 };
  const progress = setInterval(() => {
    void (async () => {
      const processed = await metrics.total(metrics.recordsProcessed);
      const windows = await metrics.total(metrics.windowsEmitted);
      const rows = await metrics.total(metrics.sinkRows);
      const lag = await metrics.total(metrics.lag);
      const now = Date.now();
      const secs = (now - last.at) / 1000;
      say(
        `[${Math.round((now - started) / 1000)}s] produced ${fmt(produced)} (${fmt((produced - last.produced) / secs)}/s)` +
          ` | processed ${fmt(processed)} (${fmt((processed - last.processed) / secs)}/s) | lag ${fmt(lag)}` +
          ` | windows emitted ${fmt(windows)} | rows written ${fmt(rows)}`,
      );
      last = { at: now, produced, processed };
    })();
  }, 2000);

  let truth: GroundTruth;
  let comparison: Comparison;
  try {
    truth = await generator.run((n) => (produced = n));
    await generator.close();
    say(
      `generator done: ${fmt(truth.produced)} records (${fmt(truth.unique)} unique events, ${fmt(truth.duplicates)} duplicates,` +
        ` ${fmt(truth.late)} late, ${truth.malformed.length} malformed); waiting for the last windows to close`,
    );
    comparison = await waitForMatch(truth, () => readRollup(clickhouseUrl, database, table), 180_000);
  } finally {
    clearInterval(progress);
  }
  const deadLetters = await metrics.total(metrics.deadLetters);
  await app.stop();

  printRollup(truth, comparison);
  say(
    `dead letters: ${deadLetters} written to ${appId}.dlq (generator sent ${truth.malformed.length} malformed records)`,
  );
  say(
    comparison.matches
      ? 'totals match ground truth: yes'
      : `totals match ground truth: NO (${describeMismatch(comparison)})`,
  );
  return comparison.matches ? 0 : 1;
}

function printRollup(truth: GroundTruth, comparison: Comparison): void {
  const byWindow = new Map<
    number,
    { keys: number; count: number; total: number; truthCount: number; truthTotal: number }
  >();
  const entry = (start: number) => {
    let e = byWindow.get(start);
    if (!e) byWindow.set(start, (e = { keys: 0, count: 0, total: 0, truthCount: 0, truthTotal: 0 }));
    return e;
  };
  for (const row of comparison.rows) {
    const e = entry(row.windowStart);
    e.keys++;
    e.count += row.count;
    e.total += row.total;
  }
  for (const [key, totals] of truth.windows) {
    const e = entry(Number(key.split('|')[0]));
    e.truthCount += totals.count;
    e.truthTotal += totals.total;
  }
  say('');
  say('window (UTC)          keys   events (ClickHouse / truth)     total (ClickHouse / truth)');
  for (const [start, e] of [...byWindow].sort((a, b) => a[0] - b[0])) {
    say(
      `${new Date(start).toISOString().slice(0, 16).replace('T', ' ')}   ${String(e.keys).padStart(6)}   ` +
        `${fmt(e.count).padStart(12)} / ${fmt(e.truthCount).padEnd(12)}   ${fmt(e.total).padStart(14)} / ${fmt(e.truthTotal)}`,
    );
  }
  say(
    `ClickHouse rows: ${comparison.actualKeys} (window, key) totals from ${fmt(truth.unique)} unique events`,
  );
}

main().then(
  (code) => process.exit(code),
  (error: unknown) => {
    console.error(error);
    say(`totals match ground truth: NO (${error instanceof Error ? error.message : String(error)})`);
    process.exit(1);
  },
);
