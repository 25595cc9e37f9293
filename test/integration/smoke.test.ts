// Smoke test of the three real services with the client libraries tributary is built on.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { createClient } from '@clickhouse/client';
import { SchemaRegistry, SchemaType } from '@kafkajs/confluent-schema-registry';
import { Kafka, logLevel } from 'kafkajs';
import { brokers, clickhouseUrl, registryUrl, uniqueName } from '../helpers/services.js';

const RECORDS = 1000;
const PARTITIONS = 4;

test('Avro records round-trip through the registry and Kafka, rows round-trip through ClickHouse', async () => {
  const topic = uniqueName('smoke');
  const registry = new SchemaRegistry({ host: registryUrl });
  const schema = {
    type: 'record',
    name: 'SmokeEvent',
    namespace: 'dev.tributary.test',
    fields: [
      { name: 'id', type: 'string' },
      { name: 'value', type: 'long' },
    ],
  };
  const { id: schemaId } = await registry.register(
    { type: SchemaType.AVRO, schema: JSON.stringify(schema) },
    { subject: `${topic}-value` },
  );

  const kafka = new Kafka({ clientId: 'smoke', brokers, logLevel: logLevel.WARN });
  const admin = kafka.admin();
  await admin.connect();
  await admin.createTopics({ topics: [{ topic, numPartitions: PARTITIONS }], waitForLeaders: true });
  const metadata = await admin.fetchTopicMetadata({ topics: [topic] });
  assert.equal(metadata.topics[0]?.partitions.length, PARTITIONS);

  const producer = kafka.producer();
  await producer.connect();
  const messages = await Promise.all(
    Array.from({ length: RECORDS }, async (_, i) => ({
      key: `k${i % 37}`,
      value: await registry.encode(schemaId, { id: `e${i}`, value: i }),
    })),
  );
  await producer.send({ topic, messages });
  await producer.disconnect();

  const consumer = kafka.consumer({ groupId: uniqueName('smoke-group') });
  await consumer.connect();
  await consumer.subscribe({ topic, fromBeginning: true });
  const seen = new Map<string, number>();
  const partitionsSeen = new Set<number>();
  await new Promise<void>((resolve, reject) => {
    const timer = setTimeout(
      () => reject(new Error(`consumed only ${seen.size} of ${RECORDS} records`)),
      60_000,
    );
    consumer
      .run({
        eachMessage: async ({ partition, message }) => {
          const decoded = (await registry.decode(message.value as Buffer)) as { id: string; value: number };
          seen.set(decoded.id, Number(decoded.value));
          partitionsSeen.add(partition);
          if (seen.size === RECORDS) {
            clearTimeout(timer);
            resolve();
          }
        },
      })
      .catch(reject);
  });
  await consumer.disconnect();
  await admin.deleteTopics({ topics: [topic] });
  await admin.disconnect();

  assert.equal(seen.size, RECORDS);
  assert.equal(
    [...seen.values()].reduce((a, b) => a + b, 0),
    (RECORDS * (RECORDS - 1)) / 2,
  );
  assert.equal(seen.get('e999'), 999);
  assert.equal(partitionsSeen.size, PARTITIONS, 'keys spread over all partitions');

  const database = uniqueName('smoke');
  const clickhouse = createClient({ url: clickhouseUrl });
  try {
    await clickhouse.command({ query: `CREATE DATABASE ${database}` });
    await clickhouse.command({
      query: `CREATE TABLE ${database}.rollup (window_start DateTime, subject String, total Float64, version UInt64)
              ENGINE = ReplacingMergeTree(version) ORDER BY (subject, window_start)`,
    });
    await clickhouse.insert({
      table: `${database}.rollup`,
      format: 'JSONEachRow',
      values: [
        { window_start: '2026-01-01 00:00:00', subject: 'a', total: 1.5, version: 1 },
        { window_start: '2026-01-01 00:00:00', subject: 'a', total: 4.5, version: 2 },
        { window_start: '2026-01-01 00:01:00', subject: 'b', total: 7, version: 1 },
      ],
    });
    const result = await clickhouse.query({
      query: `SELECT subject, toString(window_start) AS window_start, total, version
              FROM ${database}.rollup FINAL ORDER BY subject`,
      format: 'JSONEachRow',
    });
    const rows = await result.json<{
      subject: string;
      window_start: string;
      total: number;
      version: string;
    }>();
    assert.deepEqual(
      rows.map((r) => [r.subject, r.window_start, r.total, Number(r.version)]),
      [
        ['a', '2026-01-01 00:00:00', 4.5, 2],
        ['b', '2026-01-01 00:01:00', 7, 1],
      ],
    );
  } finally {
    await clickhouse.command({ query: `DROP DATABASE IF EXISTS ${database}` });
    await clickhouse.close();
  }
});
