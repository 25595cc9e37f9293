/**
 * Changelog topics: every store of a task (and the task's checkpoint metadata) is backed by a
 * compacted topic `<appId>-<store>-changelog` with the input's partition count; partition p of each
 * holds the changes of task p. ARCHITECTURE.md ("Exactly-once, as built") tells the whole protocol;
 * this file holds its Kafka side:
 *
 *  - topics: created at start (compacted), or checked (partition count, cleanup policy);
 *  - TaskChangelogLink, one per open task: the task's transactional producer (`<appId>-task-<p>`),
 *    fenced before anything is read so a previous owner can change nothing more; each commit is one
 *    transaction with the changes and the input offsets (sendOffsets to the app's group); restore
 *    replays the topics from the offsets the local folder reflects to their ends, reporting progress.
 */
import type { Logger } from 'pino';
import { CHECKPOINT_STORE, FencedError } from '../core/task.js';
import type { ChangelogRestore, OutputRecord, StateChange, TaskChangelog, TaskCommit } from '../core/task.js';
import type {
  KafkaAdmin,
  PartitionRead,
  PartitionReader,
  TaskMessage,
  TaskTransactions,
} from './kafka/client.js';
import { KafkaFencedError } from './kafka/client.js';
import { settleWithin } from '../core/retry.js';
import type { RuntimeMetrics } from './metrics.js';

/** Kafka topic names allow letters, digits, `.`, `_` and `-`; anything else in a store name becomes `_`. */
export function changelogTopic(appId: string, store: string): string {
  return `${appId}-${store.replace(/[^a-zA-Z0-9._-]/g, '_')}-changelog`;
}

/** Every changelog topic of an app: store name → topic (checkpoint metadata included). */
export function changelogTopics(appId: string, storeNames: readonly string[]): Map<string, string> {
  const topics = new Map<string, string>();
  const owners = new Map<string, string>();
  for (const store of [CHECKPOINT_STORE, ...storeNames]) {
    const topic = changelogTopic(appId, store);
    const other = owners.get(topic);
    if (other !== undefined && other !== store)
      throw new Error(
        `stores "${other}" and "${store}" would share the changelog topic ${topic}` +
          (other === CHECKPOINT_STORE ? ` ("${CHECKPOINT_STORE}" is reserved for the task metadata)` : '') +
          ': rename one of them',
      );
    owners.set(topic, store);
    topics.set(store, topic);
  }
  return topics;
}

/**
 * Compacted; records up to 64 MiB: one record carries one stored value, and some are large by nature
 * (an outbox segment holds all the outputs of a commit interval, a dead letter its whole record).
 */
const CHANGELOG_TOPIC_CONFIG = { 'cleanup.policy': 'compact', 'max.message.bytes': String(64 * 1024 * 1024) };

/** Kafka refusals that no retry or reopen can fix: the instance stops and says why. */
const PERMANENT_KAFKA_ERRORS = new Set([
  'MESSAGE_TOO_LARGE',
  'RECORD_LIST_TOO_LARGE',
  'INVALID_RECORD',
  'TOPIC_AUTHORIZATION_FAILED',
  'TRANSACTIONAL_ID_AUTHORIZATION_FAILED',
  'CLUSTER_AUTHORIZATION_FAILED',
  'GROUP_AUTHORIZATION_FAILED',
]);

/** Whether a changelog commit failed for a reason that reopening the task cannot fix. */
export function isPermanentChangelogFailure(error: unknown): boolean {
  for (let e: unknown = error; e instanceof Error; e = e.cause) {
    const type = (e as { type?: string }).type;
    if (type !== undefined && PERMANENT_KAFKA_ERRORS.has(type)) return true;
  }
  return false;
}

/**
 * How long one Kafka-bound step of a task may take before it counts as failed: a transaction (the
 * task then reopens from its changelog, fencing the stuck producer), the fence itself, or a restore
 * read that makes no progress. Without it, one request kafkajs never settles (seen across a broker
 * restart) would hold the task's queue, and with it the instance's consumer, forever.
 */
const KAFKA_STEP_TIMEOUT_MS = 60_000;
const CLOSE_TIMEOUT_MS = 5_000;

/** A changelog step took longer than KAFKA_STEP_TIMEOUT_MS; retried like Kafka being away. */
export class ChangelogTimeoutError extends Error {
  override readonly name = 'ChangelogTimeoutError';
}

