/**
 * An in-memory Kafka behind the runtime's `KafkaClient` interface (src/runtime/kafka/client.ts), so
 * the runtime's paths (rebalances, seek-back, backpressure, DLQ transactions) run in unit tests
 * without a broker.
 *
 * It keeps the contract, not one test's needs, and passes the same conformance suite as kafkajs on a
 * broker (test/helpers/kafka-conformance.ts): topics are partitioned logs with offsets; a transaction
 * ends with a marker that takes an offset, and an aborted one leaves its records in the log, unseen
 * by every reader here (all read_committed); a group consumer fetches from its position (the group's
 * committed offset on assignment, else the log start), moves it only through `markConsumed`/`seek`,
 * and skips paused partitions; a transaction writes its messages and its offsets together or not at
 * all, a newer producer with the same transactional id fences the older one, and a record batch
 * larger than the topic's `max.message.bytes` is rejected. The test drives the group: it assigns
 * partitions and polls. Partition readers (restores, standbys) run by themselves.
 */
import type { Headers, RawRecord } from '../../src/core/records.js';
import type {
  BatchControl,
  PartitionRead,
  PartitionReader,
  TaskMessage,
  ReadBatch,
  TaskTransactions,
  TopicDescription,
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
  KafkaProbeError,
} from '../../src/runtime/kafka/client.js';
import { KafkaFencedError, TopicNotFoundError } from '../../src/runtime/kafka/client.js';

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

/** A partition for a message without one: a hash of its key, else round-robin. */
function partitionOf(key: Buffer | null, partitions: number, next: number): number {
  if (key === null) return next % partitions;
  let hash = 0;
  for (const byte of key) hash = (hash * 31 + byte) >>> 0;
  return hash % partitions;
}

/** One offset of a partition: a record, or a transaction's marker; an aborted record stays, unseen. */
interface LogEntry {
  record: RawRecord;
  marker?: 'commit' | 'abort';
  aborted?: boolean;
}

/** What a read_committed reader sees of an entry. */
const visible = (entry: LogEntry) => entry.marker === undefined && entry.aborted !== true;

/** A refusal by the broker, with its error type as kafkajs reports it. */
class BrokerError extends Error {
  constructor(
    readonly type: string,
    message: string,
  ) {
    super(`${type}: ${message}`);
  }
}

export class FakeKafka implements KafkaClient {
  /** topic -> partitions -> entries (offset = index). */
  private readonly logs = new Map<string, LogEntry[][]>();
  private readonly topicConfigs = new Map<string, Record<string, string>>();
  /** Called after anything is appended (partition readers follow the logs through it). */
  private readonly appendListeners = new Set<() => void>();
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

  /** What probe() answers: notes about brokers that are down, or the error of a Kafka that is. */
  probeResult: string[] | KafkaProbeError = [];

  constructor(readonly options: { maxMessageBytes?: number } = {}) {}

  get maxMessageBytes(): number {
    return this.options.maxMessageBytes ?? DEFAULT_MAX_MESSAGE_BYTES;
  }

  /** Creates a topic (`config`: e.g. `cleanup.policy`, `max.message.bytes`); an existing one stays. */
  createTopic(topic: string, partitions: number, config: Record<string, string> = {}): void {
    if (this.logs.has(topic)) return;
    this.logs.set(
      topic,
      Array.from({ length: partitions }, () => []),
    );
    this.topicConfigs.set(topic, { ...config });
  }

  /** The largest record batch `topic` accepts: its `max.message.bytes`, else the broker's. */
  private maxBytesOf(topic: string): number {
    const configured = this.topicConfigs.get(topic)?.['max.message.bytes'];
    return configured === undefined ? this.maxMessageBytes : Number(configured);
  }

