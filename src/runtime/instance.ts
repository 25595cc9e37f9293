/**
 * One consumer-group member running a topology: opens a task per assigned partition, feeds it
 * batches, checkpoints on an interval (and on revoke and shutdown), hands committed outputs to the
 * sinks, and applies backpressure by pausing partitions whose outputs back up. The commit protocol,
 * with the exactly-once list, is checkpoint.ts.
 */
import { randomUUID } from 'node:crypto';
import { join } from 'node:path';
import type { Logger } from 'pino';
import { RetriableError } from '../serde/types.js';
import { retry, sleep } from '../core/retry.js';
import type { RetryPolicy } from '../core/retry.js';
import type { RunnableTopology, StandbyState } from '../core/task.js';
import type { TributaryConfig } from './config.js';
import { OutputDelivery } from './delivery.js';
import type { FailingSink } from './delivery.js';
import type {
  BatchControl,
  FetchedBatch,
  GroupConsumer,
  GroupMember,
  GroupMembership,
  KafkaAdmin,
  KafkaClient,
  TopicPartition,
} from './kafka/client.js';
import { Checkpoint, groupOffsetsOf } from './checkpoint.js';
import type { GroupOffset, LostTask } from './checkpoint.js';
import { FencedError } from '../core/task.js';
import { DropLog } from './drop-log.js';
import { RuntimeMetrics } from './metrics.js';
import { CacheBudget } from '../core/cache-budget.js';
import type { RecentDeadLetter } from './recent-dead-letters.js';
import { TaskHost, isLockError, openTaskWaitingForLock } from './task-host.js';
import {
  TaskChangelogLink,
  changelogTopics,
  isPermanentChangelogFailure,
  prepareChangelogTopics,
} from './changelog.js';
import type { RestoreProgress } from './changelog.js';
import type { PartitionReader } from './kafka/client.js';

/** Holding a partition on a RetriableError: 100 ms, doubling, at most 5 s between attempts, while running. */
const HOLD_ON_RETRIABLE: RetryPolicy = { initialDelayMs: 100, maxDelayMs: 5000 };

export type InstanceState = 'created' | 'starting' | 'running' | 'stopping' | 'stopped' | 'failed';

export interface TaskStatus {
  partition: number;
  /** The instance that owns the partition (this one: `instanceId`). */
  instance: string;
  positions: Record<string, string>;
  paused: boolean;
  pendingOutputs: number;
  /** Records behind the high watermark after the last batch; absent before the first batch. */
  lag?: number;
  /** When the task was last checkpointed (epoch ms); absent before its first commit. */
  lastCommitAt?: number;
  metrics: ReturnType<TaskHost['task']['metrics']>;
}

/** A standby replica: its folder, the changelog reads feeding it, and its changelog link. */
interface StandbyFolder {
  state: StandbyState;
  following: { stop(): Promise<void> };
  link: TaskChangelogLink;
}

/** A partition whose task is being opened: restoring from its changelog, or waiting for its folder. */
export interface OpeningStatus {
  partition: number;
  restore?: RestoreProgress;
}

/** Whether the instance does its work now, and if not, why (the admin's /health/ready). */
export interface Readiness {
  ready: boolean;
  state: InstanceState;
  /** One line per cause, empty when ready. */
  reasons: string[];
  /** Partitions held back on a RetriableError (e.g. the schema registry unreachable), with the error. */
  heldPartitions: Array<{ partition: number; error: string }>;
  failingSinks: FailingSink[];
  /** Partitions whose task is being opened (waiting for its state folder's lock, loading its state). */
  openingPartitions: number[];
}

/** The consumer group as this instance learnt it after the last rebalance (the admin's /cluster). */
export interface ClusterView {
  groupId: string;
  /** This instance's member id. */
  self: string;
  /** When the view was learnt, epoch ms. */
  updatedAt: number;
  /** Ordered by member id; `thisInstance` marks this one. */
  members: Array<GroupMember & { thisInstance: boolean }>;
}

