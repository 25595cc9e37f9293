import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import { pino } from 'pino';
import { clickhouse, finalTotalsQuery, type ClickHouseSinkOptions } from '../../../src/sinks/clickhouse.js';
import type { Column, ResultSchema, SinkWriter } from '../../../src/core/sink.js';
import type { WindowResult } from '../../../src/core/records.js';
import {
  CLICKHOUSE_TEST_URL,
  createTestDatabase,
  startTcpProxy,
  type TestDatabase,
} from '../../helpers/clickhouse.js';

interface UsageKey {
  subject: string;
  meter: string;
}
interface UsageValue {
  count: number;
  total: number;
  min: number;
  max: number;
  avg: number;
  latency: { p50: number; p99: number };
}
type UsageRow = WindowResult<UsageKey, UsageValue>;

const schema: ResultSchema = {
  valueColumns: [
    { name: 'count', type: 'Int64' },
    { name: 'total', type: 'Float64' },
    { name: 'min', type: 'Float64' },
    { name: 'max', type: 'Float64' },
    { name: 'avg', type: 'Float64' },
    { name: 'latency_p50', type: 'Float64' },
    { name: 'latency_p99', type: 'Float64' },
  ],
};
const keyColumns: Column[] = [
  { name: 'subject', type: 'String' },
  { name: 'meter', type: 'String' },
];

const silent = pino({ level: 'silent' });
const WINDOW = Date.UTC(2024, 4, 1, 12, 0, 0);
const MINUTE = 60_000;

function usage(overrides: Omit<Partial<UsageRow>, 'value'> & { value?: Partial<UsageValue> } = {}): UsageRow {
  const { value, ...rest } = overrides;
  return {
    windowStart: WINDOW,
    windowEnd: WINDOW + MINUTE,
    key: { subject: 'acme', meter: 'api_calls' },
    version: 1,
    partition: 0,
    ...rest,
    value: { count: 4, total: 10, min: 1, max: 4, avg: 2.5, latency: { p50: 12.5, p99: 80 }, ...value },
  };
}

let db: TestDatabase;
before(async () => {
  db = await createTestDatabase('clickhouse_sink');
});
after(async () => {
  await db.drop();
});

async function openSink(
  table: string,
  options: Partial<ClickHouseSinkOptions> = {},
  sinkSchema: ResultSchema | undefined = schema,
): Promise<SinkWriter<UsageRow>> {
  const spec = clickhouse<UsageKey, UsageValue>({
    table,
    database: db.name,
    url: CLICKHOUSE_TEST_URL,
    keyColumns,
    logger: silent,
    ...options,
  });
  return spec.open(sinkSchema === undefined ? { appId: 'test' } : { appId: 'test', schema: sinkSchema });
}

test('open creates the table from the schema and key columns, with the totals view', async () => {
  const writer = await openSink('created');
  await writer.close();
  const columns = await db.query<{ name: string; type: string }>(
    `SELECT name, type FROM system.columns WHERE database = '${db.name}' AND table = 'created'`,
  );
  assert.deepEqual(
    columns.map((column) => `${column.name} ${column.type}`),
    [
      'window_start DateTime',
      'window_end DateTime',
      'subject String',
      'meter String',
      'count Int64',
      'total Float64',
      'min Float64',
      'max Float64',
      'avg Float64',
      'latency_p50 Float64',
      'latency_p99 Float64',
      'partition UInt32',
      'version UInt64',
    ],
  );
  const tables = await db.query<{ name: string; engine: string; create_table_query: string }>(
    `SELECT name, engine, create_table_query FROM system.tables WHERE database = '${db.name}' ORDER BY name`,
  );
  const table = tables.find((row) => row.name === 'created');
  assert.equal(table?.engine, 'ReplacingMergeTree');
  assert.match(table.create_table_query, /ORDER BY \(subject, meter, window_start, partition\)/);
  assert.match(table.create_table_query, /PARTITION BY toYYYYMM\(window_start\)/);
  assert.equal(tables.find((row) => row.name === 'created_totals')?.engine, 'View');

  // Opening again over the existing table is fine.
  await (await openSink('created')).close();
});

