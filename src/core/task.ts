/**
 * The contract between the runtime (or the test driver) and the engine: one PartitionTask per
 * assigned partition number, owning that partition's LevelDB state. The runtime knows no operator;
 * the engine knows no Kafka client.
 */
import type { Headers, RawRecord } from './records.js';
import type { ResultSchema, SinkSpec } from './sink.js';
import type { StoreLookup, StorePage, StoreReadOptions } from './store-reads.js';

/** Name of the built-in outbox that collects dead letters (values are DeadLetter). */
export const DLQ_OUTBOX = 'dlq';

export interface OutboxEntry<T> {
  seq: bigint;
  value: T;
}

/**
 * A durable queue of outputs inside the task state. Entries appended while processing become durable
 * with the next commit(); the runtime reads committed entries, delivers them, then acks.
 */
export interface Outbox<T = unknown> {
  /** `dlq`, or the name of the SinkSpec it feeds. */
  readonly name: string;
  /** Oldest committed, un-acked entries first. */
  read(max: number): Promise<OutboxEntry<T>[]>;
  /** Delivered through `seq` (inclusive); deletion becomes durable with the next commit at the latest. */
  ack(throughSeq: bigint): Promise<void>;
  /** Committed, un-acked entries: the runtime pauses the partition when this grows too large. */
  pending(): number;
}

export interface TaskMetrics {
  recordsProcessed: number;
  lateEvents: number;
  duplicatesDropped: number;
  windowsEmitted: number;
  deadLetters: Record<string, number>;
  /** Current event-time watermark, epoch ms (or -Infinity before the first record). */
  watermark: number;
}

/**
 * Input offsets of the latest late event and of the latest dead letter per reason since the task
 * opened: examples to show beside the counts (not part of the checkpoint or of TaskMetrics).
 */
export interface DropExamples {
  lateEvent?: bigint;
  deadLetters: Record<string, bigint>;
}

/** Read-only view of the stores, for the admin endpoint and tests. */
export interface StoreView {
  name: string;
  kind: 'key-value' | 'window' | 'dedupe' | 'outbox';
  /** Entries in their internal form (key texts, accumulator slots), in key order, at most `limit`, after `after`. */
  entries(options?: { limit?: number; after?: string }): Promise<Array<{ key: string; value: unknown }>>;
  /** A page of entries in the user's terms (see store-reads.ts), in a stable order. */
  read(options?: StoreReadOptions): Promise<StorePage>;
  /**
   * What the store holds for `key` as the user writes it (a window store: the group key's JSON or
   * the plain string; key-value: the key; dedupe: the id). Undefined: nothing here. Throws a
   * StoreQueryError for a store that has no keys to look up (an outbox).
   */
  lookup(key: string): Promise<StoreLookup | undefined>;
  approximateSize(): number;
}

/**
 * What to do with a fetched batch, decided by the task against its input positions (the state, not
 * Kafka, says where to resume):
 * - `seek`: Kafka would resume after what the state reflects (e.g. group offsets reset or ahead of a
 *   checkpoint): seek back to `offset` and drop this batch;
 * - `covered`: every record was processed before (redelivery): mark the batch consumed, skip it;
 * - `process`: hand it to process(), which skips the records it has already processed.
 */
export type ResumeDecision =
  { action: 'seek'; offset: bigint } | { action: 'covered' } | { action: 'process' };

/**
 * One partition's task. It owns the partition's input positions (checkpointed and live) and skips
 * redelivered records itself. Calls must not overlap: the caller runs them one at a time (the runtime
 * through its per-task queue, the TestDriver through its own), which also lets the caller make a
 * sequence atomic (commit then close on revoke, with no batch in between).
 */
