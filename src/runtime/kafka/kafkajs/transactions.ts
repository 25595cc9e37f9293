/**
 * The changelog side of the kafkajs client: a task's transactional producer and a partition reader
 * (kafkajs has no manual assignment, so the reader is a consumer group of one that pauses every
 * partition it is not asked to read).
 */
import type { Admin, Consumer, ConsumerRunConfig, ITopicConfig, Kafka, Message, Producer } from 'kafkajs';
import kafkajs from 'kafkajs';
import type {
  PartitionRead,
  PartitionReader,
  PartitionedMessage,
  ReadBatch,
  TaskTransactions,
  TopicDescription,
  TopicPartition,
} from './client.js';
import { KafkaFencedError } from './client.js';
import { toRawRecord } from './kafkajs.js';
import { slicesOf } from './slices.js';
import { retry } from '../../core/retry.js';
import type { RetryPolicy } from '../../core/retry.js';

/** Bytes of messages per produce request of one transaction: a record batch stays below ~1 MB. */
const MAX_SEND_BYTES = 512 * 1024;

// kafkajs is CommonJS: this export is not visible to ESM named imports.
const { ConfigResourceTypes } = kafkajs;

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

function kafkaMessageOf(message: PartitionedMessage): Message {
  return { key: message.key, value: message.value, partition: message.partition };
}

/** Splits messages into sends of at most MAX_SEND_BYTES (one message alone may exceed it). */
function sendsOf(messages: readonly PartitionedMessage[]): Generator<PartitionedMessage[]> {
  return slicesOf(messages, (m) => m.key.length + (m.value?.length ?? 0) + 32, { maxBytes: MAX_SEND_BYTES });
}

