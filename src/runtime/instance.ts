/**
 * One consumer-group member running a topology: tells its TaskManager (task-manager.ts) which tasks
 * the group assigned, feeds each task its batches, checkpoints on an interval (and on revoke and
 * shutdown), hands committed outputs to the sinks, and applies backpressure by pausing partitions
 * whose outputs back up. The commit protocol, with the exactly-once list, is checkpoint.ts.
 */
import { randomUUID } from 'node:crypto';
import type { Logger } from 'pino';
import { RetriableError } from '../serde/types.js';
import { retry, sleep } from '../core/retry.js';
import type { RunnableTopology } from '../core/task.js';
import type { TaskId } from '../core/task-id.js';
import { SINGLE_SUBTOPOLOGY, compareTaskIds, taskIdOf } from '../core/task-id.js';
import type { TributaryConfig } from './config.js';
import { OutputDelivery } from './delivery.js';
import type {
  BatchControl,
  FetchedBatch,
  GroupConsumer,
  GroupMembership,
  KafkaAdmin,
  KafkaClient,
  TopicDescription,
  TopicPartition,
} from './kafka/client.js';
import { Checkpoint, groupOffsetsOf } from './checkpoint.js';
import type { GroupOffset } from './checkpoint.js';
import { DropLog } from './drop-log.js';
import { RuntimeMetrics } from './metrics.js';
import { CacheBudget } from '../core/cache-budget.js';
import type { RecentDeadLetter } from './recent-dead-letters.js';
import type { TaskHost } from './task-host.js';
import { changelogTopics, prepareChangelogTopics } from './changelog.js';
import type { PartitionReader } from './kafka/client.js';
import { HOLD_ON_RETRIABLE, TaskManager } from './task-manager.js';
import type { OpeningStatus } from './task-manager.js';
import type { ClusterView, InstanceState, Readiness, TaskStatus } from './instance-status.js';
import { waitForTopics } from './input-topics.js';

export type { OpeningStatus } from './task-manager.js';

export type { ClusterView, InstanceState, Readiness, TaskStatus } from './instance-status.js';

export interface InstanceStartOptions {
  /** This instance's admin endpoint as its peers reach it, advertised in the consumer group. */
  adminUrl?: string | undefined;
}

export class Instance {
  state: InstanceState = 'created';
  readonly metrics: RuntimeMetrics;
  private readonly drops: DropLog;
  /** Every task of this instance, active or standby, in its lifecycle state. */
  private readonly manager: TaskManager;
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
  /** Whether changelogs are on (each task's transaction then commits its group offsets). */
  private changelogsOn = false;
  /** Reads changelogs for restores (a consumer group of its own), when changelogs are on. */
  private changelogReader: PartitionReader | undefined;
  /** The input topics start() waits for (none once they exist), shown by readiness(). */
  private missingTopics: string[] = [];
  /** Ends start()'s wait for the input topics when stop() comes first. */
  private readonly stopWaiting = new AbortController();
  private starting: Promise<void> | undefined;

  constructor(
    private readonly topology: RunnableTopology,
    private readonly config: TributaryConfig,
    private readonly kafka: KafkaClient,
    private readonly logger: Logger,
  ) {
    this.metrics = new RuntimeMetrics(config.instanceId, config.appId);
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
    this.manager = new TaskManager({
      topology,
      settings: {
        appId: config.appId,
        stateDir: config.stateDir,
        resetStores: config.resetStores,
        stateLockTimeoutMs: config.stateLockTimeoutMs,
        deliveryBatchRows: config.outputs.batchSize,
      },
      // Store cache memory shared by this instance's tasks (state.cacheMaxBytes).
      cache: new CacheBudget(config.state.cacheMaxBytes),
      logger,
      metrics: this.metrics,
      drops: this.drops,
      delivery: this.delivery,
      checkpoint: this.checkpoint,
      admin: () => this.admin,
      isRunning: () => this.state === 'running',
      fail: (error) => this.fail(error),
      reopened: (host) => this.fetchFromTask(host),
    });
  }

  onCrash(listener: (error: Error) => void): void {
    this.crashListeners.push(listener);
    if (this.crash) listener(this.crash);
  }

  async start(options: InstanceStartOptions = {}): Promise<void> {
    if (this.state !== 'created') throw new Error(`instance already ${this.state}`);
    this.state = 'starting';
    this.starting = this.startOnce(options);
    return this.starting;
  }

