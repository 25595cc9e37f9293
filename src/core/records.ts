/**
 * The records that cross every boundary: what the runtime consumes, what the engine dead-letters and
 * what a window aggregate hands to its sinks.
 */

/** Kafka record headers; a header without a value is `undefined`. */
export type Headers = Record<string, Buffer | undefined>;

/** Why a record was dead-lettered; stable strings, used as the `tributary.dlq.reason` header and metric label. */
export type DeadLetterReason =
  | 'bad-magic-byte'
  | 'unknown-schema-id'
  | 'truncated'
  | 'schema-mismatch'
  | 'decode-failed'
  | 'validation-failed'
  | 'late-event'
  | 'processing-failed';

/** One record as consumed from Kafka, before decoding. Offsets are bigints (Kafka int64). */
export interface RawRecord {
  topic: string;
  partition: number;
  offset: bigint;
  /** Kafka record timestamp, epoch milliseconds. */
  timestamp: number;
  key: Buffer | null;
  value: Buffer | null;
  headers: Headers;
}

/** A bad input record with the reason it could not be processed; becomes one DLQ record. */
export interface DeadLetter {
  record: RawRecord;
  reason: DeadLetterReason;
  errorClass: string;
  message: string;
}

/** The final (or, with the re-emit late policy, updated) result of one window for one key. */
export interface WindowResult<K, V> {
  /** Inclusive start, epoch ms. */
  windowStart: number;
  /** Exclusive end, epoch ms. */
  windowEnd: number;
  key: K;
  value: V;
  /** 1 for the first emission; +1 for every re-emission of the same window and key. */
  version: number;
  /** Source partition of the task that computed it: rows of one (window, key) from several partitions are distinct. */
  partition: number;
}