test('rows are inserted and read back exactly, nested outputs flattened', async () => {
  const writer = await openSink('readback');
  const rows = [
    usage(),
    usage({
      key: { subject: 'globex', meter: 'storage_gb' },
      partition: 3,
      version: 2,
      value: { total: 0.125 },
    }),
    usage({
      windowStart: WINDOW + MINUTE,
      windowEnd: WINDOW + 2 * MINUTE,
      value: { latency: { p50: 1.5, p99: Infinity } },
    }),
  ];
  await writer.write(rows);
  await writer.close();
  const stored = await db.query<Record<string, unknown>>(
    `SELECT toUnixTimestamp(window_start) AS ws, toUnixTimestamp(window_end) AS we, subject, meter, count, total,
            min, max, avg, latency_p50, toString(latency_p99) AS p99, partition, version
     FROM ${db.name}.readback ORDER BY subject, ws`,
  );
  assert.deepEqual(stored, [
    {
      ws: WINDOW / 1000,
      we: (WINDOW + MINUTE) / 1000,
      subject: 'acme',
      meter: 'api_calls',
      count: '4',
      total: 10,
      min: 1,
      max: 4,
      avg: 2.5,
      latency_p50: 12.5,
      p99: '80',
      partition: 0,
      version: '1',
    },
    {
      ws: (WINDOW + MINUTE) / 1000,
      we: (WINDOW + 2 * MINUTE) / 1000,
      subject: 'acme',
      meter: 'api_calls',
      count: '4',
      total: 10,
      min: 1,
      max: 4,
      avg: 2.5,
      latency_p50: 1.5,
      p99: 'inf',
      partition: 0,
      version: '1',
    },
    {
      ws: WINDOW / 1000,
      we: (WINDOW + MINUTE) / 1000,
      subject: 'globex',
      meter: 'storage_gb',
      count: '4',
      total: 0.125,
      min: 1,
      max: 4,
      avg: 2.5,
      latency_p50: 12.5,
      p99: '80',
      partition: 3,
      version: '2',
    },
  ]);
});

async function totalsOf(table: string): Promise<Array<Record<string, unknown>>> {
  return db.query<Record<string, unknown>>(
    `SELECT toUnixTimestamp(window_start) AS ws, subject, meter, toInt64(count) AS n, total, min, max, avg,
            latency_p50, latency_p99
     FROM ${db.name}.${table}_totals ORDER BY subject, meter, ws`,
  );
}

test('replaying the same rows leaves the final totals unchanged', async () => {
  const writer = await openSink('replay');
  const rows = [
    usage(),
    usage({ partition: 1, value: { count: 6, total: 30 } }),
    usage({ key: { subject: 'globex', meter: 'api_calls' } }),
  ];
  await writer.write(rows);
  const first = await totalsOf('replay');
  await writer.write(rows);
  await writer.write(rows.slice(1));
  assert.deepEqual(await totalsOf('replay'), first);
  // Even after ClickHouse merges the parts.
  await db.command(`OPTIMIZE TABLE ${db.name}.replay FINAL`);
  assert.deepEqual(await totalsOf('replay'), first);
  const [raw] = await db.query<{ n: string }>(`SELECT count() AS n FROM ${db.name}.replay`);
  assert.equal(Number(raw?.n), 3);
  await writer.close();
});

test('version 2 of a row replaces version 1, in whichever order they arrive', async () => {
  const writer = await openSink('versions');
  await writer.write([usage({ version: 1, value: { count: 4, total: 10 } })]);
  await writer.write([usage({ version: 2, value: { count: 5, total: 17 } })]);
  await writer.write([usage({ version: 1, value: { count: 4, total: 10 } })]); // a late replay of v1
  await writer.close();
  const rows = await totalsOf('versions');
  assert.equal(rows.length, 1);
  assert.equal(Number(rows[0]?.n), 5);
  assert.equal(rows[0]?.total, 17);
});

test('rows of one window and key from several partitions are combined by the view and finalTotalsQuery', async () => {
  const writer = await openSink('partitions');
  await writer.write([
    usage({
      partition: 0,
      value: { count: 2, total: 5, min: 1, max: 4, avg: 2.5, latency: { p50: 10, p99: 40 } },
    }),
    usage({
      partition: 1,
      value: { count: 6, total: 30, min: 2, max: 9, avg: 5, latency: { p50: 20, p99: 100 } },
    }),
    usage({
      partition: 2,
      value: { count: 2, total: 5, min: 0.5, max: 3, avg: 2.5, latency: { p50: 10, p99: 40 } },
    }),
    // Superseded by version 2 below: must not count.
    usage({ partition: 3, version: 1, value: { count: 100, total: 1000, min: -5, max: 500, avg: 10 } }),
    usage({
      partition: 3,
      version: 2,
      value: { count: 10, total: 40, min: 1, max: 7, avg: 4, latency: { p50: 5, p99: 9 } },
    }),
  ]);
  await writer.close();
  const expected = {
    ws: WINDOW / 1000,
    subject: 'acme',
    meter: 'api_calls',
    n: '20',
    total: 80,
    min: 0.5,
    max: 9,
    avg: (2 * 2.5 + 6 * 5 + 2 * 2.5 + 10 * 4) / 20,
    latency_p50: (2 * 10 + 6 * 20 + 2 * 10 + 10 * 5) / 20,
    latency_p99: (2 * 40 + 6 * 100 + 2 * 40 + 10 * 9) / 20,
  };
  assert.deepEqual(await totalsOf('partitions'), [expected]);

  const sql = finalTotalsQuery(
    { database: db.name, table: 'partitions' },
    { keyColumns, valueColumns: schema.valueColumns },
  );
  const viaQuery = await db.query<Record<string, unknown>>(
    `SELECT toUnixTimestamp(window_start) AS ws, subject, meter, toInt64(count) AS n, total, min, max, avg,
            latency_p50, latency_p99 FROM (${sql})`,
  );
  assert.deepEqual(viaQuery, [expected]);
});

