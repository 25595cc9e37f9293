/**
 * An in-memory Kafka behind the runtime's `KafkaClient` interface (src/runtime/kafka/client.ts), so
 * the runtime's paths (rebalances, seek-back, backpressure, DLQ transactions) run in unit tests
 * without a broker.
 *
 * It keeps the contract, not one test's needs: topics are partitioned logs with offsets; a group
 * consumer fetches from its position (the group's committed offset on assignment, else the log start),
 * moves it only through `markConsumed`/`seek`, and skips paused partitions; a transactional writer
 * appends its messages and its progress offset together or not at all, a newer writer with the same
 * transactional id fences the older one, and a record batch larger than the broker's
 * `message.max.bytes` is rejected. The test drives the group: it assigns partitions and polls.
 */
import type { Headers, RawRecord } from '../../src/core/records.js';
import type {
  BatchControl,
  GroupConsumer,
  GroupHandlers,
  GroupMembership,
  GroupOptions,
  KafkaAdmin,
  KafkaClient,
  OutgoingMessage,
  TopicPartition,
  TopicPartitionOffset,
  TransactionalWriter,
} from '../../src/runtime/kafka/client.js';
import { TopicNotFoundError } from '../../src/runtime/kafka/client.js';

/** The broker's default `message.max.bytes` (1 MiB + 12). */
export const DEFAULT_MAX_MESSAGE_BYTES = 1_048_588;

/** What a test produces: everything but the value is optional. */
export interface ProducedRecord {
  key?: Buffer | string | null;
  value: Buffer | string | null;
  headers?: Record<string, Buffer | string>;
  timestamp?: number;
}

/** How an injected transaction failure behaves. */
export type TransactionFailure =
  /** Rejected before anything is written (e.g. a broker connection dropped). */
  | 'before-commit'
  /** Written and committed, but the client sees an error (e.g. a timeout on the commit's answer). */
  | 'after-commit';

/** Size of a record in a Kafka v2 record batch, close to what the broker measures (varints taken at their widest). */
function recordBytes(key: Buffer | null, value: Buffer | null, headers: Headers): number {
  let size = 21 + (key?.length ?? 0) + (value?.length ?? 0);
  for (const [name, header] of Object.entries(headers))
    size += 10 + Buffer.byteLength(name) + (header?.length ?? 0);
  return size;
}

const RECORD_BATCH_HEADER_BYTES = 61;

const asBuffer = (value: Buffer | string) => (typeof value === 'string' ? Buffer.from(value) : value);

export class FakeKafka implements KafkaClient {
  /** topic -> partitions -> records (offset = index). */
  private readonly logs = new Map<string, RawRecord[][]>();
  /** group -> `topic:partition` -> next offset. */
  private readonly committedOffsets = new Map<string, Map<string, bigint>>();
  private readonly writerEpochs = new Map<string, number>();
  private readonly failures: TransactionFailure[] = [];
  private nextPartition = 0;
  readonly consumers: FakeGroupConsumer[] = [];
  /** Transactions committed by all writers. */
  committedTransactions = 0;
  /** Transactions rejected (injected failures, fencing, oversized batches). */
  rejectedTransactions = 0;

  constructor(readonly options: { maxMessageBytes?: number } = {}) {}

  get maxMessageBytes(): number {
    return this.options.maxMessageBytes ?? DEFAULT_MAX_MESSAGE_BYTES;
  }

  createTopic(topic: string, partitions: number): void {
    if (this.logs.has(topic)) return;
    this.logs.set(
      topic,
      Array.from({ length: partitions }, () => []),
    );
  }

  /** Appends records to one partition and returns their offsets. */
  produce(topic: string, partition: number, records: readonly ProducedRecord[]): bigint[] {
    const log = this.partitionLog(topic, partition);
    return records.map((record) => {
      const headers: Headers = {};
      for (const [name, value] of Object.entries(record.headers ?? {})) headers[name] = asBuffer(value);
      const offset = BigInt(log.length);
      log.push({
        topic,
        partition,
        offset,
        timestamp: record.timestamp ?? Date.now(),
        key: record.key == null ? null : asBuffer(record.key),
        value: record.value === null ? null : asBuffer(record.value),
        headers,
      });
      return offset;
    });
  }

  /** Every record of a topic (all partitions, each in offset order), as a reader would see it. */
  records(topic: string): RawRecord[] {
    return (this.logs.get(topic) ?? []).flat();
  }