export interface InstanceStartOptions {
  /** This instance's admin endpoint as its peers reach it, advertised in the consumer group. */
  adminUrl?: string | undefined;
}

export class Instance {
  state: InstanceState = 'created';
  readonly metrics: RuntimeMetrics;
  private readonly drops: DropLog;
  private readonly hosts = new Map<number, TaskHost>();
  /** Tasks being opened: a batch for the partition waits for it. */
  private readonly opening = new Map<number, Promise<TaskHost>>();
  /** Partitions held on a RetriableError, with its message, until the batch goes through. */
  private readonly held = new Map<number, string>();
  private assignment: TopicPartition[] = [];
  /** The group's view after the last rebalance, and this instance's standby partitions in it. */
  private membership: ClusterView | undefined;
  private standbys: number[] = [];
  private consumer: GroupConsumer | undefined;
  private admin: KafkaAdmin | undefined;
  private readonly delivery: OutputDelivery;
  private readonly checkpoint: Checkpoint;
  private commitTimer: NodeJS.Timeout | undefined;
  private committing: Promise<void> | undefined;
  private delivering: Promise<void> | undefined;
  private crash: Error | undefined;
  private readonly crashListeners: Array<(error: Error) => void> = [];
  /** Store name → changelog topic, when changelogs are on. */
  private changelogTopics: Map<string, string> | undefined;
  /** Reads changelogs for restores (a consumer group of its own), when changelogs are on. */
  private changelogReader: PartitionReader | undefined;
  /** The changelog link of each task being opened, for its restore progress. */
  private readonly restoring = new Map<number, TaskChangelogLink>();
  /** Standby replicas this instance keeps: each one's folder fed from its changelog. */
  private readonly standbyFolders = new Map<number, Promise<StandbyFolder | undefined>>();
  /** Store cache memory shared by this instance's tasks (state.cacheMaxBytes). */
  private readonly cache: CacheBudget;

  constructor(
    private readonly topology: RunnableTopology,
    private readonly config: TributaryConfig,
    private readonly kafka: KafkaClient,
    private readonly logger: Logger,
  ) {
    this.metrics = new RuntimeMetrics(config.instanceId, config.appId);
    this.cache = new CacheBudget(config.state.cacheMaxBytes);
    this.delivery = new OutputDelivery(
      topology,
      config,
      kafka,
      this.metrics,
      logger.child({ component: 'delivery' }),
      (error) => this.fail(error),
    );
    this.drops = new DropLog(logger.child({ component: 'drops' }));
    this.checkpoint = new Checkpoint(this.metrics, logger, this.drops);
  }

  onCrash(listener: (error: Error) => void): void {
    this.crashListeners.push(listener);
    if (this.crash) listener(this.crash);
  }

  async start(options: InstanceStartOptions = {}): Promise<void> {
    if (this.state !== 'created') throw new Error(`instance already ${this.state}`);
    this.state = 'starting';
    try {
      this.admin = await this.kafka.admin();
      await this.delivery.open(this.admin);
      if (this.config.changelog.enabled) await this.openChangelogs(this.admin);
      this.consumer = this.kafka.groupConsumer(this.config.appId, {
        standbyReplicas: this.config.standbyReplicas,
        adminUrl: options.adminUrl,
      });
      // Running before the first fetch: a batch may arrive before start() below returns.
      this.state = 'running';
      await this.consumer.start(this.topology.sourceTopics, {
        onBatch: (batch, control) => this.handleBatch(batch, control),
        onAssignment: (assigned) => this.handleAssignment(assigned),
        onMembership: (membership) => this.handleMembership(membership),
        onCrash: (error) => this.fail(error),
      });
    } catch (error) {
      this.state = 'failed';
      await this.consumer?.stop().catch(() => undefined);
      await this.delivery.close();
      await this.changelogReader?.stop().catch(() => undefined);
      await this.admin?.close().catch(() => undefined);
      throw error;
    }
    this.commitTimer = setInterval(() => void this.commitAll('interval'), this.config.commitIntervalMs);
    this.logger.info({ topics: this.topology.sourceTopics, group: this.config.appId }, 'instance started');
  }

