import assert from 'node:assert/strict';
import { test } from 'node:test';
import {
  createDatabaseSql,
  createTablesSql,
  createTableSql,
  createTotalsViewSql,
  diffColumns,
  finalTotalsQuery,
  inferTotalsMerge,
  quoteIdentifier,
  quoteString,
  storageTable,
  tableColumns,
  validateLayout,
  weightColumnFor,
  type TableLayout,
} from '../../../src/sinks/clickhouse-sql.js';
import type { Column } from '../../../src/core/sink.js';

const target = { database: 'metering', table: 'usage_1m' };
const layout: TableLayout = {
  keyColumns: [
    { name: 'subject', type: 'String' },
    { name: 'meter', type: 'String' },
  ],
  valueColumns: [
    { name: 'count', type: 'Int64' },
    { name: 'total', type: 'Float64' },
    { name: 'latency_p99', type: 'Float64' },
  ],
};

test('createTableSql builds a ReplacingMergeTree(version) table ordered by key, window start and partition', () => {
  assert.equal(
    createTableSql(target, layout),
    'CREATE TABLE IF NOT EXISTS `metering`.`usage_1m` (`window_start` DateTime, `window_end` DateTime, ' +
      '`subject` String, `meter` String, `count` Int64, `total` Float64, `latency_p99` Float64, ' +
      '`partition` UInt32, `version` UInt64) ENGINE = ReplacingMergeTree(`version`) ' +
      'PARTITION BY toYYYYMM(`window_start`) ORDER BY (`subject`, `meter`, `window_start`, `partition`)',
  );
});

test('the emitted SQL avoids what ClickHouse 18.16 lacks', () => {
  const all = [createTableSql(target, layout), createTotalsViewSql(target, layout)].join('\n');
  for (const missingIn1816 of [
    'DateTime64',
    'Map(',
    'LowCardinality',
    'insert_deduplication_token',
    'OR REPLACE',
    '{',
  ]) {
    assert.ok(!all.includes(missingIn1816), `uses ${missingIn1816}`);
  }
});

test('tableColumns puts the sink columns around key and value columns', () => {
  assert.deepEqual(
    tableColumns(layout).map((column) => column.name),
    [
      'window_start',
      'window_end',
      'subject',
      'meter',
      'count',
      'total',
      'latency_p99',
      'partition',
      'version',
    ],
  );
});

test('identifiers and strings are quoted and escaped', () => {
  assert.equal(quoteIdentifier('we`ird\\name'), '`we\\`ird\\\\name`');
  assert.equal(quoteString("it's \\ fine"), "'it\\'s \\\\ fine'");
});

test('validateLayout refuses reserved, duplicate and empty names', () => {
  assert.throws(
    () => validateLayout({ keyColumns: [{ name: 'partition', type: 'String' }], valueColumns: [] }),
    /key column "partition" clashes with a column the sink adds/,
  );
  assert.throws(
    () =>
      validateLayout({
        keyColumns: [{ name: 'count', type: 'String' }],
        valueColumns: [{ name: 'count', type: 'Int64' }],
      }),
    /value column "count" is also a key column/,
  );
  assert.throws(
    () => validateLayout({ keyColumns: [], valueColumns: [{ name: 'v__x', type: 'Int64' }] }),
    /may not start with "v__"/,
  );
});

test('merge rules are inferred from column names', () => {
  const merge = (name: string, type: Column['type'] = 'Float64'): string => inferTotalsMerge({ name, type });
  assert.equal(merge('count', 'Int64'), 'sum');
  assert.equal(merge('error_count', 'Int64'), 'sum');
  assert.equal(merge('total'), 'sum');
  assert.equal(merge('bytes_sum'), 'sum');
  assert.equal(merge('min'), 'min');
  assert.equal(merge('latency_min'), 'min');
  assert.equal(merge('max'), 'max');
  assert.equal(merge('avg'), 'avg');
  assert.equal(merge('latency_mean'), 'avg');
  assert.equal(merge('latency_p99'), 'avg');
  assert.equal(merge('median'), 'avg');
  assert.equal(merge('bytes'), 'sum');
  assert.equal(merge('region', 'String'), 'any');
  // "maximum" is not "max": only whole name segments count.
  assert.equal(merge('maximum'), 'sum');
});