  topicExists(topic: string): boolean {
    return this.logs.has(topic);
  }

  /** The committed offsets of a group for one topic (partitions without a commit are absent). */
  committed(groupId: string, topic: string): Map<number, bigint> {
    const offsets = new Map<number, bigint>();
    for (const [key, offset] of this.committedOffsets.get(groupId) ?? []) {
      const separator = key.lastIndexOf(':');
      if (key.slice(0, separator) === topic) offsets.set(Number(key.slice(separator + 1)), offset);
    }
    return offsets;
  }

  /** Sets a group's offsets as `kafka-consumer-groups --reset-offsets` would. */
  commitOffsets(groupId: string, offsets: readonly TopicPartitionOffset[]): void {
    let group = this.committedOffsets.get(groupId);
    if (!group) this.committedOffsets.set(groupId, (group = new Map()));
    for (const { topic, partition, offset } of offsets) group.set(`${topic}:${partition}`, offset);
  }

  /** The next `count` transactions (of any writer) fail the given way. */
  failTransactions(count: number, how: TransactionFailure = 'before-commit'): void {
    for (let i = 0; i < count; i++) this.failures.push(how);
  }

  /** The group consumer most recently created for `groupId`. */
  consumer(groupId: string): FakeGroupConsumer {
    const consumer = this.consumers.findLast((c) => c.groupId === groupId);
    if (!consumer) throw new Error(`no consumer of group ${groupId} yet`);
    return consumer;
  }

  // ---- KafkaClient ---------------------------------------------------------------------------------

  groupConsumer(groupId: string, options?: GroupOptions): GroupConsumer {
    const consumer = new FakeGroupConsumer(this, groupId, options);
    this.consumers.push(consumer);
    return consumer;
  }

  async transactionalWriter(transactionalId: string): Promise<TransactionalWriter> {
    // Like initTransactions: a new producer with this id bumps the epoch and fences the older ones.
    const epoch = (this.writerEpochs.get(transactionalId) ?? 0) + 1;
    this.writerEpochs.set(transactionalId, epoch);
    let closed = false;
    return {
      sendWithOffset: async (messages, progress) => {
        if (closed) throw new Error(`transactional writer ${transactionalId} is closed`);
        if (this.writerEpochs.get(transactionalId) !== epoch) {
          this.rejectedTransactions++;
          throw new Error(`producer ${transactionalId} (epoch ${epoch}) is fenced by a newer one`);
        }
        const failure = this.failures.shift();
        if (failure === 'before-commit') {
          this.rejectedTransactions++;
          throw new Error('injected transaction failure (nothing written)');
        }
        this.commitTransaction(messages, progress);
        if (failure === 'after-commit') throw new Error('injected transaction failure (already committed)');
      },
      close: async () => {
        closed = true;
      },
    };
  }

  async admin(): Promise<KafkaAdmin> {
    return {
      ensureTopic: async (topic, partitions) => this.createTopic(topic, partitions),
      groupOffsets: async (groupId, topic) => this.committed(groupId, topic),
      groupTopics: async (groupId) =>
        [
          ...new Set(
            [...(this.committedOffsets.get(groupId)?.keys() ?? [])].map((key) =>
              key.slice(0, key.lastIndexOf(':')),
            ),
          ),
        ].sort(),
      topicOffsets: async (topic) => {
        const partitions = this.logs.get(topic);
        if (partitions === undefined) throw new TopicNotFoundError(topic);
        return new Map(
          partitions.map((log, partition) => [partition, { earliest: 0n, end: BigInt(log.length) }]),
        );
      },
      close: async () => undefined,
    };
  }

  // ---- internals -------------------------------------------------------------------------------------

