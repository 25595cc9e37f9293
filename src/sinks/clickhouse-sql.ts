/**
 * Every piece of SQL the ClickHouse sink emits lives here, so one file answers "does this run on
 * ClickHouse 18.16 (Debian, CI) and on 24.x (docker-compose)?".
 *
 * ## The table
 *
 *   CREATE TABLE IF NOT EXISTS `db`.`usage_1m` (
 *     `window_start` DateTime, `window_end` DateTime,
 *     `subject` String, `meter` String,                      -- key columns
 *     `count` Int64, `total` Float64, `latency_p99` Float64,   -- value columns (ResultSchema order)
 *     `partition` UInt32, `version` UInt64
 *   ) ENGINE = ReplacingMergeTree(`version`)
 *   PARTITION BY toYYYYMM(`window_start`)
 *   ORDER BY (`subject`, `meter`, `window_start`, `partition`)
 *
 * A replay after a crash inserts the same rows with the same versions: ReplacingMergeTree keeps one
 * row per sorting key (the highest version), so replays change nothing once read with FINAL or argMax.
 * Rows of one (window, key) computed by different source partitions keep distinct sorting keys and are
 * combined only at read time, by the totals query.
 *
 * ## The final totals (query and view `<table>_totals`)
 *
 *   SELECT `window_start`, any(`v__window_end`) AS `window_end`, `subject`, `meter`,
 *          sum(`v__count`) AS `count`,
 *          min(`v__latency_min`) AS `latency_min`,
 *          sum(`v__latency_avg` * `v__count`) / sum(`v__count`) AS `latency_avg`
 *   FROM (SELECT `window_start`, `window_end` AS `v__window_end`, `subject`, `meter`,
 *                `count` AS `v__count`, ... FROM `db`.`usage_1m` FINAL)
 *   GROUP BY `window_start`, `subject`, `meter`
 *
 * FINAL collapses replays and superseded versions; the outer GROUP BY merges source partitions. The
 * inner query renames the aggregated columns (`v__…`) because ClickHouse aliases are query-global:
 * `sum(count) AS count` next to `sum(x * count)` would otherwise read as an aggregate inside an
 * aggregate (old analyzer) or a self-reference (new analyzer, 24.x). Checked
 * on 18.16: FINAL inside a view's subquery works, so no argMax fallback is needed.
 *
 * How each value column merges across partitions comes from its name (override with `totals`):
 *   count, *_count, sum, *_sum, total, *_total     -> sum
 *   min, *_min / max, *_max                        -> min / max
 *   avg, *_avg, mean, *_mean                       -> average weighted by the count column, if any
 *   p50, *_p99, median, *_median, quantile*        -> the same weighted average: an APPROXIMATION, since
 *                                                     quantiles of parts do not give the quantile of the whole
 *   other numbers -> sum; strings -> any
 * The weight of `<prefix>_avg` is `<prefix>_count` when present, else `count`, else the first `*_count`.
 *
 * ## Portability notes (18.16 vs 24.x)
 * - `DateTime` in seconds; no DateTime64, Map, LowCardinality, query parameters or
 *   insert_deduplication_token, none of which 18.16 has.
 * - Literals are inlined with escaping because 18.16 has no `{name:Type}` query parameters.
 * - 18.16 has no CREATE OR REPLACE VIEW, so the view is created IF NOT EXISTS and never altered.
 */
import type { Column, TotalsMerge } from '../core/sink.js';

/** A table in a database. */
export interface QualifiedTable {
  database: string;
  table: string;
}

/** How a value column is combined across source partitions by the totals query. */
export type { TotalsMerge };

/** Everything that decides the table's columns. */
export interface TableLayout {
  keyColumns: readonly Column[];
  valueColumns: readonly Column[];
}

/** Columns the sink adds around the key and value columns; a key or value may not use these names. */
export const WINDOW_START_COLUMN = 'window_start';
export const WINDOW_END_COLUMN = 'window_end';
export const PARTITION_COLUMN = 'partition';
export const VERSION_COLUMN = 'version';
export const RESERVED_COLUMN_NAMES: ReadonlySet<string> = new Set([
  WINDOW_START_COLUMN,
  WINDOW_END_COLUMN,
  PARTITION_COLUMN,
  VERSION_COLUMN,
]);

/** Prefix of the renamed value columns inside the totals query (see the header comment). */
const INNER_PREFIX = 'v__';

