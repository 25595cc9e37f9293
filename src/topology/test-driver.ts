/**
 * In-process driver for topologies, like Kafka Streams' TopologyTestDriver: no broker, real LevelDB
 * state in a temporary folder, the very PartitionTask the runtime uses. Records piped in are kept in an
 * input log per partition, so restart({ crash: true }) can replay what the last commit did not cover,
 * as a consumer group would after a crash. Calls on a task go through one queue, as in the runtime:
 * concurrent pipe() calls are processed one at a time, in call order.
 */
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { Headers } from '../core/records.js';
import type { DeadLetter, RawRecord } from '../core/records.js';
import { SerialQueue } from '../core/serial-queue.js';
import { CacheBudget } from '../core/cache-budget.js';
import { SINGLE_SUBTOPOLOGY, taskIdOf } from '../core/task-id.js';
import { DLQ_OUTBOX } from '../core/task.js';
import type { PartitionTask, StoreView, TaskMetrics } from '../core/task.js';
import type { Topology } from './topology.js';

export interface TestDriverOptions {
  /** Number of partitions (one task each). Default 1. */
  partitions?: number;
  /** Initial wall clock, epoch ms. Default 0. */
  wallClock?: number;
  /** Folder for the state; default: a fresh temporary folder, deleted by close(). */
  stateDir?: string;
  /** state.cacheMaxBytes of the driver's tasks (tests set it small to reach what large state does). */
  cacheMaxBytes?: number;
}

export interface PipeOptions {
  /** Kafka record timestamp (the default event time). Default: the driver's wall clock. */
  timestamp?: number;
  /** Default: hash of the key modulo partitions, or 0 without a key. */
  partition?: number;
  key?: string | Buffer;
  headers?: Headers;
}

export interface RestartOptions {
  /** Close without committing (a kill -9), then replay the records the last commit did not cover. */
  crash?: boolean;
  /**
   * Reopen the state with this topology instead (a deployment of an evolved topology): its stores are
   * checked against the state's, as the runtime does, and the restart rejects naming a lost store.
   */
  topology?: Topology;
  /** For this reopen: stores whose state may be discarded if it no longer matches (`resetStores` setting). */
  resetStores?: readonly string[];
}

function partitionOfKey(key: Buffer, partitions: number): number {
  let hash = 0;
  for (const byte of key) hash = (Math.imul(hash, 31) + byte) | 0;
  return Math.abs(hash) % partitions;
}

export class TestDriver {
  private readonly partitionCount: number;
  private wallClock: number;
  private dir: string | undefined;
  private readonly ownsDir: boolean;
  private tasks: PartitionTask[] | undefined;
  private opening: Promise<PartitionTask[]> | undefined;
  /** Task calls must not overlap (see PartitionTask); this serializes every call of the driver on them. */
  private readonly queue = new SerialQueue();
  /** Every record piped, per partition (its index is its offset), per topic. */
  private readonly inputLog = new Map<string, RawRecord[]>();
  /** Outputs delivered from committed outboxes, per outbox name. */
  private readonly delivered = new Map<string, unknown[]>();
  /**
   * Highest sequence delivered per partition and outbox. After a crash the un-acked tail of an outbox is delivered
   * again (at-least-once, like the runtime); sequences are stable across the crash, so skipping what was
   * seen models an idempotent sink and keeps output() exactly-once.
   */
  private readonly deliveredThrough = new Map<string, bigint>();
  /** Entries delivered twice and skipped: evidence of at-least-once delivery after crashes. */
  redeliveries = 0;

  /** Passed to the next open only (restart({ resetStores })). */
  private resetStores: readonly string[] = [];

  private readonly cache: CacheBudget;

  constructor(
    private topology: Topology,
    options: TestDriverOptions = {},
  ) {
    this.partitionCount = options.partitions ?? 1;
    this.wallClock = options.wallClock ?? 0;
    this.dir = options.stateDir;
    this.ownsDir = options.stateDir === undefined;
    this.cache = new CacheBudget(options.cacheMaxBytes);
  }

  /** Pipes one record: `value` is serialized with the source's serde unless it is a Buffer (or null). */
  async pipe(topic: string, value: unknown, options: PipeOptions = {}): Promise<void> {
    const serde = this.topology.sourceSerde(topic);
    if (serde === undefined) throw new Error(`the topology has no source for topic "${topic}"`);
    const key =
      options.key === undefined
        ? null
        : Buffer.isBuffer(options.key)
          ? options.key
          : Buffer.from(options.key);
    const partition = options.partition ?? (key ? partitionOfKey(key, this.partitionCount) : 0);
    if (partition < 0 || partition >= this.partitionCount)
      throw new Error(`partition ${partition} out of range`);
    const headers = options.headers ?? {};
    const bytes =
      value === null || Buffer.isBuffer(value)
        ? value
        : await serde.serialize(value, { topic, headers, role: 'value' });
    const log = this.logOf(topic, partition);
    const record: RawRecord = {
      topic,
      partition,
      offset: BigInt(log.length),
      timestamp: options.timestamp ?? this.wallClock,
      key,
      value: bytes,
      headers,
    };
    log.push(record);
    const tasks = await this.open();
    await this.queue.run(() => (tasks[partition] as PartitionTask).process([record]));
  }