  /** Creates or checks the changelog topics and starts the reader restores use. */
  private async openChangelogs(admin: KafkaAdmin): Promise<void> {
    let partitions = 0;
    for (const topic of this.topology.sourceTopics) {
      const described = await admin.describeTopic(topic);
      if (described === undefined)
        throw new Error(
          `input topic ${topic} does not exist (its partition count sizes the changelog topics)`,
        );
      partitions = Math.max(partitions, described.partitions);
    }
    const topics = changelogTopics(this.config.appId, this.topology.storeNames);
    await prepareChangelogTopics(admin, topics, partitions, this.config.changelog.replicationFactor);
    this.changelogTopics = topics;
    // A group of its own per incarnation: a restarted instance never waits for its dead predecessor.
    this.changelogReader = this.kafka.partitionReader(`${this.config.appId}.restore.${randomUUID()}`);
    // Joins its group while the instance joins its own: reads asked for meanwhile start at its join.
    void this.changelogReader.start([...new Set(topics.values())]).catch((error: unknown) => {
      if (this.state === 'starting' || this.state === 'running') this.fail(asError(error));
    });
  }

  private fail(error: Error): void {
    if (this.crash) return;
    this.crash = error;
    this.state = 'failed';
    this.logger.error({ err: error }, 'instance failed');
    for (const listener of this.crashListeners) listener(error);
  }

  // ---- assignment ---------------------------------------------------------------------------------

  private handleAssignment(assigned: TopicPartition[]): void {
    this.assignment = assigned;
    const partitions = new Set(assigned.map((tp) => tp.partition));
    this.logger.info({ partitions: [...partitions].sort((a, b) => a - b) }, 'partitions assigned');
    for (const partition of [...this.hosts.keys()]) {
      if (!partitions.has(partition)) void this.revoke(partition);
    }
    // Open eagerly so a handover starts while the group settles; batches wait for the open.
    for (const partition of partitions)
      void this.hostFor(partition).catch((error: unknown) => this.fail(asError(error)));
  }

  /** The group's view after a rebalance: kept for /cluster, and this instance's standbys taken from it. */
  private handleMembership(membership: GroupMembership): void {
    this.membership = {
      groupId: membership.groupId,
      self: membership.self,
      updatedAt: Date.now(),
      members: membership.members.map((member) => ({
        ...member,
        thisInstance: member.memberId === membership.self,
      })),
    };
    const mine = membership.members.find((member) => member.memberId === membership.self);
    this.handleStandbys(mine?.standby ?? []);
  }

  /**
   * This instance's standby partitions after a rebalance: each gets a folder kept warm from its
   * changelogs (openStandby); a standby that moved away or became this instance's task is closed.
   */
  private handleStandbys(partitions: number[]): void {
    const changed = partitions.join() !== this.standbys.join();
    this.standbys = [...partitions];
    if (changed) this.logger.info({ standbys: this.standbys }, 'standby partitions assigned');
    if (!this.changelogTopics || this.state !== 'running') return;
    for (const partition of [...this.standbyFolders.keys()])
      if (!partitions.includes(partition)) void this.closeStandby(partition);
    for (const partition of partitions)
      if (!this.hosts.has(partition) && !this.opening.has(partition) && !this.standbyFolders.has(partition))
        this.openStandby(partition);
  }