  /** All or nothing: checks every batch against the size limit before writing anything. */
  private commitTransaction(
    messages: readonly OutgoingMessage[],
    progress: { groupId: string } & TopicPartitionOffset,
  ): void {
    const batches = new Map<string, { topic: string; partition: number; messages: OutgoingMessage[] }>();
    for (const message of messages) {
      const partitions = this.logs.get(message.topic)?.length;
      if (partitions === undefined) {
        this.rejectedTransactions++;
        throw new Error(`topic ${message.topic} does not exist`);
      }
      const partition = this.nextPartition++ % partitions;
      const key = `${message.topic}:${partition}`;
      const batch = batches.get(key) ?? { topic: message.topic, partition, messages: [] };
      batch.messages.push(message);
      batches.set(key, batch);
    }
    for (const { topic, partition, messages: batch } of batches.values()) {
      const bytes =
        RECORD_BATCH_HEADER_BYTES + batch.reduce((sum, m) => sum + recordBytes(m.key, m.value, m.headers), 0);
      if (bytes > this.maxMessageBytes) {
        this.rejectedTransactions++;
        throw new Error(
          `MESSAGE_TOO_LARGE: a record batch of ${bytes} bytes for ${topic}[${partition}] is larger than ` +
            `the max message size the server will accept (${this.maxMessageBytes})`,
        );
      }
    }
    const now = Date.now();
    for (const { topic, partition, messages: batch } of batches.values()) {
      const log = this.partitionLog(topic, partition);
      for (const m of batch)
        log.push({
          topic,
          partition,
          offset: BigInt(log.length),
          timestamp: now,
          key: m.key,
          value: m.value,
          headers: { ...m.headers },
        });
    }
    this.commitOffsets(progress.groupId, [progress]);
    this.committedTransactions++;
  }

  /** @internal */
  partitionLog(topic: string, partition: number): RawRecord[] {
    const log = this.logs.get(topic)?.[partition];
    if (!log) throw new Error(`no partition ${topic}[${partition}]`);
    return log;
  }
}

/** What the runtime did with the consumer, in call order, for tests that check the protocol. */
export type ConsumerCall =
  | { op: 'pause' | 'resume'; partitions: TopicPartition[] }
  | { op: 'commit'; offsets: TopicPartitionOffset[] }
  | { op: 'seek' | 'markConsumed'; topic: string; partition: number; offset: bigint };

const keyOf = (topic: string, partition: number) => `${topic}:${partition}`;

export class FakeGroupConsumer implements GroupConsumer {
  private handlers: GroupHandlers | undefined;
  private topics: readonly string[] = [];
  private running = false;
  private assigned: TopicPartition[] = [];
  private readonly pausedPartitions = new Set<string>();
  /** Next offset to fetch per `topic:partition` of the assignment. */
  private readonly positions = new Map<string, bigint>();
  private inFlight: Promise<void> | undefined;
  readonly calls: ConsumerCall[] = [];
  stopped = false;
  /** Records per fetched batch at most. */
  maxBatchRecords = 100;
  /** This member's id in the views the fake makes up. */
  readonly memberId = 'fake-member';
  private view: GroupMembership | undefined;

  constructor(
    private readonly kafka: FakeKafka,
    readonly groupId: string,
    /** How the runtime asked to take part in the group (standbys, advertised admin URL). */
    readonly options?: GroupOptions,
  ) {}

  async start(topics: readonly string[], handlers: GroupHandlers): Promise<void> {
    if (this.running) throw new Error('consumer already started');
    this.topics = topics;
    this.handlers = handlers;
    this.running = true;
  }

  /** The view the test announced last, else this member alone with its partitions. */
  async membership(): Promise<GroupMembership> {
    if (this.view) return this.view;
    const active = [...new Set(this.assigned.map((tp) => tp.partition))].sort((a, b) => a - b);
    const member = { memberId: this.memberId, clientId: 'fake', host: '127.0.0.1', adminUrl: undefined };
    return { groupId: this.groupId, self: this.memberId, members: [{ ...member, active, standby: [] }] };
  }

  pause(partitions: readonly TopicPartition[]): void {
    this.calls.push({ op: 'pause', partitions: [...partitions] });
    for (const { topic, partition } of partitions) this.pausedPartitions.add(keyOf(topic, partition));
  }

  seek({ topic, partition, offset }: TopicPartitionOffset): void {
    this.calls.push({ op: 'seek', topic, partition, offset });
    const key = keyOf(topic, partition);
    if (this.positions.has(key)) this.positions.set(key, offset);
  }

  resume(partitions: readonly TopicPartition[]): void {
    this.calls.push({ op: 'resume', partitions: [...partitions] });
    for (const { topic, partition } of partitions) this.pausedPartitions.delete(keyOf(topic, partition));
  }