test('an average is weighted by its own count, else by count, else by the first *_count', () => {
  const columns: Column[] = [
    { name: 'error_count', type: 'Int64' },
    { name: 'count', type: 'Int64' },
    { name: 'latency_count', type: 'Int64' },
    { name: 'latency_avg', type: 'Float64' },
    { name: 'size_avg', type: 'Float64' },
  ];
  assert.equal(weightColumnFor({ name: 'latency_avg', type: 'Float64' }, columns)?.name, 'latency_count');
  assert.equal(weightColumnFor({ name: 'size_avg', type: 'Float64' }, columns)?.name, 'count');
  assert.equal(weightColumnFor({ name: 'avg', type: 'Float64' }, columns.slice(0, 1))?.name, 'error_count');
  assert.equal(weightColumnFor({ name: 'avg', type: 'Float64' }, []), undefined);
});

test('finalTotalsQuery reads FINAL rows and merges partitions per window and key', () => {
  const sql = finalTotalsQuery(
    target,
    {
      keyColumns: layout.keyColumns,
      valueColumns: [
        { name: 'count', type: 'Int64' },
        { name: 'total', type: 'Float64' },
        { name: 'min', type: 'Float64' },
        { name: 'max', type: 'Float64' },
        { name: 'avg', type: 'Float64' },
        { name: 'latency_p99', type: 'Float64' },
        { name: 'last_seen', type: 'Float64' },
      ],
    },
    { totals: { last_seen: 'max' } },
  );
  assert.equal(
    sql,
    'SELECT `window_start`, any(`v__window_end`) AS `window_end`, `subject`, `meter`, ' +
      'sum(`v__count`) AS `count`, sum(`v__total`) AS `total`, min(`v__min`) AS `min`, max(`v__max`) AS `max`, ' +
      'sum(`v__avg` * `v__count`) / sum(`v__count`) AS `avg`, ' +
      'sum(`v__latency_p99` * `v__count`) / sum(`v__count`) AS `latency_p99`, ' +
      'max(`v__last_seen`) AS `last_seen` ' +
      'FROM (SELECT `window_start`, `window_end` AS `v__window_end`, `subject`, `meter`, ' +
      '`count` AS `v__count`, `total` AS `v__total`, ' +
      '`min` AS `v__min`, `max` AS `v__max`, `avg` AS `v__avg`, `latency_p99` AS `v__latency_p99`, ' +
      '`last_seen` AS `v__last_seen` FROM `metering`.`usage_1m` FINAL) ' +
      'GROUP BY `window_start`, `subject`, `meter`',
  );
});

test('without a count column an average stays a plain average', () => {
  const sql = finalTotalsQuery(target, { keyColumns: [], valueColumns: [{ name: 'avg', type: 'Float64' }] });
  assert.match(sql, /avg\(`v__avg`\) AS `avg`/);
});

test('the totals view is named <table>_totals and wraps the totals query', () => {
  const sql = createTotalsViewSql(target, layout);
  assert.ok(sql.startsWith('CREATE VIEW IF NOT EXISTS `metering`.`usage_1m_totals` AS SELECT '));
  assert.ok(sql.endsWith(finalTotalsQuery(target, layout)));
});

test('diffColumns lists missing, retyped and unexpected columns, tolerating extras with defaults', () => {
  const expected: Column[] = [
    { name: 'a', type: 'String' },
    { name: 'b', type: 'Int64' },
    { name: 'c', type: 'Float64' },
  ];
  assert.deepEqual(
    diffColumns(expected, [
      { name: 'a', type: 'String', defaultKind: '' },
      { name: 'b', type: 'UInt64', defaultKind: '' },
      { name: 'x', type: 'String', defaultKind: '' },
      { name: 'inserted_at', type: 'DateTime', defaultKind: 'DEFAULT' },
    ]),
    ['column b is UInt64, expected Int64', 'missing column c Float64', 'unexpected column x String'],
  );
  assert.deepEqual(
    diffColumns(
      expected,
      expected.map((column) => ({ ...column, defaultKind: '' })),
    ),
    [],
  );
});

test('the totals follow the aggregator of each column, not its name: peak: max() is a max, events: count() weights the average', () => {
  const sql = finalTotalsQuery(
    { database: 'db', table: 't' },
    {
      keyColumns: [{ name: 'subject', type: 'String' }],
      valueColumns: [
        { name: 'events', type: 'UInt64', merge: 'sum' },
        { name: 'peak', type: 'Float64', merge: 'max' },
        { name: 'floor', type: 'Float64', merge: 'min' },
        { name: 'typical', type: 'Float64', merge: 'avg' },
      ],
    },
  );
  assert.match(sql, /sum\(`v__events`\) AS `events`/);
  assert.match(sql, /max\(`v__peak`\) AS `peak`/);
  assert.match(sql, /min\(`v__floor`\) AS `floor`/);
  assert.match(sql, /sum\(`v__typical` \* `v__events`\) \/ sum\(`v__events`\) AS `typical`/);
});

