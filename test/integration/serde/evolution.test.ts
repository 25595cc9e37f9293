/**
 * Schema evolution against the real registry (BACKWARD rule) and Kafka: producers on v1 and on v2
 * (a new optional field with a default) share a topic; readers on either version decode both.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { avro, createSchemaRegistryClient } from '../../../src/serde/index.js';
import type { UsageEvent } from '../../../examples/metering/usage-event.js';
import { registryUrl } from '../../helpers/services.js';
import { sampleEvent, usageEventV1, usageEventV2, type UsageEventV2 } from '../../unit/serde/fixtures.js';
import { consume, createTopic, produce } from './kafka-helpers.js';

test('records from old and new producers both decode to the reader schema', async () => {
  const topic = await createTopic('serde-evolution');
  const ctx = { topic, role: 'value' as const };
  const registry = createSchemaRegistryClient({ url: registryUrl });
  const oldProducer = avro<UsageEvent>({ registry, readerSchema: usageEventV1 });
  const newProducer = avro<UsageEventV2>({ registry, readerSchema: usageEventV2 });

  const messages = [];
  for (let n = 1; n <= 6; n++) {
    const value =
      n % 2 === 1
        ? await oldProducer.serialize(sampleEvent(n), ctx)
        : await newProducer.serialize({ ...sampleEvent(n), unit: 'ms' }, ctx);
    messages.push({ key: `k${n}`, value });
  }
  const versions = new Set(messages.map((message) => message.value.readInt32BE(1)));
  assert.equal(versions.size, 2, 'two writer schema ids on the topic');
  const latest = await registry.getLatestVersion(`${topic}-value`);
  assert.equal(latest?.version, 2, 'v2 registered as the second version of the subject');
  await produce(topic, messages);

  const records = await consume(topic, messages.length);
  const newReader = avro<UsageEventV2>({ registry: { url: registryUrl }, readerSchema: usageEventV2 });
  const oldReader = avro<UsageEvent>({ registry: { url: registryUrl }, readerSchema: usageEventV1 });
  for (const [index, record] of records.entries()) {
    const n = index + 1;
    const asNew = await newReader.deserialize(record.value, ctx);
    assert.deepEqual({ ...asNew }, { ...sampleEvent(n), unit: n % 2 === 1 ? null : 'ms' });
    const asOld = await oldReader.deserialize(record.value, ctx);
    assert.deepEqual({ ...asOld }, sampleEvent(n));
  }
});