function withTimeout<T>(promise: Promise<T>, what: string): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(
      () => reject(new ChangelogTimeoutError(`${what} did not finish within ${KAFKA_STEP_TIMEOUT_MS} ms`)),
      KAFKA_STEP_TIMEOUT_MS,
    );
  });
  return Promise.race([promise, timeout]).finally(() => clearTimeout(timer));
}

export class ChangelogTopicError extends Error {
  override readonly name = 'ChangelogTopicError';
}

/**
 * Creates the missing changelog topics (compacted, `partitions` partitions) and checks the existing
 * ones: a wrong partition count or cleanup policy would silently break restores, so it stops the start.
 */
export async function prepareChangelogTopics(
  admin: KafkaAdmin,
  topics: ReadonlyMap<string, string>,
  partitions: number,
  replicationFactor: number,
): Promise<void> {
  // Side by side: each check or creation is a few round trips, and start-up waits for all of them.
  const prepare = async (topic: string): Promise<void> => {
    const existing = await admin.describeTopic(topic);
    if (existing === undefined) {
      await admin.createTopic(topic, partitions, CHANGELOG_TOPIC_CONFIG, replicationFactor);
      return;
    }
    if (existing.partitions !== partitions)
      throw new ChangelogTopicError(
        `changelog topic ${topic} has ${existing.partitions} partitions but the input has ${partitions}: ` +
          `a changelog must have the input's partition count (after changing the input's, reset the app: ` +
          `tributary reset <appId>)`,
      );
    if (!existing.cleanupPolicy.split(',').includes('compact'))
      throw new ChangelogTopicError(
        `changelog topic ${topic} has cleanup.policy=${existing.cleanupPolicy}: it must be compact ` +
          `(kafka-configs --alter --entity-type topics --entity-name ${topic} --add-config cleanup.policy=compact)`,
      );
  };
  await Promise.all([...new Set(topics.values())].map(prepare));
}

/** How far a restore is: records applied, offsets left (an upper bound: markers and aborted records count). */
export interface RestoreProgress {
  restored: number;
  remaining: number;
  /** Seconds left at the rate so far, once there is a rate. */
  etaSeconds?: number;
}

export interface TaskChangelogOptions {
  appId: string;
  partition: number;
  topics: ReadonlyMap<string, string>;
  transactions: TaskTransactions;
  reader: PartitionReader;
  admin: KafkaAdmin;
  logger: Logger;
  metrics: RuntimeMetrics;
  now?: () => number;
}

function toMessage(topic: string, partition: number, change: StateChange): TaskMessage {
  const value =
    change.value === null
      ? null
      : typeof change.value === 'string'
        ? Buffer.from(change.value, 'utf8')
        : Buffer.from(change.value.buffer, change.value.byteOffset, change.value.byteLength);
  return { topic, partition, key: Buffer.from(change.key, 'utf8'), value };
}

const asBuffer = (bytes: Uint8Array | null) =>
  bytes === null ? null : Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength);

/** An output record as its transaction sends it (partition and timestamp only when given). */
function outputMessage(record: OutputRecord): TaskMessage {
  const message: TaskMessage = {
    topic: record.topic,
    key: asBuffer(record.key),
    value: asBuffer(record.value),
  };
  if (record.partition !== undefined) message.partition = record.partition;
  if (record.headers !== undefined) message.headers = record.headers;
  if (record.timestamp !== undefined) message.timestamp = record.timestamp;
  return message;
}

interface Progress {
  restored: number;
  /** Per store, the end to reach (the topic's end when the replay began). */
  ends: Map<string, bigint>;
  next: Map<string, bigint>;
  startedAt: number;
}

/** The Kafka side of one task's changelog: its transactions and its restore. */
export class TaskChangelogLink implements TaskChangelog {
  private progressNow: Progress | undefined;
  private readonly now: () => number;
  private readonly storeOfTopic: Map<string, string>;

  constructor(private readonly options: TaskChangelogOptions) {
    this.now = options.now ?? Date.now;
    this.storeOfTopic = new Map([...options.topics].map(([store, topic]) => [topic, store]));
  }

