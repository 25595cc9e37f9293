/**
 * The PartitionReader of client.ts on kafkajs. kafkajs has no manual assignment, so the reader is a
 * consumer group of one that pauses every partition it is not asked to read.
 */
import type { Consumer, ConsumerRunConfig, Kafka } from 'kafkajs';
import { retry } from '../../../core/retry.js';
import type { PartitionRead, PartitionReader, ReadBatch, TopicPartition } from '../client.js';
import { toRawRecord } from './records.js';

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
