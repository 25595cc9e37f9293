import assert from 'node:assert/strict';
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { after, before, test } from 'node:test';
import {
  avro,
  AvroSerde,
  createSchemaRegistryClient,
  InMemorySchemaRegistry,
  SchemaNotFoundError,
  validated,
  type AvroSerdeOptions,
  type SchemaRegistryConfig,
} from '../../../src/serde/index.js';
import type { ServiceDefaults } from '../../../src/core/services.js';
import { usageEventV1 } from './fixtures.js';

const appRegistry: ServiceDefaults = {
  clickhouse: { url: 'http://unused:8123' },
  schemaRegistry: { url: 'http://registry.app.example:8081', username: 'app', password: 'app-secret' },
};

const savedEnv = process.env.TRIBUTARY_SCHEMA_REGISTRY_URL;
before(() => {
  process.env.TRIBUTARY_SCHEMA_REGISTRY_URL = 'http://registry.env.example:8081';
});
after(() => {
  if (savedEnv === undefined) delete process.env.TRIBUTARY_SCHEMA_REGISTRY_URL;
  else process.env.TRIBUTARY_SCHEMA_REGISTRY_URL = savedEnv;
});

test('avro() uses the App-given registry, not TRIBUTARY_SCHEMA_REGISTRY_URL read on its own', () => {
  const serde = new AvroSerde({ readerSchema: usageEventV1 });
  serde.useServiceDefaults(appRegistry);
  assert.equal(serde.registry.url, 'http://registry.app.example:8081');
  assert.equal(new AvroSerde({}).registry.url, 'http://127.0.0.1:8081/apis/ccompat/v7');
});

test("avro()'s own registry wins, and the App's credentials are not sent to it", async () => {
  const own = new InMemorySchemaRegistry();
  const withClient = new AvroSerde({ registry: own });
  withClient.useServiceDefaults(appRegistry);
  assert.equal(withClient.registry, own);

  // A registry that knows no schema and remembers the Authorization header of each request.
  const authorizations: Array<string | undefined> = [];
  const server = createServer((request, response) => {
    authorizations.push(request.headers.authorization);
    response.writeHead(404, { 'content-type': 'application/json' });
    response.end(JSON.stringify({ error_code: 40403, message: 'Schema not found' }));
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const url = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  try {
    const viaApp = new AvroSerde({});
    viaApp.useServiceDefaults({ ...appRegistry, schemaRegistry: { ...appRegistry.schemaRegistry, url } });
    await assert.rejects(viaApp.registry.getSchemaById(1), SchemaNotFoundError);
    const ownUrl = new AvroSerde({ registry: { url } });
    ownUrl.useServiceDefaults(appRegistry);
    assert.equal(ownUrl.registry.url, url);
    await assert.rejects(ownUrl.registry.getSchemaById(1), SchemaNotFoundError);
  } finally {
    await new Promise<void>((resolve) => server.close(() => resolve()));
  }
  assert.deepEqual(authorizations, [`Basic ${Buffer.from('app:app-secret').toString('base64')}`, undefined]);
});

test('validated() and other wrappers pass the App-given registry on', () => {
  const inner = new AvroSerde<unknown>({});
  validated(inner, () => true).useServiceDefaults?.(appRegistry);
  assert.equal(inner.registry.url, 'http://registry.app.example:8081');
});

test('an unknown avro() option fails, naming the closest valid one', () => {
  assert.throws(
    () => avro({ readerSchema: usageEventV1, autoregister: false } as AvroSerdeOptions),
    /avro serde: unknown option "autoregister" \(did you mean "autoRegister"\?\)/,
  );
  assert.throws(
    () => avro({ registry: { url: 'http://r:8081', requestTimeout: 10 } as SchemaRegistryConfig }),
    /schema registry client: unknown option "requestTimeout" \(did you mean "requestTimeoutMs"\?\)/,
  );
  assert.throws(
    () => createSchemaRegistryClient({ retry: { attempt: 2 } } as SchemaRegistryConfig),
    /schema registry client retry: unknown option "attempt" \(did you mean "attempts"\?\)/,
  );
});