/** Quotes an identifier with backticks (18.16 and 24.x both accept them). */
export function quoteIdentifier(name: string): string {
  return '`' + name.replace(/\\/g, '\\\\').replace(/`/g, '\\`') + '`';
}

/** A single-quoted string literal. */
export function quoteString(value: string): string {
  return "'" + value.replace(/\\/g, '\\\\').replace(/'/g, "\\'") + "'";
}

export function qualifiedName(target: QualifiedTable): string {
  return `${quoteIdentifier(target.database)}.${quoteIdentifier(target.table)}`;
}

export function totalsViewName(table: string): string {
  return `${table}_totals`;
}

/** All columns of the table, in table order. */
export function tableColumns(layout: TableLayout): Column[] {
  return [
    { name: WINDOW_START_COLUMN, type: 'DateTime' },
    { name: WINDOW_END_COLUMN, type: 'DateTime' },
    ...layout.keyColumns,
    ...layout.valueColumns,
    { name: PARTITION_COLUMN, type: 'UInt32' },
    { name: VERSION_COLUMN, type: 'UInt64' },
  ];
}

/** Throws when names collide with each other or with the sink's own columns. */
export function validateLayout(layout: TableLayout): void {
  const problems: string[] = [];
  const seen = new Map<string, string>();
  const check = (column: Column, role: string): void => {
    if (column.name.length === 0) problems.push(`a ${role} column has an empty name`);
    if (RESERVED_COLUMN_NAMES.has(column.name)) {
      problems.push(`${role} column "${column.name}" clashes with a column the sink adds`);
    }
    const earlier = seen.get(column.name);
    if (earlier !== undefined) problems.push(`${role} column "${column.name}" is also a ${earlier} column`);
    seen.set(column.name, role);
  };
  layout.keyColumns.forEach((column) => check(column, 'key'));
  layout.valueColumns.forEach((column) => check(column, 'value'));
  if ([...layout.keyColumns, ...layout.valueColumns].some((column) => column.name.startsWith(INNER_PREFIX))) {
    problems.push(`column names may not start with "${INNER_PREFIX}" (used by the totals query)`);
  }
  if (problems.length > 0) throw new Error(`invalid ClickHouse table layout: ${problems.join('; ')}`);
}

export function createDatabaseSql(database: string): string {
  return `CREATE DATABASE IF NOT EXISTS ${quoteIdentifier(database)}`;
}

export function createTableSql(target: QualifiedTable, layout: TableLayout): string {
  validateLayout(layout);
  const columns = tableColumns(layout)
    .map((column) => `${quoteIdentifier(column.name)} ${column.type}`)
    .join(', ');
  const sortingKey = [
    ...layout.keyColumns.map((column) => column.name),
    WINDOW_START_COLUMN,
    PARTITION_COLUMN,
  ]
    .map(quoteIdentifier)
    .join(', ');
  return (
    `CREATE TABLE IF NOT EXISTS ${qualifiedName(target)} (${columns}) ` +
    `ENGINE = ReplacingMergeTree(${quoteIdentifier(VERSION_COLUMN)}) ` +
    `PARTITION BY toYYYYMM(${quoteIdentifier(WINDOW_START_COLUMN)}) ` +
    `ORDER BY (${sortingKey})`
  );
}

/** Columns of an existing table, from system.columns. */
export function describeColumnsSql(target: QualifiedTable): string {
  return (
    `SELECT name, type, default_kind FROM system.columns ` +
    `WHERE database = ${quoteString(target.database)} AND table = ${quoteString(target.table)}`
  );
}

export function tableEngineSql(target: QualifiedTable): string {
  return (
    `SELECT engine FROM system.tables ` +
    `WHERE database = ${quoteString(target.database)} AND name = ${quoteString(target.table)}`
  );
}

export function databaseExistsSql(database: string): string {
  return `SELECT name FROM system.databases WHERE name = ${quoteString(database)}`;
}

/** A column as ClickHouse reports it. `defaultKind` is '' for plain columns, else DEFAULT/MATERIALIZED/ALIAS. */
export interface ExistingColumn {
  name: string;
  type: string;
  defaultKind: string;
}

/**
 * Differences between the columns the sink needs and those of an existing table, one line each;
 * empty when the table fits. Extra columns that have a default (DEFAULT, MATERIALIZED, ALIAS) are
 * tolerated: inserts never name them, so they cannot break the sink.
 */
export function diffColumns(expected: readonly Column[], existing: readonly ExistingColumn[]): string[] {
  const existingByName = new Map(existing.map((column) => [column.name, column]));
  const expectedNames = new Set(expected.map((column) => column.name));
  const differences: string[] = [];
  for (const column of expected) {
    const found = existingByName.get(column.name);
    if (found === undefined) differences.push(`missing column ${column.name} ${column.type}`);
    else if (found.type !== column.type) {
      differences.push(`column ${column.name} is ${found.type}, expected ${column.type}`);
    }
  }
  for (const column of existing) {
    if (!expectedNames.has(column.name) && column.defaultKind === '') {
      differences.push(`unexpected column ${column.name} ${column.type}`);
    }
  }
  return differences;
}

const SUM_NAME = /(^|_)(count|cnt|sum|total)$/;
const MIN_NAME = /(^|_)min$/;
const MAX_NAME = /(^|_)max$/;
const AVERAGE_NAME = /(^|_)(avg|mean|median|p\d+|q\d+|quantile\w*)$/;
const COUNT_NAME = /(^|_)count$/;

/** How a value column merges across partitions when the caller gave no explicit rule. */
export function inferTotalsMerge(column: Column): TotalsMerge {
  if (column.type === 'String') return 'any';
  if (column.type === 'DateTime') return 'max';
  if (SUM_NAME.test(column.name)) return 'sum';
  if (MIN_NAME.test(column.name)) return 'min';
  if (MAX_NAME.test(column.name)) return 'max';
  if (AVERAGE_NAME.test(column.name)) return 'avg';
  return 'sum';
}

/** The count column that weights an average column, or undefined for a plain average. */
export function weightColumnFor(column: Column, valueColumns: readonly Column[]): Column | undefined {
  const counts = valueColumns.filter(
    (candidate) => COUNT_NAME.test(candidate.name) && candidate.type !== 'String',
  );
  // A count() output under another name (`events: count()`): the only UInt64 column that sums.
  if (counts.length === 0) {
    counts.push(
      ...valueColumns.filter((candidate) => candidate.type === 'UInt64' && candidate.merge === 'sum'),
    );
  }
  const separator = column.name.lastIndexOf('_');
  const prefix = separator > 0 ? column.name.slice(0, separator) : undefined;
  return (
    (prefix === undefined ? undefined : counts.find((candidate) => candidate.name === `${prefix}_count`)) ??
    counts.find((candidate) => candidate.name === 'count') ??
    counts[0]
  );
}

export interface TotalsOptions {
  /** Explicit merge rules by value column name; the rest are inferred from their names. */
  totals?: Readonly<Record<string, TotalsMerge>>;
}

/**
 * Final totals per (window_start, key) across source partitions, reading each row's latest version.
 * See the header comment for the merge rules.
 */
export function finalTotalsQuery(
  target: QualifiedTable,
  layout: TableLayout,
  options: TotalsOptions = {},
): string {
  validateLayout(layout);
  const inner = (name: string): string => quoteIdentifier(INNER_PREFIX + name);
  const keyNames = layout.keyColumns.map((column) => quoteIdentifier(column.name));
  const windowStart = quoteIdentifier(WINDOW_START_COLUMN);
  const windowEnd = quoteIdentifier(WINDOW_END_COLUMN);

  const innerColumns = [
    windowStart,
    `${windowEnd} AS ${inner(WINDOW_END_COLUMN)}`,
    ...keyNames,
    ...layout.valueColumns.map((column) => `${quoteIdentifier(column.name)} AS ${inner(column.name)}`),
  ];
  const outerColumns = [
    windowStart,
    `any(${inner(WINDOW_END_COLUMN)}) AS ${windowEnd}`,
    ...keyNames,
    ...layout.valueColumns.map((column) => {
      const merge = options.totals?.[column.name] ?? column.merge ?? inferTotalsMerge(column);
      return `${mergeExpression(column, merge, layout.valueColumns, inner)} AS ${quoteIdentifier(column.name)}`;
    }),
  ];
  return (
    `SELECT ${outerColumns.join(', ')} ` +
    `FROM (SELECT ${innerColumns.join(', ')} FROM ${qualifiedName(target)} FINAL) ` +
    `GROUP BY ${[windowStart, ...keyNames].join(', ')}`
  );
}

function mergeExpression(
  column: Column,
  merge: TotalsMerge,
  valueColumns: readonly Column[],
  inner: (name: string) => string,
): string {
  const value = inner(column.name);
  switch (merge) {
    case 'sum':
    case 'min':
    case 'max':
    case 'any':
      return `${merge}(${value})`;
    case 'avg': {
      const weight = weightColumnFor(column, valueColumns);
      if (weight === undefined) return `avg(${value})`;
      const weightValue = inner(weight.name);
      return `sum(${value} * ${weightValue}) / sum(${weightValue})`;
    }
  }
}

export function createTotalsViewSql(
  target: QualifiedTable,
  layout: TableLayout,
  options: TotalsOptions = {},
): string {
  const view = { database: target.database, table: totalsViewName(target.table) };
  return `CREATE VIEW IF NOT EXISTS ${qualifiedName(view)} AS ${finalTotalsQuery(target, layout, options)}`;
}