test('an existing table with other columns is refused with the differences listed', async () => {
  await db.command(
    `CREATE TABLE ${db.name}.mismatch (window_start DateTime, window_end DateTime, subject String, meter UInt32,
       count Int64, total Float64, extra String, partition UInt32, version UInt64)
     ENGINE = ReplacingMergeTree(version) ORDER BY (subject, window_start, partition)`,
  );
  await assert.rejects(openSink('mismatch'), (error: Error) => {
    assert.match(error.message, new RegExp(`table ${db.name}\\.mismatch at http://127\\.0\\.0\\.1:8123`));
    assert.match(error.message, /column meter is UInt32, expected String/);
    assert.match(error.message, /missing column min Float64/);
    assert.match(error.message, /missing column latency_p99 Float64/);
    assert.match(error.message, /unexpected column extra String/);
    return true;
  });
});

test('a table with a non-replacing engine is refused', async () => {
  await db.command(
    `CREATE TABLE ${db.name}.plain (window_start DateTime, window_end DateTime, subject String, meter String,
       count Int64, total Float64, min Float64, max Float64, avg Float64, latency_p50 Float64, latency_p99 Float64,
       partition UInt32, version UInt64)
     ENGINE = MergeTree() PARTITION BY toYYYYMM(window_start) ORDER BY (subject, meter, window_start, partition)`,
  );
  await assert.rejects(openSink('plain'), /uses engine MergeTree, not ReplacingMergeTree/);
});

test('createTable: false refuses a missing table', async () => {
  await assert.rejects(openSink('absent', { createTable: false }), /does not exist .* createTable is false/);
});

test('key columns are inferred from the first row when not given', async () => {
  const spec = clickhouse<number, { count: number }>({
    table: 'inferred',
    database: db.name,
    url: CLICKHOUSE_TEST_URL,
    logger: silent,
  });
  const writer = await spec.open({
    appId: 'test',
    schema: { valueColumns: [{ name: 'count', type: 'UInt64' }] },
  });
  await writer.write([
    {
      windowStart: WINDOW,
      windowEnd: WINDOW + MINUTE,
      key: 42,
      value: { count: 3 },
      version: 1,
      partition: 0,
    },
  ]);
  await writer.close();
  const columns = await db.query<{ name: string; type: string }>(
    `SELECT name, type FROM system.columns WHERE database = '${db.name}' AND table = 'inferred'`,
  );
  assert.deepEqual(
    columns.map((column) => `${column.name} ${column.type}`),
    [
      'window_start DateTime',
      'window_end DateTime',
      'key Int64',
      'count UInt64',
      'partition UInt32',
      'version UInt64',
    ],
  );
  assert.deepEqual(await db.query(`SELECT key, count FROM ${db.name}.inferred`), [{ key: '42', count: '3' }]);
});

test('a row that does not fit the table rejects the write without retrying', async () => {
  const writer = await openSink('shape', { retry: { maxElapsedMs: 60_000 } });
  const bad = usage();
  (bad.value as unknown as Record<string, unknown>).surprise = 1;
  await assert.rejects(
    writer.write([bad]),
    /value does not match the table's value columns: unexpected surprise/,
  );
  await assert.rejects(
    writer.write([usage({ windowStart: WINDOW + 1 })]),
    /windowStart \d+ is not a whole number of seconds/,
  );
  await writer.close();
});