  /** Claims the partition's changelog: a previous owner can commit nothing after this resolves. */
  fence(): Promise<void> {
    return withTimeout(this.options.transactions.fence(), `fencing partition ${this.options.partition}`);
  }

  /**
   * One transaction: the changes to their changelogs, then the output records (RecordCollector), then
   * the input positions for the app's group; resolves with the last changelog offset per store.
   */
  async write({ changes, records, positions }: TaskCommit): Promise<Map<string, bigint>> {
    const { appId, partition, topics } = this.options;
    const changelogMessages = changes.map((change) => {
      const topic = topics.get(change.store);
      if (topic === undefined) throw new Error(`no changelog topic for store "${change.store}"`);
      return toMessage(topic, partition, change);
    });
    const messages =
      records.length === 0 ? changelogMessages : [...changelogMessages, ...records.map(outputMessage)];
    const offsets = [...positions].map(([topic, offset]) => ({ topic, partition, offset }));
    try {
      const last = await withTimeout(
        this.options.transactions.commit(messages, { groupId: appId, offsets }),
        `the changelog transaction of partition ${partition}`,
      );
      let bytes = 0;
      for (const message of changelogMessages)
        bytes += (message.key?.length ?? 0) + (message.value?.length ?? 0);
      this.options.metrics.changelogBytes.inc({ partition: String(partition) }, bytes);
      const byStore = new Map<string, bigint>();
      for (const [topic, offset] of last) {
        // Output topics are no store's: their offsets are not the folder's business.
        const store = this.storeOfTopic.get(topic);
        if (store !== undefined) byStore.set(store, offset);
      }
      return byStore;
    } catch (error) {
      if (error instanceof KafkaFencedError)
        throw new FencedError(`partition ${partition}: another instance took over its changelog`, {
          cause: error,
        });
      throw error;
    }
  }

  async restore(restore: ChangelogRestore): Promise<void> {
    const { partition, logger } = this.options;
    const replay = await this.replay(restore, false);
    if (replay === undefined) return;
    const { reads, progress } = replay;
    this.progressNow = progress;
    logger.info({ partition, records: this.remaining(progress) }, 'restoring state from the changelog');
    try {
      await Promise.race([
        Promise.all(reads.map(({ read, end }) => read.reached(end))),
        this.stalled(progress),
      ]);
    } finally {
      await Promise.all(reads.map(({ read }) => read.stop()));
      this.progressNow = undefined;
      this.reportProgress(0);
    }
    const seconds = (this.now() - progress.startedAt) / 1000;
    logger.info({ partition, records: progress.restored, seconds }, 'state restored from the changelog');
  }

  /**
   * Keeps `target` (a standby's folder) up to date: replays the changelog beyond it and goes on
   * applying what the partition's owner commits, until stopped.
   */
  async follow(target: ChangelogRestore): Promise<{ stop(): Promise<void> }> {
    const replay = await this.replay(target, true);
    const reads = replay?.reads ?? [];
    return { stop: async () => void (await Promise.all(reads.map(({ read }) => read.stop()))) };
  }

  /** Starts reading every changelog the folder is behind on (`follow`: every changelog, to its end and on). */
  private async replay(
    restore: ChangelogRestore,
    follow: boolean,
  ): Promise<{ reads: Array<{ read: PartitionRead; end: bigint }>; progress: Progress } | undefined> {
    const { admin, reader, partition, topics, logger } = this.options;
    // Side by side: a takeover waits for these before anything else.
    const ranges = await Promise.all(
      [...topics].map(async ([store, topic]) => {
        const range = (await admin.topicOffsets(topic)).get(partition);
        if (range === undefined) throw new Error(`changelog topic ${topic} has no partition ${partition}`);
        return [store, { low: range.earliest, high: range.end }] as const;
      }),
    );
    const ends = new Map<string, { low: bigint; high: bigint }>(ranges);
    const problem = this.localProblem(restore, ends);
    const changelogHasData = [...ends.values()].some(({ low, high }) => high > low);
    if (restore.local.size === 0 && restore.localHasState && !changelogHasData) {
      logger.info({ partition }, 'local state predates the changelog: its next commit sends all of it');
      restore.seedChangelog();
    }
    let local = restore.local;
    if (problem !== undefined) {
      logger.warn(
        { partition, reason: problem },
        'local state does not match the changelog: discarding it and restoring',
      );
      await restore.discardLocal(problem);
      local = new Map();
    }
    const from = new Map<string, bigint>();
    for (const [store, { low, high }] of ends) {
      const start = local.has(store) ? (local.get(store) as bigint) + 1n : low;
      if (start < high || follow) from.set(store, start);
    }
    if (from.size === 0) return undefined;
    const progress: Progress = {
      restored: 0,
      ends: new Map([...from.keys()].map((store) => [store, ends.get(store)?.high ?? 0n])),
      next: new Map(from),
      startedAt: this.now(),
    };
    const reads = [...from].map(([store, start]) => {
      const topic = topics.get(store) as string;
      const read = reader.read({ topic, partition }, start, async ({ records, lastOffset }) => {
        const changes = records.map((record) => ({
          store,
          key: record.key === null ? '' : record.key.toString('utf8'),
          value: record.value,
        }));
        await restore.apply(store, changes, lastOffset);
        progress.restored += changes.length;
        progress.next.set(store, lastOffset + 1n);
        if (!follow) this.reportProgress(changes.length);
      });
      return { read, end: progress.ends.get(store) as bigint };
    });
    return { reads, progress };
  }

