// What `docker compose --profile dashboards up` relies on, checked without a Docker engine: the compose
// file's Prometheus and Grafana mount files that exist and agree with each other, and the Grafana
// dashboard is well formed, filters every query on the app and instance variables, and asks only for
// metrics an instance exports. (test/integration/observability/dashboard.test.ts runs its queries
// against a real Prometheus.)
import assert from 'node:assert/strict';
import { existsSync, readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { resolve } from 'node:path';
import { test } from 'node:test';
import { RuntimeMetrics } from '../../../src/runtime/metrics.js';
import {
  GRAFANA_BUILTINS,
  dataPanels,
  labelValuesQuery,
  loadDashboard,
  panelQueries,
  repoRoot,
  variablesIn,
} from '../../helpers/dashboard.js';
import { loadPrometheusConfig } from '../../helpers/prometheus.js';

const yaml = createRequire(import.meta.url)('js-yaml') as { load(text: string): unknown };
const loadYaml = (file: string) => yaml.load(readFileSync(resolve(repoRoot, file), 'utf8'));

interface ComposeService {
  image?: string;
  profiles?: string[];
  network_mode?: string;
  command?: string[];
  environment?: Record<string, string | number>;
  volumes?: string[];
}

interface Compose {
  services: Record<string, ComposeService>;
  volumes?: Record<string, unknown>;
}

const compose = loadYaml('docker-compose.yml') as Compose;

/** A service's volumes as (source, target): a bind mount's source is a path of the repository. */
function mounts(service: ComposeService): Array<{ source: string; target: string; bind: boolean }> {
  return (service.volumes ?? []).map((volume) => {
    const [source = '', target = ''] = volume.split(':');
    return { source, target, bind: source.startsWith('./') || source.startsWith('/') };
  });
}

/** The repository path mounted at `containerPath` (or at a folder holding it) in `service`. */
function hostPathOf(service: ComposeService, containerPath: string): string | undefined {
  for (const { source, target, bind } of mounts(service)) {
    if (!bind) continue;
    if (containerPath === target) return resolve(repoRoot, source);
    if (containerPath.startsWith(`${target}/`))
      return resolve(repoRoot, source, containerPath.slice(target.length + 1));
  }
  return undefined;
}

function flag(service: ComposeService, name: string): string | undefined {
  return service.command?.find((arg) => arg.startsWith(`--${name}=`))?.slice(name.length + 3);
}

test('compose: the stack services are unchanged and Prometheus and Grafana come with the dashboards profile', () => {
  for (const name of ['kafka', 'schema-registry', 'clickhouse']) {
    assert.ok(compose.services[name], name);
    assert.equal(compose.services[name]?.profiles, undefined, `${name} still starts with a plain \`up\``);
  }
  for (const name of ['prometheus', 'grafana']) {
    const service = compose.services[name];
    assert.ok(service?.image, `${name} has an image`);
    assert.deepEqual(service.profiles, ['dashboards'], `${name} starts only with --profile dashboards`);
  }
});

test('compose: every bind mount of Prometheus and Grafana is a file or folder of the repository, every named volume is declared', () => {
  for (const name of ['prometheus', 'grafana']) {
    for (const { source, bind } of mounts(compose.services[name] as ComposeService)) {
      if (bind) assert.ok(existsSync(resolve(repoRoot, source)), `${name} mounts ${source}, which exists`);
      else assert.ok(compose.volumes && source in compose.volumes, `${name}'s volume ${source} is declared`);
    }
  }
});

test('compose: Prometheus reads deploy/prometheus/prometheus.yml, which scrapes the admin endpoints keeping their labels', () => {
  const prometheus = compose.services['prometheus'] as ComposeService;
  const configFile = flag(prometheus, 'config.file');
  assert.ok(configFile, 'prometheus is given --config.file');
  assert.equal(hostPathOf(prometheus, configFile), resolve(repoRoot, 'deploy/prometheus/prometheus.yml'));

  const job = loadPrometheusConfig().scrape_configs.find((j) => j.job_name === 'tributary');
  assert.ok(job, 'a tributary job');
  assert.equal(job.metrics_path, '/metrics');
  assert.equal(job.honor_labels, true, "the instance's own `instance` and `app` labels are kept");
  const targets = job.static_configs?.flatMap((c) => c.targets) ?? [];
  assert.ok(targets.includes('127.0.0.1:7400'), 'the default admin port is scraped');
});

test("compose: Grafana's provisioned data source is that Prometheus, and its dashboard provider loads deploy/grafana/dashboards/", () => {
  const grafana = compose.services['grafana'] as ComposeService;
  const prometheus = compose.services['prometheus'] as ComposeService;
  const provisioned = (kind: string) => {
    const folder = hostPathOf(grafana, `/etc/grafana/provisioning/${kind}`);
    assert.ok(folder, `${kind} provisioning is mounted`);
    return folder;
  };

  const datasources = yaml.load(
    readFileSync(resolve(provisioned('datasources'), 'prometheus.yml'), 'utf8'),
  ) as { datasources: Array<{ type: string; url: string; uid: string }> };
  const [datasource] = datasources.datasources;
  assert.equal(datasource?.type, 'prometheus');
  // Both run on the host's network: Grafana reaches Prometheus at the address it listens on.
  assert.equal(grafana.network_mode, prometheus.network_mode);
  assert.equal(new URL(datasource.url).host, flag(prometheus, 'web.listen-address'));

  const providers = yaml.load(readFileSync(resolve(provisioned('dashboards'), 'tributary.yml'), 'utf8')) as {
    providers: Array<{ type: string; options: { path: string } }>;
  };
  const [provider] = providers.providers;
  assert.equal(provider?.type, 'file');
  assert.equal(hostPathOf(grafana, provider.options.path), resolve(repoRoot, 'deploy/grafana/dashboards'));
  const home = String(grafana.environment?.['GF_DASHBOARDS_DEFAULT_HOME_DASHBOARD_PATH']);
  assert.equal(hostPathOf(grafana, home), resolve(repoRoot, 'deploy/grafana/dashboards/tributary.json'));
});

const dashboard = loadDashboard();

test('dashboard: templated on the data source, app and instance (all instances by default)', () => {
  const variables = new Map(dashboard.templating.list.map((v) => [v.name, v]));
  assert.equal(variables.get('datasource')?.type, 'datasource');
  const app = variables.get('app');
  const instance = variables.get('instance');
  assert.ok(app && instance);
  assert.equal(labelValuesQuery(app).label, 'app');
  assert.equal(labelValuesQuery(instance).label, 'instance');
  assert.match(labelValuesQuery(instance).selector, /app=~"\$app"/, 'the instances of the chosen app');
  assert.equal(instance.multi, true);
  assert.equal(instance.includeAll, true);
  assert.equal(instance.allValue, '.*');
});

test('dashboard: unique panel ids, every data panel on the chosen data source with at least one query', () => {
  const ids = dashboard.panels.flatMap((p) => [p.id, ...(p.panels ?? []).map((c) => c.id)]);
  assert.equal(new Set(ids).size, ids.length);
  for (const panel of dataPanels(dashboard)) {
    assert.deepEqual(panel.datasource, { type: 'prometheus', uid: '${datasource}' }, panel.title);
    assert.ok((panel.targets ?? []).length > 0, `${panel.title} has a query`);
    for (const target of panel.targets ?? []) assert.notEqual(target.expr.trim(), '', panel.title);
  }
});

test('dashboard: every query uses only defined variables and filters each metric on app and instance', () => {
  const defined = new Set([...dashboard.templating.list.map((v) => v.name), ...GRAFANA_BUILTINS]);
  for (const { panel, expr } of panelQueries(dashboard)) {
    for (const name of variablesIn(expr)) assert.ok(defined.has(name), `${panel}: $${name} is defined`);
    const selectors = [...expr.matchAll(/[a-zA-Z_:][\w:]*\{([^}]*)\}/g)];
    assert.ok(selectors.length > 0, `${panel}: ${expr} selects a metric`);
    for (const [selector, matchers] of selectors) {
      assert.match(matchers as string, /\bapp=~"\$app"/, `${panel}: ${selector}`);
      assert.match(matchers as string, /\binstance=~"\$instance"/, `${panel}: ${selector}`);
    }
  }
});

