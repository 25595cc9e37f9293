/**
 * The partition task: runs the DAG for one partition over its own LevelDB state.
 *
 * Hot path design: a batch is decoded first (so a RetriableError can reject it before anything is
 * applied), then processed synchronously record by record with no promise per record and no LevelDB
 * access at all; stores are in-memory write-back caches that reach LevelDB in one batch at commit().
 *
 * The task is the one owner of its input positions: per source topic, the next offset as of the last
 * commit (`committed`, from the checkpoint at open) and the last offset processed since (`last`).
 * From them it skips redelivered records and tells the runtime where to resume (resumeFrom()).
 * Calls must not overlap (see PartitionTask): the caller serializes them.
 */
import { mkdir } from 'node:fs/promises';
import { DeserializationError, RetriableError } from '../serde/types.js';
import type { DeadLetterReason } from '../core/records.js';
import { StateDb } from '../state/db.js';
import type { ChangelogDeriver, ManagedStore } from '../state/db.js';
import { OutboxStore } from '../state/outbox-store.js';
import { CacheBudget } from '../core/cache-budget.js';
import { BufferedRecordCollector } from '../core/record-collector.js';
import type {
  Cancellable,
  NodeSpec,
  PunctuationCallback,
  PunctuationType,
  Push,
  SourceSpec,
  TaskPlan,
  TaskRuntime,
  TimeListener,
} from './graph.js';
import { SKIP } from './graph.js';
import type { DeadLetter, RawRecord } from '../core/records.js';
import { CHECKPOINT_STORE, DLQ_OUTBOX } from '../core/task.js';
import type {
  OpenTaskOptions,
  Outbox,
  PartitionTask,
  ResumeDecision,
  StoreView,
  StandbyState,
  ChangelogRestore,
  TaskChangelog,
  TaskMetrics,
  DropExamples,
} from '../core/task.js';
import { RecordContext } from './record-context.js';
import { StateRoundTripError } from './accumulator-check.js';
import { compareStores, storeLevel, storeMismatchError } from '../state/store-manifest.js';
import type { StoreIdentity } from '../state/store-manifest.js';
import { outboxFormat } from '../state/outbox-store.js';
import { PunctuationScheduler } from './punctuation-scheduler.js';
import type { Punctuation } from './punctuation-scheduler.js';

interface Checkpoint {
  version: 1;
  /** Next offset per topic, as decimal strings (JSON has no bigint). */
  positions: Record<string, string>;
  /** null for -Infinity. */
  streamTime: number | null;
  timeListeners: Record<string, number | null>;
  metrics: Omit<TaskMetrics, 'watermark'>;
}

/** What runs after each record of a batch (taken once per batch). */
interface AfterRecord {
  listeners: TimeListener[];
  punctuations: Punctuation[];
}

/** A decode that failed for a reason of the record itself (dead letter) or of a dependency (retry). */
class DecodeFailure {
  constructor(readonly error: unknown) {}
}

/**
 * A source topic with its DAG entry and its input positions (kept here, not in a Map, to skip a
 * lookup per record).
 */
interface SourceState {
  readonly spec: SourceSpec;
  readonly push: Push;
  /** Next offset as of the last commit (from the checkpoint at open): records below it were processed. */
  committed: bigint | undefined;
  /**
   * Last offset processed since open; the next position is `last + 1n`, computed at commit rather
   * than per record (a bigint addition allocates).
   */
  last: bigint | undefined;
  /**
   * Whether Kafka's position was checked against the state since open. Only the first batch can start
   * ahead of the state (group offsets ahead of the checkpoint); after that, and after the seek back,
   * Kafka's next offset is the truth: a gap (transaction markers, compaction) is not a reason to seek.
   */
  resumeChecked: boolean;
}

const PROCESS: ResumeDecision = Object.freeze({ action: 'process' });
const COVERED: ResumeDecision = Object.freeze({ action: 'covered' });