  /** Appends records to one partition and returns their offsets. */
  produce(topic: string, partition: number, records: readonly ProducedRecord[]): bigint[] {
    const offsets = records.map((record) => {
      const headers: Headers = {};
      for (const [name, value] of Object.entries(record.headers ?? {})) headers[name] = asBuffer(value);
      return this.append(topic, partition, {
        key: record.key == null ? null : asBuffer(record.key),
        value: record.value === null ? null : asBuffer(record.value),
        headers,
        timestamp: record.timestamp ?? Date.now(),
      }).record.offset;
    });
    this.appended();
    return offsets;
  }

  /** Every committed record of a topic (all partitions, each in offset order), as a reader would see it. */
  records(topic: string): RawRecord[] {
    return (this.logs.get(topic) ?? []).flatMap((log) => log.filter(visible).map((entry) => entry.record));
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
        this.appended();
        if (failure === 'after-commit') throw new Error('injected transaction failure (already committed)');
      },
      close: async () => {
        closed = true;
      },
    };
  }

  async probe(): Promise<string[]> {
    if (this.probeResult instanceof Error) throw this.probeResult;
    return [...this.probeResult];
  }

  taskTransactions(transactionalId: string): TaskTransactions {
    let epoch: number | undefined;
    let closed = false;
    // Like the first transaction() of a kafkajs producer: initializing the producer id bumps the epoch.
    const initialized = (): number => {
      if (closed) throw new Error(`producer ${transactionalId} is closed`);
      if (epoch === undefined) {
        epoch = (this.writerEpochs.get(transactionalId) ?? 0) + 1;
        this.writerEpochs.set(transactionalId, epoch);
      }
      return epoch;
    };
    return {
      fence: async () => void initialized(),
      commit: async (messages, { groupId, offsets }) => {
        const mine = initialized();
        if (this.writerEpochs.get(transactionalId) !== mine) {
          this.rejectedTransactions++;
          throw new KafkaFencedError(`${transactionalId} was fenced by a newer owner`);
        }
        const failure = this.failures.shift();
        if (failure === 'before-commit') {
          this.rejectedTransactions++;
          throw new Error('injected transaction failure (nothing written)');
        }
        const last = this.writeTransaction(messages, groupId, offsets);
        if (failure === 'after-commit') throw new Error('injected transaction failure (already committed)');
        return last;
      },
      close: async () => {
        closed = true;
      },
    };
  }

  partitionReader(_groupId: string): PartitionReader {
    return new FakePartitionReader(this);
  }

  async admin(): Promise<KafkaAdmin> {
    return {
      ensureTopic: async (topic, partitions) => this.createTopic(topic, partitions),
      createTopic: async (topic, partitions, config) => this.createTopic(topic, partitions, config),
      describeTopic: async (topic): Promise<TopicDescription | undefined> => {
        const partitions = this.logs.get(topic)?.length;
        if (partitions === undefined) return undefined;
        return { partitions, cleanupPolicy: this.topicConfigs.get(topic)?.['cleanup.policy'] ?? 'delete' };
      },
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

  /** Partitions of `topic` (0 when it does not exist). */
  partitionCount(topic: string): number {
    return this.logs.get(topic)?.length ?? 0;
  }

  /** @internal Calls `listener` after every append until the returned function is called. */
  onAppend(listener: () => void): () => void {
    this.appendListeners.add(listener);
    return () => this.appendListeners.delete(listener);
  }

  /** The broker takes offsets for partitions that exist only (TxnOffsetCommit). */
  private checkOffsets(offsets: readonly TopicPartition[]): void {
    for (const { topic, partition } of offsets)
      if (partition >= this.partitionCount(topic)) {
        this.rejectedTransactions++;
        throw new BrokerError(
          'UNKNOWN_TOPIC_OR_PARTITION',
          `This server does not host ${topic}[${partition}]`,
        );
      }
  }

  private appended(): void {
    for (const listener of [...this.appendListeners]) listener();
  }

  private append(
    topic: string,
    partition: number,
    record: Omit<RawRecord, 'topic' | 'partition' | 'offset'>,
    marker?: 'commit' | 'abort',
  ): LogEntry {
    const log = this.partitionLog(topic, partition);
    const entry: LogEntry = { record: { topic, partition, offset: BigInt(log.length), ...record } };
    if (marker !== undefined) entry.marker = marker;
    log.push(entry);
    return entry;
  }

  private appendMarkers(
    partitions: ReadonlyMap<string, { topic: string; partition: number }>,
    marker: 'commit' | 'abort',
  ) {
    for (const { topic, partition } of partitions.values())
      this.append(topic, partition, { key: null, value: null, headers: {}, timestamp: Date.now() }, marker);
  }

  /**
   * A task's transaction, as a broker sees it: the messages are appended in order (a message without
   * a partition goes round-robin); one the topic refuses (larger than its `max.message.bytes`, an
   * unknown topic) aborts it, leaving what was appended before in the log, aborted. Committed: a
   * marker per partition written, the offsets for the group, and the last offset written per topic.
   */
  private writeTransaction(
    messages: readonly TaskMessage[],
    groupId: string,
    offsets: readonly TopicPartitionOffset[],
  ): Map<string, bigint> {
    const touched = new Map<string, { topic: string; partition: number }>();
    const written: LogEntry[] = [];
    this.checkOffsets(offsets);
    const last = new Map<string, bigint>();
    const now = Date.now();
    try {
      for (const message of messages) {
        const partitions = this.logs.get(message.topic)?.length;
        if (partitions === undefined)
          throw new BrokerError('UNKNOWN_TOPIC_OR_PARTITION', `topic ${message.topic} does not exist`);
        // Without a partition: by key, like a client's partitioner (round-robin without a key).
        const partition = message.partition ?? partitionOf(message.key, partitions, this.nextPartition++);
        if (partition >= partitions)
          throw new BrokerError(
            'UNKNOWN_TOPIC_OR_PARTITION',
            `${message.topic} has no partition ${partition}`,
          );
        const headers: Headers = message.headers ?? {};
        const bytes = RECORD_BATCH_HEADER_BYTES + recordBytes(message.key, message.value, headers);
        if (bytes > this.maxBytesOf(message.topic))
          throw new BrokerError(
            'MESSAGE_TOO_LARGE',
            `a record batch of ${bytes} bytes for ${message.topic}[${partition}] is larger than the max ` +
              `message size the server will accept (${this.maxBytesOf(message.topic)})`,
          );
        touched.set(keyOf(message.topic, partition), { topic: message.topic, partition });
        const entry = this.append(message.topic, partition, {
          key: message.key,
          value: message.value,
          headers: { ...headers },
          timestamp: message.timestamp ?? now,
        });
        written.push(entry);
        last.set(message.topic, entry.record.offset);
      }
    } catch (error) {
      for (const entry of written) entry.aborted = true;
      this.appendMarkers(touched, 'abort');
      this.rejectedTransactions++;
      this.appended();
      throw error;
    }
    this.appendMarkers(touched, 'commit');
    if (offsets.length > 0) this.commitOffsets(groupId, offsets);
    this.committedTransactions++;
    this.appended();
    return last;
  }

  /** All or nothing: checks every batch against the size limit before writing anything. */
  private commitTransaction(
    messages: readonly OutgoingMessage[],
    progress: { groupId: string } & TopicPartitionOffset,
  ): void {
    this.checkOffsets([progress]);
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
      if (bytes > this.maxBytesOf(topic)) {
        this.rejectedTransactions++;
        throw new BrokerError(
          'MESSAGE_TOO_LARGE',
          `a record batch of ${bytes} bytes for ${topic}[${partition}] is larger than ` +
            `the max message size the server will accept (${this.maxBytesOf(topic)})`,
        );
      }
    }
    const now = Date.now();
    for (const { topic, partition, messages: batch } of batches.values())
      for (const m of batch)
        this.append(topic, partition, {
          timestamp: now,
          key: m.key,
          value: m.value,
          headers: { ...m.headers },
        });
    this.appendMarkers(batches, 'commit');
    this.commitOffsets(progress.groupId, [progress]);
    this.committedTransactions++;
  }

  /** @internal Every offset of a partition, markers and aborted records included. */
  partitionLog(topic: string, partition: number): LogEntry[] {
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

  /** Assigns every partition of the subscribed topics to this member, as a group of one would. */
  assignAll(): void {
    const counts = this.topics.map((topic) => this.kafka.partitionCount(topic));
    this.assign(Array.from({ length: Math.max(0, ...counts) }, (_, p) => p));
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
    // read_committed: markers and aborted records are skipped; a stretch of nothing else moves past.
    const records: RawRecord[] = [];
    let end = Number(position);
    for (; end < log.length && records.length < this.maxBatchRecords; end++) {
      const entry = log[end] as LogEntry;
      if (visible(entry)) records.push(entry.record);
    }
    if (records.length === 0) {
      if (end > Number(position)) this.positions.set(key, BigInt(end));
      return Promise.resolve(false);
    }
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

/**
 * A reader of committed records of chosen partitions: each read follows its partition from its offset
 * on, handing every stretch of new entries with a committed record to `onBatch`, one at a time, and
 * counting markers and aborted records towards `reached` without handing them over.
 */
class FakePartitionReader implements PartitionReader {
  private readonly reads = new Map<string, () => Promise<void>>();
  private started = false;

  constructor(private readonly kafka: FakeKafka) {}

  async start(_topics: readonly string[]): Promise<void> {
    this.started = true;
  }

  read(tp: TopicPartition, from: bigint, onBatch: (batch: ReadBatch) => Promise<void>): PartitionRead {
    if (!this.started) throw new Error('partition reader not started');
    const id = keyOf(tp.topic, tp.partition);
    if (this.reads.has(id)) throw new Error(`${tp.topic}[${tp.partition}] is already being read`);
    let next = from;
    let stopped = false;
    let failed: Error | undefined;
    let handling: Promise<void> = Promise.resolve();
    let waiters: Array<{ end: bigint; resolve: () => void; reject: (error: Error) => void }> = [];
    const settle = () => {
      waiters = waiters.filter((waiter) => {
        if (failed) waiter.reject(failed);
        else if (next >= waiter.end) waiter.resolve();
        else return true;
        return false;
      });
    };
    const pump = async (): Promise<void> => {
      const log = this.kafka.partitionLog(tp.topic, tp.partition);
      while (!stopped && failed === undefined && next < BigInt(log.length)) {
        const entries = log.slice(Number(next));
        const lastOffset = next + BigInt(entries.length) - 1n;
        const records = entries.filter(visible).map((entry) => entry.record);
        try {
          if (records.length > 0) await onBatch({ records, lastOffset });
        } catch (error) {
          failed = error instanceof Error ? error : new Error(String(error));
          break;
        }
        next = lastOffset + 1n;
      }
      settle();
    };
    // One pass at a time, each after the previous: a batch is handed over only once the last is handled.
    const schedule = () => {
      handling = handling.then(() => new Promise<void>((resolve) => setImmediate(resolve))).then(pump);
      return handling;
    };
    const unsubscribe = this.kafka.onAppend(() => void schedule());
    this.reads.set(id, schedule);
    void schedule();
    return {
      reached: (end) =>
        new Promise<void>((resolve, reject) => {
          waiters.push({ end, resolve, reject });
          settle();
        }),
      stop: async () => {
        stopped = true;
        unsubscribe();
        if (this.reads.get(id) === schedule) this.reads.delete(id);
        await handling;
        for (const waiter of waiters) waiter.resolve();
        waiters = [];
      },
    };
  }

  async stop(): Promise<void> {
    this.reads.clear();
    this.started = false;
  }
}
