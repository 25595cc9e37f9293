/**
 * The partition task: runs the DAG for one partition over its own LevelDB state.
 *
 * Hot path design: a batch is decoded first (so a RetriableError can reject it before anything is
 * applied), then processed synchronously record by record with no promise per record and no LevelDB
 * access at all; stores are in-memory write-back caches that reach LevelDB in one batch at commit().
 * Records already covered by the task's positions are skipped, which makes redelivery harmless.
 */
import { mkdir } from 'node:fs/promises';
import { DeserializationError, RetriableError } from '../serde/types.js';
import type { DeadLetterReason } from '../core/records.js';
import { StateDb } from '../state/db.js';
import type { ManagedStore } from '../state/db.js';
import { DedupeStore } from '../state/dedupe-store.js';
import { OutboxStore } from '../state/outbox-store.js';
import type {
  Cancellable,
  NodeSpec,
  PunctuationType,
  Push,
  RecordMetadata,
  SourceSpec,
  TaskPlan,
  TaskRuntime,
  TimeListener,
} from './graph.js';
import type { DeadLetter, RawRecord } from '../core/records.js';
import { DLQ_OUTBOX } from '../core/task.js';
import type { OpenTaskOptions, Outbox, PartitionTask, StoreView, TaskMetrics } from '../core/task.js';
import { windowResultCodec } from './result-codec.js';

interface Checkpoint {
  version: 1;
  /** Next offset per topic, as decimal strings (JSON has no bigint). */
  positions: Record<string, string>;
  /** null for -Infinity. */
  streamTime: number | null;
  timeListeners: Record<string, number | null>;
  metrics: Omit<TaskMetrics, 'watermark'>;
}

interface Punctuation {
  interval: number;
  type: PunctuationType;
  callback: (time: number) => void;
  next: number;
  cancelled: boolean;
}

/** A decode that failed for a reason of the record itself (dead letter) or of a dependency (retry). */
class DecodeFailure {
  constructor(readonly error: unknown) {}
}

/** A source topic with its DAG entry and its position (kept here, not in a Map, to skip a lookup per record). */
interface SourceState {
  readonly spec: SourceSpec;
  readonly push: Push;
  /** Next offset from the checkpoint: records below it were processed before (redelivery). */
  readonly floor: bigint | undefined;
  /**
   * Last offset processed since open; the next position is `last + 1n`, computed at commit rather
   * than per record (a bigint addition allocates).
   */
  last: bigint | undefined;
}

const NO_HEADERS = Object.freeze({}) as RecordMetadata['headers'];

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
 * Whether every value reaching sink `sinkName` is a WindowResult emitted by a window aggregate (each
 * of its sink nodes has exactly one parent: the main port of a window-aggregate node). Only then may
 * its outbox use the window-result segment codec (which still falls back to JSON for anything else).
 */
function fedOnlyByWindowAggregates(nodes: readonly NodeSpec[], sinkName: string): boolean {
  const sinkNodes = nodes.filter((node) => node.sink?.name === sinkName);
  return (
    sinkNodes.length > 0 &&
    sinkNodes.every((node) => {
      const parent = node.parents.length === 1 ? node.parents[0] : undefined;
      return (
        parent !== undefined &&
        parent.port === undefined &&
        nodes.some((candidate) => candidate.name === parent.node && candidate.kind === 'window-aggregate')
      );
    })
  );
}

