import assert from 'node:assert/strict';
import { test } from 'node:test';
import {
  ConfigError,
  ENV_OVERRIDES,
  configSchema,
  dlqTopicOf,
  environmentTable,
  kafkaSettingsOf,
  resolveConfig,
  schemaRegistryUrlFromEnv,
  serviceDefaultsOf,
  type TributaryConfigInput,
} from '../../../src/runtime/config.js';

test('defaults: loopback admin, 1 s commits, <appId>.dlq, earliest offsets', () => {
  const config = resolveConfig({ appId: 'metering' }, {});
  assert.equal(config.admin.host, '127.0.0.1');
  assert.equal(config.admin.port, 7400);
  assert.equal(config.admin.token, undefined);
  assert.equal(config.commitIntervalMs, 1000);
  assert.deepEqual(config.brokers, ['127.0.0.1:9092']);
  assert.equal(config.kafka.autoOffsetReset, 'earliest');
  assert.equal(dlqTopicOf(config), 'metering.dlq');
});

test('environment variables override settings given in code', () => {
  const config = resolveConfig(
    { appId: 'metering', commitIntervalMs: 5000, admin: { port: 9999 } },
    {
      TRIBUTARY_COMMIT_INTERVAL_MS: '250',
      TRIBUTARY_BROKERS: 'k1:9092, k2:9092',
      TRIBUTARY_ADMIN_TOKEN: 's3cret',
      TRIBUTARY_ADMIN_ENABLED: 'false',
    },
  );
  assert.equal(config.commitIntervalMs, 250);
  assert.deepEqual(config.brokers, ['k1:9092', 'k2:9092']);
  assert.equal(config.admin.port, 9999, 'untouched nested settings survive an override of a sibling');
  assert.equal(config.admin.token, 's3cret');
  assert.equal(config.admin.enabled, false);
});

test('an invalid setting fails at start with a message naming it and its variable', () => {
  assert.throws(
    () => resolveConfig({ appId: 'metering' }, { TRIBUTARY_COMMIT_INTERVAL_MS: '-5' }),
    (error: unknown) =>
      error instanceof ConfigError &&
      /commitIntervalMs \(from TRIBUTARY_COMMIT_INTERVAL_MS\)/.test(error.message),
  );
  assert.throws(
    () => resolveConfig({ appId: 'metering' }, { TRIBUTARY_ADMIN_PORT: 'eighty' }),
    /TRIBUTARY_ADMIN_PORT="eighty" is not a whole number/,
  );
  assert.throws(() => resolveConfig({ appId: 'bad id!' }, {}), /appId: letters, digits/);
  assert.throws(() => resolveConfig({}, {}), /appId/);
  assert.throws(
    () => resolveConfig({ appId: 'a', kafka: { autoOffsetReset: 'middle' as 'earliest' } }, {}),
    /kafka\.autoOffsetReset/,
  );
});

test('every environment override names a setting that exists', () => {
  // Every variable set at once (sasl is an optional object: absent from a default config).
  const samples: Record<string, string> = {
    TRIBUTARY_KAFKA_SASL_MECHANISM: 'scram-sha-512',
    TRIBUTARY_KAFKA_AUTO_OFFSET_RESET: 'latest',
    TRIBUTARY_LOG_LEVEL: 'warn',
    TRIBUTARY_LOG_FORMAT: 'json',
    TRIBUTARY_SCHEMA_REGISTRY_URL: 'http://registry.example:8081',
    TRIBUTARY_CLICKHOUSE_URL: 'http://clickhouse.example:8123',
    TRIBUTARY_DLQ_MAX_BATCH_BYTES: '500000',
    TRIBUTARY_ADMIN_ADVERTISED_URL: 'http://instance-1.example:7400',
  };
  const kindSample = { string: 'x', int: '7', bool: 'false', list: 'a:1,b:2' };
  const env = Object.fromEntries(
    ENV_OVERRIDES.map(({ env: name, kind }) => [name, samples[name] ?? kindSample[kind]]),
  );
  const config = resolveConfig({ appId: 'a' }, env) as unknown as Record<string, unknown>;
  for (const { env: name, path, kind } of ENV_OVERRIDES) {
    const parent = path
      .slice(0, -1)
      .reduce<Record<string, unknown>>((node, key) => node[key] as Record<string, unknown>, config);
    assert.ok(parent && typeof parent === 'object', `${name}: ${path.join('.')} has a parent object`);
    const expected = { string: env[name], int: Number(env[name]), bool: false, list: ['a:1', 'b:2'] }[kind];
    assert.deepEqual(parent[path[path.length - 1] as string], expected, `${name} sets ${path.join('.')}`);
  }
});

