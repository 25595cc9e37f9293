import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import avsc from 'avsc';
import {
  avro,
  DeserializationError,
  InMemorySchemaRegistry,
  RetriableError,
  SchemaRegistryError,
  SerializationError,
  encodeWireFormat,
  type SchemaRegistryClient,
} from '../../../src/serde/index.js';
import type { UsageEvent } from '../../../examples/metering/usage-event.js';
import type { DeadLetterReason } from '../../../src/core/records.js';
import {
  frame,
  frameWithInvalidUtf8,
  sampleEvent,
  usageEventV1,
  usageEventV2,
  usageEventWithStringValue,
  type UsageEventV2,
} from './fixtures.js';

const ctx = { topic: 'usage-events', role: 'value' as const };

function expectReason(reason: DeadLetterReason) {
  return (error: unknown): boolean => {
    assert.ok(error instanceof DeserializationError, `expected DeserializationError, got ${String(error)}`);
    assert.equal(error.reason, reason, error.message);
    return true;
  };
}

/** Decodes and, unlike the engine, does not care whether the result was synchronous. */
async function decode<T>(
  serde: { deserialize(data: Buffer | null, c: typeof ctx): T | Promise<T> },
  data: Buffer | null,
): Promise<T> {
  return await serde.deserialize(data, ctx);
}

