/**
 * The narrow Kafka surface the runtime needs. Everything Kafka-client specific stays behind it
 * (kafkajs today, see kafkajs/), so a faster client can be swapped in once measured. Every method is
 * required: a client that lacks one the runtime calls fails to type-check, not at start().
 */
import type { Headers } from '../../core/records.js';
import type { RawRecord } from '../../core/records.js';

export interface TopicPartition {
  topic: string;
  partition: number;
}

export interface TopicPartitionOffset extends TopicPartition {
  /** The next offset to read. */
  offset: bigint;
}

export interface FetchedBatch {
  topic: string;
  partition: number;
  records: RawRecord[];
  /** The partition's high watermark when fetched: lag = highWatermark - last offset - 1. */
  highWatermark: bigint;
}

/** What a batch handler may do with the consumer while it holds the batch. */
export interface BatchControl {
  /** Marks everything through `offset` as consumed, so the next fetch starts after it. */
  markConsumed(offset: bigint): void;
  /** Repositions the partition; the rest of the current batch must not be processed. */
  seek(offset: bigint): void;
  /** Keeps the group membership alive during long handling (e.g. waiting for the registry). */
  heartbeat(): Promise<void>;
  isRunning(): boolean;
}

export interface GroupHandlers {
  onBatch(batch: FetchedBatch, control: BatchControl): Promise<void>;
  /** Called after every (re)join with this member's complete assignment. */
  onAssignment(assigned: TopicPartition[]): void;
  /**
   * Called after a (re)join once the group's view is known (who the members are, their admin URLs,
   * active and standby partitions); this member's standbys are its entry's `standby`. Later than
   * onAssignment, and skipped when a newer join overtakes it.
   */
  onMembership?(membership: GroupMembership): void;
  /** The consumer stopped with an error it could not recover from. */
  onCrash(error: Error): void;
}

/** One member of the consumer group, as the group's assignment sees it. */
export interface GroupMember {
  memberId: string;
  clientId: string;
  /** The address the broker saw the member connect from. */
  host: string;
  /** The member's admin endpoint as it advertises it (`admin.advertisedUrl`); absent when it has none. */
  adminUrl: string | undefined;
  /** Partition numbers it runs (partition p of every source topic), ascending. */
  active: number[];
  /** Partition numbers it keeps a standby copy of, ascending. */
  standby: number[];
}

/** The consumer group as of the last rebalance. */
export interface GroupMembership {
  groupId: string;
  /** This member's id. */
  self: string;
  /** Ordered by member id. */
  members: GroupMember[];
}

/** How this member takes part in the group's assignment. */
export interface GroupOptions {
  /** Standby copies of each partition the assignment gives out (on other members); 0 for none. */
  standbyReplicas: number;
  /** This member's admin endpoint as peers reach it, carried in its group metadata. */
  adminUrl?: string | undefined;
}

export interface GroupConsumer {
  start(topics: readonly string[], handlers: GroupHandlers): Promise<void>;
  /** The group's view now (asks the broker); rejects when this member has not joined. */
  membership(): Promise<GroupMembership>;
  pause(partitions: readonly TopicPartition[]): void;
  resume(partitions: readonly TopicPartition[]): void;
  /**
   * Moves the next fetch of an assigned partition (outside a batch): a task reopened from its changelog
   * resumes where its restored state is, behind what this consumer fetched for its lost incarnation.
   */
  seek(position: TopicPartitionOffset): void;
  commit(offsets: readonly TopicPartitionOffset[]): Promise<void>;
  /** Stops fetching, waits for the batch in hand, leaves the group and disconnects. */
  stop(): Promise<void>;
}

export interface OutgoingMessage {
  topic: string;
  key: Buffer | null;
  value: Buffer | null;
  headers: Headers;
}

/**
 * Writes messages and a consumer-group offset in one Kafka transaction: both become visible to
 * read_committed readers, or neither. The offset records how far an outbox has been delivered.
 */
export interface TransactionalWriter {
  sendWithOffset(
    messages: readonly OutgoingMessage[],
    progress: { groupId: string } & TopicPartitionOffset,
  ): Promise<void>;
  close(): Promise<void>;
}

/**
 * A message of a task's transaction: a changelog record (to the task's own partition) or an output
 * record for any topic (see RecordCollector in core/task.ts).
 */
export interface TaskMessage {
  topic: string;
  /** Absent: the producer's partitioner picks one (by key, as every Kafka client does). */
  partition?: number;
  key: Buffer | null;
  /** null: a tombstone. */
  value: Buffer | null;
  headers?: Headers;
  /** Epoch ms; absent: the producer's clock. */
  timestamp?: number;
}

/**
 * The transactional producer of one task (transactional id `<appId>-task-<partition>`): the newest
 * one to fence() owns the partition's changelog; an older one can write nothing more.
 */