test('every setting has an environment variable, listed once', () => {
  const withVariable = new Set(ENV_OVERRIDES.map(({ path }) => path.join('.')));
  assert.equal(withVariable.size, ENV_OVERRIDES.length, 'no setting has two variables');
  assert.equal(new Set(ENV_OVERRIDES.map(({ env }) => env)).size, ENV_OVERRIDES.length);
  // The leaves of a fully populated config; kafka.ssl's object form (CA, cert, key) is for code only.
  const leaves = (node: unknown, prefix: string): string[] =>
    typeof node === 'object' && node !== null && !Array.isArray(node)
      ? Object.entries(node).flatMap(([key, value]) => leaves(value, `${prefix}${key}.`))
      : [prefix.slice(0, -1)];
  const full = configSchema.parse({
    appId: 'a',
    kafka: { clientId: 'c', ssl: true, sasl: { mechanism: 'plain', username: 'u', password: 'p' } },
    dlq: { topic: 't' },
    admin: { token: 't' },
    schemaRegistry: { username: 'u', password: 'p' },
    clickhouse: { username: 'u', password: 'p' },
  });
  const missing = leaves(full, '').filter((setting) => !withVariable.has(setting));
  assert.deepEqual(missing, []);
});

test("each variable is the setting's path in upper snake case; the two older names are aliases", () => {
  for (const { env, path } of ENV_OVERRIDES) {
    const expected = `TRIBUTARY_${path.map((step) => step.replace(/[A-Z]/g, (c) => `_${c}`).toUpperCase()).join('_')}`;
    assert.equal(env, expected, `${path.join('.')} is read from its derived name`);
  }
  assert.equal(
    ENV_OVERRIDES.find(({ path }) => path.join('.') === 'kafka.sasl.username')?.env,
    'TRIBUTARY_KAFKA_SASL_USERNAME',
  );
  assert.deepEqual(
    ENV_OVERRIDES.filter(({ aliases }) => aliases !== undefined).map(({ env, aliases }) => [env, aliases]),
    [
      ['TRIBUTARY_CHANGELOG_ENABLED', ['TRIBUTARY_CHANGELOG']],
      ['TRIBUTARY_CLICKHOUSE_USERNAME', ['TRIBUTARY_CLICKHOUSE_USER']],
    ],
  );
  // What users set today still works, and so does the derived name.
  assert.equal(resolveConfig({ appId: 'a' }, { TRIBUTARY_CHANGELOG: 'false' }).changelog.enabled, false);
  assert.equal(
    resolveConfig({ appId: 'a' }, { TRIBUTARY_CHANGELOG_ENABLED: 'false' }).changelog.enabled,
    false,
  );
  assert.equal(resolveConfig({ appId: 'a' }, { TRIBUTARY_CLICKHOUSE_USER: 'ch' }).clickhouse.username, 'ch');
  assert.equal(
    resolveConfig({ appId: 'a' }, { TRIBUTARY_CLICKHOUSE_USERNAME: 'ch' }).clickhouse.username,
    'ch',
  );
  assert.equal(
    resolveConfig({ appId: 'a' }, { TRIBUTARY_CHANGELOG: 'false', TRIBUTARY_CHANGELOG_ENABLED: 'false' })
      .changelog.enabled,
    false,
    'both names set alike',
  );
  assert.throws(
    () =>
      resolveConfig({ appId: 'a' }, { TRIBUTARY_CHANGELOG: 'false', TRIBUTARY_CHANGELOG_ENABLED: 'true' }),
    /TRIBUTARY_CHANGELOG_ENABLED="true" and TRIBUTARY_CHANGELOG="false" set changelog\.enabled differently/,
  );
  // A bad value names the variable it came from, alias or not.
  assert.throws(
    () => resolveConfig({ appId: 'a' }, { TRIBUTARY_CHANGELOG: 'perhaps' }),
    /TRIBUTARY_CHANGELOG="perhaps"/,
  );
  // `tributary env` shows the value set through an alias, and names the alias.
  const row = environmentTable({ TRIBUTARY_CLICKHOUSE_USER: 'ch' }).find(
    ({ variable }) => variable === 'TRIBUTARY_CLICKHOUSE_USERNAME',
  );
  assert.equal(row?.current, 'ch');
  assert.match(row?.note ?? '', /TRIBUTARY_CLICKHOUSE_USER/);
});