  /** Rejects once a restore has applied nothing for KAFKA_STEP_TIMEOUT_MS (the open is retried). */
  private async stalled(progress: Progress): Promise<never> {
    let seen = -1;
    for (;;) {
      // Unref'd: a finished restore leaves this check asleep, which must not keep the process up.
      await new Promise<void>((resolve) => setTimeout(resolve, KAFKA_STEP_TIMEOUT_MS).unref());
      if (this.progressNow !== progress) return new Promise<never>(() => undefined);
      if (progress.restored === seen)
        throw new ChangelogTimeoutError(
          `restoring partition ${this.options.partition} made no progress for ${KAFKA_STEP_TIMEOUT_MS} ms`,
        );
      seen = progress.restored;
    }
  }

  /** Restore progress while a restore runs, else undefined. */
  progress(): RestoreProgress | undefined {
    const progress = this.progressNow;
    if (progress === undefined) return undefined;
    const remaining = this.remaining(progress);
    const elapsed = (this.now() - progress.startedAt) / 1000;
    const rate = elapsed > 0 ? progress.restored / elapsed : 0;
    return {
      restored: progress.restored,
      remaining,
      ...(rate > 0 ? { etaSeconds: Math.round((remaining / rate) * 10) / 10 } : {}),
    };
  }

  /** Disconnects the producer; at most a few seconds (a disconnect can hang on an unanswered request). */
  close(): Promise<void> {
    return settleWithin(this.options.transactions.close(), CLOSE_TIMEOUT_MS);
  }

  private reportProgress(restored: number): void {
    const label = { partition: String(this.options.partition) };
    const { metrics } = this.options;
    if (restored > 0) metrics.restoredRecords.inc(label, restored);
    const progress = this.progress();
    metrics.restoreRemaining.set(label, progress?.remaining ?? 0);
    metrics.restoreEta.set(label, progress?.etaSeconds ?? 0);
  }

  private remaining(progress: { ends: Map<string, bigint>; next: Map<string, bigint> }): number {
    let remaining = 0n;
    for (const [store, end] of progress.ends) {
      const next = progress.next.get(store) ?? end;
      if (end > next) remaining += end - next;
    }
    return Number(remaining);
  }

  /** Why the folder cannot continue from where it is, or undefined when it can. */
  private localProblem(
    restore: ChangelogRestore,
    ends: ReadonlyMap<string, { low: bigint; high: bigint }>,
  ): string | undefined {
    const changelogHasData = [...ends.values()].some(({ low, high }) => high > low);
    if (restore.local.size === 0)
      return restore.localHasState && changelogHasData
        ? 'the folder holds state written without these changelog topics'
        : undefined;
    for (const [store, offset] of restore.local) {
      const range = ends.get(store);
      if (range === undefined) continue;
      if (offset >= range.high)
        return `the folder is ahead of changelog ${this.options.topics.get(store)} (offset ${offset}, end ${range.high})`;
      if (offset + 1n < range.low)
        return `changelog ${this.options.topics.get(store)} no longer holds offset ${offset + 1n} (starts at ${range.low})`;
    }
    return undefined;
  }
}
