/**
 * The one owner of an instance's tasks, as Kafka Streams' TaskManager: every task this instance has
 * (active or standby) is here, with its state (task-lifecycle.ts), and moves only through the methods
 * below. `Instance` tells it what the group assigned (`assign`, `setStandbys`), asks it for a task to
 * feed a batch to (`hostFor`), hands it the tasks a commit lost (`lose`) and winds it down on shutdown.
 *
 * Opening a task = claim its folder (renamed from its legacy name if need be), fence its changelog's
 * transactional id, restore, open (ARCHITECTURE.md, Exactly-once item 5); a standby of the task here
 * hands its folder over first (promotion).
 */
import type { Logger } from 'pino';
import type { CacheBudget } from '../core/cache-budget.js';
import { retry } from '../core/retry.js';
import type { RetryPolicy } from '../core/retry.js';
import { FencedError } from '../core/task.js';
import type { OpenTaskOptions, RunnableTopology, StandbyState } from '../core/task.js';
import { compareTaskIds } from '../core/task-id.js';
import type { TaskId } from '../core/task-id.js';
import { TaskChangelogLink, isPermanentChangelogFailure } from './changelog.js';
import type { RestoreProgress } from './changelog.js';
import type { Checkpoint, LostTask } from './checkpoint.js';
import type { OutputDelivery } from './delivery.js';
import type { DropLog } from './drop-log.js';
import type { KafkaAdmin, PartitionReader, TaskTransactions } from './kafka/client.js';
import type { RuntimeMetrics } from './metrics.js';
import { TaskHost, isLockError, openTaskWaitingForLock } from './task-host.js';
import { migrateLegacyFolder, taskTransactionalId } from './task-folder.js';
import { TaskLifecycle } from './task-lifecycle.js';
import type { TaskState } from './task-lifecycle.js';

/** Holding a task on a RetriableError or Kafka trouble: 100 ms, doubling, at most 5 s between attempts. */
export const HOLD_ON_RETRIABLE: RetryPolicy = { initialDelayMs: 100, maxDelayMs: 5000 };

/** What the manager needs of the instance's settings. */
export interface TaskManagerSettings {
  appId: string;
  stateDir: string;
  resetStores: OpenTaskOptions['resetStores'];
  stateLockTimeoutMs: number;
  /** `outputs.batchSize`: what one delivery round reads (OpenTaskOptions.deliveryBatchRows). */
  deliveryBatchRows: number;
}

/** The changelog side, once the instance has prepared its topics (changelog.enabled). */
export interface ChangelogWiring {
  /** Store name → changelog topic. */
  topics: Map<string, string>;
  reader: PartitionReader;
  admin: KafkaAdmin;
  transactions(transactionalId: string): TaskTransactions;
}

export interface TaskManagerDeps {
  topology: RunnableTopology;
  settings: TaskManagerSettings;
  cache: CacheBudget;
  logger: Logger;
  metrics: RuntimeMetrics;
  drops: DropLog;
  delivery: Pick<OutputDelivery, 'forgetPartition' | 'releasePartition'>;
  checkpoint: Pick<Checkpoint, 'handOver'>;
  /** The group offsets of a task with no local state (a warning when changelogs are off). */
  admin(): KafkaAdmin | undefined;
  /** Whether the instance still runs: opens are retried and lost tasks reopened only then. */
  isRunning(): boolean;
  /** A failure the instance cannot recover from. */
  fail(error: Error): void;
  /** A lost task reopened: the consumer must fetch from its restored positions again. */
  reopened(host: TaskHost): void;
}

/** A task being opened: restoring from its changelog, or waiting for its folder. */
export interface OpeningStatus {
  partition: number;
  /** The task id, `0_3`. */
  task: string;
  restore?: RestoreProgress;
}

/** A standby replica: its folder, the changelog reads feeding it, and its changelog link. */
interface StandbyFolder {
  state: StandbyState;
  following: { stop(): Promise<void> };
  link: TaskChangelogLink;
}