test('the Kafka client gets the kafka section, the brokers and its client id, nothing else', () => {
  const config = resolveConfig({ appId: 'app', instanceId: 'i1', brokers: ['k:9092'] }, {});
  const settings = kafkaSettingsOf(config);
  assert.equal(settings.clientId, 'app-i1');
  assert.deepEqual(settings.brokers, ['k:9092']);
  assert.equal(settings.sessionTimeoutMs, 30_000);
  assert.equal('appId' in settings, false);
  assert.equal(
    kafkaSettingsOf(resolveConfig({ appId: 'app', kafka: { clientId: 'mine' } }, {})).clientId,
    'mine',
  );
});

test('unknown settings fail at start, naming the key and the closest valid one', () => {
  const untyped = (input: object) => input as Partial<TributaryConfigInput>;
  assert.throws(
    () => resolveConfig(untyped({ appId: 'a', brokerz: ['k:9092'] }), {}),
    (error: unknown) =>
      error instanceof ConfigError &&
      /unknown setting "brokerz" \(did you mean "brokers"\?\)/.test(error.message),
  );
  assert.throws(
    () => resolveConfig(untyped({ appId: 'a', kafka: { sesionTimeoutMs: 6000 } }), {}),
    /unknown setting "kafka\.sesionTimeoutMs" \(did you mean "kafka\.sessionTimeoutMs"\?\)/,
  );
  assert.throws(
    () => resolveConfig(untyped({ appId: 'a', schemaRegistry: { uri: 'http://r:8081' } }), {}),
    /unknown setting "schemaRegistry\.uri" \(did you mean "schemaRegistry\.url"\?\)/,
  );
  assert.throws(
    () =>
      resolveConfig(
        untyped({
          appId: 'a',
          kafka: { sasl: { mechanism: 'plain', username: 'u', password: 'p', pasword: 'p' } },
        }),
        {},
      ),
    /unknown setting "kafka\.sasl\.pasword" \(did you mean "kafka\.sasl\.password"\?\)/,
  );
  // Nothing close: named without a guess.
  assert.throws(
    () => resolveConfig(untyped({ appId: 'a', zookeeper: 'z:2181' }), {}),
    (error: unknown) => error instanceof Error && /unknown setting "zookeeper"$/m.test(error.message),
  );
});

test('ClickHouse and registry settings come from code or their variables, with local defaults', () => {
  const defaults = resolveConfig({ appId: 'a' }, {});
  assert.deepEqual(serviceDefaultsOf(defaults), {
    clickhouse: { url: 'http://127.0.0.1:8123' },
    schemaRegistry: { url: 'http://127.0.0.1:8081/apis/ccompat/v7' },
  });
  const fromEnv = resolveConfig(
    { appId: 'a', clickhouse: { url: 'http://code:8123', username: 'writer' } },
    {
      TRIBUTARY_CLICKHOUSE_URL: 'http://ch.example:8123',
      TRIBUTARY_CLICKHOUSE_PASSWORD: 'pw',
      TRIBUTARY_SCHEMA_REGISTRY_URL: 'http://registry.example:8081',
    },
  );
  assert.deepEqual(serviceDefaultsOf(fromEnv), {
    clickhouse: { url: 'http://ch.example:8123', username: 'writer', password: 'pw' },
    schemaRegistry: { url: 'http://registry.example:8081' },
  });
  assert.equal(
    schemaRegistryUrlFromEnv({ TRIBUTARY_SCHEMA_REGISTRY_URL: 'http://r.example:8081' }),
    'http://r.example:8081',
  );
  assert.equal(schemaRegistryUrlFromEnv({}), 'http://127.0.0.1:8081/apis/ccompat/v7');
  assert.throws(
    () => resolveConfig({ appId: 'a' }, { TRIBUTARY_CLICKHOUSE_URL: 'not a url' }),
    /clickhouse\.url \(from TRIBUTARY_CLICKHOUSE_URL\)/,
  );
});