describe('avro() decoding', () => {
  it('decodes Confluent-framed records and serves repeat ids synchronously from the cache', async () => {
    const registry = new InMemorySchemaRegistry();
    const id = registry.addSchema(usageEventV1);
    const serde = avro<UsageEvent>({ registry, readerSchema: usageEventV1 });

    const first = serde.deserialize(frame(id, usageEventV1, sampleEvent(1)), ctx);
    assert.ok(first instanceof Promise, 'an unseen id is fetched asynchronously');
    assert.deepEqual({ ...(await first) }, sampleEvent(1));

    const second = serde.deserialize(frame(id, usageEventV1, sampleEvent(2)), ctx);
    assert.ok(!(second instanceof Promise), 'a cached id decodes synchronously');
    assert.deepEqual({ ...second }, sampleEvent(2));
    assert.equal(registry.calls.getSchemaById, 1);
  });

  it('decodes with the writer schema when no reader schema is given', async () => {
    const registry = new InMemorySchemaRegistry();
    const id = registry.addSchema(usageEventV2);
    const event: UsageEventV2 = { ...sampleEvent(3), unit: 'ms' };
    const decoded = await decode(avro<UsageEventV2>({ registry }), frame(id, usageEventV2, event));
    assert.deepEqual({ ...decoded }, event);
  });

  it('resolves old and new writer schemas to the reader schema (evolution)', async () => {
    const registry = new InMemorySchemaRegistry();
    const v1 = registry.addSchema(usageEventV1);
    const v2 = registry.addSchema(usageEventV2);
    const newReader = avro<UsageEventV2>({ registry, readerSchema: usageEventV2 });
    const oldReader = avro<UsageEvent>({ registry, readerSchema: usageEventV1 });
    const oldRecord = frame(v1, usageEventV1, sampleEvent(1));
    const newRecord = frame(v2, usageEventV2, { ...sampleEvent(2), unit: 'tokens' });

    assert.deepEqual(
      { ...(await decode(newReader, oldRecord)) },
      { ...sampleEvent(1), unit: null },
      'default fills the new field',
    );
    assert.deepEqual({ ...(await decode(newReader, newRecord)) }, { ...sampleEvent(2), unit: 'tokens' });
    assert.deepEqual(
      { ...(await decode(oldReader, newRecord)) },
      sampleEvent(2),
      'an old reader skips the new field',
    );
    assert.deepEqual({ ...(await decode(oldReader, oldRecord)) }, sampleEvent(1));
  });

  it('rejects invalid UTF-8 in a string field, a map key or value, and through a resolver, naming the field', async () => {
    const registry = new InMemorySchemaRegistry();
    const v1 = registry.addSchema(usageEventV1);
    const v2 = registry.addSchema(usageEventV2);
    const serde = avro<UsageEvent>({ registry, readerSchema: usageEventV1 });
    const cases: Array<[string, Buffer]> = [
      ['"subject"', frameWithInvalidUtf8(v1, usageEventV1, { ...sampleEvent(1), subject: 'pois@@@(' })],
      [
        '"dimensions.region"',
        frameWithInvalidUtf8(v1, usageEventV1, { ...sampleEvent(1), dimensions: { region: 'e@@@u' } }),
      ],
      [
        '(a map key)',
        frameWithInvalidUtf8(v1, usageEventV1, { ...sampleEvent(1), dimensions: { '@@@': 'x' } }),
      ],
      // Written with v2 and resolved to v1: the resolver reads strings with the reader's (strict) reader.
      ['"meter"', frameWithInvalidUtf8(v2, usageEventV2, { ...sampleEvent(1), meter: '@@@', unit: 'ms' })],
    ];
    for (const [named, data] of cases) {
      await assert.rejects(decode(serde, data), (error: unknown) => {
        expectReason('decode-failed')(error);
        assert.match((error as Error).message, /invalid UTF-8/);
        assert.ok((error as Error).message.includes(named), (error as Error).message);
        return true;
      });
    }
    // The skipped v2 field is not decoded, so it is not checked either: the event itself is fine.
    const skipped = frameWithInvalidUtf8(v2, usageEventV2, { ...sampleEvent(2), unit: '@@@' });
    assert.deepEqual({ ...(await decode(serde, skipped)) }, sampleEvent(2));
    // A genuine U+FFFD (valid UTF-8: ef bf bd) is text like any other.
    const replacementChar = { ...sampleEvent(3), subject: 'a\uFFFDb' };
    assert.deepEqual({ ...(await decode(serde, frame(v1, usageEventV1, replacementChar))) }, replacementChar);
    // Without a reader schema the writer's own types are strict as well.
    await assert.rejects(decode(avro<UsageEvent>({ registry }), cases[0]![1]), expectReason('decode-failed'));
  });

  it('sorts every bad-input class into its dead-letter reason while good records around it decode', async () => {
    const registry = new InMemorySchemaRegistry();
    const good = registry.addSchema(usageEventV1);
    const incompatible = registry.addSchema(usageEventWithStringValue);
    const serde = avro<UsageEvent>({ registry, readerSchema: usageEventV1 });
    const valid = frame(good, usageEventV1, sampleEvent(1));

    const cases: Array<[DeadLetterReason, Buffer | null]> = [
      ['bad-magic-byte', Buffer.from(JSON.stringify(sampleEvent(1)))],
      ['bad-magic-byte', Buffer.concat([Buffer.from([1]), valid.subarray(1)])],
      ['truncated', Buffer.from([0, 0, 0])],
      ['truncated', valid.subarray(0, valid.length - 3)],
      ['truncated', encodeWireFormat(good, Buffer.alloc(0))],
      ['unknown-schema-id', encodeWireFormat(424242, valid.subarray(5))],
      [
        'schema-mismatch',
        frame(incompatible, usageEventWithStringValue, { ...sampleEvent(1), value: 'lots' }),
      ],
      ['decode-failed', Buffer.concat([valid, Buffer.from([1, 2, 3])])],
      ['decode-failed', null],
    ];
    for (const [reason, data] of cases) {
      await assert.rejects(decode(serde, data), expectReason(reason));
      assert.deepEqual(
        { ...(await decode(serde, valid)) },
        sampleEvent(1),
        `a good record after ${reason} decodes`,
      );
    }
  });

  it('rejects a corrupted collection count quickly instead of looping over it', async () => {
    const registry = new InMemorySchemaRegistry();
    const id = registry.addSchema(usageEventV1);
    const serde = avro<UsageEvent>({ registry, readerSchema: usageEventV1, maxCollectionItems: 1000 });
    const valid = frame(id, usageEventV1, { ...sampleEvent(1), dimensions: {} });
    // The empty map is the last byte (count 0); replace it with a count of about 2^40, no entries.
    const corrupted = Buffer.concat([
      valid.subarray(0, valid.length - 1),
      Buffer.from([0xfe, 0xff, 0xff, 0xff, 0xff, 0x3f]),
    ]);
    const started = Date.now();
    await assert.rejects(decode(serde, corrupted), (error: unknown) => error instanceof DeserializationError);
    // A count just under the cap but with no bytes behind it: truncated, after one entry, not 999 loops.
    const shortMap = Buffer.concat([valid.subarray(0, valid.length - 1), Buffer.from([0xce, 0x0f])]);
    await assert.rejects(decode(serde, shortMap), expectReason('truncated'));
    assert.ok(Date.now() - started < 1000);
  });

  it('remembers an unknown schema id for a while instead of asking the registry per record', async () => {
    const registry = new InMemorySchemaRegistry();
    const unknown = encodeWireFormat(77, Buffer.from([2, 0x61]));
    const cached = avro<UsageEvent>({ registry, readerSchema: usageEventV1 });
    await assert.rejects(decode(cached, unknown), expectReason('unknown-schema-id'));
    // Known-unknown now: the next records fail synchronously, without a registry call.
    for (let i = 0; i < 3; i++)
      assert.throws(() => cached.deserialize(unknown, ctx), expectReason('unknown-schema-id'));
    assert.equal(registry.calls.getSchemaById, 1);

    const rechecking = avro<UsageEvent>({ registry, readerSchema: usageEventV1, unknownSchemaRecheckMs: 0 });
    await assert.rejects(decode(rechecking, unknown), expectReason('unknown-schema-id'));
    await assert.rejects(decode(rechecking, unknown), expectReason('unknown-schema-id'));
    assert.equal(registry.calls.getSchemaById, 3);
  });

  it('fetches an unseen id once however many records with it arrive together', async () => {
    const registry = new InMemorySchemaRegistry();
    const id = registry.addSchema(usageEventV1);
    const serde = avro<UsageEvent>({ registry, readerSchema: usageEventV1 });
    const decoded = await Promise.all(
      [1, 2, 3, 4].map((n) => decode(serde, frame(id, usageEventV1, sampleEvent(n)))),
    );
    assert.deepEqual(
      decoded.map((event) => event.id),
      ['evt-1', 'evt-2', 'evt-3', 'evt-4'],
    );
    assert.equal(registry.calls.getSchemaById, 1);
  });

  it('throws RetriableError, never a dead letter, while the registry is down; cached ids keep decoding', async () => {
    const registry = new InMemorySchemaRegistry();
    const known = registry.addSchema(usageEventV1);
    const later = registry.addSchema(usageEventV2);
    const serde = avro<UsageEventV2>({ registry, readerSchema: usageEventV2 });
    await decode(serde, frame(known, usageEventV1, sampleEvent(1)));

    registry.available = false;
    const fresh = frame(later, usageEventV2, { ...sampleEvent(2), unit: 'ms' });
    for (let attempt = 0; attempt < 3; attempt++) {
      await assert.rejects(
        decode(serde, fresh),
        (error: unknown) => error instanceof RetriableError && !(error instanceof DeserializationError),
      );
    }
    assert.equal((await decode(serde, frame(known, usageEventV1, sampleEvent(3)))).id, 'evt-3');

    registry.available = true;
    assert.equal((await decode(serde, fresh)).unit, 'ms');
  });

  it('holds (RetriableError) rather than dead-letters on registry answers that are not "no such id"', async () => {
    const unauthorized: SchemaRegistryClient = {
      url: 'http://registry.example',
      getSchemaById: () => Promise.reject(new SchemaRegistryError('HTTP 401: unauthorized', 401, 40101)),
      lookupSchema: () => Promise.resolve(undefined),
      registerSchema: () => Promise.resolve(1),
      getLatestVersion: () => Promise.resolve(undefined),
      checkCompatibility: () => Promise.resolve({ compatible: true, messages: [] }),
    };
    const serde = avro<UsageEvent>({ registry: unauthorized });
    await assert.rejects(decode(serde, encodeWireFormat(1, Buffer.from([0]))), (error: unknown) => {
      assert.ok(error instanceof RetriableError);
      assert.match(error.message, /401/);
      return true;
    });
  });

  it('dead-letters ids of non-Avro schemas as schema-mismatch', async () => {
    const jsonSchemaRegistry: SchemaRegistryClient = {
      url: 'memory://json',
      getSchemaById: (id) => Promise.resolve({ id, schema: '{"type":"object"}', schemaType: 'JSON' }),
      lookupSchema: () => Promise.resolve(undefined),
      registerSchema: () => Promise.resolve(1),
      getLatestVersion: () => Promise.resolve(undefined),
      checkCompatibility: () => Promise.resolve({ compatible: true, messages: [] }),
    };
    await assert.rejects(
      decode(avro({ registry: jsonSchemaRegistry }), encodeWireFormat(5, Buffer.from('{}'))),
      expectReason('schema-mismatch'),
    );
  });
});