/** One task of the instance, in one state; the fields set are those its state needs. */
interface ManagedTask {
  readonly lifecycle: TaskLifecycle;
  /** running: the open task. */
  host?: TaskHost;
  /** opening, restoring: the open under way. */
  opened?: Promise<TaskHost>;
  /** restoring: the link whose restore progress /tasks shows. */
  restore?: TaskChangelogLink;
  /** standby: the folder being opened or followed (undefined once it failed to start). */
  standby?: Promise<StandbyFolder | undefined>;
  /** closing: done once closed. */
  closed?: Promise<void>;
  /** Why the task is held (a RetriableError, Kafka trouble while opening), until it goes through. */
  held?: string;
}

export class TaskManager {
  private readonly tasks = new Map<TaskId, ManagedTask>();
  /** The active tasks the group gave this instance last. */
  private assigned = new Set<TaskId>();
  private changelogs: ChangelogWiring | undefined;

  constructor(private readonly deps: TaskManagerDeps) {}

  /** Changelogs on: tasks fence and restore through them, standbys follow them. */
  useChangelogs(wiring: ChangelogWiring): void {
    this.changelogs = wiring;
  }

  // ---- what the group assigns ---------------------------------------------------------------------

  /** The group's new assignment: running tasks no longer in it are revoked, the others opened eagerly. */
  assign(ids: readonly TaskId[]): void {
    this.assigned = new Set(ids);
    for (const [id, task] of this.tasks)
      if (task.lifecycle.state === 'running' && !this.assigned.has(id)) void this.revoke(id);
    // Open eagerly so a handover starts while the group settles; batches wait for the open.
    for (const id of this.assigned)
      void this.hostFor(id).catch((error: unknown) => this.deps.fail(asError(error)));
  }

  isAssigned(id: TaskId): boolean {
    return this.assigned.has(id);
  }

  /**
   * This instance's standbys after a rebalance: each gets a folder kept warm from its changelogs; a
   * standby that moved away is closed. Without changelogs there is nothing to follow.
   */
  setStandbys(ids: readonly TaskId[]): void {
    if (!this.changelogs || !this.deps.isRunning()) return;
    const wanted = new Set(ids);
    for (const [id, task] of this.tasks)
      if (task.lifecycle.state === 'standby' && !wanted.has(id)) void this.closeStandby(id);
    for (const id of wanted) {
      const task = this.tasks.get(id);
      if (task === undefined) this.openStandby(id);
      else if (task.lifecycle.state === 'closing')
        // A task revoked here that stays as a standby: its folder is free once it closed.
        void task.closed?.then(() => {
          if (!this.tasks.has(id) && this.deps.isRunning()) this.openStandby(id);
        });
    }
  }

  // ---- active tasks -------------------------------------------------------------------------------

  /** The running task, or the one being opened (a standby here is promoted); opens it if need be. */
  hostFor(id: TaskId): Promise<TaskHost> {
    const task = this.tasks.get(id);
    if (task?.host) return Promise.resolve(task.host);
    if (task?.opened) return task.opened;
    if (task?.lifecycle.state === 'closing')
      return (task.closed ?? Promise.resolve()).then(() => this.hostFor(id));
    if (task?.lifecycle.state === 'standby') {
      task.lifecycle.transitionTo('opening');
      return this.startOpening(id, task);
    }
    return this.startOpening(id, { lifecycle: new TaskLifecycle(id, 'opening') });
  }

  /** The running task of `id`, if any. */
  running(id: TaskId): TaskHost | undefined {
    return this.tasks.get(id)?.host;
  }

  /** Every running task. */
  runningHosts(): TaskHost[] {
    const hosts: TaskHost[] = [];
    for (const task of this.tasks.values()) if (task.host) hosts.push(task.host);
    return hosts;
  }

  /** Records why a task is held (a batch waiting on a RetriableError); `release` clears it. */
  hold(id: TaskId, reason: string): void {
    const task = this.tasks.get(id);
    if (task) task.held = reason;
  }

  release(id: TaskId): void {
    const task = this.tasks.get(id);
    if (task) delete task.held;
  }

