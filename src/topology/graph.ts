/**
 * The topology as data: node and store specs produced by the builder, and the small runtime surface
 * (TaskRuntime) a node instance sees inside its partition task. Values travel through the DAG untyped
 * (the builder's Stream<T> types guarantee what each node receives); record metadata travels beside
 * them in the task's current record context instead of in a wrapper object per value.
 */
import type { DeadLetterReason, Headers } from '../core/records.js';
import type { Serde } from '../serde/types.js';
import type { ResultSchema, SinkSpec } from '../core/sink.js';
import type { ManagedStore } from '../state/db.js';
import type { StoreSpec } from '../state/store-spec.js';
import type { SegmentCodec } from '../state/outbox-store.js';
import type { RawRecord } from '../core/records.js';

export type Push = (value: unknown) => void;

/** What a node's lookahead returns for a value the node would not pass on. */
export const SKIP: unique symbol = Symbol('skip');

/** Metadata of the record being processed, as a processor sees it. */
export interface RecordMetadata {
  readonly topic: string;
  readonly partition: number;
  readonly offset: bigint;
  /** Event time (from the stream's timestamp extractor, or the Kafka timestamp). */
  readonly timestamp: number;
  readonly headers: Headers;
  readonly key: Buffer | null;
}

export type PunctuationType = 'event-time' | 'wall-time';

/**
 * What a schedule calls; a promise it returns is awaited before the task goes on. A union rather than
 * `=> void | Promise<void>`, so that a synchronous callback may return anything, as with `=> void`.
 */
export type PunctuationCallback = ((time: number) => void) | ((time: number) => Promise<void>);

export interface Cancellable {
  cancel(): void;
}

/** Something that reacts to the advance of stream time or wall time (window operators). */
export interface TimeListener {
  /**
   * After each record: stream time may have advanced. A promise (a window operator reading a spilled
   * window back before it closes) is awaited before the next record.
   */
  afterRecord(): Promise<void> | undefined;
  /** From tick(): `idleFor` ms of wall time passed since the last record; a promise is awaited likewise. */
  onIdle(idleFor: number): Promise<void> | undefined;
  /** Current watermark of this operator, for metrics. */
  watermark(): number;
  /** State to put in the checkpoint and to get back on reopen. */
  checkpoint(): number;
}

export interface TaskRuntime {
  readonly partition: number;
  /** Max event time seen by the task (-Infinity before the first record). */
  readonly streamTime: number;
  /**
   * The current record; during punctuation and window emission, a synthetic one. Built on first
   * access per record (most records never need it), so read `timestamp` on hot paths instead.
   */
  readonly record: RecordMetadata;
  /** Timestamp of the current record (`record.timestamp`, without building the metadata object). */
  readonly timestamp: number;
  /**
   * Key of the current record (record-context.ts): the Kafka key's bytes at the source; a step that
   * re-keys (groupBy) sets it for the steps it feeds and puts the previous one back after them.
   */
  key: unknown;
  store<S extends ManagedStore>(name: string): S;
  appendToOutbox(name: string, value: unknown): void;
  deadLetter(reason: DeadLetterReason, error: unknown): void;
  countLate(): void;
  countDuplicate(): void;
  countWindowEmitted(): void;
  /** Registers a time listener; returns its checkpointed value (undefined on a fresh task). */
  addTimeListener(name: string, listener: TimeListener): number | undefined;
  schedule(intervalMs: number, type: PunctuationType, callback: PunctuationCallback): Cancellable;
  /**
   * Runs `fn` with `timestamp` as the current record's timestamp (window emission, punctuation); the
   * key `fn` sets is put back after it.
   */
  withTimestamp(timestamp: number, fn: () => void): void;
}

export interface NodeRuntimeContext {
  task: TaskRuntime;
  /** Pushes to the children on the main port. */
  forward: Push;
  /** Pushes to the children on a named port (e.g. `late`). */
  forwardTo(port: string): Push;
}

/**
 * A read a node makes of one of its stores for a value, as a function of the value that reaches it:
 * - `keys`: the keys of a key-value or dedupe store it will look up (a dedupe's ids, the keys a
 *   process() names in its `prefetch` option);
 * - `window`: the entry of the group key `keyOf` returns in the windows of the record's event time
 *   (a windowed aggregate; the window store maps the time to its windows).
 */
export type StoreRead =
  | {
      readonly kind: 'keys';
      readonly store: string;
      readonly keysOf: (value: unknown) => string | readonly string[];
    }
  | { readonly kind: 'window'; readonly store: string; readonly keyOf: (value: unknown) => unknown };

export interface NodeSpec {
  readonly name: string;
  readonly kind: string;
  readonly parents: ReadonlyArray<{ node: string; port?: string }>;
  readonly stores: readonly string[];
  /** One-line description of what the node does, for describe(). */
  readonly detail: string;
  readonly topic?: string;
  readonly sink?: SinkSpec<unknown>;
  /** Columns of the values this node emits, when it is a windowed aggregate. */
  readonly schema?: ResultSchema;
  /** A windowed aggregate's grace (ms): its windows emit at window end + grace. */
  readonly graceMs?: number;
  /**
   * What the node passes on for a value, without its side effects (SKIP: nothing), for the pre-pass
   * that names the reads of the nodes after it before the batch runs (prefetch-plan.ts). Only
   * stateless nodes that pass on at most one value per input have one.
   */
  readonly lookahead?: (value: unknown) => unknown;
  /**
   * What the node reads of its stores for a value, declared so the pre-pass (prefetch-plan.ts) can
   * name those reads before the batch runs: an operator with a store read is one more entry here, not a
   * branch in the engine. Empty for a node that reads no store per value.
   */
  readonly reads: readonly StoreRead[];
  create(ctx: NodeRuntimeContext): Push;
}

export interface SourceSpec {
  readonly topic: string;
  readonly node: string;
  readonly serde: Serde<unknown>;
  readonly timestampOf: ((value: unknown, record: RawRecord) => number) | undefined;
}

/** A sink as planned at build time (see sink-plan.ts). */
export interface SinkPlan {
  readonly spec: SinkSpec<unknown>;
  /** The row columns, when every edge into the sink comes from windowed aggregates with the same columns. */
  readonly schema?: ResultSchema;
  /**
   * The outbox codec: the window-result codec when every value reaching the sink is a WindowResult
   * (each of its sink nodes has exactly one parent, the main port of a window aggregate); undefined
   * means the JSON segment format. The window-result codec still falls back to JSON for other values.
   */
  readonly outboxCodec?: SegmentCodec<unknown>;
  /** The grace of the window aggregates feeding the sink, when only window results with one grace reach it. */
  readonly windowGraceMs?: number;
}

/** What the engine needs of a built topology to open a partition task (the frozen DAG and its stores). */
export interface TaskPlan {
  readonly nodes: readonly NodeSpec[];
  readonly storeSpecs: readonly StoreSpec[];
  readonly sources: readonly SourceSpec[];
  readonly sinks: readonly SinkPlan[];
}