const sketch = { values: 'latency_sketch_values', counts: 'latency_sketch_counts' };
const sketchLayout: TableLayout = {
  keyColumns: [{ name: 'subject', type: 'String' }],
  valueColumns: [
    { name: 'count', type: 'UInt64', merge: 'sum' },
    { name: 'latency_p99_9', type: 'Float64', merge: 'quantile', sketch, quantile: 0.999 },
    { name: 'latency_sketch_values', type: 'Array(Float64)', merge: 'buckets', sketch },
    { name: 'latency_sketch_counts', type: 'Array(UInt64)', merge: 'buckets', sketch },
  ],
};

test('quantile columns are read from the buckets of all partitions added up, the buckets are kept merged', () => {
  const query = finalTotalsQuery(target, sketchLayout);
  const merged = 'sumMap(`v__latency_sketch_values`, `v__latency_sketch_counts`)';
  assert.ok(
    query.includes(
      `arrayFirst((v__v, v__n) -> v__n > 0.999 * (arraySum(tupleElement(${merged}, 2)) - 1), ` +
        `tupleElement(${merged}, 1), arrayCumSum(tupleElement(${merged}, 2))) AS \`latency_p99_9\``,
    ),
    query,
  );
  assert.ok(query.includes(`tupleElement(${merged}, 1) AS \`latency_sketch_values\``), query);
  assert.ok(query.includes(`tupleElement(${merged}, 2) AS \`latency_sketch_counts\``), query);
});

test('sketch columns must name sketch columns that exist with the right types', () => {
  const broken: TableLayout = {
    keyColumns: sketchLayout.keyColumns,
    valueColumns: [
      { name: 'latency_p50', type: 'Float64', merge: 'quantile', sketch, quantile: 0.5 },
      { name: 'latency_sketch_values', type: 'Array(Float64)', merge: 'buckets', sketch },
    ],
  };
  assert.throws(() => createTableSql(target, broken), /sketch counts column "latency_sketch_counts"/);
  assert.throws(
    () => finalTotalsQuery(target, layout, { totals: { latency_p99: 'quantile' } }),
    /latency_p99.*names no sketch columns/,
  );
});

test('on a cluster: a replicated local table, a Distributed table sharded by key and window, all ON CLUSTER', () => {
  const placement = { cluster: 'metrics' };
  assert.deepEqual(createTablesSql(target, layout, placement), [
    'CREATE TABLE IF NOT EXISTS `metering`.`usage_1m_local` ON CLUSTER `metrics` (`window_start` DateTime, ' +
      '`window_end` DateTime, `subject` String, `meter` String, `count` Int64, `total` Float64, ' +
      '`latency_p99` Float64, `partition` UInt32, `version` UInt64) ENGINE = ReplicatedReplacingMergeTree(' +
      "'/clickhouse/tables/{shard}/metering.usage_1m_local', '{replica}', `version`) " +
      'PARTITION BY toYYYYMM(`window_start`) ORDER BY (`subject`, `meter`, `window_start`, `partition`)',
    'CREATE TABLE IF NOT EXISTS `metering`.`usage_1m` ON CLUSTER `metrics` (`window_start` DateTime, ' +
      '`window_end` DateTime, `subject` String, `meter` String, `count` Int64, `total` Float64, ' +
      '`latency_p99` Float64, `partition` UInt32, `version` UInt64) ' +
      "ENGINE = Distributed('metrics', 'metering', 'usage_1m_local', cityHash64(`subject`, `meter`, `window_start`))",
  ]);
  assert.equal(
    createDatabaseSql('metering', placement),
    'CREATE DATABASE IF NOT EXISTS `metering` ON CLUSTER `metrics`',
  );
  assert.ok(
    createTotalsViewSql(target, layout, placement).startsWith(
      'CREATE VIEW IF NOT EXISTS `metering`.`usage_1m_totals` ON CLUSTER `metrics` AS SELECT ',
    ),
  );
  assert.ok(createTotalsViewSql(target, layout, placement).includes('FROM `metering`.`usage_1m` FINAL'));
  assert.deepEqual(storageTable(target, placement), { database: 'metering', table: 'usage_1m_local' });
  assert.deepEqual(createTablesSql(target, layout), [createTableSql(target, layout)]);
});