  /** Checkpoints and closes a task that left this instance, releasing its folder for the new owner. */
  async revoke(id: TaskId): Promise<void> {
    const task = this.tasks.get(id);
    const host = task?.host;
    if (!task || !host || task.lifecycle.state !== 'running') return;
    await this.close(id, task, async () => {
      await this.deps.checkpoint.handOver(host);
      await this.forget(host);
    });
    this.deps.logger.info(
      { task: id.toString(), partition: id.partition },
      'task revoked: checkpointed and closed',
    );
  }

  /** A task closed after its transaction failed: forget it, and reopen it from its changelog if still ours. */
  async lose({ host, error }: LostTask): Promise<void> {
    const id = host.id;
    const task = this.tasks.get(id);
    const closing = async () => {
      await host.changelog?.close().catch(() => undefined);
      await this.forget(host, { keepMetrics: true });
    };
    if (task?.host === host && task.lifecycle.state === 'running') await this.close(id, task, closing);
    else await closing();
    this.deps.metrics.changelogCommitFailures.inc({ partition: String(id.partition) });
    if (isPermanentChangelogFailure(error)) {
      this.deps.fail(
        new Error(`task ${id.toString()}: Kafka refused its changelog transaction for good`, {
          cause: error,
        }),
      );
      return;
    }
    // Fenced: another instance opened the task, as rebalances go (info); anything else is Kafka trouble.
    const fenced = error instanceof FencedError;
    this.deps.logger[fenced ? 'info' : 'warn'](
      { task: id.toString(), partition: id.partition, err: error },
      fenced
        ? 'another instance took over this partition: its task closed without writing'
        : 'changelog transaction failed: task closed without writing; reopening it from the changelog',
    );
    // Reopened through fence + restore if the group still gives it to us: after a fence, ownership may
    // bounce until the rebalance reaches both instances, but each opening restores the whole changelog
    // first, so state never forks (ARCHITECTURE.md, Exactly-once item 6).
    if (this.deps.isRunning() && this.assigned.has(id))
      void this.hostFor(id)
        .then((reopened) => this.deps.reopened(reopened))
        .catch((e: unknown) => this.deps.fail(asError(e)));
  }

  // ---- shutdown -----------------------------------------------------------------------------------

  /** Waits for the opens under way (each ends running or closed). */
  async settleOpenings(): Promise<void> {
    await Promise.allSettled([...this.tasks.values()].map((task) => task.opened));
  }

  /** Hands over every running task (commit, then close), one at a time. */
  async closeRunning(): Promise<void> {
    for (const [id, task] of [...this.tasks]) {
      const host = task.host;
      if (host && task.lifecycle.state === 'running')
        await this.close(id, task, () => this.deps.checkpoint.handOver(host));
    }
  }

  async closeStandbys(): Promise<void> {
    for (const [id, task] of [...this.tasks])
      if (task.lifecycle.state === 'standby') await this.closeStandby(id).catch(() => undefined);
  }

  // ---- inspection ---------------------------------------------------------------------------------

  stateOf(id: TaskId): TaskState | undefined {
    return this.tasks.get(id)?.lifecycle.state;
  }

  /** Tasks being opened (ascending), with restore progress while a restore runs. */
  opening(): OpeningStatus[] {
    return this.sorted()
      .filter(([, task]) => task.opened !== undefined)
      .map(([id, task]) => {
        const restore = task.restore?.progress();
        const status = { partition: id.partition, task: id.toString() };
        return restore ? { ...status, restore } : status;
      });
  }

  /** Tasks held (ascending) with why. */
  held(): Array<{ id: TaskId; reason: string }> {
    return this.sorted().flatMap(([id, task]) =>
      task.held === undefined ? [] : [{ id, reason: task.held }],
    );
  }

  /** The standby replicas kept up to date now (ascending). */
  standbys(): TaskId[] {
    return this.sorted()
      .filter(([, task]) => task.lifecycle.state === 'standby')
      .map(([id]) => id);
  }