describe('avro() encoding', () => {
  it('auto-registers the reader schema under <topic>-<role> once, with logical types intact', async () => {
    const registry = new InMemorySchemaRegistry();
    const serde = avro<UsageEvent>({ registry, readerSchema: usageEventV1 });
    const first = await serde.serialize(sampleEvent(1), ctx);
    const second = serde.serialize(sampleEvent(2), ctx);
    assert.ok(Buffer.isBuffer(second), 'a known subject encodes synchronously');
    assert.equal(registry.calls.registerSchema, 1);

    const latest = await registry.getLatestVersion('usage-events-value');
    assert.ok(latest);
    assert.equal(first.readInt32BE(1), latest.id);
    assert.match(latest.schema, /timestamp-millis/);
    // Any Confluent-compatible consumer reads it.
    const plain = avsc.Type.forSchema(JSON.parse(usageEventV1) as avsc.Schema);
    assert.deepEqual({ ...plain.fromBuffer(first.subarray(5)) }, sampleEvent(1));
    assert.deepEqual({ ...(await decode(avro<UsageEvent>({ registry }), second)) }, sampleEvent(2));

    await serde.serialize(sampleEvent(3), { topic: 'usage-events', role: 'key' });
    assert.ok(await registry.getLatestVersion('usage-events-key'));
  });

  it('without autoRegister, uses the registered id and refuses an unregistered schema', async () => {
    const registry = new InMemorySchemaRegistry();
    await assert.rejects(
      Promise.resolve(
        avro<UsageEvent>({ registry, readerSchema: usageEventV1, autoRegister: false }).serialize(
          sampleEvent(1),
          ctx,
        ),
      ),
      (error: unknown) => error instanceof SerializationError && /schemas:register/.test(error.message),
    );
    const id = await registry.registerSchema('usage-events-value', usageEventV1);
    const framed = await avro<UsageEvent>({
      registry,
      readerSchema: usageEventV1,
      autoRegister: false,
    }).serialize(sampleEvent(1), ctx);
    assert.equal(framed.readInt32BE(1), id);
  });

  it('encodes with an explicit schema id, or the subject latest version without any schema', async () => {
    const registry = new InMemorySchemaRegistry();
    const v1 = registry.addSchema(usageEventV1);
    const v2 = await registry.registerSchema('custom-subject', usageEventV2);
    const explicit = await avro<UsageEvent>({ registry, schemaId: v1 }).serialize(sampleEvent(1), ctx);
    assert.equal(explicit.readInt32BE(1), v1);
    const latest = await avro<UsageEventV2>({ registry, subject: 'custom-subject' }).serialize(
      { ...sampleEvent(1), unit: null },
      ctx,
    );
    assert.equal(latest.readInt32BE(1), v2);
    await assert.rejects(
      Promise.resolve(avro<UsageEvent>({ registry }).serialize(sampleEvent(1), { topic: 'nothing-here' })),
      (error: unknown) => error instanceof SerializationError && /nothing-here-value/.test(error.message),
    );
  });

  it('names the fields of a value that does not match the schema', async () => {
    const registry = new InMemorySchemaRegistry();
    const serde = avro<UsageEvent>({ registry, readerSchema: usageEventV1 });
    const bad = { ...sampleEvent(1), value: 'ten' } as unknown as UsageEvent;
    await assert.rejects(
      Promise.resolve().then(() => serde.serialize(bad, ctx)),
      (error: unknown) => {
        assert.ok(error instanceof SerializationError);
        assert.match(error.message, /value = "ten"/);
        return true;
      },
    );
  });
});
