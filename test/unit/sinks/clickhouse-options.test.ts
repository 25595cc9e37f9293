import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import { pino } from 'pino';
import { clickhouse, type ClickHouseSinkOptions } from '../../../src/sinks/clickhouse.js';
import type { WindowResult } from '../../../src/core/records.js';
import type { ServiceDefaults } from '../../../src/core/services.js';
import { closedPort } from '../../helpers/ports.js';

const silent = pino({ level: 'silent' });
const valueColumns = [{ name: 'count', type: 'Int64' as const }];
const row: WindowResult<string, { count: number }> = {
  windowStart: Date.UTC(2024, 4, 1),
  windowEnd: Date.UTC(2024, 4, 1) + 60_000,
  key: 'k',
  value: { count: 1 },
  version: 1,
  partition: 0,
};
/** As a JavaScript caller (or a spread of parsed JSON) would pass them: no excess-property check. */
const untyped = (options: object) => options as ClickHouseSinkOptions;

let fromApp: string;
let fromEnv: string;
let explicit: string;
const savedEnv = process.env.TRIBUTARY_CLICKHOUSE_URL;
before(async () => {
  fromApp = `http://127.0.0.1:${await closedPort()}`;
  fromEnv = `http://127.0.0.1:${await closedPort()}`;
  explicit = `http://127.0.0.1:${await closedPort()}`;
  process.env.TRIBUTARY_CLICKHOUSE_URL = fromEnv;
});
after(() => {
  if (savedEnv === undefined) delete process.env.TRIBUTARY_CLICKHOUSE_URL;
  else process.env.TRIBUTARY_CLICKHOUSE_URL = savedEnv;
});

/** The URL a sink writes to, read from the message of a write that fails (nothing listens there). */
async function urlWrittenTo(options: Partial<ClickHouseSinkOptions>, defaults?: ServiceDefaults) {
  const spec = clickhouse<string, { count: number }>({
    table: 'usage_1m',
    valueColumns,
    logger: silent,
    retry: { maxElapsedMs: 0 },
    ...options,
  });
  if (defaults) spec.useServiceDefaults?.(defaults);
  const writer = await spec.open({ appId: 'a' });
  try {
    await writer.write([row]);
  } catch (error) {
    return /at (http:\/\/[^ ]+)/.exec(String(error))?.[1];
  } finally {
    await writer.close();
  }
  throw new Error('the write should have failed');
}

test('the sink writes to the App-given ClickHouse, not to TRIBUTARY_CLICKHOUSE_URL read on its own', async () => {
  const defaults = { clickhouse: { url: fromApp }, schemaRegistry: { url: 'http://unused' } };
  assert.equal(await urlWrittenTo({}, defaults), fromApp);
});

test('an explicit url wins over the App-given one', async () => {
  const defaults = { clickhouse: { url: fromApp }, schemaRegistry: { url: 'http://unused' } };
  assert.equal(await urlWrittenTo({ url: explicit }, defaults), explicit);
});

test('an unknown option fails where the sink is declared, naming the closest valid one', () => {
  assert.throws(
    () => clickhouse(untyped({ tabel: 'usage_1m', valueColumns })),
    /clickhouse sink: unknown option "tabel" \(did you mean "table"\?\)/,
  );
  assert.throws(
    () => clickhouse(untyped({ table: 'usage_1m', retry: { maxElapsedMS: 1000 } })),
    /clickhouse sink retry: unknown option "maxElapsedMS" \(did you mean "maxElapsedMs"\?\)/,
  );
});

test('the removed batch option fails with the reason', () => {
  assert.throws(
    () => clickhouse(untyped({ table: 'usage_1m', batch: { maxRows: 5 } })),
    /clickhouse sink: option "batch" no longer exists: .*outputs\.batchSize/,
  );
});
