/** Small Kafka helpers for the serde integration tests: a topic per test, produce, read everything back. */
import { Kafka, logLevel, Partitioners, type Message } from 'kafkajs';
import { toRawRecord } from '../../../src/runtime/kafka/kafkajs/records.js';
import type { RawRecord } from '../../../src/core/records.js';
import { brokers, uniqueName } from '../../helpers/services.js';

export const kafka = new Kafka({ clientId: 'tributary-serde-tests', brokers, logLevel: logLevel.WARN });

export async function createTopic(prefix: string, partitions = 1): Promise<string> {
  const topic = uniqueName(prefix);
  const admin = kafka.admin();
  await admin.connect();
  try {
    await admin.createTopics({ topics: [{ topic, numPartitions: partitions }], waitForLeaders: true });
  } finally {
    await admin.disconnect();
  }
  return topic;
}

export async function produce(topic: string, messages: Message[]): Promise<void> {
  const producer = kafka.producer({ createPartitioner: Partitioners.DefaultPartitioner });
  await producer.connect();
  try {
    await producer.send({ topic, messages });
  } finally {
    await producer.disconnect();
  }
}

/** Reads `count` records from the beginning of the topic, in offset order per partition. */
export async function consume(topic: string, count: number, timeoutMs = 30_000): Promise<RawRecord[]> {
  const consumer = kafka.consumer({ groupId: uniqueName('serde-test'), maxWaitTimeInMs: 200 });
  const records: RawRecord[] = [];
  await consumer.connect();
  try {
    await consumer.subscribe({ topic, fromBeginning: true });
    await new Promise<void>((resolve, reject) => {
      const timer = setTimeout(
        () =>
          reject(new Error(`read ${records.length} of ${count} records from ${topic} in ${timeoutMs} ms`)),
        timeoutMs,
      );
      void consumer.run({
        eachMessage: async ({ partition, message }) => {
          records.push(toRawRecord(topic, partition, message));
          if (records.length >= count) {
            clearTimeout(timer);
            resolve();
          }
        },
      });
    });
  } finally {
    await consumer.disconnect();
  }
  return records.sort((a, b) => a.partition - b.partition || Number(a.offset - b.offset));
}