  private sorted(): Array<[TaskId, ManagedTask]> {
    return [...this.tasks].sort(([a], [b]) => compareTaskIds(a, b));
  }

  // ---- opening ------------------------------------------------------------------------------------

  private startOpening(id: TaskId, task: ManagedTask): Promise<TaskHost> {
    this.tasks.set(id, task);
    const opened = this.open(id, task).then(
      (host) => {
        delete task.opened;
        return host;
      },
      async (error: unknown) => {
        delete task.opened;
        await this.close(id, task, async () => undefined);
        throw error;
      },
    );
    task.opened = opened;
    return opened;
  }

  private async open(id: TaskId, task: ManagedTask): Promise<TaskHost> {
    if (!this.changelogs) return this.openOnce(id, task);
    // Kafka unreachable while fencing or restoring: hold the task and try again, like a batch held on
    // a RetriableError; a state that does not match the topology is not worth retrying.
    return retry(() => this.openOnce(id, task), HOLD_ON_RETRIABLE, {
      isTransient: isKafkaTrouble,
      shouldContinue: () => this.deps.isRunning() && this.assigned.has(id),
      onRetry: ({ delayMs, error }) => {
        task.held = asError(error).message;
        if (task.lifecycle.state === 'restoring') task.lifecycle.transitionTo('opening');
        this.deps.logger.warn(
          { task: id.toString(), partition: id.partition, err: error, retryInMs: delayMs },
          'cannot open the task yet; retrying',
        );
      },
    }).finally(() => delete task.held);
  }

  private async openOnce(id: TaskId, task: ManagedTask): Promise<TaskHost> {
    // A standby of this task here becomes the task: it releases the folder it kept up to date.
    await this.releaseStandbyFolder(task);
    const { settings, logger } = this.deps;
    const dir = await migrateLegacyFolder(settings.stateDir, settings.appId, id, logger);
    const changelog = this.changelogLink(id);
    let opened;
    try {
      if (changelog) {
        // Before reading anything: a previous owner can commit nothing once this resolves.
        await changelog.fence();
        task.lifecycle.transitionTo('restoring');
        task.restore = changelog;
      }
      opened = await openTaskWaitingForLock(
        this.deps.topology,
        {
          partition: id.partition,
          dir,
          resetStores: settings.resetStores,
          cache: this.deps.cache,
          deliveryBatchRows: settings.deliveryBatchRows,
          ...(changelog ? { changelog } : {}),
        },
        settings.stateLockTimeoutMs,
        logger,
      );
    } catch (error) {
      await changelog?.close().catch(() => undefined);
      throw error;
    } finally {
      delete task.restore;
    }
    const host = new TaskHost(id, opened, changelog);
    this.deps.drops.baseline(id.partition, opened.metrics());
    this.deps.metrics.baselineTask(id.partition, opened.metrics());
    task.host = host;
    task.lifecycle.transitionTo('running');
    this.deps.delivery.forgetPartition(id.partition);
    const positions = Object.fromEntries([...opened.positions()].map(([t, o]) => [t, o.toString()]));
    logger.info({ task: id.toString(), partition: id.partition, positions }, 'task opened');
    if (opened.positions().size === 0 && !changelog) await this.warnIfStateIsMissing(id);
    return host;
  }

  private changelogLink(id: TaskId): TaskChangelogLink | undefined {
    const wiring = this.changelogs;
    if (!wiring) return undefined;
    return new TaskChangelogLink({
      appId: this.deps.settings.appId,
      partition: id.partition,
      topics: wiring.topics,
      transactions: wiring.transactions(taskTransactionalId(this.deps.settings.appId, id)),
      reader: wiring.reader,
      admin: wiring.admin,
      logger: this.deps.logger,
      metrics: this.deps.metrics,
    });
  }