export interface PartitionTask {
  readonly partition: number;
  /** Next offset to consume per source topic, as of the last commit (empty map: no checkpoint yet). */
  positions(): ReadonlyMap<string, bigint>;
  /**
   * Where a fetched batch of `topic` (offsets `firstOffset`..`lastOffset`) stands against the task's
   * live position: the last processed offset + 1, or the checkpoint's before the first record.
   */
  resumeFrom(topic: string, firstOffset: bigint, lastOffset: bigint): ResumeDecision;
  /**
   * Decodes and processes a batch of one partition, in order, skipping records it already processed
   * (redelivery; a skipped head of the batch is not even decoded). If a decode throws RetriableError,
   * nothing of the batch is applied and the error propagates: the caller backs off and retries.
   * Bad records become dead letters (DLQ outbox); they never throw.
   */
  process(records: readonly RawRecord[]): Promise<void>;
  /** Wall-clock punctuation and idle-partition watermark advance. */
  tick(nowMs: number): Promise<void>;
  /** Writes dirty state, outbox appends/acks and positions in one atomic LevelDB batch. */
  commit(): Promise<void>;
  outboxes(): Outbox[];
  stores(): StoreView[];
  metrics(): TaskMetrics;
  /** Where recent late events and dead letters were, for the runtime's log lines (see DropExamples). */
  dropExamples?(): DropExamples;
  /** Closes without committing; call commit() first for a clean handover. No call may follow. */
  close(): Promise<void>;
}

/**
 * One store write as a changelog topic carries it (`value` null: a tombstone). `store` is the store's
 * name, or CHECKPOINT_STORE for the task's own metadata (input positions, watermarks, counters, the
 * store manifest), which travels beside the stores so a restored task resumes where its state is.
 */
export interface StateChange {
  store: string;
  key: string;
  value: string | Uint8Array | null;
}

/** The pseudo-store of a task's checkpoint metadata in its changelog (`<appId>-checkpoint-changelog`). */
export const CHECKPOINT_STORE = 'checkpoint';

/** Kafka refused a task's transaction because a newer owner of the partition fenced this one (a zombie). */
export class FencedError extends Error {
  override readonly name = 'FencedError';
}

/**
 * A record a task sends to a Kafka topic of its choice (a sink, a repartition topic): it becomes
 * visible with the task's next commit, in the same transaction as the state changes and the input
 * positions that produced it, or never.
 */
export interface OutputRecord {
  topic: string;
  /** Absent: the producer's partitioner picks one by key. */
  partition?: number;
  key: Uint8Array | null;
  value: Uint8Array | null;
  headers?: Headers;
  /** Epoch ms; absent: the producer's clock. */
  timestamp?: number;
}

/**
 * Where a task's output records wait for its next commit (Kafka Streams' RecordCollector): processing
 * sends, the commit hands `pending()` to the task's transaction and, once it committed, `committed()`
 * lets them go. A transaction that fails leaves them pending (the task is then reopened from its last
 * commit, and reprocessing sends them again into a fresh collector).
 */
export interface RecordCollector {
  send(record: OutputRecord): void;
  /** What the next transaction carries: every record sent since the last committed one, in order. */
  pending(): readonly OutputRecord[];
  /** The transaction carrying the first `count` pending records committed. */
  committed(count: number): void;
}

/** What one commit of a task sends to Kafka, in one transaction. */
export interface TaskCommit {
  /** State changes, to the stores' changelogs (the task's partition of each). */
  changes: readonly StateChange[];
  /** Output records, to any topic and partition (RecordCollector.pending()). */
  records: readonly OutputRecord[];
  /** Input positions: the next offset per source topic, committed for the app's group. */
  positions: ReadonlyMap<string, bigint>;
}

/**
 * The changelog of one task (exactly-once across instances): each local commit first goes to Kafka in
 * one transaction (the state changes, the output records and the consumed input positions), and
 * LevelDB is written only after that transaction committed, recording the changelog offsets it
 * reflects.
 */