  async commit(offsets: readonly TopicPartitionOffset[]): Promise<void> {
    this.calls.push({ op: 'commit', offsets: [...offsets] });
    if (this.stopped) throw new Error('consumer is not a member of the group');
    this.kafka.commitOffsets(this.groupId, offsets);
  }

  async stop(): Promise<void> {
    this.running = false;
    await this.inFlight;
    this.stopped = true;
    this.assigned = [];
  }

  // ---- driven by the test ----------------------------------------------------------------------------

  /**
   * The group (re)assigns this member's partitions of every subscribed topic. Newly assigned
   * partitions start at the group's committed offset, or at the log start without one.
   */
  assign(partitions: readonly number[]): void {
    if (!this.handlers) throw new Error('consumer not started');
    const assigned = this.topics.flatMap((topic) => partitions.map((partition) => ({ topic, partition })));
    const previous = new Set(this.assigned.map((tp) => keyOf(tp.topic, tp.partition)));
    for (const { topic, partition } of assigned) {
      if (previous.has(keyOf(topic, partition))) continue;
      this.positions.set(
        keyOf(topic, partition),
        this.kafka.committed(this.groupId, topic).get(partition) ?? 0n,
      );
      // A partition is handed over unpaused, as kafkajs does after a rejoin.
      this.pausedPartitions.delete(keyOf(topic, partition));
    }
    const kept = new Set(assigned.map((tp) => keyOf(tp.topic, tp.partition)));
    for (const key of [...this.positions.keys()]) if (!kept.has(key)) this.positions.delete(key);
    this.assigned = assigned;
    this.handlers.onAssignment(assigned.map((tp) => ({ ...tp })));
  }

  /** The group's view after a join, handed to the runtime as the real consumer learns it. */
  announce(membership: GroupMembership): void {
    if (!this.handlers) throw new Error('consumer not started');
    this.view = membership;
    this.handlers.onMembership?.(membership);
  }

  /** Whether the runtime has paused this partition (a paused partition is not fetched). */
  isPaused(topic: string, partition: number): boolean {
    return this.pausedPartitions.has(keyOf(topic, partition));
  }

  /** Where the next fetch of a partition starts. */
  position(topic: string, partition: number): bigint | undefined {
    return this.positions.get(keyOf(topic, partition));
  }

  /**
   * One fetch round: hands each assigned, unpaused partition with records at its position to the
   * batch handler, one batch at a time (partitionsConsumedConcurrently 1). Returns the batches handed.
   */
  async poll(): Promise<number> {
    let batches = 0;
    for (const { topic, partition } of [...this.assigned]) {
      if (await this.fetch(topic, partition)) batches++;
    }
    return batches;
  }

  /** Polls until a round hands over nothing (or `maxRounds` rounds); returns the batches handed. */
  async pollUntilIdle(maxRounds = 1000): Promise<number> {
    let total = 0;
    for (let round = 0; round < maxRounds; round++) {
      const batches = await this.poll();
      if (batches === 0) return total;
      total += batches;
    }
    throw new Error(`still fetching after ${maxRounds} rounds`);
  }

  /**
   * Starts handing one batch of a partition to the handler and returns the handler's promise (so a
   * test can rebalance while the batch is in hand); false when there is nothing to fetch.
   */
  fetch(topic: string, partition: number): Promise<boolean> {
    const key = keyOf(topic, partition);
    const position = this.positions.get(key);
    if (!this.running || !this.handlers || position === undefined || this.pausedPartitions.has(key))
      return Promise.resolve(false);
    const log = this.kafka.partitionLog(topic, partition);
    const records = log.slice(Number(position), Number(position) + this.maxBatchRecords);
    if (records.length === 0) return Promise.resolve(false);
    let seeked = false;
    const control: BatchControl = {
      markConsumed: (offset) => {
        this.calls.push({ op: 'markConsumed', topic, partition, offset });
        if (!seeked && this.positions.has(key)) this.positions.set(key, offset + 1n);
      },
      seek: (offset) => {
        this.calls.push({ op: 'seek', topic, partition, offset });
        seeked = true;
        if (this.positions.has(key)) this.positions.set(key, offset);
      },
      heartbeat: async () => undefined,
      isRunning: () => this.running,
    };
    const handled = this.handlers.onBatch(
      { topic, partition, records, highWatermark: BigInt(log.length) },
      control,
    );
    this.inFlight = handled.catch(() => undefined);
    return handled.then(() => true);
  }
}
