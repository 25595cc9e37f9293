/**
 * Sink contracts. A topology's `.to(sink)` names a SinkSpec; the engine stores what reaches the sink
 * in a durable outbox (part of the task's checkpointed state) and the runtime drains the outbox
 * through a SinkWriter after each commit. A writer may therefore see the same rows again after a
 * crash, and must make such replays harmless (ClickHouse: ReplacingMergeTree with the same version).
 */
import type { UsesServiceDefaults } from './services.js';

/** ClickHouse-compatible column types the engine can describe. */
export type ColumnType =
  | 'UInt8'
  | 'UInt32'
  | 'UInt64'
  | 'Int64'
  | 'Float64'
  | 'String'
  | 'DateTime'
  | 'Array(Float64)'
  | 'Array(UInt64)';

/**
 * How a value column combines across source partitions in the final totals. `quantile` and `buckets`
 * belong to the columns of a mergeable sketch (see `Column.sketch`): the buckets of all partitions are
 * added up and the quantile is read from the merged buckets.
 */
export type TotalsMerge = 'sum' | 'min' | 'max' | 'avg' | 'any' | 'quantile' | 'buckets';

/**
 * The two columns that hold a quantile sketch as buckets: the representative value of each non-empty
 * bucket (Array(Float64), ascending) and its count (Array(UInt64)). Same value, same bucket, in every
 * partition, so adding counts per value merges sketches exactly.
 */
export interface SketchColumns {
  values: string;
  counts: string;
}

export interface Column {
  name: string;
  type: ColumnType;
  /** Set by the aggregator that produces the column (count/sum: sum, min: min, ...); else inferred from the name. */
  merge?: TotalsMerge;
  /** For `quantile` and `buckets` columns: the sketch they are read from or part of. */
  sketch?: SketchColumns;
  /** For `quantile` columns: which quantile, in [0, 1]. */
  quantile?: number;
}

/** What the engine knows of the rows reaching a sink: the flattened aggregate outputs of a window result. */
export interface ResultSchema {
  /** Aggregate output columns in spec order, nested outputs flattened with `_` (e.g. `latency_p99`). */
  valueColumns: Column[];
}

/** The part of a (pino) logger a sink may use. */
export interface SinkLogger {
  warn(details: object, message: string): void;
  info(details: object, message: string): void;
  debug(details: object, message: string): void;
}

export interface SinkOpenContext {
  appId: string;
  /** Present when the sink is fed by a windowed aggregate. */
  schema?: ResultSchema;
  /** The application's logger; a sink logs through it unless configured with a logger of its own. */
  logger?: SinkLogger;
  /** Called for every failed attempt the sink will retry (the runtime counts them as a metric). */
  onRetry?: (error: unknown) => void;
}

export interface SinkWriter<T> {
  /** Durably writes rows, retrying transient failures itself; rejects only when it gives up. */
  write(rows: readonly T[]): Promise<void>;
  close(): Promise<void>;
}

export interface SinkSpec<T> extends UsesServiceDefaults {
  /** e.g. `clickhouse`, `memory`, `kafka`. */
  readonly kind: string;
  /** Unique within a topology; names the outbox store, e.g. `clickhouse:usage_1m`. */
  readonly name: string;
  open(ctx: SinkOpenContext): Promise<SinkWriter<T>>;
}

/**
 * A failure that retrying cannot fix (a table with other columns, a row that does not fit, bad
 * credentials). The runtime stops the instance on it, loudly, instead of retrying forever.
 */
export class PermanentSinkError extends Error {
  override readonly name: string = 'PermanentSinkError';
}