test('each write is one insert of all its rows', async () => {
  // What ClickHouse received, from its query log (scripts/stack/clickhouse-config.xml enables the
  // table; this sink's queries ask to be logged), not what the sink says it did.
  const writer = await openSink('one_insert_per_write', {
    url: `${CLICKHOUSE_TEST_URL}?clickhouse_setting_log_queries=1`,
  });
  await writer.write([usage({ key: { subject: 'a', meter: 'm' } })]);
  await writer.write(
    Array.from({ length: 12_000 }, (_, index) => usage({ key: { subject: `s${index}`, meter: 'm' } })),
  );
  await writer.close();
  assert.deepEqual(await insertsReceived('one_insert_per_write'), [
    { outcome: 'finished', rows: 1 },
    { outcome: 'finished', rows: 12_000 },
  ]);
  const [count] = await db.query<{ n: string }>(`SELECT count() AS n FROM ${db.name}.one_insert_per_write`);
  assert.equal(Number(count?.n), 12_001);
});

/**
 * Every INSERT into `table` of this file's database that ClickHouse logged (system.query_log), by
 * rows written, fewest first: `finished`, or `failed` for one that raised an exception.
 */
async function insertsReceived(table: string): Promise<Array<{ outcome: string; rows: number }>> {
  await db.command('SYSTEM FLUSH LOGS');
  const [queryLog] = await db.query<{ n: string }>(
    `SELECT count() AS n FROM system.tables WHERE database = 'system' AND name = 'query_log'`,
  );
  assert.equal(
    Number(queryLog?.n),
    1,
    'system.query_log exists (the server runs with the query_log section of scripts/stack/clickhouse-config.xml)',
  );
  // `type` is a number on 18.16 (1 start, 2 finish, 3-4 exceptions) and an Enum8 of those names later.
  const entries = await db.query<{ type: string; rows: string }>(
    `SELECT toString(type) AS type, written_rows AS rows FROM system.query_log ` +
      `WHERE query LIKE 'INSERT INTO %' ` +
      `AND position(query, '${db.name}') > 0 AND position(query, '${table}') > 0 ` +
      `ORDER BY written_rows, event_time`,
  );
  return entries
    .filter((entry) => entry.type !== '1' && entry.type !== 'QueryStart')
    .map((entry) => ({
      outcome: entry.type === '2' || entry.type === 'QueryFinish' ? 'finished' : 'failed',
      rows: Number(entry.rows),
    }));
}

test('write() retries while ClickHouse is unreachable and succeeds once it is back', async () => {
  const proxy = await startTcpProxy();
  const retries: number[] = [];
  const logger = pino(
    { level: 'warn' },
    {
      write(line: string) {
        const entry = JSON.parse(line) as { attempt?: number };
        if (entry.attempt !== undefined) retries.push(entry.attempt);
      },
    },
  );
  const writer = await openSink('outage', {
    url: proxy.url,
    logger,
    retry: { maxElapsedMs: 20_000, initialDelayMs: 50, maxDelayMs: 300 },
  });
  await writer.write([usage({ partition: 0 })]);
  await proxy.stop();
  const pending = writer.write([usage({ partition: 1 })]);
  await new Promise((resolve) => setTimeout(resolve, 1_500));
  await proxy.start();
  await pending;
  await writer.close();
  await proxy.stop();
  assert.ok(retries.length >= 3, `expected several retries, saw ${retries.length}`);
  const [row] = await totalsOf('outage');
  assert.equal(Number(row?.n), 8);
});

test('write() gives up after retry.maxElapsedMs with a message naming table and URL, not the password', async () => {
  const proxy = await startTcpProxy();
  const password = 'hunter2-secret';
  // The table must exist first: open() goes through the proxy with the real (empty) password.
  await (await openSink('unreachable')).close();
  await proxy.stop();
  const writer = await openSink('unreachable', {
    url: `http://default:${password}@127.0.0.1:${proxy.port}/`,
    keyColumns: undefined, // defer the table check to the first write
    retry: { maxElapsedMs: 1_500, initialDelayMs: 50, maxDelayMs: 200 },
  });
  const startedAt = Date.now();
  await assert.rejects(writer.write([usage()]), (error: Error) => {
    assert.match(
      error.message,
      new RegExp(
        `table ${db.name}\\.unreachable at http://127\\.0\\.0\\.1:${proxy.port} failed after \\d+ attempts`,
      ),
    );
    assert.match(error.message, /ECONNREFUSED/);
    assert.ok(!error.message.includes(password), error.message);
    assert.ok(!error.message.includes('default:'), error.message);
    return true;
  });
  const elapsed = Date.now() - startedAt;
  assert.ok(elapsed >= 1_400 && elapsed < 5_000, `gave up after ${elapsed} ms`);
  await writer.close();
});