/** Whether `offset` of the source's topic was processed before (a redelivery). */
function covers(source: SourceState, offset: bigint): boolean {
  return source.last !== undefined
    ? offset <= source.last
    : source.committed !== undefined && offset < source.committed;
}

/** The next offset to process: after the last processed record, else the checkpoint's (if any). */
function nextOffsetOf(source: SourceState): bigint | undefined {
  return source.last !== undefined ? source.last + 1n : source.committed;
}

function isPromiseLike(value: unknown): value is PromiseLike<unknown> {
  return (
    typeof value === 'object' && value !== null && typeof (value as { then?: unknown }).then === 'function'
  );
}

function errorOf(error: unknown): { errorClass: string; message: string } {
  if (error instanceof Error) return { errorClass: error.name, message: error.message };
  return { errorClass: typeof error, message: String(error) };
}

export async function openPartitionTask(
  topology: TaskPlan,
  options: OpenTaskOptions,
): Promise<PartitionTask> {
  await mkdir(options.dir, { recursive: true });
  const db = await StateDb.open(options.dir);
  try {
    if (options.changelog) await restoreFromChangelog(db, topology, options.changelog);
    await reconcileStores(db, topology, options);
    const plan = planPrefetch(topology.nodes);
    const stores = new Map<string, ManagedStore>();
    const storeContext = { cache: options.cache ?? new CacheBudget() };
    for (const spec of topology.storeSpecs)
      stores.set(spec.name, await db.attach(spec.create(db, storeContext)));
    const outboxes = new Map<string, OutboxStore>();
    for (const { name, codec } of [
      { name: DLQ_OUTBOX, codec: undefined },
      ...topology.sinks.map((sink) => ({ name: sink.spec.name, codec: sink.outboxCodec })),
    ]) {
      if (outboxes.has(name)) throw new Error(`sink name "${name}" is reserved or used twice`);
      outboxes.set(
        name,
        await db.attach(new OutboxStore(db, name, codec, { hotRows: options.deliveryBatchRows })),
      );
    }
    const checkpoint = await db.readCheckpoint<Checkpoint>();
    const task = new PartitionTaskImpl(options, db, stores, outboxes, checkpoint, options.changelog);
    task.wire(topology.nodes, topology.sources, plan);
    return task;
  } catch (error) {
    await db.close();
    throw error;
  }
}

/** Every store of a task, as the manifest names them: the topology's stores, the DLQ and sink outboxes. */
function expectedStores(topology: TaskPlan): StoreIdentity[] {
  return [
    ...topology.storeSpecs.map(({ name, kind, format }) => ({ name, kind, format })),
    { name: DLQ_OUTBOX, kind: 'outbox', format: outboxFormat(undefined) },
    ...topology.sinks.map((sink) => ({
      name: sink.spec.name,
      kind: 'outbox' as const,
      format: outboxFormat(sink.outboxCodec),
    })),
  ];
}

/**
 * Brings the folder up to its changelog before any store loads: replays, per store, what the topics
 * hold beyond the offsets the folder reflects (everything, for a new or discarded folder).
 */
async function restoreFromChangelog(
  db: StateDb,
  topology: TaskPlan,
  changelog: TaskChangelog,
): Promise<void> {
  await changelog.restore(await restoreTarget(db, topology));
}

/**
 * The folder as a changelog replay writes it: raw entries into each store's sublevel, and the local
 * entries a store derives from them (the dedupe index) in the same batch.
 */
async function restoreTarget(db: StateDb, topology: TaskPlan): Promise<ChangelogRestore> {
  const targets = new Map<string, { level: string; binary: boolean }>(
    expectedStores(topology).map((store) => [store.name, storeLevel(store)]),
  );
  const derivers = new Map<string, ChangelogDeriver>();
  for (const spec of topology.storeSpecs)
    if (spec.restoreDeriver) derivers.set(spec.name, spec.restoreDeriver(db));
  return {
    local: db.changelogPositions(),
    localHasState: await db.holdsState(),
    discardLocal: () => db.clearAll(),
    seedChangelog: () => db.seedChangelog(),
    apply: async (store, changes, lastOffset) => {
      const target = store === CHECKPOINT_STORE ? CHECKPOINT_STORE : targets.get(store);
      if (target === undefined) throw new Error(`changelog of unknown store "${store}"`);
      await db.applyChangelog(target, store, changes, lastOffset, derivers.get(store));
    },
  };
}

