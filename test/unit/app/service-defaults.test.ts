import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import { pino } from 'pino';
import {
  AvroSerde,
  clickhouse,
  count,
  minutes,
  RetriableError,
  tributary,
  tumbling,
  validated,
} from '../../../src/index.js';
import type { UsageEvent } from '../../../examples/metering/usage-event.js';
import { usageEventV1 } from '../serde/fixtures.js';
import { closedPort } from '../../helpers/ports.js';

const VARIABLES = ['TRIBUTARY_CLICKHOUSE_URL', 'TRIBUTARY_SCHEMA_REGISTRY_URL'] as const;
const saved = new Map(VARIABLES.map((name) => [name, process.env[name]]));
let clickhouseUrl: string;
let registryUrl: string;
before(async () => {
  clickhouseUrl = `http://127.0.0.1:${await closedPort()}`;
  registryUrl = `http://127.0.0.1:${await closedPort()}`;
  // Set in code below; a variable would override that.
  for (const name of VARIABLES) delete process.env[name];
});
after(() => {
  for (const [name, value] of saved) {
    if (value === undefined) delete process.env[name];
    else process.env[name] = value;
  }
});

test("the App hands its ClickHouse and registry settings to the topology's sinks and serdes", async () => {
  const app = tributary({
    appId: 'service-defaults',
    handleSignals: false,
    clickhouse: { url: clickhouseUrl },
    schemaRegistry: { url: registryUrl },
  });
  const serde = new AvroSerde<UsageEvent>({ readerSchema: usageEventV1 });
  app
    .stream(
      'usage-events',
      validated(serde, () => true),
    )
    .groupBy((event) => event.subject)
    .window(tumbling(minutes(1)))
    .aggregate({ count: count() })
    .to(clickhouse({ table: 'usage_1m', logger: pino({ level: 'silent' }), retry: { maxElapsedMs: 0 } }));
  const topology = app.topology();

  assert.equal(serde.registry.url, registryUrl);
  await assert.rejects(serde.registry.getSchemaById(1), (error: unknown) => {
    assert.ok(error instanceof RetriableError);
    assert.match(error.message, new RegExp(`schema registry at ${registryUrl} is unreachable`));
    return true;
  });

  const [sink] = topology.sinks;
  assert.ok(sink);
  const writer = await sink.spec.open({
    appId: 'service-defaults',
    ...(sink.schema ? { schema: sink.schema } : {}),
  });
  const windowStart = Date.UTC(2024, 4, 1);
  await assert.rejects(
    writer.write([
      {
        windowStart,
        windowEnd: windowStart + 60_000,
        key: 'acme',
        value: { count: 1 },
        version: 1,
        partition: 0,
      },
    ]),
    new RegExp(`at ${clickhouseUrl} failed`),
  );
  await writer.close();
});