  /**
   * A task the group has consumed before but that has no local state here (another machine owned
   * it, or the state folder was lost) resumes from the group offset with empty state: windows open at
   * that offset lose what came before it. Only with changelogs off (with them, the task restores); say so.
   */
  private async warnIfStateIsMissing(id: TaskId): Promise<void> {
    const { appId, stateDir } = this.deps.settings;
    for (const topic of this.deps.topology.sourceTopics) {
      const committed = await this.deps
        .admin()
        ?.groupOffsets(appId, topic)
        .catch(() => undefined);
      const offset = committed?.get(id.partition);
      if (offset !== undefined && offset > 0n) {
        this.deps.logger.warn(
          { topic, partition: id.partition, task: id.toString(), groupOffset: offset.toString(), stateDir },
          'no local state for a partition the group has consumed before: resuming from the group offset with ' +
            'empty state (windows still open there lose earlier events; changelog.enabled is false, so nothing restores it)',
        );
      }
    }
  }

  // ---- standbys -----------------------------------------------------------------------------------

  /**
   * Keeps the task's folder up to date from its changelog while another instance runs it. A standby
   * that cannot open (Kafka unreachable, the folder locked) is only logged: it is an optimisation,
   * and a takeover restores whatever it lacks.
   */
  private openStandby(id: TaskId): void {
    const openStandby = this.deps.topology.openStandby?.bind(this.deps.topology);
    if (!this.changelogs || !openStandby) return;
    const link = this.changelogLink(id);
    if (!link) return;
    const task: ManagedTask = { lifecycle: new TaskLifecycle(id, 'standby') };
    const { settings, logger } = this.deps;
    task.standby = (async (): Promise<StandbyFolder | undefined> => {
      const dir = await migrateLegacyFolder(settings.stateDir, settings.appId, id, logger);
      // The folder may still be closing elsewhere (another process owned the task until now).
      const state = await retry(
        () => openStandby({ partition: id.partition, dir }),
        { maxElapsedMs: settings.stateLockTimeoutMs, initialDelayMs: 200, maxDelayMs: 1000 },
        { isTransient: isLockError },
      );
      try {
        const following = await link.follow(state.target);
        logger.info(
          { task: id.toString(), partition: id.partition },
          'standby replica following its changelog',
        );
        return { state, following, link };
      } catch (error) {
        await state.close();
        throw error;
      }
    })().catch(async (error: unknown) => {
      logger.warn(
        { task: id.toString(), partition: id.partition, err: error },
        'standby replica could not start',
      );
      if (this.tasks.get(id) === task && task.lifecycle.state === 'standby')
        await this.close(id, task, async () => undefined);
      return undefined;
    });
    this.tasks.set(id, task);
  }

  /** Stops a standby and releases its folder (it moved away, or on shutdown). */
  private async closeStandby(id: TaskId): Promise<void> {
    const task = this.tasks.get(id);
    if (!task || task.lifecycle.state !== 'standby') return;
    await this.close(id, task, () => this.releaseStandbyFolder(task));
  }

  /** Stops following and closes the standby's folder, if the task was a standby. */
  private async releaseStandbyFolder(task: ManagedTask): Promise<void> {
    const opening = task.standby;
    if (!opening) return;
    delete task.standby;
    const standby = await opening;
    if (!standby) return;
    await standby.following.stop();
    await standby.state.close();
    await standby.link.close();
  }

  // ---- closing ------------------------------------------------------------------------------------

  /** → closing, runs `work`, → closed; the task leaves the manager (a later open is a new incarnation). */
  private async close(id: TaskId, task: ManagedTask, work: () => Promise<void>): Promise<void> {
    task.lifecycle.transitionTo('closing');
    delete task.host;
    const closed = (async () => {
      try {
        await work();
      } finally {
        task.lifecycle.transitionTo('closed');
        if (this.tasks.get(id) === task) this.tasks.delete(id);
      }
    })();
    task.closed = closed;
    await closed;
  }

  /** What the instance forgets of a task that left: its DLQ writer, its metrics and drop counts. */
  private async forget(host: TaskHost, options: { keepMetrics?: boolean } = {}): Promise<void> {
    await this.deps.delivery.releasePartition(host.partition);
    if (options.keepMetrics) return;
    this.deps.metrics.forgetTask(host.partition);
    this.deps.drops.forget(host.partition);
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
