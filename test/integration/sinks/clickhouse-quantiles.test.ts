/**
 * Exact merged quantiles on ClickHouse 18.16 (the real server, through the real sink): per (window, key)
 * spread over 8 source partitions, every quantile in `<table>_totals` is within the sketch's relative
 * accuracy of the exact quantile of the raw values. The same scenario runs on the current engine in
 * clickhouse-current-engine.test.ts.
 */
import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import { pino } from 'pino';
import { clickhouse } from '../../../src/sinks/clickhouse.js';
import { CLICKHOUSE_TEST_URL, createTestDatabase, type TestDatabase } from '../../helpers/clickhouse.js';
import {
  assertTotalsWithinAccuracy,
  quantileScenario,
  scenarioTotalsQuery,
  type ScenarioKey,
  type ScenarioValue,
} from '../../helpers/quantile-scenario.js';

let db: TestDatabase;
before(async () => {
  db = await createTestDatabase('clickhouse_quantiles');
});
after(async () => {
  await db.drop();
});

test('quantiles in <table>_totals, per (window, key) over 8 partitions, are within the sketch accuracy of the exact ones', async () => {
  const scenario = quantileScenario();
  const writer = await clickhouse<ScenarioKey, ScenarioValue>({
    table: 'latency',
    database: db.name,
    url: CLICKHOUSE_TEST_URL,
    keyColumns: scenario.keyColumns,
    logger: pino({ level: 'silent' }),
  }).open({ appId: 'test', schema: scenario.schema });
  try {
    // Partition by partition, as the runtime delivers them; then a replay of the first partitions.
    for (let partition = 0; partition < 8; partition++) {
      await writer.write(scenario.rows.filter((row) => row.partition === partition));
    }
    await writer.write(scenario.rows.filter((row) => row.partition < 3));
  } finally {
    await writer.close();
  }
  const columns = await db.query<{ name: string; type: string }>(
    `SELECT name, type FROM system.columns WHERE database = '${db.name}' AND table = 'latency' AND name LIKE 'latency_sketch%'`,
  );
  assert.deepEqual(columns, [
    { name: 'latency_sketch_values', type: 'Array(Float64)' },
    { name: 'latency_sketch_counts', type: 'Array(UInt64)' },
  ]);
  assertTotalsWithinAccuracy(scenario, await db.query(scenarioTotalsQuery(db.name, 'latency')));
});
