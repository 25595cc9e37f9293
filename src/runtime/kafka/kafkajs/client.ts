/** The KafkaClient of client.ts on kafkajs. */
import { randomUUID } from 'node:crypto';
import { Kafka, PartitionAssigners, Partitioners, logLevel as KafkaLogLevel } from 'kafkajs';
import type {
  Consumer,
  ConsumerRunConfig,
  IHeaders,
  KafkaConfig,
  KafkaMessage,
  Message,
  Producer,
  SASLOptions,
  TopicMessages,
} from 'kafkajs';
import type { Logger } from 'pino';
import type { Headers } from '../../core/records.js';
import type { RawRecord } from '../../core/records.js';
import { retry } from '../../core/retry.js';
import type { TributaryConfig } from '../config.js';
import { membershipOf, tributaryAssigner } from './assigner.js';
import type {
  GroupConsumer,
  GroupHandlers,
  GroupMembership,
  GroupOptions,
  KafkaAdmin,
  KafkaClient,
  OutgoingMessage,
  PublishedMessage,
  TopicPartition,
  TopicTools,
  TopicPartitionOffset,
  TransactionalWriter,
} from './client.js';
import { KafkaProbeError, TopicNotFoundError } from './client.js';
import { kafkajsLogCreator } from './kafkajs-log.js';
import { slicesOf } from './slices.js';
import {
  createTopicWaiting,
  kafkajsPartitionReader,
  kafkajsTaskTransactions,
  kafkajsTopicAdmin,
} from './kafkajs-changelog.js';

function toHeaders(headers: IHeaders | undefined): Headers {
  const out: Headers = {};
  if (!headers) return out;
  for (const [name, value] of Object.entries(headers)) {
    // A repeated header keeps its last value: tributary's own headers are never repeated.
    const last = Array.isArray(value) ? value[value.length - 1] : value;
    out[name] = last === undefined ? undefined : Buffer.isBuffer(last) ? last : Buffer.from(String(last));
  }
  return out;
}

/** Messages grouped by topic, each topic's in the order given, as kafkajs' sendBatch takes them. */
function topicMessagesOf(messages: readonly PublishedMessage[]): TopicMessages[] {
  const byTopic = new Map<string, Message[]>();
  for (const m of messages) {
    const message: Message = { key: m.key, value: m.value, headers: toKafkaHeaders(m.headers) };
    if (m.timestamp !== undefined) message.timestamp = String(m.timestamp);
    const list = byTopic.get(m.topic);
    if (list === undefined) byTopic.set(m.topic, [message]);
    else list.push(message);
  }
  return [...byTopic].map(([topic, list]) => ({ topic, messages: list }));
}

/** A kafkajs message as the engine's RawRecord (also used by tests that read topics directly). */
export function toRawRecord(topic: string, partition: number, message: KafkaMessage): RawRecord {
  return {
    topic,
    partition,
    offset: BigInt(message.offset),
    timestamp: Number(message.timestamp),
    key: message.key ?? null,
    value: message.value ?? null,
    headers: toHeaders(message.headers),
  };
}

function toKafkaHeaders(headers: Headers): IHeaders {
  const out: IHeaders = {};
  for (const [name, value] of Object.entries(headers)) if (value !== undefined) out[name] = value;
  return out;
}

function saslOf(config: TributaryConfig): SASLOptions | undefined {
  const sasl = config.kafka.sasl;
  if (!sasl) return undefined;
  return { mechanism: sasl.mechanism, username: sasl.username, password: sasl.password } as SASLOptions;
}

export function kafkajsConfigOf(config: TributaryConfig, logger: Logger): KafkaConfig {
  return {
    clientId: config.kafka.clientId ?? `${config.appId}-${config.instanceId}`,
    brokers: config.brokers,
    ssl: config.kafka.ssl,
    sasl: saslOf(config),
    connectionTimeout: config.kafka.connectionTimeoutMs,
    logLevel: KafkaLogLevel.WARN,
    logCreator: kafkajsLogCreator(logger),
    retry: { initialRetryTime: 200, retries: 8 },
  };
}

