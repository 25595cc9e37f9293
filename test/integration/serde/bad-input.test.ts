/**
 * Every bad-input class through real Kafka and the real registry: each becomes a DeserializationError
 * with its reason while the good records around it decode, and its DLQ envelope survives a round
 * trip through a real topic with key, value and headers intact.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import {
  avro,
  createSchemaRegistryClient,
  deadLetterFor,
  DeserializationError,
  DLQ_HEADERS,
  encodeWireFormat,
  parseDlqMessage,
  toDlqMessage,
  validated,
} from '../../../src/serde/index.js';
import { validateUsageEvent, type UsageEvent } from '../../../examples/metering/usage-event.js';
import type { DeadLetterReason } from '../../../src/core/records.js';
import type { DeadLetter } from '../../../src/core/records.js';
import { registryUrl } from '../../helpers/services.js';
import {
  frame,
  frameWithInvalidUtf8,
  sampleEvent,
  usageEventV1,
  usageEventWithStringValue,
} from '../../unit/serde/fixtures.js';
import { consume, createTopic, produce } from './kafka-helpers.js';

test('bad records become dead letters with the right reason; good records around them decode', async () => {
  const topic = await createTopic('serde-bad-input');
  const registry = createSchemaRegistryClient({ url: registryUrl });
  const goodId = await registry.registerSchema(`${topic}-value`, usageEventV1);
  // A writer schema the reader cannot resolve (value: string), registered under another subject.
  const mismatchId = await registry.registerSchema(`${topic}-mismatch-value`, usageEventWithStringValue);
  const producerSerde = avro<UsageEvent>({ registry, readerSchema: usageEventV1, autoRegister: false });
  const good = async (n: number) => ({
    key: `customer-${n}`,
    value: await producerSerde.serialize(sampleEvent(n), { topic, role: 'value' }),
    headers: { 'trace-id': `trace-${n}` },
  });
  const validFrame = frame(goodId, usageEventV1, sampleEvent(0));

  const bad: Array<[DeadLetterReason, Buffer]> = [
    ['bad-magic-byte', Buffer.from(JSON.stringify(sampleEvent(100)))],
    ['unknown-schema-id', encodeWireFormat(2_000_000_000, validFrame.subarray(5))],
    ['truncated', validFrame.subarray(0, validFrame.length - 4)],
    ['schema-mismatch', frame(mismatchId, usageEventWithStringValue, { ...sampleEvent(101), value: 'many' })],
    ['decode-failed', Buffer.concat([validFrame, Buffer.from('trailing')])],
    // Invalid UTF-8 in a string field is a bad record, not an event with U+FFFD in its subject.
    [
      'decode-failed',
      frameWithInvalidUtf8(goodId, usageEventV1, { ...sampleEvent(103), subject: 'pois@@@(' }),
    ],
    [
      'validation-failed',
      frame(goodId, usageEventV1, { ...sampleEvent(102), value: Number.POSITIVE_INFINITY }),
    ],
  ];
  const messages = [await good(1)];
  for (const [index, [reason, value]] of bad.entries()) {
    messages.push({ key: `bad-${reason}`, value, headers: { 'trace-id': `bad-${index}` } });
    messages.push(await good(index + 2));
  }
  await produce(topic, messages);

  const consumerSerde = validated(
    avro<UsageEvent>({ registry: { url: registryUrl }, readerSchema: usageEventV1 }),
    validateUsageEvent,
    'usage-event',
  );
  const records = await consume(topic, messages.length);
  const decoded: UsageEvent[] = [];
  const deadLetters: DeadLetter[] = [];
  for (const record of records) {
    try {
      decoded.push(
        await consumerSerde.deserialize(record.value, { topic, headers: record.headers, role: 'value' }),
      );
    } catch (error) {
      assert.ok(error instanceof DeserializationError, `only DeserializationError, got ${String(error)}`);
      deadLetters.push(deadLetterFor(record, error));
    }
  }
  assert.deepEqual(
    decoded.map((event) => event.id),
    Array.from({ length: bad.length + 1 }, (_, i) => `evt-${i + 1}`),
  );
  assert.deepEqual(
    deadLetters.map((letter) => letter.reason),
    bad.map(([reason]) => reason),
  );
  const invalidUtf8 = deadLetters.find((letter) => letter.message.includes('UTF-8'));
  assert.match(invalidUtf8?.message ?? '', /field "subject" holds invalid UTF-8/);

  // The envelope through a real DLQ topic: original key, value and headers plus the dlq headers.
  const dlqTopic = await createTopic('serde-bad-input.dlq');
  await produce(
    dlqTopic,
    deadLetters.map((letter) => toDlqMessage(letter)),
  );
  const fromDlq = await consume(dlqTopic, deadLetters.length);
  for (const [index, raw] of fromDlq.entries()) {
    const original = deadLetters[index]!;
    const parsed = parseDlqMessage(raw);
    assert.equal(parsed.reason, original.reason);
    assert.equal(parsed.errorClass, 'DeserializationError');
    assert.equal(parsed.message, original.message);
    assert.deepEqual(parsed.record, original.record);
    assert.equal(raw.headers[DLQ_HEADERS.sourceTopic]?.toString(), topic);
    assert.equal(raw.headers[DLQ_HEADERS.sourceOffset]?.toString(), String(original.record.offset));
    assert.equal(raw.headers['trace-id']?.toString(), `bad-${index}`);
  }
});
