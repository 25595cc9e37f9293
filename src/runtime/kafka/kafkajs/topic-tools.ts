/** The TopicTools of client.ts on kafkajs (the `tributary dlq` command), with the client's connection settings. */
import { randomUUID } from 'node:crypto';
import { Kafka, Partitioners } from 'kafkajs';
import type { Producer } from 'kafkajs';
import type { Logger } from 'pino';
import type { RawRecord } from '../../../core/records.js';
import type { KafkaSettings } from '../../config.js';
import type { PublishedMessage, TopicTools } from '../client.js';
import { TopicNotFoundError } from '../client.js';
import { slicesOf } from '../slices.js';
import { kafkajsConfigOf } from './client.js';
import { toRawRecord, topicMessagesOf } from './records.js';

/**
 * Consecutive runs of messages, one produce request each, of at most 100 messages and about 1 MB
 * (a single larger message goes alone): a replay of many large dead letters never builds a request
 * beyond the broker's limits.
 */
function publishSlices(messages: readonly PublishedMessage[]): Generator<PublishedMessage[]> {
  return slicesOf(messages, publishedSize, { maxBytes: 1_000_000, maxCount: 100 });
}

function publishedSize(message: PublishedMessage): number {
  let size = (message.key?.length ?? 0) + (message.value?.length ?? 0);
  for (const [name, value] of Object.entries(message.headers)) size += name.length + (value?.length ?? 0);
  return size;
}

/** The TopicTools of client.ts on kafkajs (same connection settings as the client). */
export function createKafkajsTopicTools(settings: KafkaSettings, logger: Logger): TopicTools {
  const kafka = new Kafka(kafkajsConfigOf(settings, logger));
  let producer: Producer | undefined;
  return {
    readTopic: (topic, options) => readWholeTopic(kafka, topic, options?.timeoutMs ?? 30_000),
    async publish(messages: readonly PublishedMessage[]) {
      if (messages.length === 0) return;
      if (producer === undefined) {
        producer = kafka.producer({
          idempotent: true,
          maxInFlightRequests: 1,
          createPartitioner: Partitioners.DefaultPartitioner,
        });
        await producer.connect();
      }
      for (const slice of publishSlices(messages)) {
        await producer.sendBatch({ topicMessages: topicMessagesOf(slice) });
      }
    },
    async close() {
      await producer?.disconnect();
      producer = undefined;
    },
  };
}

/** See TopicTools.readTopic. */
async function readWholeTopic(kafka: Kafka, topic: string, timeoutMs: number): Promise<RawRecord[]> {
  const admin = kafka.admin();
  await admin.connect();
  /** Per non-empty partition, the offset after its last record (transaction markers included). */
  const ends = new Map<number, bigint>();
  try {
    if (!(await admin.listTopics()).includes(topic)) throw new TopicNotFoundError(topic);
    for (const { partition, high, low } of await admin.fetchTopicOffsets(topic)) {
      if (BigInt(high) > BigInt(low)) ends.set(partition, BigInt(high));
    }
  } finally {
    await admin.disconnect();
  }
  if (ends.size === 0) return [];

  const consumer = kafka.consumer({
    groupId: `tributary-reader-${randomUUID()}`,
    readUncommitted: false,
    allowAutoTopicCreation: false,
    maxWaitTimeInMs: 250,
  });
  const records: RawRecord[] = [];
  const unfinished = new Set(ends.keys());
  let timer: NodeJS.Timeout | undefined;
  try {
    const reachedEnd = new Promise<void>((resolve, reject) => {
      timer = setTimeout(
        () =>
          reject(
            new Error(
              `reading ${topic}: partitions ${[...unfinished].join(', ')} did not reach their end within ` +
                `${timeoutMs} ms (an open transaction?)`,
            ),
          ),
        timeoutMs,
      );
      // Fires for batches of records and for batches of transaction markers alone, whose offsets
      // count towards the end but never reach eachBatch.
      consumer.on(consumer.events.END_BATCH_PROCESS, ({ payload }) => {
        const end = ends.get(payload.partition);
        if (end !== undefined && BigInt(payload.lastOffset) >= end - 1n) unfinished.delete(payload.partition);
        if (unfinished.size === 0) resolve();
      });
    });
    await consumer.connect();
    await consumer.subscribe({ topics: [topic], fromBeginning: true });
    await consumer.run({
      autoCommit: false,
      eachBatch: async ({ batch }) => {
        const end = ends.get(batch.partition) ?? 0n;
        for (const message of batch.messages) {
          if (BigInt(message.offset) < end) records.push(toRawRecord(topic, batch.partition, message));
        }
      },
    });
    await reachedEnd;
  } finally {
    clearTimeout(timer);
    await consumer.disconnect();
  }
  return records.sort((a, b) => a.partition - b.partition || Number(a.offset - b.offset));
}