  /**
   * Keeps the partition's folder up to date from its changelog while another instance owns it. A
   * standby that cannot open (Kafka unreachable, the folder locked) is only logged: it is an
   * optimisation, and a takeover restores whatever it lacks.
   */
  private openStandby(partition: number): void {
    const link = this.changelogLink(partition);
    if (!link || !this.topology.openStandby) return;
    const openStandby = this.topology.openStandby.bind(this.topology);
    const dir = this.taskDir(partition);
    const opening = (async (): Promise<StandbyFolder | undefined> => {
      // The folder may still be closing after a revoke (this instance owned the partition until now).
      const state = await retry(
        () => openStandby({ partition, dir }),
        { maxElapsedMs: this.config.stateLockTimeoutMs, initialDelayMs: 200, maxDelayMs: 1000 },
        { isTransient: isLockError },
      );
      try {
        const following = await link.follow(state.target);
        this.logger.info({ partition }, 'standby replica following its changelog');
        return { state, following, link };
      } catch (error) {
        await state.close();
        throw error;
      }
    })().catch((error: unknown) => {
      this.logger.warn({ partition, err: error }, 'standby replica could not start');
      this.standbyFolders.delete(partition);
      return undefined;
    });
    this.standbyFolders.set(partition, opening);
  }

  /** Stops a standby and releases its folder (before its task opens there, or when it moved away). */
  private async closeStandby(partition: number): Promise<void> {
    const opening = this.standbyFolders.get(partition);
    if (!opening) return;
    this.standbyFolders.delete(partition);
    const standby = await opening;
    if (!standby) return;
    await standby.following.stop();
    await standby.state.close();
    await standby.link.close();
  }

  private taskDir(partition: number): string {
    return join(this.config.stateDir, this.config.appId, `task-${partition}`);
  }

  private hostFor(partition: number): Promise<TaskHost> {
    const open = this.hosts.get(partition);
    if (open) return Promise.resolve(open);
    let opening = this.opening.get(partition);
    if (!opening) {
      opening = this.openHost(partition).finally(() => this.opening.delete(partition));
      this.opening.set(partition, opening);
    }
    return opening;
  }

  private async openHost(partition: number): Promise<TaskHost> {
    if (!this.changelogTopics) return this.openHostOnce(partition);
    // Kafka unreachable while fencing or restoring: hold the partition and try again, like a batch
    // held on a RetriableError; a state that does not match the topology is not worth retrying.
    return retry(() => this.openHostOnce(partition), HOLD_ON_RETRIABLE, {
      isTransient: isKafkaTrouble,
      shouldContinue: () => this.state === 'running' && this.assigned(partition),
      onRetry: ({ delayMs, error }) => {
        this.held.set(partition, asError(error).message);
        this.logger.warn({ partition, err: error, retryInMs: delayMs }, 'cannot open the task yet; retrying');
      },
    }).finally(() => this.held.delete(partition));
  }

  private assigned(partition: number): boolean {
    return this.assignment.some((tp) => tp.partition === partition);
  }

  private async openHostOnce(partition: number): Promise<TaskHost> {
    // A standby of this partition here becomes its task: it releases the folder it kept up to date.
    await this.closeStandby(partition);
    const dir = this.taskDir(partition);
    const changelog = this.changelogLink(partition);
    let task;
    try {
      if (changelog) {
        // Before reading anything: a previous owner can commit nothing once this resolves.
        await changelog.fence();
        this.restoring.set(partition, changelog);
      }
      task = await openTaskWaitingForLock(
        this.topology,
        {
          partition,
          dir,
          resetStores: this.config.resetStores,
          cache: this.cache,
          deliveryBatchRows: this.config.outputs.batchSize,
          ...(changelog ? { changelog } : {}),
        },
        this.config.stateLockTimeoutMs,
        this.logger,
      );
    } catch (error) {
      await changelog?.close().catch(() => undefined);
      throw error;
    } finally {
      this.restoring.delete(partition);
    }
    const host = new TaskHost(partition, task, changelog);
    this.drops.baseline(partition, task.metrics());
    this.metrics.baselineTask(partition, task.metrics());
    this.hosts.set(partition, host);
    this.delivery.forgetPartition(partition);
    const positions = Object.fromEntries([...task.positions()].map(([t, o]) => [t, o.toString()]));
    this.logger.info({ partition, positions }, 'task opened');
    if (task.positions().size === 0 && !changelog) await this.warnIfStateIsMissing(partition);
    return host;
  }

