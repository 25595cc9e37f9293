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
import { DeserializationError, RetriableError } from '../serde/types.js';
import type { DeadLetterReason } from '../core/records.js';
import type { ManagedStore, StateDb } from '../state/db.js';
import type { OutboxStore } from '../state/outbox-store.js';
import { openStandbyState as openStandbyFolder, openTaskState } from '../state/task-state.js';
import type { TaskState, TaskStatePlan } from '../state/task-state.js';
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
import type { DeadLetter, RawRecord } from '../core/records.js';
import { DLQ_OUTBOX } from '../core/task.js';
import type {
  OpenTaskOptions,
  Outbox,
  PartitionTask,
  ResumeDecision,
  StoreView,
  StandbyState,
  TaskChangelog,
  TaskMetrics,
  DropExamples,
} from '../core/task.js';
import { RecordContext } from './record-context.js';
import { StateRoundTripError } from './accumulator-check.js';
import { PunctuationScheduler } from './punctuation-scheduler.js';
import { PrePass, planPrefetch } from './prefetch-plan.js';
import type { BatchPrefetchStore, PrefetchPlan } from './prefetch-plan.js';
import type { Punctuation } from './punctuation-scheduler.js';

interface Checkpoint {
  version: 1;
  /** Next offset per topic, as decimal strings (JSON has no bigint). */
  positions: Record<string, string>;
  /** null for -Infinity. */
  streamTime: number | null;
  timeListeners: Record<string, number | null>;
  metrics: Omit<TaskMetrics, 'watermark'>;
  /** Wall clock the task is idle since (its last batch, else its first open): idleness counts from it. */
  lastActivity?: number;
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

/**
 * Opens a partition task: its state (state/task-state.ts: the folder restored, reconciled and loaded),
 * then the DAG wired over it.
 */
export async function openPartitionTask(
  topology: TaskPlan,
  options: OpenTaskOptions,
): Promise<PartitionTask> {
  const state = await openTaskState<Checkpoint>(taskStatePlanOf(topology), options);
  try {
    const plan = planPrefetch(topology.nodes);
    const task = new PartitionTaskImpl(options, state, options.changelog);
    task.wire(topology.nodes, topology.sources, plan);
    return task;
  } catch (error) {
    await state.db.close();
    throw error;
  }
}

/** A standby: the partition's folder, fed from its changelog, with no store loaded. */
export function openStandbyState(
  topology: TaskPlan,
  options: { partition: number; dir: string },
): Promise<StandbyState> {
  return openStandbyFolder(taskStatePlanOf(topology), options);
}

/** What a task's state is made of: the topology's stores and one outbox per sink. */
function taskStatePlanOf(topology: TaskPlan): TaskStatePlan {
  return {
    storeSpecs: topology.storeSpecs,
    sinkOutboxes: topology.sinks.map((sink) => ({ name: sink.spec.name, codec: sink.outboxCodec })),
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
  /** The pre-pass of the stores whose reads are planned; undefined when there are none. */
  private prePass: PrePass | undefined;

  private readonly db: StateDb;
  private readonly storesByName: Map<string, ManagedStore>;
  private readonly outboxesByName: Map<string, OutboxStore>;
  private readonly restored: Checkpoint | undefined;
  /** Output records for Kafka topics, sent with the next commit's transaction (no operator sends yet). */
  readonly recordCollector = new BufferedRecordCollector();

  constructor(
    options: OpenTaskOptions,
    state: TaskState<Checkpoint>,
    private readonly changelog: TaskChangelog | undefined,
  ) {
    super(options.partition);
    // Kept as fields of their own (not read through `state`): appendToOutbox runs per record.
    this.db = state.db;
    this.storesByName = state.stores;
    this.outboxesByName = state.outboxes;
    this.restored = state.checkpoint;
    const restored = this.restored;
    this.now = options.now ?? Date.now;
    // A partition idle before a restart stays idle from its last record, not from the reopen.
    this.lastActivity = Math.min(restored?.lastActivity ?? Infinity, this.now());
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
  wire(nodes: readonly NodeSpec[], sources: readonly SourceSpec[], prefetch: PrefetchPlan = new Map()): void {
    if (prefetch.size > 0)
      this.prePass = new PrePass(prefetch, (name) => this.store<ManagedStore & BatchPrefetchStore>(name));
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
      lastActivity: this.lastActivity,
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
    if (this.prePass !== undefined)
      await this.prePass.run({
        records,
        values: decoded,
        failed: (value) => value instanceof DecodeFailure,
        timestampOf: (topic) => this.sourcesByTopic.get(topic)?.spec.timestampOf,
      });
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