export interface TaskTransactions {
  /** Claims the transactional id: a previous owner is fenced and its open transaction aborted. */
  fence(): Promise<void>;
  /**
   * Writes the messages and the group offsets in one transaction; resolves with the offset of the last
   * message written per topic (of the last partition written, for a topic written to several).
   * Rejects with KafkaFencedError when a newer owner fenced this producer; a rejected transaction is
   * aborted, and nothing of it is ever visible to read_committed readers.
   */
  commit(
    messages: readonly TaskMessage[],
    offsets: { groupId: string; offsets: readonly TopicPartitionOffset[] },
  ): Promise<Map<string, bigint>>;
  close(): Promise<void>;
}

/** A transaction refused because a newer producer with the same transactional id exists. */
export class KafkaFencedError extends Error {
  override readonly name = 'KafkaFencedError';
}

/** A batch of committed records read from one partition, and the offset reading reached. */
export interface ReadBatch {
  records: RawRecord[];
  /** The last offset this batch covers (transaction markers included). */
  lastOffset: bigint;
}

/** Reading a topic partition from an offset on, as long as the reader wants it. */
export interface PartitionRead {
  /** Resolves once reading has covered every offset below `end` (e.g. the end when reading began). */
  reached(end: bigint): Promise<void>;
  /** Stops reading; resolves once no batch of this read is being handled. */
  stop(): Promise<void>;
}

/**
 * Reads (committed records only) chosen partitions of a fixed set of topics from chosen offsets, e.g.
 * changelogs for a restore or a standby; partitions not being read are not fetched.
 */
export interface PartitionReader {
  start(topics: readonly string[]): Promise<void>;
  /** Reads `tp` from `from` on, handing each batch to `onBatch` in order (one at a time per partition). */
  read(tp: TopicPartition, from: bigint, onBatch: (batch: ReadBatch) => Promise<void>): PartitionRead;
  stop(): Promise<void>;
}

/** A topic as Kafka describes it, for checking the topics tributary manages. */
export interface TopicDescription {
  partitions: number;
  /** The topic's `cleanup.policy`. */
  cleanupPolicy: string;
}

export interface KafkaAdmin {
  ensureTopic(topic: string, partitions: number): Promise<void>;
  /** Creates a topic with `config` (e.g. cleanup.policy) when it does not exist; replication -1: broker default. */
  createTopic(
    topic: string,
    partitions: number,
    config: Record<string, string>,
    replicationFactor?: number,
  ): Promise<void>;
  /** Partition count and cleanup policy, or undefined for a topic that does not exist. */
  describeTopic(topic: string): Promise<TopicDescription | undefined>;
  /** The committed offsets of a group for one topic (partitions without a commit are absent). */
  groupOffsets(groupId: string, topic: string): Promise<Map<number, bigint>>;
  /** The topics a group has committed offsets for (what it consumes), sorted. */
  groupTopics(groupId: string): Promise<string[]>;
  /** Per partition of a topic: its earliest offset and its end (the offset the next record gets). */
  topicOffsets(topic: string): Promise<Map<number, { earliest: bigint; end: bigint }>>;
  close(): Promise<void>;
}

/** No configured broker answered like a Kafka broker when probed at start. */
export class KafkaProbeError extends Error {
  override readonly name = 'KafkaProbeError';
}

export interface KafkaClient {
  /**
   * One quick attempt per configured broker (connect, then a metadata request), with the client's
   * retry logging silenced: instead of a storm of retries and a misleading error, a KafkaProbeError
   * with one line naming the address, what answered and the likely fix, when no broker answers as a
   * broker or one is not a broker at all (a KRaft controller port). Resolves with a note per broker
   * that is down while another answered.
   */
  probe(): Promise<string[]>;
  groupConsumer(groupId: string, options?: GroupOptions): GroupConsumer;
  transactionalWriter(transactionalId: string): Promise<TransactionalWriter>;
  admin(): Promise<KafkaAdmin>;
  /** The producer of a task's changelog transactions (see TaskTransactions); created disconnected. */
  taskTransactions(transactionalId: string): TaskTransactions;
  /** A reader of its own (a consumer group of one, committing nothing). */
  partitionReader(groupId: string): PartitionReader;
}

/** TopicTools.readTopic of a topic that does not exist. */
export class TopicNotFoundError extends Error {
  override readonly name = 'TopicNotFoundError';
  constructor(readonly topic: string) {
    super(`topic ${topic} does not exist`);
  }
}

/** A message for TopicTools.publish: an OutgoingMessage that may keep its original timestamp. */
export interface PublishedMessage extends OutgoingMessage {
  /** Epoch ms; the broker's clock when absent. */
  timestamp?: number;
}

/**
 * Reading and writing whole topics for tools (the `tributary dlq` command), beside the processing
 * path and not used by it.
 */
export interface TopicTools {
  /**
   * Every committed record of `topic` up to its end at the time of the call, in offset order per
   * partition. Reads with a throwaway consumer group and commits no offsets. Throws when the topic
   * does not exist or the end is not reached within `timeoutMs` (default 30 s).
   */
  readTopic(topic: string, options?: { timeoutMs?: number }): Promise<RawRecord[]>;
  /** Produces the messages with an idempotent producer (no transaction), in order per topic. */
  publish(messages: readonly PublishedMessage[]): Promise<void>;
  close(): Promise<void>;
}