  private changelogLink(partition: number): TaskChangelogLink | undefined {
    if (!this.changelogTopics || !this.changelogReader || !this.admin) return undefined;
    return new TaskChangelogLink({
      appId: this.config.appId,
      partition,
      topics: this.changelogTopics,
      transactions: this.kafka.taskTransactions(`${this.config.appId}-task-${partition}`),
      reader: this.changelogReader,
      admin: this.admin,
      logger: this.logger,
      metrics: this.metrics,
    });
  }

  /** A task closed after its transaction failed: forget it, and reopen it from its changelog if still ours. */
  private async reopenLost(lost: LostTask): Promise<void> {
    const { host, error } = lost;
    if (this.hosts.get(host.partition) === host) this.hosts.delete(host.partition);
    await host.changelog?.close().catch(() => undefined);
    await this.delivery.releasePartition(host.partition);
    this.metrics.changelogCommitFailures.inc({ partition: String(host.partition) });
    if (isPermanentChangelogFailure(error)) {
      this.fail(
        new Error(`partition ${host.partition}: Kafka refused its changelog transaction for good`, {
          cause: error,
        }),
      );
      return;
    }
    // Fenced: another instance opened the partition, as rebalances go (info); anything else is Kafka
    // trouble worth a warning.
    const fenced = error instanceof FencedError;
    this.logger[fenced ? 'info' : 'warn'](
      { partition: host.partition, err: error },
      fenced
        ? 'another instance took over this partition: its task closed without writing'
        : 'changelog transaction failed: task closed without writing; reopening it from the changelog',
    );
    // Reopened through fence + restore if the group still gives it to us: after a fence, ownership may
    // bounce until the rebalance reaches both instances, but each opening restores the whole changelog
    // first, so state never forks (ARCHITECTURE.md, Exactly-once item 6).
    if (this.state === 'running' && this.assigned(host.partition))
      void this.hostFor(host.partition)
        .then((reopened) => this.fetchFromTask(reopened))
        .catch((e: unknown) => this.fail(asError(e)));
  }

  /**
   * The consumer fetched on for the lost incarnation, possibly to the end of the partition: no batch
   * would ever come to show the reopened task is behind (resumeFrom acts on batches). Send it back to
   * where the task's restored state is.
   */
  private fetchFromTask(host: TaskHost): void {
    for (const [topic, offset] of host.task.positions())
      if (this.topology.sourceTopics.includes(topic))
        this.consumer?.seek({ topic, partition: host.partition, offset });
  }

  /**
   * A partition the group has consumed before but that has no local state here (another machine owned
   * it, or the state folder was lost) resumes from the group offset with empty state: windows open at
   * that offset lose what came before it. Only with changelogs off (with them, the task restores); say so.
   */
  private async warnIfStateIsMissing(partition: number): Promise<void> {
    for (const topic of this.topology.sourceTopics) {
      const committed = await this.admin?.groupOffsets(this.config.appId, topic).catch(() => undefined);
      const offset = committed?.get(partition);
      if (offset !== undefined && offset > 0n) {
        this.logger.warn(
          { topic, partition, groupOffset: offset.toString(), stateDir: this.config.stateDir },
          'no local state for a partition the group has consumed before: resuming from the group offset with ' +
            'empty state (windows still open there lose earlier events; changelog.enabled is false, so nothing restores it)',
        );
      }
    }
  }

