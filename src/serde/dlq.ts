/**
 * The dead-letter envelope: how a bad record looks in the DLQ topic. The original key, value and
 * headers are kept byte for byte (so a fixed consumer can replay the record as it was), and
 * `tributary.dlq.*` headers say why and where it came from. Headers, not a wrapping value, so the
 * DLQ stays readable by any Kafka tool and the payload keeps its original framing.
 */
import type { DeadLetter, RawRecord } from '../core/records.js';
import type { DeadLetterReason, Headers } from '../core/records.js';
import { DeserializationError } from './types.js';

export const DLQ_HEADER_PREFIX = 'tributary.dlq.';

export const DLQ_HEADERS = {
  reason: 'tributary.dlq.reason',
  errorClass: 'tributary.dlq.error.class',
  errorMessage: 'tributary.dlq.error.message',
  sourceTopic: 'tributary.dlq.source.topic',
  sourcePartition: 'tributary.dlq.source.partition',
  sourceOffset: 'tributary.dlq.source.offset',
  sourceTimestamp: 'tributary.dlq.source.timestamp',
  /**
   * Present when the letter was too large for the DLQ: the original record's key, value and headers
   * were left out (the source headers point at it) and this says how many bytes the whole letter had.
   */
  truncated: 'tributary.dlq.truncated',
} as const;

/** Error messages can embed whole payloads; a header this long is plenty to diagnose and stays cheap. */
export const MAX_DLQ_ERROR_MESSAGE_BYTES = 1024;

const DEAD_LETTER_REASONS: ReadonlySet<string> = new Set<DeadLetterReason>([
  'bad-magic-byte',
  'unknown-schema-id',
  'truncated',
  'schema-mismatch',
  'decode-failed',
  'validation-failed',
  'late-event',
  'processing-failed',
]);

/** A Kafka message ready to produce (topic chosen by the caller; see defaultDlqTopic). */
export interface DlqMessage {
  key: Buffer | null;
  value: Buffer | null;
  headers: Headers;
}

/** `<appId>.dlq`, the default DLQ topic of an application. */
export function defaultDlqTopic(appId: string): string {
  return `${appId}.dlq`;
}

/**
 * Bytes a message takes in a Kafka record batch, an upper bound: the payloads plus each field's
 * length prefix and the record's own framing at their widest. (The broker's `message.max.bytes`
 * limits a whole record batch: add RECORD_BATCH_OVERHEAD_BYTES once per batch.)
 */
export function dlqMessageBytes(message: DlqMessage): number {
  let bytes = 40 + (message.key?.length ?? 0) + (message.value?.length ?? 0);
  for (const [name, value] of Object.entries(message.headers))
    bytes += 10 + Buffer.byteLength(name) + (value?.length ?? 0);
  return bytes;
}

/** The framing of one Kafka record batch (v2), on top of its records. */
export const RECORD_BATCH_OVERHEAD_BYTES = 61;

export interface DlqMessageOptions {
  /**
   * Largest message (dlqMessageBytes) to build. A letter over it leaves out the original value, then
   * the key, then the original headers, and then shortens the error message until it fits; it carries
   * the `tributary.dlq.truncated` header with its full size. The reason and source headers always stay.
   */
  maxBytes?: number;
}

/** Builds the DLQ message for a dead letter. Original `tributary.dlq.*` headers (a record failing twice) are replaced. */
export function toDlqMessage(deadLetter: DeadLetter, options: DlqMessageOptions = {}): DlqMessage {
  const message = fullDlqMessage(deadLetter);
  const maxBytes = options.maxBytes ?? Infinity;
  const fullBytes = dlqMessageBytes(message);
  return fullBytes <= maxBytes ? message : withoutOriginal(message, deadLetter, fullBytes, maxBytes);
}

/**
 * A letter too large for the DLQ, replaced by a reference: the source headers say where the record
 * is, the reason and error say why it failed. Never a letter that the broker would refuse forever.
 */
function withoutOriginal(
  message: DlqMessage,
  deadLetter: DeadLetter,
  fullBytes: number,
  maxBytes: number,
): DlqMessage {
  const truncated: Headers = { [DLQ_HEADERS.truncated]: Buffer.from(String(fullBytes)) };
  const envelope: Headers = { ...truncated };
  for (const [name, value] of Object.entries(message.headers))
    if (name.startsWith(DLQ_HEADER_PREFIX)) envelope[name] = value;
  // Largest first: keep as much of the original as fits.
  const candidates: DlqMessage[] = [
    { key: message.key, value: null, headers: { ...message.headers, ...truncated } },
    { key: null, value: null, headers: { ...message.headers, ...truncated } },
    { key: null, value: null, headers: envelope },
  ];
  for (const candidate of candidates) if (dlqMessageBytes(candidate) <= maxBytes) return candidate;
  const bare = candidates[candidates.length - 1]!;
  const over = dlqMessageBytes(bare) - maxBytes;
  const errorMessageBytes = envelope[DLQ_HEADERS.errorMessage]?.length ?? 0;
  const errorMessage = truncateUtf8(deadLetter.message, Math.max(0, errorMessageBytes - over));
  return { ...bare, headers: { ...envelope, [DLQ_HEADERS.errorMessage]: errorMessage } };
}