export function createKafkajsClient(config: TributaryConfig, logger: Logger): KafkaClient {
  const kafkaConfig = kafkajsConfigOf(config, logger);
  const kafka = new Kafka(kafkaConfig);

  return {
    probe: () => probeBrokers(config, kafkaConfig),
    groupConsumer: (groupId, options) =>
      new KafkajsGroupConsumer(kafka, groupId, config, logger, options ?? { standbyReplicas: 0 }),
    transactionalWriter: async (transactionalId) => {
      const producer = kafka.producer({
        transactionalId,
        idempotent: true,
        maxInFlightRequests: 1,
        // Dead letters carry no partition: spread them like any keyed topic, without kafkajs' v2 notice.
        createPartitioner: Partitioners.DefaultPartitioner,
      });
      await producer.connect();
      const writer: TransactionalWriter = {
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
      return writer;
    },
    taskTransactions: (transactionalId) => kafkajsTaskTransactions(kafka, transactionalId),
    partitionReader: (groupId) => kafkajsPartitionReader(kafka, groupId),
    admin: async () => {
      const admin = kafka.admin();
      await admin.connect();
      const api: KafkaAdmin = {
        ...kafkajsTopicAdmin(admin),
        async ensureTopic(topic, partitions) {
          const existing = await admin.listTopics();
          if (existing.includes(topic)) return;
          await createTopicWaiting(admin, { topic, numPartitions: partitions });
        },
        async groupOffsets(groupId, topic) {
          const result = await admin.fetchOffsets({ groupId, topics: [topic] });
          const offsets = new Map<number, bigint>();
          for (const { partition, offset } of result[0]?.partitions ?? []) {
            if (offset !== '-1') offsets.set(partition, BigInt(offset));
          }
          return offsets;
        },
        async groupTopics(groupId) {
          const result = await admin.fetchOffsets({ groupId });
          return result
            .filter(({ partitions }) => partitions.some(({ offset }) => offset !== '-1'))
            .map(({ topic }) => topic)
            .sort();
        },
        async topicOffsets(topic) {
          if (!(await admin.listTopics()).includes(topic)) throw new TopicNotFoundError(topic);
          const offsets = new Map<number, { earliest: bigint; end: bigint }>();
          for (const { partition, low, high } of await admin.fetchTopicOffsets(topic))
            offsets.set(partition, { earliest: BigInt(low), end: BigInt(high) });
          return offsets;
        },
        close: () => admin.disconnect(),
      };
      return api;
    },
  };
}

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
export function createKafkajsTopicTools(config: TributaryConfig, logger: Logger): TopicTools {
  const kafka = new Kafka(kafkajsConfigOf(config, logger));
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

/** See KafkaClient.probe. Each broker alone, one attempt, kafkajs logging off (its retries are what we avoid). */
async function probeBrokers(config: TributaryConfig, base: KafkaConfig): Promise<string[]> {
  const timeoutMs = base.connectionTimeout ?? 3000;
  const probeOne = async (broker: string): Promise<string | undefined> => {
    const kafka = new Kafka({
      ...base,
      brokers: [broker],
      logLevel: KafkaLogLevel.NOTHING,
      retry: { retries: 0 },
      requestTimeout: Math.max(timeoutMs, 3000),
    });
    const admin = kafka.admin({ retry: { retries: 0 } });
    try {
      await admin.connect();
      await admin.describeCluster();
      return undefined;
    } catch (error) {
      return explainProbeFailure(broker, error, timeoutMs);
    } finally {
      await admin.disconnect().catch(() => undefined);
    }
  };
  // In parallel: a cluster that is down costs one timeout, not one per broker.
  const problems = (await Promise.all(config.brokers.map(probeOne))).filter(
    (problem): problem is string => problem !== undefined,
  );
  // kafkajs does not move on from a seed that refuses its requests (it does from one that is down):
  // a controller address anywhere in the list is fatal, a broker down beside others is a warning.
  const controllers = problems.filter((problem) => problem.includes(KRAFT_CONTROLLER));
  if (controllers.length > 0) throw new KafkaProbeError(controllers.join('; '));
  if (problems.length < config.brokers.length) return problems;
  throw new KafkaProbeError(
    problems.length === 1 ? problems[0]! : `no Kafka broker answered: ${problems.join('; ')}`,
  );
}

const KRAFT_CONTROLLER = 'answered like a KRaft controller, not a broker';

/** What a failed probe of one broker means, and what to do about it, in one line. */
function explainProbeFailure(broker: string, error: unknown, timeoutMs: number): string {
  const name = error instanceof Error ? error.name : '';
  const cause = error instanceof Error && error.cause instanceof Error ? error.cause.message : '';
  const message = `${error instanceof Error ? error.message : String(error)} ${cause}`;
  const fixBrokers = 'check brokers (TRIBUTARY_BROKERS)';
  if (name === 'KafkaJSServerDoesNotSupportApiKey' || /does not support the requested API/.test(message)) {
    // A KRaft controller listener speaks the Kafka protocol but refuses the client APIs (Metadata).
    return (
      `Kafka at ${broker} ${KRAFT_CONTROLLER} (it refuses client requests): ` +
      'point brokers at the broker listener (usually 9092)'
    );
  }
  if (message.includes('ECONNREFUSED'))
    return `Kafka at ${broker}: connection refused, nothing listens there; ${fixBrokers}`;
  if (message.includes('ENOTFOUND') || message.includes('EAI_AGAIN'))
    return `Kafka at ${broker}: host not found; ${fixBrokers}`;
  if (/timeout/i.test(message))
    return `Kafka at ${broker}: no answer within ${timeoutMs} ms (host down or firewalled?); ${fixBrokers}`;
  return `Kafka at ${broker}: ${message.trim()} (TLS or SASL settings that do not match the listener?); ${fixBrokers}`;
}

/** Asking the group for its view after a join: it answers with assignments only once it is stable again. */
const MEMBERSHIP_RETRY = { initialDelayMs: 100, maxDelayMs: 2000, maxElapsedMs: 30_000 };

/** Rejoining the group after kafkajs gave up on it: 1 s, doubling, at most 10 s between attempts. */
const REJOIN_AFTER_CRASH = { initialDelayMs: 1000, maxDelayMs: 10_000 };

/** Errors of an unreachable broker or coordinator (worth waiting for), through their causes. */
function isKafkaUnreachable(error: unknown): boolean {
  for (let e: unknown = error; e instanceof Error; e = e.cause) {
    if (
      [
        'KafkaJSGroupCoordinatorNotFound',
        'KafkaJSConnectionError',
        'KafkaJSConnectionClosedError',
        'KafkaJSRequestTimeoutError',
        'KafkaJSBrokerNotFound',
        'KafkaJSNumberOfRetriesExceeded',
      ].includes(e.name) ||
      (e as { retriable?: boolean }).retriable === true
    )
      return true;
  }
  return false;
}

class GroupNotStableError extends Error {
  override readonly name = 'GroupNotStableError';
}

class KafkajsGroupConsumer implements GroupConsumer {
  private readonly consumer: Consumer;
  private memberId: string | undefined;
  /** What this member runs, reported at every join so that the assignment can stay sticky. */
  private active: number[] = [];
  private standby: number[] = [];
  /** Counts joins: the view learnt after an older join is not handed on once a newer one happened. */
  private joins = 0;
  private stopped = false;
  /** What `consumer.run` was given, to run it again after a crash kafkajs does not recover from. */
  private runConfig: ConsumerRunConfig | undefined;
  /** Between a crash and the next join, when kafkajs has no group to pause or resume partitions of. */
  private crashed = false;

  constructor(
    kafka: Kafka,
    private readonly groupId: string,
    private readonly config: TributaryConfig,
    private readonly logger: Logger,
    options: GroupOptions,
  ) {
    this.consumer = kafka.consumer({
      groupId,
      // The sticky, co-partitioned assigner; round-robin only while a member of an older release
      // (which offers nothing else) is still in the group, so that a rolling upgrade can join.
      partitionAssigners: [
        tributaryAssigner({
          standbyReplicas: options.standbyReplicas,
          self: () => ({ adminUrl: options.adminUrl, active: this.active, standby: this.standby }),
        }),
        PartitionAssigners.roundRobin,
      ],
      sessionTimeout: config.kafka.sessionTimeoutMs,
      // At most a second: a member notices a rebalance at its next heartbeat, so this bounds how long
      // a leaving member's partitions (and a standby's takeover) wait.
      heartbeatInterval: Math.max(500, Math.min(1000, Math.floor(config.kafka.sessionTimeoutMs / 10))),
      maxBytesPerPartition: config.kafka.maxBytesPerPartition,
      maxWaitTimeInMs: config.kafka.maxWaitTimeMs,
      allowAutoTopicCreation: false,
      // Outputs we read back (DLQ) are transactional; inputs should only ever show committed data.
      readUncommitted: false,
    });
  }

  async start(topics: readonly string[], handlers: GroupHandlers): Promise<void> {
    const { consumer } = this;
    consumer.on(consumer.events.GROUP_JOIN, (event) => {
      const assignment = event.payload.memberAssignment;
      const assigned = Object.entries(assignment).flatMap(([topic, partitions]) =>
        partitions.map((partition) => ({ topic, partition })),
      );
      this.memberId = event.payload.memberId;
      this.crashed = false;
      this.active = [...new Set(assigned.map((tp) => tp.partition))].sort((a, b) => a - b);
      const join = ++this.joins;
      handlers.onAssignment(assigned);
      void this.learnMembership(join, handlers);
    });
    consumer.on(consumer.events.CRASH, (event) => {
      this.crashed = true; // until the next join: kafkajs has dropped the group (pause would throw)
      if (event.payload.restart) return; // kafkajs restarts the consumer itself
      const { error } = event.payload;
      if (!this.stopped && isKafkaUnreachable(error)) void this.rejoinAfterCrash(error, handlers);
      else handlers.onCrash(error);
    });
    await consumer.connect();
    await consumer.subscribe({
      topics: [...topics],
      fromBeginning: this.config.kafka.autoOffsetReset === 'earliest',
    });
    this.runConfig = {
      autoCommit: false,
      eachBatchAutoResolve: false,
      partitionsConsumedConcurrently: 1,
      eachBatch: async ({ batch, resolveOffset, heartbeat, isRunning }) => {
        if (batch.messages.length === 0) return;
        let seeked = false;
        await handlers.onBatch(
          {
            topic: batch.topic,
            partition: batch.partition,
            records: batch.messages.map((m) => toRawRecord(batch.topic, batch.partition, m)),
            highWatermark: BigInt(batch.highWatermark),
          },
          {
            markConsumed: (offset) => {
              if (!seeked) resolveOffset(offset.toString());
            },
            seek: (offset) => {
              seeked = true;
              consumer.seek({ topic: batch.topic, partition: batch.partition, offset: offset.toString() });
            },
            heartbeat,
            isRunning,
          },
        );
      },
    };
    await consumer.run(this.runConfig);
  }

  /**
   * kafkajs gives up on the group, without restarting, when it cannot find the group coordinator for
   * a while (the broker down for more than its retries): connect and run again until the broker is
   * back, instead of failing the instance. Its tasks stay open and resume after the rejoin.
   */
  private async rejoinAfterCrash(error: Error, handlers: GroupHandlers): Promise<void> {
    this.logger.warn(
      { err: error, group: this.groupId },
      'lost the consumer group (Kafka unreachable); rejoining',
    );
    try {
      await retry(
        async () => {
          await this.consumer.connect();
          await this.consumer.run(this.runConfig);
        },
        REJOIN_AFTER_CRASH,
        { isTransient: isKafkaUnreachable, shouldContinue: () => !this.stopped },
      );
    } catch (failure) {
      if (!this.stopped) handlers.onCrash(failure instanceof Error ? failure : error);
    }
  }

  /**
   * kafkajs keeps only this member's topic-partitions from the assignment (not its user data, where
   * the standbys are), so the group's view is read back from the coordinator after every join.
   */
  private async learnMembership(join: number, handlers: GroupHandlers): Promise<void> {
    try {
      const membership = await this.membership();
      if (join !== this.joins || this.stopped) return; // a newer join will report its own view
      this.standby = membership.members.find((m) => m.memberId === membership.self)?.standby ?? [];
      handlers.onMembership?.(membership);
    } catch (error) {
      if (join === this.joins && !this.stopped)
        this.logger.warn({ err: error, group: this.groupId }, 'could not read the consumer group membership');
    }
  }

  async membership(): Promise<GroupMembership> {
    const self = this.memberId;
    if (self === undefined) throw new Error(`not a member of group ${this.groupId} yet`);
    return retry(
      async () => {
        const group = await this.consumer.describeGroup();
        // Outside Stable the coordinator leaves assignments out; this member must be in the view.
        if (group.state !== 'Stable' || !group.members.some((m) => m.memberId === self))
          throw new GroupNotStableError(`group ${this.groupId} is ${group.state}`);
        return membershipOf(group, self);
      },
      MEMBERSHIP_RETRY,
      {
        isTransient: (error) => error instanceof GroupNotStableError,
        shouldContinue: () => !this.stopped,
      },
    );
  }

  pause(partitions: readonly TopicPartition[]): void {
    // A consumer that crashed (the instance stopping after it) has nothing to pause: kafkajs throws.
    if (this.crashed) return;
    for (const { topic, partition } of partitions) this.consumer.pause([{ topic, partitions: [partition] }]);
  }

  seek({ topic, partition, offset }: TopicPartitionOffset): void {
    if (this.crashed) return; // the next join starts from the committed offsets, which the task checks
    try {
      this.consumer.seek({ topic, partition, offset: offset.toString() });
    } catch {
      // Not assigned here any more (a rebalance in between): the new owner starts where its state is.
    }
  }

  resume(partitions: readonly TopicPartition[]): void {
    if (this.crashed) return;
    for (const { topic, partition } of partitions) this.consumer.resume([{ topic, partitions: [partition] }]);
  }

  async commit(offsets: readonly TopicPartitionOffset[]): Promise<void> {
    if (offsets.length === 0) return;
    await this.consumer.commitOffsets(
      offsets.map(({ topic, partition, offset }) => ({ topic, partition, offset: offset.toString() })),
    );
  }

  async stop(): Promise<void> {
    this.stopped = true;
    await this.consumer.stop();
    await this.consumer.disconnect();
  }
}
