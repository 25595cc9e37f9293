/**
 * Serde contracts shared by sources, sinks and the DLQ. Implementations live in this folder
 * (avro, json, string); the topology engine only sees these interfaces.
 */
import type { DeadLetterReason, Headers } from '../core/records.js';
import type { UsesServiceDefaults } from '../core/services.js';

/** Where a payload came from or goes to; serdes that care about the subject (Avro) read the topic. */
export interface SerdeContext {
  topic: string;
  headers?: Headers;
  /** `key` or `value`: Schema Registry subjects differ by role (`<topic>-key`, `<topic>-value`). */
  role?: 'key' | 'value';
}

export interface Deserializer<T> {
  /**
   * Decodes one payload. Synchronous when it can be (cached schema), a promise when it must fetch.
   * Throws DeserializationError for a record that is bad in itself (it goes to the DLQ) and
   * RetriableError when a dependency (the registry) is unreachable (the partition is held and retried).
   */
  deserialize(data: Buffer | null, ctx: SerdeContext): T | Promise<T>;
}

export interface Serializer<T> {
  serialize(value: T, ctx: SerdeContext): Buffer | Promise<Buffer>;
}

export interface Serde<T> extends Deserializer<T>, Serializer<T>, UsesServiceDefaults {
  /** Human-readable name for describe() and error messages, e.g. `avro(usage-events-value)`. */
  readonly name: string;
  /**
   * Checks once, at start, that what the serde depends on answers (Avro: the schema registry), with
   * a single short attempt. Throws an Error whose one-line message names the endpoint, what answered
   * and the likely fix. Serdes without dependencies leave it out.
   */
  probe?(): Promise<void>;
}

/** A record that is bad in itself. It never stops the pipeline: it goes to the DLQ with this reason. */
export class DeserializationError extends Error {
  override readonly name = 'DeserializationError';
  constructor(
    readonly reason: DeadLetterReason,
    message: string,
    options?: { cause?: unknown },
  ) {
    super(message, options);
  }
}

/** A dependency is unavailable (registry down, network). Not the record's fault: hold and retry, never DLQ. */
export class RetriableError extends Error {
  override readonly name = 'RetriableError';
}

/**
 * A value the producer side cannot encode (it does not match the schema, or the schema is not
 * registered). The caller's bug, reported before anything is written. (Added by the serde module.)
 */
export class SerializationError extends Error {
  override readonly name = 'SerializationError';
}