function fullDlqMessage(deadLetter: DeadLetter): DlqMessage {
  const { record } = deadLetter;
  const headers: Headers = {};
  for (const [name, value] of Object.entries(record.headers)) {
    if (value !== undefined && !name.startsWith(DLQ_HEADER_PREFIX)) headers[name] = toBuffer(value);
  }
  headers[DLQ_HEADERS.reason] = Buffer.from(deadLetter.reason);
  headers[DLQ_HEADERS.errorClass] = Buffer.from(deadLetter.errorClass);
  headers[DLQ_HEADERS.errorMessage] = truncateUtf8(deadLetter.message, MAX_DLQ_ERROR_MESSAGE_BYTES);
  headers[DLQ_HEADERS.sourceTopic] = Buffer.from(record.topic);
  headers[DLQ_HEADERS.sourcePartition] = Buffer.from(String(record.partition));
  headers[DLQ_HEADERS.sourceOffset] = Buffer.from(String(record.offset));
  headers[DLQ_HEADERS.sourceTimestamp] = Buffer.from(String(record.timestamp));
  return {
    key: record.key === null ? null : toBuffer(record.key),
    value: record.value === null ? null : toBuffer(record.value),
    headers,
  };
}

/** Header values as consumers hand them over (kafkajs: Buffer, string, or an array for repeated headers). */
export type IncomingHeaderValue = Buffer | string | ReadonlyArray<Buffer | string> | undefined;

/** A message as read back from the DLQ topic. */
export interface IncomingDlqMessage {
  key: Buffer | string | null | undefined;
  value: Buffer | string | null | undefined;
  headers?: Readonly<Record<string, IncomingHeaderValue>> | undefined;
}

/** Thrown by parseDlqMessage for a message that is not a well-formed tributary DLQ record. */
export class NotADeadLetterError extends Error {
  override readonly name = 'NotADeadLetterError';
}

/** The inverse of toDlqMessage: the dead letter, with the original record's key, value and headers. */
export function parseDlqMessage(message: IncomingDlqMessage): DeadLetter {
  const incoming = message.headers ?? {};
  const originalHeaders: Headers = {};
  for (const [name, value] of Object.entries(incoming)) {
    if (value === undefined || name.startsWith(DLQ_HEADER_PREFIX)) continue;
    // Repeated headers collapse to the last value, as in the Headers record type.
    const single = typeof value === 'string' || Buffer.isBuffer(value) ? value : value[value.length - 1];
    if (single !== undefined) originalHeaders[name] = toBuffer(single);
  }
  const text = (name: string): string => {
    const value = incoming[name];
    const single = typeof value === 'string' || Buffer.isBuffer(value) ? value : value?.[value.length - 1];
    if (single === undefined) throw new NotADeadLetterError(`missing header ${name}`);
    return toBuffer(single).toString('utf8');
  };
  const integer = (name: string): string => {
    const raw = text(name);
    if (!/^-?\d+$/.test(raw))
      throw new NotADeadLetterError(`header ${name} is not an integer: ${JSON.stringify(raw)}`);
    return raw;
  };

  const reason = text(DLQ_HEADERS.reason);
  if (!DEAD_LETTER_REASONS.has(reason))
    throw new NotADeadLetterError(`unknown dead-letter reason ${JSON.stringify(reason)}`);
  const record: RawRecord = {
    topic: text(DLQ_HEADERS.sourceTopic),
    partition: Number(integer(DLQ_HEADERS.sourcePartition)),
    offset: BigInt(integer(DLQ_HEADERS.sourceOffset)),
    timestamp: Number(integer(DLQ_HEADERS.sourceTimestamp)),
    key: message.key == null ? null : toBuffer(message.key),
    value: message.value == null ? null : toBuffer(message.value),
    headers: originalHeaders,
  };
  return {
    record,
    reason: reason as DeadLetterReason,
    errorClass: text(DLQ_HEADERS.errorClass),
    message: text(DLQ_HEADERS.errorMessage),
  };
}

/**
 * The dead letter for a record whose processing threw: a DeserializationError keeps its reason,
 * anything else is 'processing-failed'. (RetriableError must not get here: it is not the record's fault.)
 */
export function deadLetterFor(record: RawRecord, error: unknown): DeadLetter {
  if (error instanceof DeserializationError) {
    return { record, reason: error.reason, errorClass: error.name, message: error.message };
  }
  if (error instanceof Error) {
    return {
      record,
      reason: 'processing-failed',
      errorClass: error.name || error.constructor.name,
      message: error.message,
    };
  }
  return { record, reason: 'processing-failed', errorClass: typeof error, message: String(error) };
}

function toBuffer(value: Buffer | Uint8Array | string): Buffer {
  if (Buffer.isBuffer(value)) return value;
  return typeof value === 'string'
    ? Buffer.from(value, 'utf8')
    : Buffer.from(value.buffer, value.byteOffset, value.byteLength);
}

/**
 * The original size of a letter that was too large for the DLQ (its `tributary.dlq.truncated`
 * header), or undefined for a letter that carries its record whole.
 */
export function truncatedSize(message: IncomingDlqMessage): number | undefined {
  const value = message.headers?.[DLQ_HEADERS.truncated];
  const single = typeof value === 'string' || Buffer.isBuffer(value) ? value : value?.[value.length - 1];
  return single === undefined ? undefined : Number(toBuffer(single).toString('utf8'));
}

/** Cuts at a character boundary (never half a UTF-8 sequence) and marks the cut. */
function truncateUtf8(text: string, maxBytes: number): Buffer {
  const full = Buffer.from(text, 'utf8');
  if (full.length <= maxBytes) return full;
  const marker = Buffer.from('…', 'utf8');
  if (maxBytes < marker.length) return Buffer.alloc(0);
  let end = maxBytes - marker.length;
  // Back up over continuation bytes (10xxxxxx) to the start of a character.
  while (end > 0 && (full[end]! & 0xc0) === 0x80) end--;
  return Buffer.concat([full.subarray(0, end), marker]);
}
