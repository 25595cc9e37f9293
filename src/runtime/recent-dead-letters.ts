/**
 * The last dead letters this instance wrote to the DLQ, newest first, for the admin console
 * (`GET /dead-letters/recent`). A bounded ring in memory: it costs nothing per processed record (it is
 * fed by the delivery loop, per letter delivered) and forgets everything on restart; the DLQ topic
 * stays the record of truth (`tributary dlq <appId>`).
 */
import type { DeadLetter, DeadLetterReason } from '../core/records.js';

/** One dead letter as an operator reads it: where it came from, why, and a short look at its key. */
export interface RecentDeadLetter {
  /** When it reached the DLQ (epoch ms). */
  deliveredAt: number;
  topic: string;
  partition: number;
  offset: string;
  reason: DeadLetterReason;
  errorClass: string;
  message: string;
  /** The record key as UTF-8, cut to KEY_PREVIEW_CHARS (null when the record had none). */
  key: string | null;
  /** Size of the record's value in bytes (null for a tombstone). */
  valueBytes: number | null;
}

export const RECENT_DEAD_LETTERS = 50;
const KEY_PREVIEW_CHARS = 120;
const MESSAGE_CHARS = 500;

const cut = (text: string, max: number) => (text.length > max ? `${text.slice(0, max)}…` : text);

export class RecentDeadLetters {
  private readonly ring: Array<RecentDeadLetter | undefined>;
  /** Where the next letter goes; also how many were ever added. */
  private added = 0;

  constructor(readonly capacity: number = RECENT_DEAD_LETTERS) {
    if (!Number.isInteger(capacity) || capacity < 1) throw new Error('capacity must be a positive integer');
    this.ring = new Array<RecentDeadLetter | undefined>(capacity);
  }

  add(letter: DeadLetter, deliveredAt: number): void {
    const { record } = letter;
    this.ring[this.added % this.capacity] = {
      deliveredAt,
      topic: record.topic,
      partition: record.partition,
      offset: record.offset.toString(),
      reason: letter.reason,
      errorClass: letter.errorClass,
      message: cut(letter.message, MESSAGE_CHARS),
      key: record.key === null ? null : cut(record.key.toString('utf8'), KEY_PREVIEW_CHARS),
      valueBytes: record.value === null ? null : record.value.length,
    };
    this.added++;
  }

  /** Newest first, at most `capacity`. */
  list(): RecentDeadLetter[] {
    const count = Math.min(this.added, this.capacity);
    const letters: RecentDeadLetter[] = [];
    for (let i = 1; i <= count; i++) letters.push(this.ring[(this.added - i) % this.capacity]!);
    return letters;
  }

  /** Letters added since the instance started (the ring keeps only the last `capacity`). */
  get total(): number {
    return this.added;
  }
}