  /** Advances the wall clock and ticks every task (wall-time punctuation, idle watermarks). */
  async advanceWallClock(ms: number): Promise<void> {
    this.wallClock += ms;
    const now = this.wallClock;
    for (const task of await this.open()) await this.queue.run(() => task.tick(now));
  }

  /** Commits every task and delivers the committed outbox entries (as the runtime does after a commit). */
  async commit(): Promise<void> {
    const tasks = await this.open();
    await this.queue.run(() => this.commitAndDeliver(tasks));
  }

  private async commitAndDeliver(tasks: readonly PartitionTask[]): Promise<void> {
    for (const task of tasks) {
      await task.commit();
      for (const outbox of task.outboxes()) {
        for (let batch = await outbox.read(1000); batch.length > 0; batch = await outbox.read(1000)) {
          const sink = this.delivered.get(outbox.name) ?? [];
          const cursor = `${task.partition}/${outbox.name}`;
          const seen = this.deliveredThrough.get(cursor) ?? -1n;
          for (const entry of batch) {
            if (entry.seq <= seen) this.redeliveries++;
            else sink.push(entry.value);
          }
          this.delivered.set(outbox.name, sink);
          const last = (batch[batch.length - 1] as { seq: bigint }).seq;
          this.deliveredThrough.set(cursor, last > seen ? last : seen);
          await outbox.ack((batch[batch.length - 1] as { seq: bigint }).seq);
        }
      }
    }
  }

  /** Everything delivered to the sink so far; commits first so that all processed records count. */
  async output<T = unknown>(sinkName: string): Promise<T[]> {
    await this.commit();
    return [...((this.delivered.get(sinkName) ?? []) as T[])];
  }

  /** Dead letters delivered so far (commits first). */
  async deadLetters(): Promise<DeadLetter[]> {
    return this.output(DLQ_OUTBOX);
  }

  /** Entries of a store of one partition (the live state, including uncommitted changes). */
  async store(name: string, partition = 0): Promise<Array<{ key: string; value: unknown }>> {
    return (await this.storeView(name, partition)).entries();
  }

  async storeView(name: string, partition = 0): Promise<StoreView> {
    const task = (await this.open())[partition] as PartitionTask;
    const view = task.stores().find((store) => store.name === name);
    if (view === undefined) throw new Error(`no store "${name}" in partition ${partition}`);
    return view;
  }

  async metrics(partition = 0): Promise<TaskMetrics> {
    return ((await this.open())[partition] as PartitionTask).metrics();
  }

  async task(partition = 0): Promise<PartitionTask> {
    return (await this.open())[partition] as PartitionTask;
  }

  /**
   * Closes and reopens every task on the same state. Clean (default): commit, close, reopen. Crash:
   * close without committing, reopen from the last checkpoint and replay the uncovered input.
   */
  async restart(options: RestartOptions = {}): Promise<void> {
    // A previous reopen may have been refused (its tasks closed): then there is nothing to close.
    const closing = this.tasks;
    if (closing) {
      if (!options.crash) await this.commit();
      await this.queue.run(async () => {
        for (const task of closing) await task.close();
      });
    }
    this.tasks = undefined;
    this.opening = undefined;
    if (options.topology) this.topology = options.topology;
    this.resetStores = options.resetStores ?? [];
    const tasks = await this.open();
    await this.queue.run(() => this.replayUncovered(tasks));
  }

  /** Closes the tasks (committing first) and deletes the temporary state. */
  async close(): Promise<void> {
    const tasks = this.tasks;
    if (tasks) {
      await this.commit();
      await this.queue.run(async () => {
        for (const task of tasks) await task.close();
      });
    }
    this.tasks = undefined;
    if (this.ownsDir && this.dir) await rm(this.dir, { recursive: true, force: true });
  }

  /** Feeds each reopened task the input its checkpoint does not cover, as a consumer group would. */
  private async replayUncovered(tasks: readonly PartitionTask[]): Promise<void> {
    for (const task of tasks) {
      for (const [topic, position] of task.positions()) {
        const replay = this.logOf(topic, task.partition).slice(Number(position));
        if (replay.length > 0) await task.process(replay);
      }
      for (const topic of this.topology.sourceTopics) {
        if (!task.positions().has(topic)) {
          const replay = this.logOf(topic, task.partition);
          if (replay.length > 0) await task.process(replay);
        }
      }
    }
  }

  private logOf(topic: string, partition: number): RawRecord[] {
    const id = `${topic}/${partition}`;
    let log = this.inputLog.get(id);
    if (log === undefined) {
      log = [];
      this.inputLog.set(id, log);
    }
    return log;
  }

  private open(): Promise<PartitionTask[]> {
    if (this.tasks) return Promise.resolve(this.tasks);
    this.opening ??= (async () => {
      this.dir ??= await mkdtemp(join(tmpdir(), 'tributary-driver-'));
      const dir = this.dir;
      const tasks: PartitionTask[] = [];
      try {
        for (let partition = 0; partition < this.partitionCount; partition++) {
          tasks.push(
            await this.topology.openTask({
              partition,
              dir: join(dir, taskIdOf(SINGLE_SUBTOPOLOGY, partition).folderName),
              now: () => this.wallClock,
              resetStores: this.resetStores,
              cache: this.cache,
            }),
          );
        }
      } catch (error) {
        // Release the tasks that did open, so a later restart can open them again.
        for (const task of tasks) await task.close();
        throw error;
      }
      this.tasks = tasks;
      return tasks;
    })();
    return this.opening;
  }
}