  /** Checkpoint and close a task whose partition left this instance, releasing its LevelDB for the new owner. */
  private async revoke(partition: number): Promise<void> {
    const host = this.hosts.get(partition);
    if (!host) return;
    this.hosts.delete(partition);
    await this.checkpoint.handOver(host);
    await this.delivery.releasePartition(partition);
    this.metrics.forgetTask(partition);
    this.drops.forget(partition);
    this.logger.info({ partition }, 'task revoked: checkpointed and closed');
  }

  // ---- processing ---------------------------------------------------------------------------------

  private async handleBatch(batch: FetchedBatch, control: BatchControl): Promise<void> {
    if (this.state !== 'running') return; // stopping: leave the rest for the next owner, unconsumed
    const host = await this.hostFor(batch.partition);
    await host.queue.run(async () => {
      if (host.closed) return;
      const first = batch.records[0];
      const last = batch.records[batch.records.length - 1];
      if (!first || !last) return;
      const decision = host.task.resumeFrom(batch.topic, first.offset, last.offset);
      if (decision.action === 'seek') {
        // Kafka would resume after what the state reflects (e.g. group offsets reset): go back.
        this.logger.warn(
          {
            topic: batch.topic,
            partition: batch.partition,
            fetched: first.offset.toString(),
            checkpoint: decision.offset.toString(),
          },
          'consumer is ahead of the local state; seeking back',
        );
        control.seek(decision.offset);
        return;
      }
      if (decision.action === 'covered') {
        control.markConsumed(last.offset);
        return;
      }
      // The task skips the head of the batch it has already processed (redelivered after a crash or rebalance).
      await this.processHoldingOnRetriable(host, batch.records, control);
      control.markConsumed(last.offset);
      host.lag = Number(batch.highWatermark - last.offset - 1n);
      this.metrics.lag.set({ partition: String(batch.partition) }, host.lag);
    });
    this.applyBackpressure(host);
  }

  /** A RetriableError (registry down) holds the partition: nothing is applied, we back off and retry. */
  private async processHoldingOnRetriable(
    host: TaskHost,
    records: FetchedBatch['records'],
    control: BatchControl,
  ) {
    try {
      await this.retryProcessing(host, records, control);
    } finally {
      this.held.delete(host.partition);
    }
  }

  private async retryProcessing(host: TaskHost, records: FetchedBatch['records'], control: BatchControl) {
    await retry(
      async (attempt) => {
        if (attempt > 1) await control.heartbeat().catch(() => undefined);
        await host.task.process(records);
      },
      HOLD_ON_RETRIABLE,
      {
        isTransient: (error) => error instanceof RetriableError,
        shouldContinue: () => this.state === 'running' && control.isRunning(),
        onRetry: ({ delayMs, error }) => {
          this.held.set(host.partition, asError(error).message);
          this.metrics.retriableStalls.inc({ partition: String(host.partition) });
          this.logger.warn(
            { partition: host.partition, err: error, retryInMs: delayMs },
            'dependency unavailable; holding the partition',
          );
        },
        random: () => 1, // no jitter: the delays double exactly (100, 200, 400 ms, ...)
      },
    );
  }

  private applyBackpressure(host: TaskHost): void {
    if (!this.consumer || host.closed) return;
    const pending = host.pendingOutputs();
    this.metrics.pendingOutputs.set({ partition: String(host.partition) }, pending);
    const limit = this.config.outputs.maxPendingPerPartition;
    const partitions = this.assignment.filter((tp) => tp.partition === host.partition);
    if (!host.paused && pending > limit) {
      host.paused = true;
      this.consumer.pause(partitions);
      this.logger.warn({ partition: host.partition, pending, limit }, 'outputs backed up; partition paused');
    } else if (host.paused && pending <= limit / 2) {
      host.paused = false;
      this.consumer.resume(partitions);
      this.logger.info({ partition: host.partition, pending }, 'outputs drained; partition resumed');
    }
    this.metrics.pausedPartitions.set([...this.hosts.values()].filter((h) => h.paused).length);
  }

