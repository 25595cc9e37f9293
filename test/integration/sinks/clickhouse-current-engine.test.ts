/**
 * Every statement the ClickHouse sink issues, run on a current ClickHouse engine (chdb, 26.x, in
 * process): DDL and its checks, the totals view, inserts of rows from the real row encoder, replays,
 * re-emits with higher versions and the FINAL reads of the totals. The same SQL runs on 18.16 over
 * HTTP in clickhouse.test.ts and clickhouse-quantiles.test.ts. chdb has no server and no ZooKeeper, so
 * the cluster statements are only parsed here; they run on a real 18.16 cluster in test/cluster/.
 */
import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import type { WindowResult } from '../../../src/core/records.js';
import type { Column } from '../../../src/core/sink.js';
import { inferKeyColumns, toInsertRow } from '../../../src/sinks/clickhouse-rows.js';
import {
  createDatabaseSql,
  createTablesSql,
  createTotalsViewSql,
  databaseExistsSql,
  describeColumnsSql,
  diffColumns,
  finalTotalsQuery,
  qualifiedName,
  tableColumns,
  tableEngineSql,
  type ExistingColumn,
  type TableLayout,
} from '../../../src/sinks/clickhouse-sql.js';
import { avg, count, max, min, quantiles, sum } from '../../../src/topology/aggregators.js';
import { loadCurrentEngine, type CurrentEngine } from '../../helpers/chdb.js';
import {
  assertTotalsWithinAccuracy,
  quantileScenario,
  scenarioTotalsQuery,
} from '../../helpers/quantile-scenario.js';

const loaded = await loadCurrentEngine();
const skip = 'skip' in loaded ? loaded.skip : false;
let engine: CurrentEngine;
before(() => {
  if ('engine' in loaded) engine = loaded.engine;
});
after(() => {
  if ('engine' in loaded) loaded.engine.close();
});

const DATABASE = 'tributary_current';
const WINDOW = Date.UTC(2024, 4, 1, 12, 0, 0);
const MINUTE = 60_000;

// The aggregators of the metering job, with a user-chosen quantile list.
const aggregators = {
  count: count(),
  total: sum((v: number) => v),
  low: min((v: number) => v),
  high: max((v: number) => v),
  mean: avg((v: number) => v),
  latency: quantiles((v: number) => v, { quantiles: [0.5, 0.95, 0.999] }),
};
type Key = { subject: string; meter: string };

/** One window result per partition, folding `values` with the real aggregators. */
function windowResult(
  key: Key,
  partition: number,
  values: readonly number[],
  version = 1,
): WindowResult<Key, Record<string, unknown>> {
  const value: Record<string, unknown> = {};
  for (const [name, aggregator] of Object.entries(aggregators)) {
    let accumulator: unknown = aggregator.init();
    for (const v of values)
      accumulator = (aggregator.add as (a: unknown, v: number) => unknown)(accumulator, v);
    value[name] = (aggregator.result as (a: unknown) => unknown)(accumulator);
  }
  return { windowStart: WINDOW, windowEnd: WINDOW + MINUTE, key, value, partition, version };
}

const keyColumns = inferKeyColumns({ subject: 'acme', meter: 'api_calls' });
const valueColumns: Column[] = Object.entries(aggregators).flatMap(([name, aggregator]) =>
  aggregator.columns(name),
);
const layout: TableLayout = { keyColumns, valueColumns };

function existingColumns(table: string): ExistingColumn[] {
  return engine
    .query<{ name: string; type: string; default_kind: string }>(
      describeColumnsSql({ database: DATABASE, table }),
    )
    .map((row) => ({ name: row.name, type: row.type, defaultKind: row.default_kind }));
}

/** What the sink does in open(): the same statements, in the same order. */
function prepareTable(table: string, tableLayout: TableLayout): void {
  const target = { database: DATABASE, table };
  if (engine.query(databaseExistsSql(DATABASE)).length === 0) engine.command(createDatabaseSql(DATABASE));
  if (existingColumns(table).length === 0) {
    for (const statement of createTablesSql(target, tableLayout)) engine.command(statement);
  }
  assert.deepEqual(diffColumns(tableColumns(tableLayout), existingColumns(table)), []);
  const [row] = engine.query<{ engine: string }>(tableEngineSql(target));
  assert.equal(row?.engine, 'ReplacingMergeTree');
  engine.command(createTotalsViewSql(target, tableLayout));
}