  private async startOnce(options: InstanceStartOptions): Promise<void> {
    try {
      this.admin = await this.kafka.admin();
      // A consumer subscribed to a missing topic gets no partitions and says nothing: wait, saying so.
      const inputTopics = await waitForTopics(this.admin, this.topology.sourceTopics, {
        logger: this.logger,
        signal: this.stopWaiting.signal,
        onMissing: (missing) => (this.missingTopics = missing),
      });
      if (inputTopics === undefined || this.stopWaiting.signal.aborted) {
        // stop() came while waiting: nothing else was opened.
        await this.admin.close().catch(() => undefined);
        this.state = 'stopped';
        this.logger.info('instance stopped before its input topics existed');
        return;
      }
      await this.delivery.open(this.admin);
      if (this.config.changelog.enabled) await this.openChangelogs(this.admin, inputTopics);
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
  private async openChangelogs(admin: KafkaAdmin, inputTopics: Map<string, TopicDescription>): Promise<void> {
    // The input topics' partition count sizes the changelog topics.
    const partitions = Math.max(0, ...[...inputTopics.values()].map((topic) => topic.partitions));
    const topics = changelogTopics(this.config.appId, this.topology.storeNames);
    await prepareChangelogTopics(admin, topics, partitions, this.config.changelog.replicationFactor);
    // A group of its own per incarnation: a restarted instance never waits for its dead predecessor.
    const reader = this.kafka.partitionReader(`${this.config.appId}.restore.${randomUUID()}`);
    this.changelogReader = reader;
    this.changelogsOn = true;
    this.manager.useChangelogs({
      topics,
      reader,
      admin,
      transactions: this.kafka.taskTransactions.bind(this.kafka),
    });
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
    const ids = [...new Set(assigned.map(taskOf))].sort(compareTaskIds);
    this.logger.info(
      { partitions: ids.map((id) => id.partition), tasks: ids.map(String) },
      'partitions assigned',
    );
    this.manager.assign(ids);
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
    const partitions = mine?.standby ?? [];
    if (partitions.join() !== this.standbys.join())
      this.logger.info({ standbys: partitions }, 'standby partitions assigned');
    this.standbys = [...partitions];
    if (this.state === 'running') this.manager.setStandbys(partitions.map(partitionTask));
  }

  /**
   * The consumer fetched on for a lost incarnation, possibly to the end of the partition: no batch
   * would ever come to show the reopened task is behind (resumeFrom acts on batches). Send it back to
   * where the task's restored state is.
   */
  private fetchFromTask(host: TaskHost): void {
    for (const [topic, offset] of host.task.positions())
      if (this.topology.sourceTopics.includes(topic))
        this.consumer?.seek({ topic, partition: host.partition, offset });
  }

  // ---- processing ---------------------------------------------------------------------------------

  private async handleBatch(batch: FetchedBatch, control: BatchControl): Promise<void> {
    if (this.state !== 'running') return; // stopping: leave the rest for the next owner, unconsumed
    const host = await this.manager.hostFor(taskOf(batch));
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
      this.manager.release(host.id);
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
          this.manager.hold(host.id, asError(error).message);
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
    this.metrics.pausedPartitions.set(this.manager.runningHosts().filter((h) => h.paused).length);
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
    const hosts = this.manager.runningHosts();
    const now = Date.now();
    let lost: TaskHost[] = [];
    try {
      const committed = await this.checkpoint.commit(hosts, now);
      offsets = committed.offsets;
      lost = committed.lost.map(({ host }) => host);
      // Not awaited: closing a lost task's clients must not hold the commit loop.
      for (const task of committed.lost)
        void this.manager.lose(task).catch((error: unknown) => this.fail(asError(error)));
    } catch (error) {
      this.fail(asError(error));
      return;
    } finally {
      stopTimer();
    }
    for (const host of hosts) if (!lost.includes(host)) host.lastCommitAt = now;
    this.logger.debug({ reason, tasks: hosts.length }, 'checkpointed');
    // With changelogs, each task's transaction committed its group offsets already.
    if (!this.changelogsOn) void this.checkpoint.commitGroupOffsets(this.consumer, offsets);
    void this.deliverAll();
  }

  /** Delivers until nothing is left or a sink fails; at most one delivery loop at a time. */
  deliverAll(): Promise<void> {
    if (this.delivering) return this.delivering;
    this.delivering = (async () => {
      try {
        while (await this.delivery.deliver(this.manager.runningHosts())) {
          for (const host of this.manager.runningHosts()) this.applyBackpressure(host);
        }
        for (const host of this.manager.runningHosts()) this.applyBackpressure(host);
      } catch (error) {
        this.logger.warn({ err: error }, 'delivery round failed; will retry');
      }
    })().finally(() => (this.delivering = undefined));
    return this.delivering;
  }

  // ---- inspection ---------------------------------------------------------------------------------

  tasks(): TaskStatus[] {
    return this.manager
      .runningHosts()
      .sort((a, b) => compareTaskIds(a.id, b.id))
      .map((host) => ({
        id: host.id.toString(),
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

  /** Tasks being opened, with restore progress while a restore runs. */
  openingTasks(): OpeningStatus[] {
    return this.manager.opening();
  }

  /** The consumer group after the last rebalance; undefined until it is first learnt. */
  cluster(): ClusterView | undefined {
    return this.membership;
  }

  /** The partitions this instance keeps a standby copy of (ascending), as of the last rebalance. */
  standbyPartitions(): number[] {
    return [...this.standbys];
  }

  /** The partitions of the standby replicas this instance keeps up to date now (ascending). */
  standbyReplicas(): number[] {
    return this.manager.standbys().map((id) => id.partition);
  }

  /** The ids of those standby replicas (ascending). */
  standbyTasks(): TaskId[] {
    return this.manager.standbys();
  }

  /** The last dead letters this instance wrote to the DLQ, newest first (the admin console's list). */
  recentDeadLetters(): RecentDeadLetter[] {
    return this.delivery.recentDeadLetters.list();
  }

  /** This member's id (`instanceId`): the owner shown beside its partitions. */
  get instanceId(): string {
    return this.config.instanceId;
  }

  /** The running task of an id, or of a partition (of the one sub-topology). */
  task(id: TaskId | number): TaskHost | undefined {
    return this.manager.running(typeof id === 'number' ? partitionTask(id) : id);
  }

  get sinksHealthy(): boolean {
    return this.delivery.healthy;
  }

  readiness(): Readiness {
    const heldPartitions = this.manager
      .held()
      .map(({ id, reason }) => ({ partition: id.partition, error: reason }));
    const failingSinks = this.delivery.failingSinks();
    const openingPartitions = this.manager.opening().map((opening) => opening.partition);
    const reasons = [
      ...(this.state === 'running' ? [] : [`instance ${this.state}`]),
      ...this.missingTopics.map((topic) => `waiting for input topic ${topic} to exist`),
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
      missingTopics: [...this.missingTopics],
    };
  }

  // ---- shutdown -----------------------------------------------------------------------------------

  /**
   * Stops fetching, finishes the batch in hand, checkpoints every task, delivers what it can within
   * the shutdown timeout, commits group offsets, closes the tasks and leaves the group.
   */
  async stop(): Promise<void> {
    if (this.state === 'stopped' || this.state === 'stopping') return;
    if (this.state === 'starting' && this.missingTopics.length > 0) {
      // Still waiting for the input topics: end the wait; start() closes what it opened.
      this.state = 'stopping';
      this.stopWaiting.abort();
      await this.starting?.catch(() => undefined);
      return;
    }
    this.state = 'stopping';
    if (this.commitTimer) clearInterval(this.commitTimer);
    // No new fetches while we wind down; what is not processed now belongs to the next owner.
    this.consumer?.pause(this.assignment);
    const deadline = Date.now() + this.config.shutdownTimeoutMs;
    await this.committing;
    await this.manager.settleOpenings();
    await this.commitOnce('shutdown');
    await Promise.race([this.drainOutputs(deadline), sleep(Math.max(0, deadline - Date.now()))]);
    if (!this.changelogsOn)
      await this.checkpoint.commitGroupOffsets(
        this.consumer,
        this.manager.runningHosts().flatMap(groupOffsetsOf),
      );
    // Commit once more before closing: the acks of what the drain delivered become durable, so the
    // next owner does not write those outputs again.
    await this.manager.closeRunning();
    await this.consumer
      ?.stop()
      .catch((error: unknown) => this.logger.warn({ err: error }, 'leaving the group failed'));
    await this.delivery.close();
    await this.manager.closeStandbys();
    await this.changelogReader?.stop().catch(() => undefined);
    await this.admin?.close().catch(() => undefined);
    this.state = 'stopped';
    this.logger.info('instance stopped');
  }

  private async drainOutputs(deadline: number): Promise<void> {
    while (Date.now() < deadline) {
      await this.deliverAll();
      const pending = this.manager.runningHosts().reduce((sum, h) => sum + h.pendingOutputs(), 0);
      if (pending === 0) return;
      await sleep(this.config.outputs.retryBackoffMs);
    }
  }
}

/** The task of a fetched or assigned partition: today every source topic feeds the one sub-topology. */
function taskOf({ partition }: { partition: number }): TaskId {
  return partitionTask(partition);
}

function partitionTask(partition: number): TaskId {
  return taskIdOf(SINGLE_SUBTOPOLOGY, partition);
}

function asError(error: unknown): Error {
  return error instanceof Error ? error : new Error(String(error));
}
