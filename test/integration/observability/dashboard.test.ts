// The Grafana dashboard shows data, proven against a real Prometheus: the reference worker runs on the
// real services and gets events with duplicates, late events and malformed records (so the DLQ has
// entries); Debian's prometheus scrapes the worker's admin endpoint every second with the scrape job
// of deploy/prometheus/prometheus.yml; then every panel's PromQL from the dashboard JSON, its
// template variables filled in, must return a series with data, and the variables' own queries must
// list the app and the instance. promtool checks the shipped configuration as it is.
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { after, before, test } from 'node:test';
import { UsageGenerator } from '../../../examples/metering/generator.js';
import type { TestDatabase } from '../../helpers/clickhouse.js';
import {
  labelValuesQuery,
  loadDashboard,
  panelQueries,
  regexEscaped,
  repoRoot,
  substitute,
} from '../../helpers/dashboard.js';
import type { PanelQuery } from '../../helpers/dashboard.js';
import { Worker, setUpMeteringRun, sleep } from '../../helpers/metering.js';
import type { MeteringRun } from '../../helpers/metering.js';
import { PROMETHEUS_CONFIG_FILE, PrometheusServer } from '../../helpers/prometheus.js';
import type { Series } from '../../helpers/prometheus.js';
import { brokers, registryUrl } from '../../helpers/services.js';

const SCRAPE_INTERVAL_S = 1;

let db: TestDatabase;
let run: MeteringRun;

before(async () => {
  ({ db, run } = await setUpMeteringRun('dashboard', 2));
});

after(async () => {
  await db?.drop();
});

/** Waits until the worker's /metrics shows at least `minimum` of `name`. */
async function waitForMetric(
  worker: Worker,
  name: string,
  minimum: number,
  timeoutMs = 45_000,
): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  let value = 0;
  while (Date.now() < deadline) {
    value = await worker.metric(name);
    if (value >= minimum) return;
    await sleep(250);
  }
  throw new Error(`${name} is ${value}, not ${minimum}, after ${timeoutMs} ms; log:\n${worker.tail()}`);
}

test(
  'every panel of the Grafana dashboard returns data from a Prometheus scraping an instance',
  { timeout: 120_000 },
  async () => {
    const dashboard = loadDashboard();
    const instanceId = `dashboard-${randomBytes(3).toString('hex')}`;
    const worker = new Worker(run, { TRIBUTARY_INSTANCE_ID: instanceId });
    const generator = new UsageGenerator({
      brokers,
      registryUrl,
      topic: run.topic,
      totalEvents: 3000,
      rate: 1500,
      subjects: 20,
      duplicateRatio: 0.02,
      // Over 3 minutes of event time, so that the late events (2 minutes behind) can happen.
      eventTimeSpanMs: 5 * 60_000,
      lateEvents: 5,
      malformedPerClass: 1,
      seed: 11,
    });
    let prometheus: PrometheusServer | undefined;
    try {
      const adminAddress = await worker.ready();
      const server = await PrometheusServer.start([new URL(adminAddress).host], SCRAPE_INTERVAL_S);
      prometheus = server;
      const scrapeStart = Math.floor(Date.now() / 1000);

      await generator.connect();
      await generator.run();
      await generator.close();
      // Every kind of event has happened inside the worker before we ask Prometheus.
      const expected: Array<[string, number]> = [
        ['tributary_duplicates_dropped_total', 1],
        ['tributary_late_events_total', 1],
        ['tributary_dead_letters_total', 4], // one record of each bad-input class
        ['tributary_sink_rows_total', 1],
        ['tributary_window_delivery_latency_seconds_count', 1],
      ];
      for (const [name, minimum] of expected) await waitForMetric(worker, name, minimum);
      await sleep(3 * SCRAPE_INTERVAL_S * 1000); // and Prometheus has scraped them

      // The variables as Grafana fills them in; its app and instance lists come from Prometheus.
      const values: Record<string, string> = {
        datasource: 'prometheus',
        app: regexEscaped(run.appId),
        instance: regexEscaped(instanceId),
        // Grafana's $__rate_interval: max($__interval + scrape interval, 4 × scrape interval).
        __rate_interval: `${4 * SCRAPE_INTERVAL_S}s`,
      };
      const listed = async (name: string) => {
        const variable = dashboard.templating.list.find((v) => v.name === name);
        assert.ok(variable, `the dashboard has the variable ${name}`);
        const { selector, label } = labelValuesQuery(variable);
        return server.labelValues(label, substitute(selector, values));
      };
      const apps = await listed('app');
      assert.ok(apps.includes(run.appId), `the app list ${JSON.stringify(apps)} has ${run.appId}`);
      assert.deepEqual(
        await listed('instance'),
        [instanceId],
        'the instance list names the instance by its id',
      );

      // Every target of every panel, until all of them have data (the rates need a few scrapes).
      const queries = panelQueries(dashboard);
      assert.ok(queries.length >= 15, `the dashboard has its panels (${queries.length} queries)`);
      const answers = new Map<PanelQuery, Series[]>();
      const withData = (series: Series[] | undefined) => (series ?? []).some((s) => s.values.length > 0);
      const deadline = Date.now() + 30_000;
      for (;;) {
        const now = Date.now() / 1000;
        for (const query of queries) {
          if (withData(answers.get(query))) continue;
          const expr = substitute(query.expr, values);
          answers.set(
            query,
            query.instant
              ? await server.query(expr)
              : await server.queryRange(expr, scrapeStart, now, SCRAPE_INTERVAL_S),
          );
        }
        if (queries.every((query) => withData(answers.get(query))) || Date.now() > deadline) break;
        await sleep(1000);
      }

      const empty = queries.filter((query) => !withData(answers.get(query)));
      assert.deepEqual(
        empty.map((q) => `${q.panel} [${q.refId}]: ${q.expr}`),
        [],
        `every panel query returns data; targets: ${JSON.stringify(await server.targets())}`,
      );
      // The series carry the instance's own labels (honor_labels), not the scrape address.
      for (const [query, series] of answers) {
        for (const s of series) {
          if ('instance' in s.metric) assert.equal(s.metric['instance'], instanceId, query.panel);
          if ('app' in s.metric) assert.equal(s.metric['app'], run.appId, query.panel);
        }
      }
      const reasons =
        answers.get(queries.find((q) => q.panel === 'Dead letters by reason') as PanelQuery) ?? [];
      assert.deepEqual(
        reasons.map((s) => s.metric['reason']).sort(),
        ['bad-magic-byte', 'truncated', 'unknown-schema-id', 'validation-failed'],
        'the DLQ panel shows every reason the bad records had',
      );
    } finally {
      generator.stop();
      await generator.close().catch(() => undefined);
      await prometheus?.stop();
      worker.kill('SIGTERM');
      await worker.exit(40_000).catch(() => worker.kill('SIGKILL'));
    }
  },
);

test('promtool accepts deploy/prometheus/prometheus.yml as shipped', () => {
  const result = spawnSync('promtool', ['check', 'config', PROMETHEUS_CONFIG_FILE], {
    cwd: repoRoot,
    encoding: 'utf8',
  });
  assert.equal(result.error, undefined, "promtool runs (Debian's prometheus package)");
  assert.equal(result.status, 0, `${result.stdout}${result.stderr}`);
});