test('the current engine is a current ClickHouse', { skip }, (t) => {
  t.diagnostic(`chdb engine ${engine.version}`);
  assert.ok(Number(engine.version.split('.')[0]) >= 24, `version ${engine.version}`);
});

test(
  'DDL: database, table and totals view are created, read back as the sink expects, and re-created harmlessly',
  {
    skip,
  },
  () => {
    prepareTable('ddl', layout);
    prepareTable('ddl', layout); // a second open() over the existing objects
    const target = { database: DATABASE, table: 'ddl' };
    for (const statement of [createDatabaseSql(DATABASE), ...createTablesSql(target, layout)]) {
      engine.command(statement);
    }
    const tables = engine.query<{ name: string; engine: string }>(
      `SELECT name, engine FROM system.tables WHERE database = '${DATABASE}' AND name LIKE 'ddl%' ORDER BY name`,
    );
    assert.deepEqual(tables, [
      { name: 'ddl', engine: 'ReplacingMergeTree' },
      { name: 'ddl_totals', engine: 'View' },
    ]);
  },
);

test(
  'rows from the real row encoder: inserts, replays and re-emits with a higher version give exact FINAL totals',
  {
    skip,
  },
  () => {
    prepareTable('usage', layout);
    const target = { database: DATABASE, table: 'usage' };
    const acme = { subject: 'acme', meter: 'api_calls' };
    const globex = { subject: 'globex', meter: 'api_calls' };
    const parts = {
      acme: [
        [12, 15, 11, 300],
        [9, 14],
        [13, 13, 16, 20, 1200],
      ],
      globex: [[5], [7, 8]],
    };
    const first = [
      ...parts.acme.map((values, partition) => windowResult(acme, partition, values)),
      ...parts.globex.map((values, partition) => windowResult(globex, partition, values)),
    ];
    const encode = (rows: typeof first) => rows.map((row) => toInsertRow(row, layout));
    engine.insert(qualifiedName(target), encode(first));
    // A crash between insert and ack: the runtime writes the same rows, same versions, again.
    engine.insert(qualifiedName(target), encode(first));
    // A late event re-emits partition 1 of globex with version 2.
    parts.globex[1] = [7, 8, 100];
    engine.insert(qualifiedName(target), encode([windowResult(globex, 1, [7, 8, 100], 2)]));

    const stored = engine.query<{ n: string }>(
      `SELECT toString(count()) AS n FROM ${qualifiedName(target)} FINAL`,
    );
    assert.deepEqual(stored, [{ n: '5' }]);
    const totals = engine.query<Record<string, unknown>>(
      `SELECT subject, toString(count) AS n, total, low, high, mean, latency_p50, latency_p95, latency_p99_9, ` +
        `latency_sketch_counts FROM ${DATABASE}.usage_totals ORDER BY subject`,
    );
    // The same query as the view, run directly, gives the same rows.
    assert.deepEqual(
      engine.query(`SELECT * FROM (${finalTotalsQuery(target, layout)}) ORDER BY subject`),
      engine.query(`SELECT * FROM ${DATABASE}.usage_totals ORDER BY subject`),
    );
    const expected = (values: number[]) => {
      const sorted = [...values].sort((a, b) => a - b);
      const at = (q: number) => sorted[Math.floor(q * (sorted.length - 1))] as number;
      return { n: values.length, total: values.reduce((a, b) => a + b, 0), sorted, at };
    };
    for (const [subject, partitions] of Object.entries(parts)) {
      const row = totals.find((candidate) => candidate['subject'] === subject);
      const want = expected(partitions.flat());
      assert.ok(row !== undefined, subject);
      assert.equal(row['n'], String(want.n), `${subject} count`);
      assert.equal(row['total'], want.total, `${subject} total`);
      assert.equal(row['low'], want.sorted[0]);
      assert.equal(row['high'], want.sorted.at(-1));
      assert.ok(Math.abs((row['mean'] as number) - want.total / want.n) < 1e-9, `${subject} mean`);
      assert.equal(
        (row['latency_sketch_counts'] as string[]).map(Number).reduce((a, b) => a + b, 0),
        want.n,
      );
      for (const [column, q] of [
        ['latency_p50', 0.5],
        ['latency_p95', 0.95],
        ['latency_p99_9', 0.999],
      ] as const) {
        const exact = want.at(q);
        assert.ok(
          Math.abs((row[column] as number) - exact) <= 0.01 * exact * (1 + 1e-9),
          `${subject} ${column}`,
        );
      }
    }
  },
);