export interface TaskChangelog {
  /**
   * Writes one commit in one Kafka transaction; resolves with the offset of the last changelog record
   * written per store. Rejects with FencedError when a newer owner took the partition; any rejection
   * leaves the local commit unwritten and nothing of the transaction visible (the changes stay pending
   * and go with the next attempt: re-sending a change is harmless).
   */
  write(commit: TaskCommit): Promise<Map<string, bigint>>;
  /**
   * Replays into the local state what the changelog holds beyond it, before the task processes input.
   * `local`: per store, the last changelog offset the folder reflects (empty for a new folder). Calls
   * `discardLocal` first when the folder does not belong with the topics (ahead of them, or written
   * before them), then `apply` in order, in batches, per store.
   */
  restore(restore: ChangelogRestore): Promise<void>;
}

export interface ChangelogRestore {
  local: ReadonlyMap<string, bigint>;
  /** Whether the folder holds state at all (a folder without changelog offsets but with state). */
  localHasState: boolean;
  discardLocal(reason: string): Promise<void>;
  /**
   * The folder holds state its changelogs never received (written with changelogs off) and the
   * changelogs are empty: the next commit sends all of it, so the changelog holds the whole state.
   */
  seedChangelog(): void;
  apply(store: string, changes: readonly StateChange[], lastOffset: bigint): Promise<void>;
}

/**
 * A partition's state folder kept up to date from its changelog while another instance owns the
 * partition (a standby replica): on takeover, the task opens this folder and restores only the tail.
 */
export interface StandbyState {
  /** The restore target of the folder: what TaskChangelog.restore/follow apply changes to. */
  readonly target: ChangelogRestore;
  close(): Promise<void>;
}

export interface OpenTaskOptions {
  partition: number;
  /** Folder of this task's LevelDB, e.g. `<stateDir>/<appId>/task-0_3` (TaskId.folderName). */
  dir: string;
  /** Wall clock, injectable for tests. */
  now?: () => number;
  /**
   * Stores whose state may be discarded when the folder's copy no longer matches the topology (the
   * store vanished, or changed kind or format); a listed store that matches is kept. Without it, such
   * a folder refuses to open, naming the store.
   */
  resetStores?: readonly string[];
  /** Backs the state with changelog topics: restore before the first record, a transaction per commit. */
  changelog?: TaskChangelog;
  /**
   * Memory for store caches, shared with the instance's other tasks (state.cacheMaxBytes). Without
   * it the task gets a budget of its own with the default size.
   */
  cache?: CacheMemory;
  /**
   * Rows a delivery round reads from an outbox at most (outputs.batchSize): while delivery is behind,
   * an outbox keeps that many pending rows as values and the rest packed.
   */
  deliveryBatchRows?: number;
}

/** A store's part of the cache memory. */
export interface CacheShare {
  /**
   * The bytes this store may keep resident now: its even part of the budget, or more while the other
   * stores leave theirs unused (changes as stores join, leave and report).
   */
  readonly limitBytes: number;
  /** Tells the budget what the store keeps resident now (after a commit's write-back or eviction). */
  report(residentBytes: number): void;
  /** Gives the share back (the store closed). */
  leave(): void;
}

/** Memory for store caches, split among the stores that join it (state/cache-budget.ts). */
export interface CacheMemory {
  readonly maxBytes: number;
  join(): CacheShare;
}

export interface RunnableTopology {
  readonly sourceTopics: readonly string[];
  /**
   * Every sink of the DAG, with the row schema when a windowed aggregate feeds it, and the window
   * grace (ms) when only window results of aggregates with one grace reach it (the runtime measures
   * end-to-end latency from window end + grace).
   */
  readonly sinks: readonly { spec: SinkSpec<unknown>; schema?: ResultSchema; windowGraceMs?: number }[];
  /** The name of every store a task holds (the topology's stores, DLQ_OUTBOX, each sink's outbox). */
  readonly storeNames: readonly string[];
  openTask(options: OpenTaskOptions): Promise<PartitionTask>;
  /** Opens a partition's folder as a standby (no stores loaded, nothing processed). */
  openStandby?(options: { partition: number; dir: string }): Promise<StandbyState>;
}
