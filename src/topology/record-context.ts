/**
 * The record context of a partition task, like Kafka Streams' ProcessorRecordContext: the raw record
 * being processed, its event time, and the RecordMetadata processors see, built on first access (most
 * records never need it). The engine extends this class so that `timestamp`, which operators read for
 * every record, stays a plain field of the task: no delegation on the hot path.
 *
 * The record's key lives here too, beside its timestamp (`key`), rather than in a (key, value) pair
 * per push: the Kafka key's bytes as read (no key serde yet) until a step re-keys the record for the
 * steps after it (groupBy: operators/group-by.ts); window results go on keyed by their group key.
 */
import type { RawRecord } from '../core/records.js';
import type { RecordMetadata } from './graph.js';

const NO_HEADERS = Object.freeze({}) as RecordMetadata['headers'];

export class RecordContext {
  /** Event time of the current record; during window emission and punctuation, a synthetic one. */
  timestamp = -Infinity;
  /**
   * Key of the current record: the Kafka key (Buffer or null) at the source, the group key after a
   * groupBy, a window result's group key when it is emitted; null during punctuation.
   */
  key: unknown = null;
  /** The input record being processed; undefined between records and during punctuation. */
  protected currentRaw: RawRecord | undefined;
  /** The record the metadata describes (undefined before the first); `timestamp` may differ from its own. */
  private metadataRaw: RawRecord | undefined;
  private cachedRecord: RecordMetadata | undefined;

  constructor(readonly partition: number) {}

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

  /** Runs `fn` with `timestamp` as the current record's timestamp (window emission, punctuation). */
  withTimestamp(timestamp: number, fn: () => void): void {
    const savedTimestamp = this.timestamp;
    const savedKey = this.key;
    const savedRecord = this.cachedRecord;
    this.timestamp = timestamp;
    this.cachedRecord = undefined;
    try {
      fn();
    } finally {
      this.timestamp = savedTimestamp;
      this.key = savedKey;
      this.cachedRecord = savedRecord;
    }
  }

  /**
   * Runs `fn` at `timestamp` outside any input record (punctuation): dead letters it raises carry no
   * payload. When `fn` returns a promise (an asynchronous punctuation), the context stays until it settles.
   */
  runOutsideRecord(timestamp: number, fn: () => void | Promise<void>): void | Promise<void> {
    const savedRaw = this.currentRaw;
    const savedTimestamp = this.timestamp;
    const savedKey = this.key;
    const savedRecord = this.cachedRecord;
    this.currentRaw = undefined;
    this.timestamp = timestamp;
    this.key = null;
    this.cachedRecord = undefined;
    const restore = () => {
      this.currentRaw = savedRaw;
      this.timestamp = savedTimestamp;
      this.key = savedKey;
      this.cachedRecord = savedRecord;
    };
    let returned: unknown;
    try {
      returned = fn();
    } catch (error) {
      restore();
      throw error;
    }
    if (!(returned instanceof Promise)) {
      restore();
      return undefined;
    }
    return returned.then(() => undefined).finally(restore);
  }

  /** The record a dead letter raised now refers to: the input record, or the metadata without a payload. */
  protected deadLetterRecord(): RawRecord {
    if (this.currentRaw !== undefined) return this.currentRaw;
    const record = this.record;
    return {
      topic: record.topic,
      partition: this.partition,
      offset: record.offset,
      timestamp: record.timestamp,
      key: null,
      value: null,
      headers: {},
    };
  }

  /** Makes `raw` the record the metadata describes, at event time `timestamp`. */
  protected setRecord(raw: RawRecord, timestamp: number): void {
    this.metadataRaw = raw;
    this.timestamp = timestamp;
    this.key = raw.key;
    this.cachedRecord = undefined;
  }
}
