import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import {
  avro,
  DeserializationError,
  InMemorySchemaRegistry,
  json,
  nullable,
  SerializationError,
  string,
  validated,
} from '../../../src/serde/index.js';
import { validateUsageEvent, type UsageEvent } from '../../../examples/metering/usage-event.js';
import type { DeadLetterReason } from '../../../src/core/records.js';
import { frame, sampleEvent, usageEventV1 } from './fixtures.js';

const ctx = { topic: 't', role: 'value' as const };
const reason = (expected: DeadLetterReason) => (error: unknown) =>
  error instanceof DeserializationError && error.reason === expected;

describe('json()', () => {
  it('round-trips values', () => {
    const serde = json<{ a: number; b: string[] }>();
    const value = { a: 1, b: ['x'] };
    assert.deepEqual(serde.deserialize(serde.serialize(value, ctx) as Buffer, ctx), value);
  });

  it('dead-letters invalid JSON, invalid UTF-8, null and registry framing', () => {
    const serde = json();
    assert.throws(() => serde.deserialize(Buffer.from('{"a":'), ctx), reason('decode-failed'));
    assert.throws(() => serde.deserialize(Buffer.from([0x22, 0xff, 0x22]), ctx), reason('decode-failed'));
    assert.throws(() => serde.deserialize(null, ctx), reason('decode-failed'));
    assert.throws(() => serde.deserialize(Buffer.from([0, 0, 0, 0, 1, 2]), ctx), reason('bad-magic-byte'));
  });

  it('refuses values without a JSON form', () => {
    assert.throws(() => json<unknown>().serialize(10n, ctx), SerializationError);
    assert.throws(() => json<unknown>().serialize(undefined, ctx), SerializationError);
  });
});

describe('string() and nullable()', () => {
  it('decodes UTF-8 strictly', () => {
    assert.equal(string().deserialize(Buffer.from('grüß'), ctx), 'grüß');
    assert.deepEqual(string().serialize('grüß', ctx), Buffer.from('grüß'));
    assert.throws(() => string().deserialize(Buffer.from([0xc3]), ctx), reason('decode-failed'));
    assert.throws(() => string().deserialize(null, { topic: 't', role: 'key' }), /nullable/);
  });

  it('nullable lets Kafka nulls through on decode and refuses to encode null', () => {
    const serde = nullable(string());
    assert.equal(serde.deserialize(null, ctx), null);
    assert.equal(serde.deserialize(Buffer.from('k'), ctx), 'k');
    assert.throws(() => serde.serialize(null, ctx), SerializationError);
    assert.equal(serde.name, 'nullable(string)');
  });
});

describe('validated()', () => {
  it('dead-letters rejected values as validation-failed, with the validator message', () => {
    const serde = validated(
      json<{ n: number }>(),
      (value) => (value.n >= 0 ? undefined : `n is negative: ${value.n}`),
      'non-negative',
    );
    assert.deepEqual(serde.deserialize(Buffer.from('{"n":1}'), ctx), { n: 1 });
    assert.throws(
      () => serde.deserialize(Buffer.from('{"n":-1}'), ctx),
      (error: unknown) => {
        assert.ok(reason('validation-failed')(error));
        assert.match((error as Error).message, /non-negative: n is negative: -1/);
        return true;
      },
    );
    const throwing = validated(json<unknown>(), () => {
      throw new Error('boom');
    });
    assert.throws(() => throwing.deserialize(Buffer.from('1'), ctx), reason('validation-failed'));
    assert.throws(
      () => validated(json<unknown>(), () => false).deserialize(Buffer.from('1'), ctx),
      reason('validation-failed'),
    );
  });

  it('stays synchronous over a cached Avro serde and checks the reference event bounds', async () => {
    const registry = new InMemorySchemaRegistry();
    const id = registry.addSchema(usageEventV1);
    const serde = validated(
      avro<UsageEvent>({ registry, readerSchema: usageEventV1 }),
      validateUsageEvent,
      'usage-event',
    );
    await serde.deserialize(frame(id, usageEventV1, sampleEvent(1)), ctx);
    const sync = serde.deserialize(frame(id, usageEventV1, sampleEvent(2)), ctx);
    assert.ok(!(sync instanceof Promise));
    const tooManyDimensions = {
      ...sampleEvent(3),
      dimensions: Object.fromEntries(Array.from({ length: 17 }, (_, i) => [`k${i}`, 'v'])),
    };
    assert.throws(
      () => serde.deserialize(frame(id, usageEventV1, tooManyDimensions), ctx),
      reason('validation-failed'),
    );
    assert.throws(
      () => serde.deserialize(frame(id, usageEventV1, { ...sampleEvent(4), value: Number.NaN }), ctx),
      reason('validation-failed'),
    );
  });
});
