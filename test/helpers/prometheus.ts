/**
 * A real Prometheus for the dashboard test: Debian's `prometheus` binary (not its system service),
 * run with the scrape job of deploy/prometheus/prometheus.yml pointed at the given targets, a
 * temporary storage folder and a free loopback port.
 */
import { spawn } from 'node:child_process';
import type { ChildProcess } from 'node:child_process';
import { mkdtempSync, openSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { sleep } from '../../src/core/retry.js';
import { repoRoot } from './dashboard.js';
import { closedPort } from './ports.js';

const yaml = createRequire(import.meta.url)('js-yaml') as {
  load(text: string): unknown;
  dump(value: unknown): string;
};

export const PROMETHEUS_CONFIG_FILE = 'deploy/prometheus/prometheus.yml';
const JOB = 'tributary';

export interface ScrapeJob {
  job_name: string;
  metrics_path?: string;
  honor_labels?: boolean;
  scrape_interval?: string;
  scrape_timeout?: string;
  static_configs?: Array<{ targets: string[] }>;
}

export interface PrometheusConfig {
  global?: Record<string, string>;
  scrape_configs: ScrapeJob[];
}

export function loadPrometheusConfig(): PrometheusConfig {
  return yaml.load(readFileSync(resolve(repoRoot, PROMETHEUS_CONFIG_FILE), 'utf8')) as PrometheusConfig;
}

/** The shipped configuration with its tributary job scraping `targets` every `intervalS` seconds. */
export function configFor(targets: string[], intervalS: number): PrometheusConfig {
  const config = loadPrometheusConfig();
  const job = config.scrape_configs.find((j) => j.job_name === JOB);
  if (!job) throw new Error(`${PROMETHEUS_CONFIG_FILE} has no job "${JOB}"`);
  const interval = `${intervalS}s`;
  // The timeout may not exceed the interval.
  config.global = { ...config.global, scrape_interval: interval, scrape_timeout: interval };
  config.scrape_configs = [{ ...job, static_configs: [{ targets }] }];
  return config;
}

/** One series of a query's answer: its labels and its finite sample values. */
export interface Series {
  metric: Record<string, string>;
  values: number[];
}

interface ApiAnswer<T> {
  status: 'success' | 'error';
  data: T;
  error?: string;
}

type QueryData =
  | {
      resultType: 'matrix';
      result: Array<{ metric: Record<string, string>; values: Array<[number, string]> }>;
    }
  | { resultType: 'vector'; result: Array<{ metric: Record<string, string>; value: [number, string] }> }
  | { resultType: 'scalar' | 'string'; result: [number, string] };

export class PrometheusServer {
  private readonly exited: Promise<void>;

  private constructor(
    private readonly process: ChildProcess,
    readonly address: string,
    private readonly dir: string,
    private readonly logFile: string,
  ) {
    this.exited = new Promise((resolve) => process.once('exit', () => resolve()));
  }

  /** Starts Prometheus scraping `targets` (host:port) and waits until it is ready. */
  static async start(targets: string[], scrapeIntervalS = 1): Promise<PrometheusServer> {
    const dir = mkdtempSync(join(tmpdir(), 'tributary-prometheus-'));
    const configFile = join(dir, 'prometheus.yml');
    writeFileSync(configFile, yaml.dump(configFor(targets, scrapeIntervalS)));
    const port = await closedPort();
    const logFile = join(dir, 'prometheus.log');
    const log = openSync(logFile, 'a');
    const child = spawn(
      process.env.PROMETHEUS_BIN ?? 'prometheus',
      [
        `--config.file=${configFile}`,
        `--storage.tsdb.path=${join(dir, 'data')}`,
        `--web.listen-address=127.0.0.1:${port}`,
      ],
      { stdio: ['ignore', log, log] },
    );
    const spawnError = new Promise<Error>((resolve) => child.once('error', resolve));
    const server = new PrometheusServer(child, `http://127.0.0.1:${port}`, dir, logFile);
    const deadline = Date.now() + 30_000;
    while (Date.now() < deadline) {
      const failed = await Promise.race([spawnError, sleep(200).then(() => undefined)]);
      if (failed) {
        throw new Error(
          `cannot run prometheus (${failed.message}): install Debian's prometheus package (apt-get install prometheus) or set PROMETHEUS_BIN`,
        );
      }
      if (child.exitCode !== null) throw new Error(`prometheus exited at start; log:\n${server.tail()}`);
      // Discovery hands new targets to the scraper after about 5 s: wait for a first good scrape.
      if ((await server.ready()) && (await server.allTargetsUp(targets.length))) return server;
    }
    const targetsNow = JSON.stringify(await server.targets().catch(() => 'none'));
    await server.stop();
    throw new Error(
      `prometheus has not scraped every target after 30 s (${targetsNow}); log:\n${server.tail()}`,
    );
  }

  private async allTargetsUp(count: number): Promise<boolean> {
    const targets = await this.targets();
    return targets.length === count && targets.every((t) => t.health === 'up');
  }

  private async ready(): Promise<boolean> {
    try {
      return (await fetch(`${this.address}/-/ready`, { signal: AbortSignal.timeout(1000) })).ok;
    } catch {
      return false;
    }
  }

  private async api<T>(path: string, params: Record<string, string>): Promise<T> {
    const response = await fetch(`${this.address}/api/v1/${path}?${new URLSearchParams(params)}`);
    const answer = (await response.json()) as ApiAnswer<T>;
    if (answer.status !== 'success')
      throw new Error(`prometheus ${path} ${JSON.stringify(params)}: ${answer.error}`);
    return answer.data;
  }

  /** A range query, as a Grafana time-series panel sends it. */
  async queryRange(expr: string, startS: number, endS: number, stepS: number): Promise<Series[]> {
    const data = await this.api<QueryData>('query_range', {
      query: expr,
      start: String(startS),
      end: String(endS),
      step: String(stepS),
    });
    return seriesOf(data);
  }

  /** An instant query at the present, as a stat or bar gauge panel sends it. */
  async query(expr: string): Promise<Series[]> {
    return seriesOf(await this.api<QueryData>('query', { query: expr }));
  }

  /** What Grafana's `label_values(selector, label)` lists. */
  async labelValues(label: string, selector: string): Promise<string[]> {
    return this.api<string[]>(`label/${encodeURIComponent(label)}/values`, { 'match[]': selector });
  }

  /** The scrape targets and their health (`up`, `down`, `unknown`). */
  async targets(): Promise<Array<{ scrapeUrl: string; health: string; lastError: string }>> {
    const data = await this.api<{
      activeTargets: Array<{ scrapeUrl: string; health: string; lastError: string }>;
    }>('targets', {});
    return data.activeTargets;
  }

  tail(lines = 30): string {
    try {
      return readFileSync(this.logFile, 'utf8').split('\n').slice(-lines).join('\n');
    } catch {
      return '(no log)';
    }
  }

  /** Stops the process (SIGTERM, SIGKILL after 10 s) and removes its storage. */
  async stop(): Promise<void> {
    if (this.process.exitCode === null && this.process.signalCode === null) {
      this.process.kill('SIGTERM');
      const stopped = await Promise.race([this.exited.then(() => true), sleep(10_000).then(() => false)]);
      if (!stopped) {
        this.process.kill('SIGKILL');
        await this.exited;
      }
    }
    rmSync(this.dir, { recursive: true, force: true });
  }
}

function seriesOf(data: QueryData): Series[] {
  const finite = (values: string[]) => values.map(Number).filter(Number.isFinite);
  switch (data.resultType) {
    case 'matrix':
      return data.result.map((s) => ({ metric: s.metric, values: finite(s.values.map(([, v]) => v)) }));
    case 'vector':
      return data.result.map((s) => ({ metric: s.metric, values: finite([s.value[1]]) }));
    default:
      return [{ metric: {}, values: finite([data.result[1]]) }];
  }
}