  // ---- commit and delivery ------------------------------------------------------------------------

  /** Checkpoints every task, then delivers committed outputs in the background. */
  commitAll(reason: string): Promise<void> {
    if (this.committing) return this.committing;
    this.committing = this.commitOnce(reason).finally(() => (this.committing = undefined));
    return this.committing;
  }

  private async commitOnce(reason: string): Promise<void> {
    const stopTimer = this.metrics.commitDuration.startTimer();
    let offsets: GroupOffset[];
    const hosts = [...this.hosts.values()];
    const now = Date.now();
    let lost: TaskHost[] = [];
    try {
      const committed = await this.checkpoint.commit(hosts, now);
      offsets = committed.offsets;
      lost = committed.lost.map(({ host }) => host);
      // Not awaited: closing a lost task's clients must not hold the commit loop.
      for (const task of committed.lost)
        void this.reopenLost(task).catch((error: unknown) => this.fail(asError(error)));
    } catch (error) {
      this.fail(asError(error));
      return;
    } finally {
      stopTimer();
    }
    for (const host of hosts) if (!lost.includes(host)) host.lastCommitAt = now;
    this.logger.debug({ reason, tasks: this.hosts.size }, 'checkpointed');
    // With changelogs, each task's transaction committed its group offsets already.
    if (!this.changelogTopics) void this.checkpoint.commitGroupOffsets(this.consumer, offsets);
    void this.deliverAll();
  }

  /** Delivers until nothing is left or a sink fails; at most one delivery loop at a time. */
  deliverAll(): Promise<void> {
    if (this.delivering) return this.delivering;
    this.delivering = (async () => {
      try {
        while (await this.delivery.deliver([...this.hosts.values()])) {
          for (const host of this.hosts.values()) this.applyBackpressure(host);
        }
        for (const host of this.hosts.values()) this.applyBackpressure(host);
      } catch (error) {
        this.logger.warn({ err: error }, 'delivery round failed; will retry');
      }
    })().finally(() => (this.delivering = undefined));
    return this.delivering;
  }

  // ---- inspection ---------------------------------------------------------------------------------

  tasks(): TaskStatus[] {
    return [...this.hosts.values()]
      .sort((a, b) => a.partition - b.partition)
      .map((host) => ({
        partition: host.partition,
        instance: this.config.instanceId,
        positions: Object.fromEntries([...host.task.positions()].map(([t, o]) => [t, o.toString()])),
        paused: host.paused,
        pendingOutputs: host.pendingOutputs(),
        ...(host.lag === undefined ? {} : { lag: host.lag }),
        ...(host.lastCommitAt === undefined ? {} : { lastCommitAt: host.lastCommitAt }),
        metrics: host.task.metrics(),
      }));
  }

  /** Partitions whose task is being opened, with restore progress while a restore runs. */
  openingTasks(): OpeningStatus[] {
    return [...this.opening.keys()]
      .sort((a, b) => a - b)
      .map((partition) => {
        const restore = this.restoring.get(partition)?.progress();
        return restore ? { partition, restore } : { partition };
      });
  }

  /** The consumer group after the last rebalance; undefined until it is first learnt. */
  cluster(): ClusterView | undefined {
    return this.membership;
  }

  /** The partitions this instance keeps a standby copy of (ascending), as of the last rebalance. */
  standbyPartitions(): number[] {
    return [...this.standbys];
  }

  /** The standby replicas this instance keeps up to date now (ascending). */
  standbyReplicas(): number[] {
    return [...this.standbyFolders.keys()].sort((a, b) => a - b);
  }

  /** The last dead letters this instance wrote to the DLQ, newest first (the admin console's list). */
  recentDeadLetters(): RecentDeadLetter[] {
    return this.delivery.recentDeadLetters.list();
  }

  /** This member's id (`instanceId`): the owner shown beside its partitions. */
  get instanceId(): string {
    return this.config.instanceId;
  }

