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
 * How each value column merges across partitions comes from the aggregator that produced it
 * (`Column.merge`), else from its name (override with `totals`):
 *   count, *_count, sum, *_sum, total, *_total     -> sum
 *   min, *_min / max, *_max                        -> min / max
 *   avg, *_avg, mean, *_mean                       -> average weighted by the count column, if any
 *   p50, *_p99, median, *_median, quantile*        -> the same weighted average: an APPROXIMATION, since
 *                                                     quantiles of parts do not give the quantile of the whole
 *   other numbers -> sum; strings -> any
 * The weight of `<prefix>_avg` is `<prefix>_count` when present, else `count`, else the first `*_count`.
 *
 * ## Exact quantiles across partitions
 *
 * A `quantiles()` aggregator stores its DDSketch as two array columns, `<name>_sketch_values`
 * (Array(Float64), each non-empty bucket's representative value, ascending) and `<name>_sketch_counts`
 * (Array(UInt64)). Equal values are the same bucket in every partition, so the totals add the buckets of
 * all partitions with `sumMap` (which also sorts them by value) and read each quantile from the merged
 * buckets the way DDSketch does: the value of the first bucket whose running count exceeds
 * q * (total - 1):
 *
 *   arrayFirst((v__v, v__n) -> v__n > 0.99 * (arraySum(tupleElement(sumMap(v, c), 2)) - 1),
 *              tupleElement(sumMap(v, c), 1), arrayCumSum(tupleElement(sumMap(v, c), 2))) AS `latency_p99`
 *
 * ClickHouse computes the repeated `sumMap(v, c)` once per group. The totals also carry the merged
 * `<name>_sketch_values` / `_counts`, so any other quantile can be read from them later. Checked on
 * 18.16 and on the current engine (chdb).
 *
 * ## Replicated clusters (`cluster` option)
 *
 * With a cluster name, every statement runs `ON CLUSTER` and the layout becomes:
 *   `<table>_local`  ReplicatedReplacingMergeTree('/clickhouse/tables/{shard}/<db>.<table>', '{replica}',
 *                    version), same columns and keys; `{shard}` and `{replica}` are the servers' macros.
 *   `<table>`        Distributed(cluster, db, `<table>_local`, cityHash64(key columns, window_start)): what
 *                    the sink inserts into and what readers query.
 *   `<table>_totals` the totals query over `<table>` (each shard applies FINAL to its local table, the
 *                    initiator merges the shards' partial aggregates).
 * The sharding key keeps every row of a (window, key), with its replays and re-emits, on one shard, so
 * FINAL on that shard sees all versions of a row. Why inserts go through the Distributed table: see
 * clickhouse.ts.
 *
 * ## Portability notes (18.16 vs 24.x)
 * - `DateTime` in seconds; no DateTime64, Map, LowCardinality, query parameters or
 *   insert_deduplication_token, none of which 18.16 has.
 * - Literals are inlined with escaping because 18.16 has no `{name:Type}` query parameters.
 * - 18.16 has no CREATE OR REPLACE VIEW, so the view is created IF NOT EXISTS and never altered.
 */
import type { Column, SketchColumns, TotalsMerge } from '../core/sink.js';

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

/** Where the tables live: one server, or the servers of a cluster (`remote_servers` in their config). */
export interface Placement {
  /** Cluster name: replicated local tables, a Distributed table and the totals view, all ON CLUSTER. */
  cluster?: string | undefined;
}

/** Name of the replicated table that stores the rows of `table` on each server of a cluster. */
export function localTableName(table: string): string {
  return `${table}_local`;
}

/** The table that holds the rows (a ReplacingMergeTree): the table itself, or its `_local` table on a cluster. */
export function storageTable(target: QualifiedTable, placement: Placement = {}): QualifiedTable {
  return placement.cluster === undefined ? target : { ...target, table: localTableName(target.table) };
}

function onCluster(placement: Placement): string {
  return placement.cluster === undefined ? '' : ` ON CLUSTER ${quoteIdentifier(placement.cluster)}`;
}

/** Problems with the sketch links of `quantile` and `buckets` columns, one line each. */
function sketchProblems(layout: TableLayout): string[] {
  const byName = new Map(layout.valueColumns.map((column) => [column.name, column]));
  const problems: string[] = [];
  for (const column of layout.valueColumns) {
    if (column.merge !== 'quantile' && column.merge !== 'buckets') continue;
    const sketch = column.sketch;
    if (sketch === undefined) {
      problems.push(`${column.merge} column "${column.name}" names no sketch columns`);
      continue;
    }
    if (byName.get(sketch.values)?.type !== 'Array(Float64)') {
      problems.push(`column "${column.name}" needs sketch values column "${sketch.values}" Array(Float64)`);
    }
    if (byName.get(sketch.counts)?.type !== 'Array(UInt64)') {
      problems.push(`column "${column.name}" needs sketch counts column "${sketch.counts}" Array(UInt64)`);
    }
    if (column.merge === 'quantile') {
      const quantile = column.quantile;
      if (quantile === undefined || !Number.isFinite(quantile) || quantile < 0 || quantile > 1) {
        problems.push(`quantile column "${column.name}" has no quantile from 0 to 1`);
      }
    } else if (column.name !== sketch.values && column.name !== sketch.counts) {
      problems.push(`buckets column "${column.name}" is neither of its sketch's columns`);
    }
  }
  return problems;
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
  problems.push(...sketchProblems(layout));
  if (problems.length > 0) throw new Error(`invalid ClickHouse table layout: ${problems.join('; ')}`);
}

export function createDatabaseSql(database: string, placement: Placement = {}): string {
  return `CREATE DATABASE IF NOT EXISTS ${quoteIdentifier(database)}${onCluster(placement)}`;
}

function columnDefinitions(layout: TableLayout): string {
  return tableColumns(layout)
    .map((column) => `${quoteIdentifier(column.name)} ${column.type}`)
    .join(', ');
}

/**
 * The table that stores the rows: a ReplacingMergeTree(version) on one server, or on a cluster the
 * ReplicatedReplacingMergeTree `<table>_local` on every server (see the header comment).
 */
export function createTableSql(
  target: QualifiedTable,
  layout: TableLayout,
  placement: Placement = {},
): string {
  validateLayout(layout);
  const sortingKey = [
    ...layout.keyColumns.map((column) => column.name),
    WINDOW_START_COLUMN,
    PARTITION_COLUMN,
  ]
    .map(quoteIdentifier)
    .join(', ');
  const version = quoteIdentifier(VERSION_COLUMN);
  const storage = storageTable(target, placement);
  const engine =
    placement.cluster === undefined
      ? `ReplacingMergeTree(${version})`
      : `ReplicatedReplacingMergeTree(` +
        `${quoteString(`/clickhouse/tables/{shard}/${storage.database}.${storage.table}`)}, '{replica}', ${version})`;
  return (
    `CREATE TABLE IF NOT EXISTS ${qualifiedName(storage)}${onCluster(placement)} (${columnDefinitions(layout)}) ` +
    `ENGINE = ${engine} ` +
    `PARTITION BY toYYYYMM(${quoteIdentifier(WINDOW_START_COLUMN)}) ` +
    `ORDER BY (${sortingKey})`
  );
}

/**
 * On a cluster: the Distributed table `<table>` over `<table>_local` on every server. Sharded by the key
 * and window start so that all rows of a (window, key), with their replays and re-emits, meet on one shard.
 */
export function createDistributedTableSql(
  target: QualifiedTable,
  layout: TableLayout,
  cluster: string,
): string {
  validateLayout(layout);
  const shardingKey = [...layout.keyColumns.map((column) => column.name), WINDOW_START_COLUMN]
    .map(quoteIdentifier)
    .join(', ');
  const local = storageTable(target, { cluster });
  return (
    `CREATE TABLE IF NOT EXISTS ${qualifiedName(target)}${onCluster({ cluster })} (${columnDefinitions(layout)}) ` +
    `ENGINE = Distributed(${quoteString(cluster)}, ${quoteString(local.database)}, ` +
    `${quoteString(local.table)}, cityHash64(${shardingKey}))`
  );
}

/** Every statement that creates the tables (not the database or the view), in order. */
export function createTablesSql(
  target: QualifiedTable,
  layout: TableLayout,
  placement: Placement = {},
): string[] {
  const statements = [createTableSql(target, layout, placement)];
  if (placement.cluster !== undefined) {
    statements.push(createDistributedTableSql(target, layout, placement.cluster));
  }
  return statements;
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
  if (column.type === 'String' || column.type.startsWith('Array(')) return 'any';
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
    case 'buckets': {
      const sketch = requireSketch(column, merge);
      return `tupleElement(${mergedBuckets(sketch, inner)}, ${column.name === sketch.values ? 1 : 2})`;
    }
    case 'quantile': {
      const sketch = requireSketch(column, merge);
      const quantile = column.quantile;
      if (quantile === undefined || !Number.isFinite(quantile) || quantile < 0 || quantile > 1) {
        throw new Error(`invalid ClickHouse table layout: quantile column "${column.name}" has no quantile`);
      }
      const buckets = mergedBuckets(sketch, inner);
      const counts = `tupleElement(${buckets}, 2)`;
      // DDSketch's rule: the first bucket whose running count exceeds q * (count - 1).
      const rank = `${quantile} * (arraySum(${counts}) - 1)`;
      // arrayFirst over (values, running counts), not arrayElement(values, arrayFirstIndex(...)): 18.16
      // formats arrayElement as `sumMap(...).1[i]` when it stores a view or sends ON CLUSTER DDL, and
      // cannot parse that text back.
      return `arrayFirst((${BUCKET_VALUE}, ${RUNNING_COUNT}) -> ${RUNNING_COUNT} > ${rank}, tupleElement(${buckets}, 1), arrayCumSum(${counts}))`;
    }
  }
}

/** Lambda parameters of the quantile expression; `v__` names cannot clash with a column. */
const BUCKET_VALUE = `${INNER_PREFIX}v`;
const RUNNING_COUNT = `${INNER_PREFIX}n`;

function requireSketch(column: Column, merge: TotalsMerge): SketchColumns {
  if (column.sketch === undefined) {
    throw new Error(
      `invalid ClickHouse table layout: column "${column.name}" merges as ${merge} but names no sketch columns`,
    );
  }
  return column.sketch;
}

/** The buckets of all partitions added up: a tuple (values ascending, counts). */
function mergedBuckets(sketch: SketchColumns, inner: (name: string) => string): string {
  return `sumMap(${inner(sketch.values)}, ${inner(sketch.counts)})`;
}

/** The view `<table>_totals`; on a cluster, on every server and over the Distributed table. */
export function createTotalsViewSql(
  target: QualifiedTable,
  layout: TableLayout,
  options: TotalsOptions & Placement = {},
): string {
  const view = { database: target.database, table: totalsViewName(target.table) };
  return (
    `CREATE VIEW IF NOT EXISTS ${qualifiedName(view)}${onCluster(options)} ` +
    `AS ${finalTotalsQuery(target, layout, options)}`
  );
}
