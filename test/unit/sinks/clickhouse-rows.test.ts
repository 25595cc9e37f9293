import assert from 'node:assert/strict';
import { test } from 'node:test';
import {
  encodeCell,
  flattenFields,
  inferKeyColumns,
  RowShapeError,
  toInsertRow,
} from '../../../src/sinks/clickhouse-rows.js';
import type { TableLayout } from '../../../src/sinks/clickhouse-sql.js';

const WINDOW = Date.UTC(2024, 4, 1, 12, 0, 0);

const layout: TableLayout = {
  keyColumns: [
    { name: 'subject', type: 'String' },
    { name: 'meter', type: 'String' },
  ],
  valueColumns: [
    { name: 'count', type: 'Int64' },
    { name: 'total', type: 'Float64' },
    { name: 'latency_p50', type: 'Float64' },
    { name: 'latency_p99', type: 'Float64' },
  ],
};

test('flattenFields joins nested names with _ and names a primitive', () => {
  assert.deepEqual(
    [...flattenFields({ count: 1, latency: { p50: 2, p99: 3 } }, 'value')],
    [
      ['count', 1],
      ['latency_p50', 2],
      ['latency_p99', 3],
    ],
  );
  assert.deepEqual([...flattenFields(7, 'key')], [['key', 7]]);
});

test('key columns are inferred from a key', () => {
  assert.deepEqual(inferKeyColumns({ subject: 'a', shard: 3, ratio: 0.5, active: true, big: 5n }), [
    { name: 'subject', type: 'String' },
    { name: 'shard', type: 'Int64' },
    { name: 'ratio', type: 'Float64' },
    { name: 'active', type: 'UInt8' },
    { name: 'big', type: 'Int64' },
  ]);
  assert.deepEqual(inferKeyColumns('acme'), [{ name: 'key', type: 'String' }]);
  assert.throws(
    () => inferKeyColumns({ subject: null }),
    /cannot infer the ClickHouse type of key field "subject"/,
  );
});

test('toInsertRow flattens a window result into table columns', () => {
  const row = toInsertRow(
    {
      windowStart: WINDOW,
      windowEnd: WINDOW + 60_000,
      key: { subject: 'acme', meter: 'api' },
      value: { count: 4, total: 2.5, latency: { p50: 10, p99: 99.5 } },
      version: 2,
      partition: 7,
    },
    layout,
  );
  assert.deepEqual(row, {
    window_start: WINDOW / 1000,
    window_end: WINDOW / 1000 + 60,
    subject: 'acme',
    meter: 'api',
    count: 4,
    total: 2.5,
    latency_p50: 10,
    latency_p99: 99.5,
    partition: 7,
    version: 2,
  });
  assert.equal(JSON.stringify(row).includes('null'), false);
});

test('a primitive key or value fills the single column there is', () => {
  const row = toInsertRow(
    { windowStart: 0, windowEnd: 1000, key: 42, value: 9, version: 1, partition: 0 },
    { keyColumns: [{ name: 'tenant_id', type: 'Int64' }], valueColumns: [{ name: 'count', type: 'UInt64' }] },
  );
  assert.equal(row.tenant_id, 42);
  assert.equal(row.count, 9);
});

test('rows that do not fit the layout are rejected with the window and key named', () => {
  const base = {
    windowStart: WINDOW,
    windowEnd: WINDOW + 60_000,
    key: { subject: 'acme', meter: 'api' },
    value: { count: 4, total: 2.5, latency: { p50: 10, p99: 99.5 } },
    version: 1,
    partition: 0,
  };
  assert.throws(
    () => toInsertRow({ ...base, value: { count: 4, total: 1, latency: { p50: 1 }, extra: 1 } }, layout),
    (error: Error) =>
      error instanceof RowShapeError &&
      /value does not match the table's value columns: missing latency_p99; unexpected extra/.test(
        error.message,
      ) &&
      error.message.includes(`window ${WINDOW}`) &&
      error.message.includes('"subject":"acme"'),
  );
  assert.throws(() => toInsertRow({ ...base, key: { subject: 'acme' } }, layout), /key .*missing meter/);
  assert.throws(
    () => toInsertRow({ ...base, windowStart: WINDOW + 500 }, layout),
    /not a whole number of seconds/,
  );
  assert.throws(
    () => toInsertRow({ ...base, version: 0.5 }, layout),
    /column version UInt64 cannot hold number 0.5/,
  );
  assert.throws(() => toInsertRow({ ...base, partition: -1 }, layout), /column partition UInt32 cannot hold/);
});

test('cells are encoded the way ClickHouse JSONEachRow parses them', () => {
  assert.equal(encodeCell(NaN, { name: 'x', type: 'Float64' }), 'nan');
  assert.equal(encodeCell(Infinity, { name: 'x', type: 'Float64' }), 'inf');
  assert.equal(encodeCell(-Infinity, { name: 'x', type: 'Float64' }), '-inf');
  assert.equal(encodeCell(3n, { name: 'x', type: 'Float64' }), 3);
  assert.equal(encodeCell(true, { name: 'x', type: 'UInt8' }), 1);
  assert.equal(encodeCell(false, { name: 'x', type: 'UInt8' }), 0);
  assert.equal(encodeCell(9_223_372_036_854_775_807n, { name: 'x', type: 'Int64' }), '9223372036854775807');
  assert.equal(
    encodeCell(18_446_744_073_709_551_615n, { name: 'x', type: 'UInt64' }),
    '18446744073709551615',
  );
  assert.equal(encodeCell(-5n, { name: 'x', type: 'Int64' }), -5);
  assert.equal(encodeCell(WINDOW + 999, { name: 'x', type: 'DateTime' }), WINDOW / 1000);
  assert.equal(encodeCell(new Date(WINDOW), { name: 'x', type: 'DateTime' }), WINDOW / 1000);
  assert.throws(() => encodeCell(-1n, { name: 'x', type: 'UInt64' }), RowShapeError);
  assert.throws(() => encodeCell(256, { name: 'x', type: 'UInt8' }), RowShapeError);
  assert.throws(() => encodeCell(2.5, { name: 'x', type: 'Int64' }), RowShapeError);
  assert.throws(() => encodeCell(1, { name: 'x', type: 'String' }), /column x String cannot hold number 1/);
  assert.throws(() => encodeCell(undefined, { name: 'x', type: 'Float64' }), /cannot hold undefined/);
  assert.throws(() => encodeCell(null, { name: 'x', type: 'Float64' }), /cannot hold object null/);
});

test('sketch bucket arrays are encoded as JSON arrays of finite values and whole counts', () => {
  assert.deepEqual(encodeCell([-2.5, 0, 10.1], { name: 'v', type: 'Array(Float64)' }), [-2.5, 0, 10.1]);
  assert.deepEqual(encodeCell([3, 1, 2], { name: 'c', type: 'Array(UInt64)' }), [3, 1, 2]);
  assert.deepEqual(encodeCell([], { name: 'c', type: 'Array(UInt64)' }), []);
  assert.throws(() => encodeCell([1, NaN], { name: 'v', type: 'Array(Float64)' }), RowShapeError);
  assert.throws(() => encodeCell([1.5], { name: 'c', type: 'Array(UInt64)' }), RowShapeError);
  assert.throws(() => encodeCell([-1], { name: 'c', type: 'Array(UInt64)' }), RowShapeError);
  assert.throws(
    () => encodeCell('[1]', { name: 'c', type: 'Array(UInt64)' }),
    /column c Array\(UInt64\) cannot hold/,
  );
});