/** A standby: the partition's folder, fed from its changelog, with no store loaded. */
export async function openStandbyState(
  topology: TaskPlan,
  options: { partition: number; dir: string },
): Promise<StandbyState> {
  await mkdir(options.dir, { recursive: true });
  const db = await StateDb.open(options.dir);
  return { target: await restoreTarget(db, topology), close: () => db.close() };
}

/**
 * Compares the stores the folder holds with the topology's before any is loaded (store-manifest.ts):
 * refuses a folder whose stores the topology lost or changed, discards those listed in
 * `options.resetStores`, and records the topology's stores as the folder's manifest.
 */
async function reconcileStores(db: StateDb, topology: TaskPlan, options: OpenTaskOptions): Promise<void> {
  const expected = expectedStores(topology);
  const held = await db.heldStores();
  // The outbox of a sink the topology no longer has loses nothing when every output in it was
  // delivered: it is discarded without being named in resetStores. One still holding outputs is not.
  const expectedNames = new Set(expected.map((store) => store.name));
  const deliveredOutboxes: string[] = [];
  for (const store of held)
    if (store.kind === 'outbox' && !expectedNames.has(store.name) && (await db.holdsNothing(store)))
      deliveredOutboxes.push(store.name);
  const comparison = compareStores(held, expected, [...(options.resetStores ?? []), ...deliveredOutboxes]);
  if (comparison.problems.length > 0) throw storeMismatchError(comparison, options.dir);
  if (comparison.reset.length > 0) await db.resetStores(comparison.reset, expected);
  else db.recordStores(expected);
}

/** What a node reads of its store for a value: keys (a dedupe's ids, a process()'s keys) or a window entry. */
type NamedReads =
  | { readonly kind: 'keys'; readonly keysOf: (value: unknown) => string | readonly string[] }
  | { readonly kind: 'window'; readonly keyOf: (value: unknown) => unknown };

/** One store whose reads a pre-pass names, reached from a source: the lookaheads in between, then what it reads. */
interface KeyPrefetchPath {
  readonly topic: string;
  readonly steps: ReadonlyArray<(value: unknown) => unknown>;
  readonly store: string;
  readonly reads: NamedReads;
}

/**
 * What the pre-pass needs of a store: a dedupe store (ids), a key-value store (keys) or a window store
 * (entries of its spilled windows), read before the batch runs so the per-record pass stays synchronous.
 */
interface BatchPrefetchStore {
  /** False while everything the store may be asked for is in memory (the pre-pass would save nothing). */
  readonly wantsPrefetch: boolean;
  beginBatch(): void;
  prefetch(): Promise<void>;
}
interface KeyPrefetchStore extends BatchPrefetchStore {
  want(key: string): void;
}
interface WindowPrefetchStore extends BatchPrefetchStore {
  /** The entry of `groupKey` in the window of `timestamp`. */
  wantGroup(groupKey: unknown, timestamp: number): void;
}

/**
 * Per store, the paths from the sources along which a pre-pass can compute what a batch will read
 * (a dedupe's ids, a process() node's `prefetch` keys, a windowed aggregate's group keys): every node
 * in between is stateless with a lookahead (filter, map, validate, peek, branch, merge, a dedupe). A
 * store missing here has a stateful or many-valued step before its node (a process(), a flatMap, a
 * window): its keys cannot be known before the batch runs, so the store reads a key it does not hold
 * synchronously when the record gets there (exact, bounded memory; slower per such record than one
 * getMany per batch).
 */
