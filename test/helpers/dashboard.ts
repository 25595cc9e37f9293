/**
 * The Grafana dashboard of deploy/grafana/ as the tests read it: its panels' PromQL, and Grafana's
 * template variables substituted the way Grafana does before it sends a query to Prometheus.
 */
import { readFileSync } from 'node:fs';
import { resolve } from 'node:path';

export const repoRoot = resolve(import.meta.dirname, '../..');
export const DASHBOARD_FILE = 'deploy/grafana/dashboards/tributary.json';

export interface DataSourceRef {
  type: string;
  uid: string;
}

export interface DashboardTarget {
  refId: string;
  expr: string;
  legendFormat?: string;
  /** Grafana evaluates the target at the end of the time range only (a stat or bar gauge). */
  instant?: boolean;
  datasource?: DataSourceRef;
}

export interface DashboardPanel {
  id: number;
  type: string;
  title: string;
  /** Place on Grafana's 24-column grid. */
  gridPos: { x: number; y: number; w: number; h: number };
  datasource?: DataSourceRef;
  targets?: DashboardTarget[];
  /** A collapsed row holds its panels here. */
  panels?: DashboardPanel[];
}

export interface TemplateVariable {
  name: string;
  type: string;
  query?: string | { query: string };
  multi?: boolean;
  includeAll?: boolean;
  allValue?: string;
}

export interface Dashboard {
  uid: string;
  title: string;
  panels: DashboardPanel[];
  templating: { list: TemplateVariable[] };
}

export function loadDashboard(): Dashboard {
  return JSON.parse(readFileSync(resolve(repoRoot, DASHBOARD_FILE), 'utf8')) as Dashboard;
}

/** Every panel that shows data: rows left out, the panels of collapsed rows included. */
export function dataPanels(dashboard: Dashboard): DashboardPanel[] {
  return dashboard.panels.flatMap((panel) => (panel.type === 'row' ? (panel.panels ?? []) : [panel]));
}

export interface PanelQuery {
  panel: string;
  refId: string;
  expr: string;
  instant: boolean;
}

/** One entry per target of every data panel. */
export function panelQueries(dashboard: Dashboard): PanelQuery[] {
  return dataPanels(dashboard).flatMap((panel) =>
    (panel.targets ?? []).map((target) => ({
      panel: panel.title,
      refId: target.refId,
      expr: target.expr,
      instant: target.instant === true,
    })),
  );
}

/** Grafana's own variables, which it fills in from the time range and the data source. */
export const GRAFANA_BUILTINS = ['__rate_interval', '__interval', '__interval_ms', '__range', '__range_s'];

const VARIABLE = /\$\{(\w+)(?::\w+)?\}|\$(\w+)|\[\[(\w+)\]\]/g;

/** The names of the variables a query uses (`$name`, `${name}`, `[[name]]`). */
export function variablesIn(text: string): string[] {
  return [...text.matchAll(VARIABLE)].map((match) => (match[1] ?? match[2] ?? match[3]) as string);
}

/** A value as Grafana writes it into a regex matcher (`=~"$app"`): regex characters escaped. */
export function regexEscaped(value: string): string {
  return value.replace(/[\\^$.*+?()[\]{}|]/g, '\\$&');
}

/**
 * The query with every variable replaced by its value, taken as is. A variable without a value
 * throws: Grafana would send it literally and the panel would show nothing.
 */
export function substitute(text: string, values: Record<string, string>): string {
  return text.replace(VARIABLE, (whole, braced?: string, plain?: string, bracketed?: string) => {
    const name = (braced ?? plain ?? bracketed) as string;
    const value = values[name];
    if (value === undefined) throw new Error(`no value for the variable ${whole} in ${text}`);
    return value;
  });
}

/** A query variable's `label_values(<selector>, <label>)`, split in its two parts. */
export function labelValuesQuery(variable: TemplateVariable): { selector: string; label: string } {
  const query = typeof variable.query === 'string' ? variable.query : variable.query?.query;
  const match = /^label_values\((.+),\s*(\w+)\)$/.exec(query ?? '');
  if (!match)
    throw new Error(`variable ${variable.name}: not a label_values(selector, label) query: ${query}`);
  return { selector: match[1] as string, label: match[2] as string };
}
