/**
 * The GroupConsumer of client.ts on kafkajs: the app's consumer group with the tributary-sticky
 * assigner (assigner.ts), batches handed over one at a time, and a rejoin when kafkajs gives up on
 * the group while Kafka is unreachable.
 */
import { PartitionAssigners } from 'kafkajs';
import type { Consumer, ConsumerRunConfig, Kafka } from 'kafkajs';
import type { Logger } from 'pino';
import { retry } from '../../../core/retry.js';
import type { KafkaSettings } from '../../config.js';
import type {
  GroupConsumer,
  GroupHandlers,
  GroupMembership,
  GroupOptions,
  TopicPartition,
  TopicPartitionOffset,
} from '../client.js';
import { membershipOf, tributaryAssigner } from './assigner.js';
import { toRawRecord } from './records.js';

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

export class KafkajsGroupConsumer implements GroupConsumer {
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
    private readonly settings: KafkaSettings,
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
      sessionTimeout: settings.sessionTimeoutMs,
      // At most a second: a member notices a rebalance at its next heartbeat, so this bounds how long
      // a leaving member's partitions (and a standby's takeover) wait.
      heartbeatInterval: Math.max(500, Math.min(1000, Math.floor(settings.sessionTimeoutMs / 10))),
      maxBytesPerPartition: settings.maxBytesPerPartition,
      maxWaitTimeInMs: settings.maxWaitTimeMs,
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
      fromBeginning: this.settings.autoOffsetReset === 'earliest',
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