  task(partition: number): TaskHost | undefined {
    return this.hosts.get(partition);
  }

  get sinksHealthy(): boolean {
    return this.delivery.healthy;
  }

  readiness(): Readiness {
    const heldPartitions = [...this.held]
      .sort(([a], [b]) => a - b)
      .map(([partition, error]) => ({ partition, error }));
    const failingSinks = this.delivery.failingSinks();
    const openingPartitions = [...this.opening.keys()].sort((a, b) => a - b);
    const reasons = [
      ...(this.state === 'running' ? [] : [`instance ${this.state}`]),
      ...heldPartitions.map(
        ({ partition, error }) => `partition ${partition} held: dependency unavailable (${error})`,
      ),
      ...failingSinks.map(({ sink, error }) => `sink failing: ${sink} (${error})`),
      ...(openingPartitions.length > 0
        ? [`restoring state: opening partitions ${openingPartitions.join(', ')}`]
        : []),
    ];
    return {
      ready: reasons.length === 0,
      state: this.state,
      reasons,
      heldPartitions,
      failingSinks,
      openingPartitions,
    };
  }

  // ---- shutdown -----------------------------------------------------------------------------------

  /**
   * Stops fetching, finishes the batch in hand, checkpoints every task, delivers what it can within
   * the shutdown timeout, commits group offsets, closes the tasks and leaves the group.
   */
  async stop(): Promise<void> {
    if (this.state === 'stopped' || this.state === 'stopping') return;
    this.state = 'stopping';
    if (this.commitTimer) clearInterval(this.commitTimer);
    // No new fetches while we wind down; what is not processed now belongs to the next owner.
    this.consumer?.pause(this.assignment);
    const deadline = Date.now() + this.config.shutdownTimeoutMs;
    await this.committing;
    await Promise.allSettled([...this.opening.values()]);
    await this.commitOnce('shutdown');
    await Promise.race([this.drainOutputs(deadline), sleep(Math.max(0, deadline - Date.now()))]);
    if (!this.changelogTopics)
      await this.checkpoint.commitGroupOffsets(
        this.consumer,
        [...this.hosts.values()].flatMap(groupOffsetsOf),
      );
    // Commit once more before closing: the acks of what the drain delivered become durable, so the
    // next owner does not write those outputs again.
    for (const host of [...this.hosts.values()]) await this.checkpoint.handOver(host);
    this.hosts.clear();
    await this.consumer
      ?.stop()
      .catch((error: unknown) => this.logger.warn({ err: error }, 'leaving the group failed'));
    await this.delivery.close();
    for (const partition of [...this.standbyFolders.keys()])
      await this.closeStandby(partition).catch(() => undefined);
    await this.changelogReader?.stop().catch(() => undefined);
    await this.admin?.close().catch(() => undefined);
    this.state = 'stopped';
    this.logger.info('instance stopped');
  }

  private async drainOutputs(deadline: number): Promise<void> {
    while (Date.now() < deadline) {
      await this.deliverAll();
      const pending = [...this.hosts.values()].reduce((sum, h) => sum + h.pendingOutputs(), 0);
      if (pending === 0) return;
      await sleep(this.config.outputs.retryBackoffMs);
    }
  }
}

/**
 * Whether opening a task failed on Kafka (fencing, reading the changelog), worth retrying, rather than
 * on its state (a store that no longer matches the topology, a folder that cannot be opened).
 */
function isKafkaTrouble(error: unknown): boolean {
  for (let e: unknown = error; e instanceof Error; e = e.cause) {
    if (e.name === 'StoreMismatchError' || e.name === 'StateRoundTripError') return false;
    if (e.name.startsWith('KafkaJS') || e.name === 'ChangelogTimeoutError') return true;
  }
  return false;
}

function asError(error: unknown): Error {
  return error instanceof Error ? error : new Error(String(error));
}