export async function openPartitionTask(
  topology: TaskPlan,
  options: OpenTaskOptions,
): Promise<PartitionTask> {
  await mkdir(options.dir, { recursive: true });
  const db = await StateDb.open(options.dir);
  try {
    const stores = new Map<string, ManagedStore>();
    for (const spec of topology.storeSpecs) stores.set(spec.name, await db.attach(spec.create(db)));
    const outboxes = new Map<string, OutboxStore>();
    for (const name of [DLQ_OUTBOX, ...topology.sinks.map((sink) => sink.spec.name)]) {
      if (outboxes.has(name)) throw new Error(`sink name "${name}" is reserved or used twice`);
      const codec = fedOnlyByWindowAggregates(topology.nodes, name) ? windowResultCodec : undefined;
      outboxes.set(name, await db.attach(new OutboxStore(db, `${name}`, codec)));
    }
    const checkpoint = await db.readCheckpoint<Checkpoint>();
    const task = new PartitionTaskImpl(options, db, stores, outboxes, checkpoint);
    task.wire(topology.nodes, topology.sources);
    return task;
  } catch (error) {
    await db.close();
    throw error;
  }
}

class PartitionTaskImpl implements PartitionTask, TaskRuntime {
  readonly partition: number;
  streamTime = -Infinity;
  timestamp = -Infinity;

  private readonly now: () => number;
  private livePositions = new Map<string, bigint>();
  private committedPositions: Map<string, bigint>;
  private readonly sourcesByTopic = new Map<string, SourceState>();
  /** The source of the previous record: consecutive records almost always share a topic. */
  private lastTopic: string | undefined;
  private lastSource: SourceState | undefined;
  /** Record the metadata describes (undefined before the first); `timestamp` may differ from its own. */
  private metadataRaw: RawRecord | undefined;
  private cachedRecord: RecordMetadata | undefined;
  private readonly timeListeners = new Map<string, TimeListener>();
  private readonly restoredTimeListeners: Record<string, number | null>;
  private readonly punctuations: Punctuation[] = [];
  private readonly counters: Omit<TaskMetrics, 'watermark'>;
  private currentRaw: RawRecord | undefined;
  private lastActivity: number;
  /** Serializes process/tick/commit/close: a commit must never see half a batch. */
  private queue: Promise<unknown> = Promise.resolve();
  private closed = false;

  constructor(
    options: OpenTaskOptions,
    private readonly db: StateDb,
    private readonly storesByName: Map<string, ManagedStore>,
    private readonly outboxesByName: Map<string, OutboxStore>,
    checkpoint: Checkpoint | undefined,
  ) {
    this.partition = options.partition;
    this.now = options.now ?? Date.now;
    this.lastActivity = this.now();
    this.committedPositions = new Map(
      Object.entries(checkpoint?.positions ?? {}).map(([topic, offset]) => [topic, BigInt(offset)]),
    );
    this.livePositions = new Map(this.committedPositions);
    this.streamTime = checkpoint?.streamTime ?? -Infinity;
    this.restoredTimeListeners = checkpoint?.timeListeners ?? {};
    this.counters = checkpoint?.metrics ?? {
      recordsProcessed: 0,
      lateEvents: 0,
      duplicatesDropped: 0,
      windowsEmitted: 0,
      deadLetters: {},
    };
  }

  /** Instantiates the nodes, children first, so each node gets its children's push functions. */
  wire(nodes: readonly NodeSpec[], sources: readonly SourceSpec[]): void {
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
    for (const source of sources)
      this.sourcesByTopic.set(source.topic, {
        spec: source,
        push: pushes.get(source.node) as Push,
        floor: this.committedPositions.get(source.topic),
        last: undefined,
      });
  }

  // ---- PartitionTask ----

  positions(): ReadonlyMap<string, bigint> {
    return this.committedPositions;
  }

  process(records: readonly RawRecord[]): Promise<void> {
    return this.serialized(() => this.processBatch(records));
  }

  tick(nowMs: number): Promise<void> {
    return this.serialized(async () => {
      const idleFor = nowMs - this.lastActivity;
      for (const listener of this.timeListeners.values()) {
        this.withTimestamp(this.streamTime, () => listener.onIdle(idleFor));
      }
      for (const punctuation of this.punctuations) {
        if (punctuation.cancelled || punctuation.type !== 'wall-time' || nowMs < punctuation.next) continue;
        punctuation.next = nowMs + punctuation.interval;
        this.withTimestamp(this.streamTime, () => punctuation.callback(nowMs));
      }
    });
  }