function planPrefetch(nodes: readonly NodeSpec[]): Map<string, KeyPrefetchPath[]> {
  const byName = new Map(nodes.map((node) => [node.name, node]));
  const pathsTo = (
    name: string,
  ): Array<{ topic: string; steps: Array<(value: unknown) => unknown> }> | undefined => {
    const node = byName.get(name);
    if (node === undefined) return undefined;
    if (node.topic !== undefined && node.parents.length === 0) return [{ topic: node.topic, steps: [] }];
    if (node.lookahead === undefined || node.parents.length === 0) return undefined;
    const paths = [];
    for (const parent of node.parents) {
      const above = parent.port === undefined ? pathsTo(parent.node) : undefined;
      if (above === undefined) return undefined;
      for (const path of above) paths.push({ topic: path.topic, steps: [...path.steps, node.lookahead] });
    }
    return paths;
  };
  const plan = new Map<string, KeyPrefetchPath[]>();
  for (const node of nodes) {
    const named: Array<{ store: string; reads: NamedReads }> = node.dedupeIds
      ? [{ store: node.dedupeIds.store, reads: { kind: 'keys', keysOf: node.dedupeIds.idOf } }]
      : (node.keyPrefetch ?? []).map(({ store, keysOf }) => ({ store, reads: { kind: 'keys', keysOf } }));
    if (node.windowKeys)
      named.push({ store: node.windowKeys.store, reads: { kind: 'window', keyOf: node.windowKeys.keyOf } });
    if (named.length === 0) continue;
    const paths: Array<{ topic: string; steps: Array<(value: unknown) => unknown> }> = [];
    let known = node.parents.length > 0;
    for (const parent of node.parents) {
      const above = parent.port === undefined ? pathsTo(parent.node) : undefined;
      if (above === undefined) known = false;
      else paths.push(...above);
    }
    if (!known) continue;
    for (const { store, reads } of named) {
      const list = plan.get(store) ?? [];
      list.push(...paths.map((path) => ({ ...path, store, reads })));
      plan.set(store, list);
    }
  }
  return plan;
}

/** A prefetch path with its store resolved, as the pre-pass runs it. */
interface Prefetcher {
  readonly steps: ReadonlyArray<(value: unknown) => unknown>;
  readonly store: BatchPrefetchStore;
  /** Whether `name` needs the record's event time (a window's); computed only then. */
  readonly timed: boolean;
  /** Names to the store what it will read for a value that reached the node. */
  readonly name: (value: unknown, timestamp: number) => void;
}

function prefetcherOf(path: KeyPrefetchPath, store: BatchPrefetchStore): Prefetcher {
  const { steps, reads } = path;
  if (reads.kind === 'window') {
    const windows = store as WindowPrefetchStore;
    return { steps, store, timed: true, name: (value, time) => windows.wantGroup(reads.keyOf(value), time) };
  }
  const keyed = store as KeyPrefetchStore;
  return {
    steps,
    store,
    timed: false,
    name: (value) => {
      const keys = reads.keysOf(value);
      if (typeof keys === 'string') keyed.want(keys);
      else for (const key of keys) keyed.want(key);
    },
  };
}

class PartitionTaskImpl extends RecordContext implements PartitionTask, TaskRuntime {
  streamTime = -Infinity;

  private readonly now: () => number;
  /** Checkpointed positions of topics the topology no longer consumes, carried on unchanged. */
  private readonly otherPositions = new Map<string, bigint>();
  private readonly sourcesByTopic = new Map<string, SourceState>();
  /** The source of the previous record: consecutive records almost always share a topic. */
  private lastTopic: string | undefined;
  private lastSource: SourceState | undefined;
  private readonly timeListeners = new Map<string, TimeListener>();
  private readonly restoredTimeListeners: Record<string, number | null>;
  private readonly punctuations: PunctuationScheduler;
  private readonly counters: Omit<TaskMetrics, 'watermark'>;
  /** Set only on the rare paths (a late event, a dead letter): examples for the runtime's log lines. */
  private readonly lastOffsets: DropExamples = { deadLetters: {} };
  private lastActivity: number;
  /** Per source topic, the stores whose keys the pre-pass names; undefined when there are none. */
  private prefetchers: Map<string, Prefetcher[]> | undefined;
  private prefetchStores: BatchPrefetchStore[] = [];
  /** Output records for Kafka topics, sent with the next commit's transaction (no operator sends yet). */
  readonly recordCollector = new BufferedRecordCollector();

