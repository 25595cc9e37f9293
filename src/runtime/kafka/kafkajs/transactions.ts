/**
 * Kafka transactions on kafkajs: a task's transactional producer (TaskTransactions: its changelog
 * records and input offsets) and the DLQ's writer (TransactionalWriter: letters and their progress).
 */
import { Partitioners } from 'kafkajs';
import type { Kafka, Message, Producer } from 'kafkajs';
import type { OutgoingMessage, TaskMessage, TaskTransactions, TransactionalWriter } from '../client.js';
import { KafkaFencedError } from '../client.js';
import { slicesOf } from '../slices.js';
import { toKafkaHeaders, topicMessagesOf } from './records.js';

/** Bytes of messages per produce request of one transaction: a record batch stays below ~1 MB. */
const MAX_SEND_BYTES = 512 * 1024;

function isFenced(error: unknown): boolean {
  for (let e: unknown = error; e instanceof Error; e = e.cause) {
    const type = (e as { type?: string }).type;
    if (
      type === 'INVALID_PRODUCER_EPOCH' ||
      type === 'PRODUCER_FENCED' ||
      type === 'TRANSACTIONAL_ID_NOT_FOUND'
    )
      return true;
    if (/fenced/i.test(e.message)) return true;
  }
  return false;
}

function kafkaMessageOf({ key, value, partition, headers, timestamp }: TaskMessage): Message {
  const message: Message = { key, value };
  if (partition !== undefined) message.partition = partition;
  if (headers !== undefined) message.headers = toKafkaHeaders(headers);
  if (timestamp !== undefined) message.timestamp = String(timestamp);
  return message;
}

function messageBytes({ key, value, headers }: TaskMessage): number {
  let size = (key?.length ?? 0) + (value?.length ?? 0) + 32;
  for (const [name, header] of Object.entries(headers ?? {})) size += name.length + (header?.length ?? 0);
  return size;
}

/** Splits messages into sends of at most MAX_SEND_BYTES (one message alone may exceed it). */
function sendsOf(messages: readonly TaskMessage[]): Generator<TaskMessage[]> {
  return slicesOf(messages, messageBytes, { maxBytes: MAX_SEND_BYTES });
}

export function kafkajsTaskTransactions(kafka: Kafka, transactionalId: string): TaskTransactions {
  let producer: Producer | undefined;
  const connected = async (): Promise<Producer> => {
    if (producer === undefined) {
      producer = kafka.producer({
        transactionalId,
        idempotent: true,
        maxInFlightRequests: 1,
        // Output records without a partition go by key, as every Kafka client's default partitioner does.
        createPartitioner: Partitioners.DefaultPartitioner,
      });
      await producer.connect();
    }
    return producer;
  };
  return {
    async fence() {
      // The first transaction() initializes the producer id: the coordinator bumps the epoch (fencing
      // the previous owner) and completes the previous owner's open transaction (aborts it) first.
      const transaction = await (await connected()).transaction();
      await transaction.abort();
    },
    async commit(messages, { groupId, offsets }) {
      const transaction = await (await connected()).transaction();
      const last = new Map<string, bigint>();
      try {
        for (const slice of sendsOf(messages)) {
          const byTopic = new Map<string, Message[]>();
          for (const message of slice) {
            const list = byTopic.get(message.topic);
            if (list) list.push(kafkaMessageOf(message));
            else byTopic.set(message.topic, [kafkaMessageOf(message)]);
          }
          const sent = await transaction.sendBatch({
            topicMessages: [...byTopic].map(([topic, list]) => ({ topic, messages: list })),
          });
          for (const metadata of sent) {
            const count = byTopic.get(metadata.topicName)?.length ?? 0;
            const base = BigInt(metadata.baseOffset ?? '-1');
            if (base >= 0n && count > 0) last.set(metadata.topicName, base + BigInt(count) - 1n);
          }
        }
        if (offsets.length > 0) {
          const topics = new Map<string, Array<{ partition: number; offset: string }>>();
          for (const { topic, partition, offset } of offsets) {
            const list = topics.get(topic) ?? [];
            list.push({ partition, offset: offset.toString() });
            topics.set(topic, list);
          }
          await transaction.sendOffsets({
            consumerGroupId: groupId,
            topics: [...topics].map(([topic, partitions]) => ({ topic, partitions })),
          });
        }
        await transaction.commit();
        return last;
      } catch (error) {
        await transaction.abort().catch(() => undefined);
        if (isFenced(error))
          throw new KafkaFencedError(`${transactionalId} was fenced by a newer owner`, { cause: error });
        throw error;
      }
    },
    async close() {
      await producer?.disconnect();
      producer = undefined;
    },
  };
}

/** The TransactionalWriter of client.ts (the DLQ's transactions: letters and their progress offset). */
export async function kafkajsTransactionalWriter(
  kafka: Kafka,
  transactionalId: string,
): Promise<TransactionalWriter> {
  const producer = kafka.producer({
    transactionalId,
    idempotent: true,
    maxInFlightRequests: 1,
    // Dead letters carry no partition: spread them like any keyed topic, without kafkajs' v2 notice.
    createPartitioner: Partitioners.DefaultPartitioner,
  });
  await producer.connect();
  return {
    async sendWithOffset(messages: readonly OutgoingMessage[], progress) {
      const transaction = await producer.transaction();
      try {
        await transaction.sendBatch({ topicMessages: topicMessagesOf(messages) });
        await transaction.sendOffsets({
          consumerGroupId: progress.groupId,
          topics: [
            {
              topic: progress.topic,
              partitions: [{ partition: progress.partition, offset: progress.offset.toString() }],
            },
          ],
        });
        await transaction.commit();
      } catch (error) {
        await transaction.abort().catch(() => undefined);
        throw error;
      }
    },
    close: () => producer.disconnect(),
  };
}