  commit(): Promise<void> {
    return this.serialized(async () => {
      for (const [topic, source] of this.sourcesByTopic)
        if (source.last !== undefined) this.livePositions.set(topic, source.last + 1n);
      for (const store of this.storesByName.values())
        if (store instanceof DedupeStore) store.expire(this.streamTime);
      const timeListeners: Record<string, number | null> = { ...this.restoredTimeListeners };
      for (const [name, listener] of this.timeListeners) {
        const value = listener.checkpoint();
        timeListeners[name] = Number.isFinite(value) ? value : null;
      }
      const checkpoint: Checkpoint = {
        version: 1,
        positions: Object.fromEntries(
          [...this.livePositions].map(([topic, offset]) => [topic, offset.toString()]),
        ),
        streamTime: Number.isFinite(this.streamTime) ? this.streamTime : null,
        timeListeners,
        metrics: { ...this.counters, deadLetters: { ...this.counters.deadLetters } },
      };
      await this.db.commit(checkpoint);
      this.committedPositions = new Map(this.livePositions);
    });
  }

  outboxes(): Outbox[] {
    return [...this.outboxesByName.values()];
  }

  /** The outbox store of one sink (or `dlq`). */
  outbox(name: string): OutboxStore | undefined {
    return this.outboxesByName.get(name);
  }

  stores(): StoreView[] {
    return this.db.allStores().map((store) => store.view());
  }

  metrics(): TaskMetrics {
    let watermark = this.timeListeners.size > 0 ? Infinity : this.streamTime;
    for (const listener of this.timeListeners.values()) watermark = Math.min(watermark, listener.watermark());
    return { ...this.counters, deadLetters: { ...this.counters.deadLetters }, watermark };
  }

  close(): Promise<void> {
    return this.serialized(async () => {
      if (this.closed) return;
      this.closed = true;
      await this.db.close();
    });
  }

  // ---- TaskRuntime (what nodes see) ----

  get record(): RecordMetadata {
    if (this.cachedRecord === undefined) {
      const raw = this.metadataRaw;
      this.cachedRecord =
        raw === undefined
          ? {
              topic: '',
              partition: this.partition,
              offset: -1n,
              timestamp: this.timestamp,
              headers: NO_HEADERS,
              key: null,
            }
          : {
              topic: raw.topic,
              partition: raw.partition,
              offset: raw.offset,
              timestamp: this.timestamp,
              headers: raw.headers,
              key: raw.key,
            };
    }
    return this.cachedRecord;
  }

  store<S extends ManagedStore>(name: string): S {
    const store = this.storesByName.get(name);
    if (store === undefined) throw new Error(`no store named "${name}"`);
    return store as S;
  }

  appendToOutbox(name: string, value: unknown): void {
    (this.outboxesByName.get(name) as OutboxStore).append(value);
  }

  deadLetter(reason: DeadLetterReason, error: unknown): void {
    const record: RawRecord = this.currentRaw ?? {
      topic: this.record.topic,
      partition: this.partition,
      offset: this.record.offset,
      timestamp: this.record.timestamp,
      key: null,
      value: null,
      headers: {},
    };
    const letter: DeadLetter = { record, reason, ...errorOf(error) };
    this.appendToOutbox(DLQ_OUTBOX, letter);
    this.counters.deadLetters[reason] = (this.counters.deadLetters[reason] ?? 0) + 1;
  }