  constructor(
    options: OpenTaskOptions,
    private readonly db: StateDb,
    private readonly storesByName: Map<string, ManagedStore>,
    private readonly outboxesByName: Map<string, OutboxStore>,
    private readonly restored: Checkpoint | undefined,
    private readonly changelog: TaskChangelog | undefined,
  ) {
    super(options.partition);
    this.now = options.now ?? Date.now;
    this.lastActivity = this.now();
    this.punctuations = new PunctuationScheduler(this.now, (time, fire) => this.runOutsideRecord(time, fire));
    this.streamTime = restored?.streamTime ?? -Infinity;
    this.restoredTimeListeners = restored?.timeListeners ?? {};
    this.counters = restored?.metrics ?? {
      recordsProcessed: 0,
      lateEvents: 0,
      duplicatesDropped: 0,
      windowsEmitted: 0,
      deadLetters: {},
    };
  }

  /** Instantiates the nodes, children first, so each node gets its children's push functions. */
  wire(
    nodes: readonly NodeSpec[],
    sources: readonly SourceSpec[],
    prefetch: ReadonlyMap<string, readonly KeyPrefetchPath[]> = new Map(),
  ): void {
    for (const [name, paths] of prefetch) {
      const store = this.store<ManagedStore & BatchPrefetchStore>(name);
      this.prefetchStores.push(store);
      this.prefetchers ??= new Map();
      for (const path of paths) {
        const list = this.prefetchers.get(path.topic) ?? [];
        list.push(prefetcherOf(path, store));
        this.prefetchers.set(path.topic, list);
      }
    }
    const pushes = new Map<string, Push>();
    const childrenOf = (name: string, port: string | undefined): Push[] =>
      nodes
        .filter((node) => node.parents.some((parent) => parent.node === name && parent.port === port))
        .map((node) => pushes.get(node.name) as Push);
    const fanOut = (targets: Push[]): Push => {
      if (targets.length === 0) return () => {};
      if (targets.length === 1) return targets[0] as Push;
      return (value) => {
        for (const target of targets) target(value);
      };
    };
    // Builder order is a topological order (a node is added after its parents), so reverse it.
    for (const node of [...nodes].reverse()) {
      pushes.set(
        node.name,
        node.create({
          task: this,
          forward: fanOut(childrenOf(node.name, undefined)),
          forwardTo: (port) => fanOut(childrenOf(node.name, port)),
        }),
      );
    }
    const checkpointed = new Map(
      Object.entries(this.restored?.positions ?? {}).map(([topic, offset]) => [topic, BigInt(offset)]),
    );
    for (const source of sources)
      this.sourcesByTopic.set(source.topic, {
        spec: source,
        push: pushes.get(source.node) as Push,
        committed: checkpointed.get(source.topic),
        last: undefined,
        resumeChecked: false,
      });
    for (const [topic, offset] of checkpointed)
      if (!this.sourcesByTopic.has(topic)) this.otherPositions.set(topic, offset);
  }

  // ---- PartitionTask ----

  positions(): ReadonlyMap<string, bigint> {
    const positions = new Map(this.otherPositions);
    for (const [topic, source] of this.sourcesByTopic)
      if (source.committed !== undefined) positions.set(topic, source.committed);
    return positions;
  }

  resumeFrom(topic: string, firstOffset: bigint, lastOffset: bigint): ResumeDecision {
    const source = this.sourcesByTopic.get(topic);
    const next = source === undefined ? undefined : nextOffsetOf(source);
    if (source === undefined || next === undefined) return PROCESS;
    if (!source.resumeChecked) {
      source.resumeChecked = true;
      if (firstOffset > next) return { action: 'seek', offset: next };
    }
    return lastOffset < next ? COVERED : PROCESS;
  }

