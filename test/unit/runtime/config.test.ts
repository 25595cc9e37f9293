import assert from 'node:assert/strict';
import { test } from 'node:test';
import { ConfigError, ENV_OVERRIDES, dlqTopicOf, resolveConfig } from '../../../src/runtime/config.js';

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
  const config = resolveConfig({ appId: 'a' }, {}) as unknown as Record<string, unknown>;
  for (const { env, path } of ENV_OVERRIDES) {
    const parent = path
      .slice(0, -1)
      .reduce<Record<string, unknown>>((node, key) => node[key] as Record<string, unknown>, config);
    assert.ok(parent && typeof parent === 'object', `${env}: ${path.join('.')} has a parent object`);
  }
});