  countLate(): void {
    this.counters.lateEvents++;
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

  schedule(intervalMs: number, type: PunctuationType, callback: (time: number) => void): Cancellable {
    if (!(intervalMs > 0)) throw new Error('punctuation interval must be positive');
    const punctuation: Punctuation = {
      interval: intervalMs,
      type,
      callback,
      // Event time: the next multiple of the interval after stream time, so a restarted task fires at
      // exactly the stream times an uninterrupted one would.
      next: type === 'event-time' ? this.nextMultiple(intervalMs) : this.now() + intervalMs,
      cancelled: false,
    };
    this.punctuations.push(punctuation);
    return {
      cancel: () => {
        punctuation.cancelled = true;
      },
    };
  }

  withTimestamp(timestamp: number, fn: () => void): void {
    const savedTimestamp = this.timestamp;
    const savedRecord = this.cachedRecord;
    this.timestamp = timestamp;
    this.cachedRecord = undefined;
    try {
      fn();
    } finally {
      this.timestamp = savedTimestamp;
      this.cachedRecord = savedRecord;
    }
  }

  // ---- internals ----

  private serialized<R>(operation: () => Promise<R>): Promise<R> {
    const run = this.queue.then(() => {
      if (this.closed) throw new Error(`task ${this.partition} is closed`);
      return operation();
    });
    this.queue = run.catch(() => undefined);
    return run;
  }

  private nextMultiple(interval: number): number {
    return Number.isFinite(this.streamTime)
      ? Math.floor(this.streamTime / interval) * interval + interval
      : -Infinity;
  }

  private async processBatch(records: readonly RawRecord[]): Promise<void> {
    if (records.length === 0) return;
    const decoded = await this.decodeAll(records);
    this.lastActivity = this.now();
    const listeners = [...this.timeListeners.values()];
    const eventPunctuations = this.punctuations.filter((p) => p.type === 'event-time' && !p.cancelled);
    for (let i = 0; i < records.length; i++) {
      const raw = records[i] as RawRecord;
      const source = this.sourceOf(raw.topic) as SourceState;
      // Already processed (redelivery)?
      if (source.last !== undefined) {
        if (raw.offset <= source.last) continue;
      } else if (source.floor !== undefined && raw.offset < source.floor) continue;
      source.last = raw.offset;
      this.counters.recordsProcessed++;
      this.currentRaw = raw;
      const value = decoded[i];
      try {
        if (value instanceof DecodeFailure) {
          const error = value.error;
          this.setRecord(raw, raw.timestamp);
          this.deadLetter(error instanceof DeserializationError ? error.reason : 'decode-failed', error);
          continue;
        }
        const timestamp = source.spec.timestampOf ? source.spec.timestampOf(value, raw) : raw.timestamp;
        this.setRecord(raw, timestamp);
        if (!Number.isFinite(timestamp)) {
          this.deadLetter('processing-failed', new Error(`invalid event time ${timestamp}`));
          continue;
        }
        if (timestamp > this.streamTime) this.streamTime = timestamp;
        source.push(value);
      } catch (error) {
        // A user function threw: the record goes to the DLQ, the pipeline goes on. Effects the record
        // had on other branches before the throw stay (as in Kafka Streams with a continue handler).
        this.deadLetter('processing-failed', error);
      }
      for (const listener of listeners) listener.afterRecord();
      for (const punctuation of eventPunctuations) this.firePunctuation(punctuation);
    }
    this.currentRaw = undefined;
  }

  private firePunctuation(punctuation: Punctuation): void {
    if (punctuation.cancelled || !Number.isFinite(this.streamTime)) return;
    if (punctuation.next === -Infinity) {
      punctuation.next = this.nextMultiple(punctuation.interval);
      return;
    }
    if (this.streamTime < punctuation.next) return;
    punctuation.next = this.nextMultiple(punctuation.interval);
    const saved = this.currentRaw;
    this.currentRaw = undefined;
    try {
      this.withTimestamp(this.streamTime, () => punctuation.callback(this.streamTime));
    } finally {
      this.currentRaw = saved;
    }
  }

  private setRecord(raw: RawRecord, timestamp: number): void {
    this.metadataRaw = raw;
    this.timestamp = timestamp;
    this.cachedRecord = undefined;
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