  async process(records: readonly RawRecord[]): Promise<void> {
    // Redelivered records come first in a batch: drop them before decoding.
    let from = 0;
    while (from < records.length) {
      const source = this.sourceOf((records[from] as RawRecord).topic);
      if (source === undefined || !covers(source, (records[from] as RawRecord).offset)) break;
      from++;
    }
    await this.processBatch(from === 0 ? records : records.slice(from));
  }

  async tick(nowMs: number): Promise<void> {
    const idleFor = nowMs - this.lastActivity;
    for (const listener of this.timeListeners.values()) {
      let closing: Promise<void> | undefined;
      this.withTimestamp(this.streamTime, () => {
        closing = listener.onIdle(idleFor);
      });
      if (closing !== undefined) await closing;
    }
    await this.punctuations.tick(nowMs, this.streamTime);
  }

  async commit(): Promise<void> {
    for (const store of this.storesByName.values()) store.beforeCommit?.(this.streamTime);
    const timeListeners: Record<string, number | null> = { ...this.restoredTimeListeners };
    for (const [name, listener] of this.timeListeners) {
      const value = listener.checkpoint();
      timeListeners[name] = Number.isFinite(value) ? value : null;
    }
    const next = new Map<SourceState, bigint>();
    const positions: Record<string, string> = {};
    for (const [topic, offset] of this.otherPositions) positions[topic] = offset.toString();
    for (const [topic, source] of this.sourcesByTopic) {
      const offset = nextOffsetOf(source);
      if (offset === undefined) continue;
      next.set(source, offset);
      positions[topic] = offset.toString();
    }
    const checkpoint: Checkpoint = {
      version: 1,
      positions,
      streamTime: Number.isFinite(this.streamTime) ? this.streamTime : null,
      timeListeners,
      metrics: { ...this.counters, deadLetters: { ...this.counters.deadLetters } },
    };
    const changelog = this.changelog;
    const records = this.recordCollector.pending();
    // Only a transaction that committed carries the records away (an idle commit sends none).
    let recordsSent = false;
    await this.db.commit(
      checkpoint,
      changelog &&
        (async (changes) => {
          const offsets = await changelog.write({
            changes,
            records,
            positions: new Map([...next].map(([source, offset]) => [source.spec.topic, offset])),
          });
          recordsSent = true;
          return offsets;
        }),
    );
    if (recordsSent) this.recordCollector.committed(records.length);
    for (const [source, offset] of next) source.committed = offset;
  }

  outboxes(): Outbox[] {
    return [...this.outboxesByName.values()];
  }

  stores(): StoreView[] {
    return this.db.allStores().map((store) => store.view());
  }

  metrics(): TaskMetrics {
    let watermark = this.timeListeners.size > 0 ? Infinity : this.streamTime;
    for (const listener of this.timeListeners.values()) watermark = Math.min(watermark, listener.watermark());
    return { ...this.counters, deadLetters: { ...this.counters.deadLetters }, watermark };
  }

  dropExamples(): DropExamples {
    return { ...this.lastOffsets, deadLetters: { ...this.lastOffsets.deadLetters } };
  }

  async close(): Promise<void> {
    await this.db.close();
  }

  // ---- TaskRuntime (what nodes see; `record`, `timestamp` and withTimestamp come from RecordContext) ----

  store<S extends ManagedStore>(name: string): S {
    const store = this.storesByName.get(name);
    if (store === undefined) throw new Error(`no store named "${name}"`);
    return store as S;
  }

  appendToOutbox(name: string, value: unknown): void {
    (this.outboxesByName.get(name) as OutboxStore).append(value);
  }

  deadLetter(reason: DeadLetterReason, error: unknown): void {
    const letter: DeadLetter = { record: this.deadLetterRecord(), reason, ...errorOf(error) };
    this.appendToOutbox(DLQ_OUTBOX, letter);
    this.counters.deadLetters[reason] = (this.counters.deadLetters[reason] ?? 0) + 1;
    this.lastOffsets.deadLetters[reason] = letter.record.offset;
  }