export function kafkajsTaskTransactions(kafka: Kafka, transactionalId: string): TaskTransactions {
  let producer: Producer | undefined;
  const connected = async (): Promise<Producer> => {
    if (producer === undefined) {
      producer = kafka.producer({ transactionalId, idempotent: true, maxInFlightRequests: 1 });
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

interface ActiveRead {
  onBatch: (batch: ReadBatch) => Promise<void>;
  /** Next offset to read. */
  next: bigint;
  waiters: Array<{ end: bigint; resolve: () => void; reject: (error: Error) => void }>;
  /** Applying a batch failed: the read stops and its waiters learn why. */
  failed?: Error;
  handling: Promise<void>;
  stopped: boolean;
}

const key = (topic: string, partition: number) => `${topic}\u0000${partition}`;

/**
 * A consumer group of one over `topics` that fetches only the partitions being read: every other
 * assigned partition stays paused. Nothing is committed; after a rejoin, each read seeks back to its
 * next offset.
 */
export function kafkajsPartitionReader(kafka: Kafka, groupId: string): PartitionReader {
  const reads = new Map<string, ActiveRead>();
  let consumer: Consumer | undefined;
  let assigned: TopicPartition[] = [];
  let topicsRead: readonly string[] = [];
  let stopped = false;

  const settle = (read: ActiveRead) => {
    read.waiters = read.waiters.filter((waiter) => {
      if (read.next < waiter.end) return true;
      waiter.resolve();
      return false;
    });
  };
  const apply = (tp: TopicPartition) => {
    if (!consumer) return;
    const read = reads.get(key(tp.topic, tp.partition));
    try {
      if (read && !read.stopped) {
        consumer.seek({ topic: tp.topic, partition: tp.partition, offset: read.next.toString() });
        consumer.resume([{ topic: tp.topic, partitions: [tp.partition] }]);
      } else consumer.pause([{ topic: tp.topic, partitions: [tp.partition] }]);
    } catch {
      // kafkajs throws while the consumer restarts after a crash (Kafka unreachable): its next join
      // applies every read again (GROUP_JOIN above), so a read started meanwhile just waits for it.
    }
  };

  return {
    async start(topics) {
      topicsRead = topics;
      consumer = kafka.consumer({
        groupId,
        readUncommitted: false,
        allowAutoTopicCreation: false,
        maxWaitTimeInMs: 100,
        maxBytesPerPartition: 8 * 1024 * 1024,
        maxBytes: 32 * 1024 * 1024,
      });
      const joined = new Promise<void>((resolve) => {
        consumer?.on(consumer.events.GROUP_JOIN, ({ payload }) => {
          assigned = Object.entries(payload.memberAssignment).flatMap(([topic, partitions]) =>
            partitions.map((partition) => ({ topic, partition })),
          );
          for (const tp of assigned) apply(tp);
          resolve();
        });
      });
      // Batches of transaction markers alone never reach eachBatch, but their offsets count.
      consumer.on(consumer.events.END_BATCH_PROCESS, ({ payload }) => {
        const read = reads.get(key(payload.topic, payload.partition));
        if (!read || read.stopped) return;
        const after = BigInt(payload.lastOffset) + 1n;
        if (after > read.next) read.next = after;
        settle(read);
      });
      // kafkajs gives up without restarting when it cannot find the group coordinator for a while
      // (Kafka away): run again until it is back, or every restore and standby would wait forever.
      consumer.on(consumer.events.CRASH, (event) => {
        if (event.payload.restart || stopped) return;
        void retry(
          async () => {
            if (stopped || !consumer) return;
            await consumer.connect();
            await consumer.run(runConfig);
          },
          { initialDelayMs: 1000, maxDelayMs: 10_000 },
          { isTransient: () => true, shouldContinue: () => !stopped },
        ).catch(() => undefined);
      });
      await consumer.connect();
      await consumer.subscribe({ topics: [...topicsRead], fromBeginning: true });
      const runConfig: ConsumerRunConfig = {
        autoCommit: false,
        partitionsConsumedConcurrently: 4,
        eachBatch: async ({ batch }) => {
          const read = reads.get(key(batch.topic, batch.partition));
          if (!read || read.stopped) return;
          const records = batch.messages
            .filter((message) => BigInt(message.offset) >= read.next)
            .map((message) => toRawRecord(batch.topic, batch.partition, message));
          const lastOffset = BigInt(batch.lastOffset());
          if (lastOffset < read.next) return;
          const handling = read.onBatch({ records, lastOffset });
          read.handling = handling.catch(() => undefined);
          try {
            await handling;
          } catch (error) {
            // The reader goes on for the other reads; this one stops, and whoever waits on it fails.
            read.failed = error instanceof Error ? error : new Error(String(error));
            read.stopped = true;
            for (const waiter of read.waiters) waiter.reject(read.failed);
            read.waiters = [];
            return;
          }
          read.next = lastOffset + 1n;
          settle(read);
        },
      };
      await consumer.run(runConfig);
      await joined;
    },
    read(tp, from, onBatch) {
      const id = key(tp.topic, tp.partition);
      if (reads.has(id)) throw new Error(`${tp.topic}[${tp.partition}] is already being read`);
      const read: ActiveRead = {
        onBatch,
        next: from,
        waiters: [],
        handling: Promise.resolve(),
        stopped: false,
      };
      reads.set(id, read);
      if (assigned.some((a) => a.topic === tp.topic && a.partition === tp.partition)) apply(tp);
      const handle: PartitionRead = {
        reached: (end) =>
          new Promise<void>((resolve, reject) => {
            if (read.failed) return reject(read.failed);
            read.waiters.push({ end, resolve, reject });
            settle(read);
          }),
        async stop() {
          read.stopped = true;
          if (reads.get(id) === read) reads.delete(id);
          apply(tp);
          await read.handling;
          for (const waiter of read.waiters) waiter.resolve();
          read.waiters = [];
        },
      };
      return handle;
    },
    async stop() {
      stopped = true;
      for (const read of reads.values()) read.stopped = true;
      reads.clear();
      await consumer?.disconnect();
      consumer = undefined;
    },
  };
}

/**
 * A topic another instance created a moment ago (instances starting together) is listed before the
 * broker serves its metadata and elects its leaders: wait for them, up to 30 s.
 */
const NEW_TOPIC_WAIT: RetryPolicy = { initialDelayMs: 100, maxDelayMs: 1000, maxElapsedMs: 30_000 };

class TopicNotReadyError extends Error {
  override readonly name = 'TopicNotReadyError';
}

async function metadataWithLeaders(admin: Admin, topic: string) {
  return retry(
    async () => {
      const metadata = await admin.fetchTopicMetadata({ topics: [topic] });
      const partitions = metadata.topics[0]?.partitions ?? [];
      if (partitions.length === 0 || partitions.some((p) => p.leader < 0))
        throw new TopicNotReadyError(`topic ${topic} has no leaders yet`);
      return metadata;
    },
    NEW_TOPIC_WAIT,
    {
      isTransient: (error) =>
        error instanceof TopicNotReadyError || (error as { retriable?: boolean }).retriable === true,
    },
  );
}

/**
 * Creates a topic and waits until the broker serves its metadata with leaders: kafkajs' own wait
 * fails on a topic the broker does not know yet a moment after creating it, and does not wait at all
 * when another instance created it meanwhile (instances starting together).
 */
export async function createTopicWaiting(admin: Admin, topic: ITopicConfig): Promise<void> {
  try {
    await admin.createTopics({ topics: [topic], waitForLeaders: true });
  } catch (error) {
    if ((error as { type?: string }).type !== 'UNKNOWN_TOPIC_OR_PARTITION') throw error;
  }
  await metadataWithLeaders(admin, topic.topic);
}

/** The changelog-related admin calls of KafkaAdmin on a kafkajs admin client. */
export function kafkajsTopicAdmin(admin: Admin) {
  return {
    async createTopic(
      topic: string,
      partitions: number,
      config: Record<string, string>,
      replicationFactor = -1,
    ): Promise<void> {
      const existing = await admin.listTopics();
      if (existing.includes(topic)) {
        await metadataWithLeaders(admin, topic);
        return;
      }
      await createTopicWaiting(admin, {
        topic,
        numPartitions: partitions,
        replicationFactor,
        configEntries: Object.entries(config).map(([name, value]) => ({ name, value })),
      });
    },
    async describeTopic(topic: string): Promise<TopicDescription | undefined> {
      if (!(await admin.listTopics()).includes(topic)) return undefined;
      const metadata = await metadataWithLeaders(admin, topic);
      const partitions = metadata.topics[0]?.partitions.length ?? 0;
      const configs = await admin.describeConfigs({
        resources: [{ type: ConfigResourceTypes.TOPIC, name: topic, configNames: ['cleanup.policy'] }],
        includeSynonyms: false,
      });
      const policy = configs.resources[0]?.configEntries.find((e) => e.configName === 'cleanup.policy');
      return { partitions, cleanupPolicy: policy?.configValue ?? 'delete' };
    },
  };
}