test('dashboard: it asks only for metrics an instance exports, and covers what an operator watches', async () => {
  const exported = await new RuntimeMetrics('unit', 'unit-app').registry.metrics();
  const used = new Set(
    panelQueries(dashboard).flatMap(({ expr }) =>
      [...expr.matchAll(/([a-zA-Z_:][\w:]*)\{/g)].map((m) =>
        (m[1] as string).replace(/_(bucket|count|sum)$/, ''),
      ),
    ),
  );
  for (const metric of used) assert.match(exported, new RegExp(`^# HELP ${metric} `, 'm'), metric);
  for (const metric of [
    'tributary_records_processed_total',
    'tributary_consumer_lag',
    'tributary_watermark_ms',
    'tributary_duplicates_dropped_total',
    'tributary_late_events_total',
    'tributary_dead_letters_total',
    'tributary_sink_rows_total',
    'tributary_sink_writes_total',
    'tributary_sink_failures_total',
    'tributary_commit_duration_seconds',
    'tributary_window_delivery_latency_seconds',
    'nodejs_eventloop_lag_p99_seconds',
    'process_resident_memory_bytes',
  ])
    assert.ok(used.has(metric), `a panel shows ${metric}`);
});

test('dashboard: panels do not overlap on the 24-column grid', () => {
  const boxes = dashboard.panels.map((p) => ({ title: p.title, grid: p.gridPos }));
  for (const [i, a] of boxes.entries()) {
    assert.ok(a.grid.x >= 0 && a.grid.x + a.grid.w <= 24, `${a.title} fits the width`);
    for (const b of boxes.slice(i + 1)) {
      const apart =
        a.grid.x + a.grid.w <= b.grid.x ||
        b.grid.x + b.grid.w <= a.grid.x ||
        a.grid.y + a.grid.h <= b.grid.y ||
        b.grid.y + b.grid.h <= a.grid.y;
      assert.ok(apart, `${a.title} and ${b.title} do not overlap`);
    }
  }
});