  countLate(): void {
    this.counters.lateEvents++;
    this.lastOffsets.lateEvent = this.currentRaw?.offset;
  }

  countDuplicate(): void {
    this.counters.duplicatesDropped++;
  }

  countWindowEmitted(): void {
    this.counters.windowsEmitted++;
  }

  addTimeListener(name: string, listener: TimeListener): number | undefined {
    this.timeListeners.set(name, listener);
    const restored = this.restoredTimeListeners[name];
    return restored === undefined ? undefined : (restored ?? -Infinity);
  }

  schedule(intervalMs: number, type: PunctuationType, callback: PunctuationCallback): Cancellable {
    return this.punctuations.schedule(intervalMs, type, callback, this.streamTime);
  }

  // ---- internals ----

  private async processBatch(records: readonly RawRecord[]): Promise<void> {
    if (records.length === 0) return;
    const decoded = await this.decodeAll(records);
    if (this.prefetchers !== undefined) await this.prefetchIds(this.prefetchers, records, decoded);
    this.lastActivity = this.now();
    const after: AfterRecord = {
      listeners: [...this.timeListeners.values()],
      punctuations: this.punctuations.eventTimeSchedules(),
    };
    for (let i = 0; i < records.length; i++) {
      // Synchronous per record (its locals on the stack, not in this async function's frame); a
      // promise only when a listener or punctuation after it has asynchronous work.
      const pending = this.processRecord(records[i] as RawRecord, decoded[i], after);
      if (pending !== undefined) await pending;
    }
    this.currentRaw = undefined;
  }

  /** One record through the DAG, then what runs after each record (runAfterRecord). */
  private processRecord(raw: RawRecord, value: unknown, after: AfterRecord): Promise<void> | undefined {
    const source = this.sourceOf(raw.topic) as SourceState;
    // Already processed (redelivery)? `covers()`, written out: this runs for every record.
    if (source.last !== undefined) {
      if (raw.offset <= source.last) return undefined;
    } else if (source.committed !== undefined && raw.offset < source.committed) return undefined;
    source.last = raw.offset;
    this.counters.recordsProcessed++;
    this.currentRaw = raw;
    try {
      if (value instanceof DecodeFailure) {
        const error = value.error;
        this.setRecord(raw, raw.timestamp);
        this.deadLetter(error instanceof DeserializationError ? error.reason : 'decode-failed', error);
        return undefined;
      }
      const timestamp = source.spec.timestampOf ? source.spec.timestampOf(value, raw) : raw.timestamp;
      this.setRecord(raw, timestamp);
      if (!Number.isFinite(timestamp)) {
        this.deadLetter('processing-failed', new Error(`invalid event time ${timestamp}`));
        return undefined;
      }
      if (timestamp > this.streamTime) this.streamTime = timestamp;
      source.push(value);
    } catch (error) {
      // State that cannot survive a restart is the topology's defect, not the record's: stop.
      if (error instanceof StateRoundTripError) throw error;
      // A user function threw: the record goes to the DLQ, the pipeline goes on. Effects the record
      // had on other branches before the throw stay (as in Kafka Streams with a continue handler).
      this.deadLetter('processing-failed', error);
    }
    return this.runAfterRecord(after, 0, 0);
  }

  /**
   * The time listeners, then the event-time punctuations, after a record, from the given ones on. One
   * that returns a promise (closing a spilled window reads it back first; an asynchronous punctuation,
   * e.g. one that lists a store) is finished before the next one runs, and all before the next record.
   */
  private runAfterRecord(
    after: AfterRecord,
    fromListener: number,
    fromPunctuation: number,
  ): Promise<void> | undefined {
    const { listeners, punctuations } = after;
    for (let l = fromListener; l < listeners.length; l++) {
      const closing = (listeners[l] as TimeListener).afterRecord();
      if (closing !== undefined) return closing.then(() => this.runAfterRecord(after, l + 1, 0));
    }
    for (let p = fromPunctuation; p < punctuations.length; p++) {
      const pending = this.punctuations.afterRecord(punctuations[p] as Punctuation, this.streamTime);
      if (pending !== undefined)
        return pending.then(() => this.runAfterRecord(after, listeners.length, p + 1));
    }
    return undefined;
  }