test(
  'cells the encoder writes as strings or numbers read back exactly (64-bit integers, nan, inf, DateTime)',
  {
    skip,
  },
  () => {
    const cells: TableLayout = {
      keyColumns: [{ name: 'id', type: 'Int64' }],
      valueColumns: [
        { name: 'big', type: 'UInt64', merge: 'sum' },
        { name: 'ratio', type: 'Float64', merge: 'max' },
        { name: 'flag', type: 'UInt8', merge: 'max' },
      ],
    };
    prepareTable('cells', cells);
    const row = (id: bigint, big: bigint, ratio: number, flag: boolean) =>
      toInsertRow(
        {
          windowStart: WINDOW,
          windowEnd: WINDOW + MINUTE,
          key: id,
          value: { big, ratio, flag },
          partition: 0,
          version: 1,
        },
        cells,
      );
    engine.insert(`${DATABASE}.cells`, [
      row(2n ** 62n + 1n, 2n ** 63n + 7n, NaN, true),
      row(-5n, 1n, Infinity, false),
      row(6n, 3n, -Infinity, true),
    ]);
    assert.deepEqual(
      engine.query(
        `SELECT toString(id) AS id, toString(big) AS big, toString(ratio) AS ratio, flag, ` +
          `toUnixTimestamp(window_start) AS ws FROM ${DATABASE}.cells FINAL ORDER BY id`,
      ),
      [
        { id: '-5', big: '1', ratio: 'inf', flag: 0, ws: WINDOW / 1000 },
        { id: '4611686018427387905', big: '9223372036854775815', ratio: 'nan', flag: 1, ws: WINDOW / 1000 },
        { id: '6', big: '3', ratio: '-inf', flag: 1, ws: WINDOW / 1000 },
      ],
    );
  },
);

test(
  'quantiles in <table>_totals, per (window, key) over 8 partitions, are within the sketch accuracy of the exact ones',
  {
    skip,
  },
  () => {
    const scenario = quantileScenario();
    const scenarioLayout = { keyColumns: scenario.keyColumns, valueColumns: scenario.schema.valueColumns };
    prepareTable('quantiles', scenarioLayout);
    const rows = scenario.rows.map((row) => toInsertRow(row, scenarioLayout));
    engine.insert(`${DATABASE}.quantiles`, rows.slice(0, 100));
    engine.insert(`${DATABASE}.quantiles`, rows); // the first 100 twice: a replay
    assertTotalsWithinAccuracy(scenario, engine.query(scenarioTotalsQuery(DATABASE, 'quantiles')));
  },
);

test(
  'the cluster statements parse on the current engine (they run on a real 18.16 cluster in test/cluster/)',
  {
    skip,
  },
  () => {
    const target = { database: DATABASE, table: 'clustered' };
    const placement = { cluster: 'tributary_cluster' };
    for (const statement of [
      createDatabaseSql(DATABASE, placement),
      ...createTablesSql(target, layout, placement),
      createTotalsViewSql(target, layout, placement),
    ]) {
      const ast = engine.query<{ explain: string }>(`EXPLAIN AST ${statement}`);
      assert.ok(ast.length > 0 && ast[0]?.explain.startsWith('Create'), statement);
    }
  },
);