  /**
   * The pre-pass: runs each record through the lookaheads between its source and each dedupe or
   * prefetching process() to name the ids and keys the batch will read, then awaits the stores'
   * prefetch (a dedupe store reads the ids its filter cannot rule out, a key-value store the keys it
   * does not cache), so the per-record pass stays synchronous. User functions run here without side effects
   * that matter (peek's action does not run); one that throws names no id, and the real pass turns
   * the throw into a dead letter as before.
   */
  private async prefetchIds(
    prefetchers: ReadonlyMap<string, readonly Prefetcher[]>,
    records: readonly RawRecord[],
    decoded: readonly unknown[],
  ): Promise<void> {
    // Only the stores that may have to read disk (spilled ids, keys or windows) get a pre-pass.
    const reading = this.prefetchStores.filter((store) => store.wantsPrefetch);
    if (reading.length === 0) return;
    for (const store of reading) store.beginBatch();
    let topic: string | undefined;
    let list: readonly Prefetcher[] = [];
    let source: SourceState | undefined;
    for (let i = 0; i < records.length; i++) {
      const value = decoded[i];
      if (value instanceof DecodeFailure) continue;
      const raw = records[i] as RawRecord;
      if (raw.topic !== topic) {
        topic = raw.topic;
        list = (prefetchers.get(topic) ?? []).filter((prefetcher) => reading.includes(prefetcher.store));
        source = this.sourcesByTopic.get(topic);
      }
      let timestamp = NaN;
      for (const prefetcher of list) {
        try {
          let passed = value;
          for (const step of prefetcher.steps) {
            passed = step(passed);
            if (passed === SKIP) break;
          }
          if (passed === SKIP) continue;
          if (prefetcher.timed && Number.isNaN(timestamp))
            timestamp = source?.spec.timestampOf ? source.spec.timestampOf(value, raw) : raw.timestamp;
          prefetcher.name(passed, timestamp);
        } catch {
          // Named by nobody: the real pass meets the same throw (or reads synchronously).
        }
      }
    }
    await Promise.all(reading.map((store) => store.prefetch()));
  }

  private sourceOf(topic: string): SourceState | undefined {
    if (topic === this.lastTopic) return this.lastSource;
    const source = this.sourcesByTopic.get(topic);
    if (source !== undefined) {
      this.lastTopic = topic;
      this.lastSource = source;
    }
    return source;
  }

  /** Decodes the whole batch; rejects, with nothing applied, if any decode hits a RetriableError. */
  private async decodeAll(records: readonly RawRecord[]): Promise<unknown[]> {
    const decoded = new Array<unknown>(records.length);
    let pending: Array<Promise<void>> | undefined;
    for (let i = 0; i < records.length; i++) {
      const raw = records[i] as RawRecord;
      const source = this.sourceOf(raw.topic);
      if (source === undefined)
        throw new Error(
          `task ${this.partition} got a record of topic "${raw.topic}", which the topology does not consume`,
        );
      try {
        const result = source.spec.serde.deserialize(raw.value, {
          topic: raw.topic,
          headers: raw.headers,
          role: 'value',
        });
        if (isPromiseLike(result)) {
          pending ??= [];
          pending.push(
            Promise.resolve(result).then(
              (value) => {
                decoded[i] = value;
              },
              (error: unknown) => {
                decoded[i] = new DecodeFailure(error);
              },
            ),
          );
        } else {
          decoded[i] = result;
        }
      } catch (error) {
        decoded[i] = new DecodeFailure(error);
      }
    }
    if (pending) await Promise.all(pending);
    for (const value of decoded) {
      if (value instanceof DecodeFailure && value.error instanceof RetriableError) throw value.error;
    }
    return decoded;
  }
}
