/**
 * Cuts a partition's pending dead letters into DLQ transactions that the broker accepts: each one's
 * record batch stays within `dlq.maxBatchBytes` (below the broker's `message.max.bytes`), so a run of
 * large bad records is never one oversized batch that the broker refuses forever.
 *
 * Every transaction also carries the DLQ progress offset ("every dead letter of source offsets below
 * this is in the DLQ"), so the letters of one source record always travel together; when they cannot
 * fit together at full size, each gets an equal share of the batch and goes out without its record
 * (see DlqMessageOptions.maxBytes).
 */
import type { DeadLetter } from '../core/records.js';
import { RECORD_BATCH_OVERHEAD_BYTES, dlqMessageBytes, toDlqMessage } from '../serde/dlq.js';
import type { DlqMessage } from '../serde/dlq.js';

export interface DeadLetterTransaction {
  letters: DeadLetter[];
  messages: DlqMessage[];
  /** The DLQ progress after this transaction: the source offset after its last letter. */
  nextOffset: bigint;
  /** The record batch size, as dlqMessageBytes counts it. */
  bytes: number;
}

/**
 * `letters` are one source partition's, in offset order (as the DLQ outbox holds them). Returns the
 * transactions in order; together they hold every letter once.
 */
export function packDeadLetters(
  letters: readonly DeadLetter[],
  maxBatchBytes: number,
): DeadLetterTransaction[] {
  const budget = maxBatchBytes - RECORD_BATCH_OVERHEAD_BYTES;
  const transactions: DeadLetterTransaction[] = [];
  let current: DeadLetterTransaction | undefined;
  for (const group of bySourceRecord(letters)) {
    const share = Math.floor(budget / group.length);
    const messages = group.map((letter) => toDlqMessage(letter, { maxBytes: share }));
    const bytes = messages.reduce((sum, message) => sum + dlqMessageBytes(message), 0);
    if (current && current.bytes + bytes > maxBatchBytes) {
      transactions.push(current);
      current = undefined;
    }
    current ??= { letters: [], messages: [], nextOffset: 0n, bytes: RECORD_BATCH_OVERHEAD_BYTES };
    current.letters.push(...group);
    current.messages.push(...messages);
    current.bytes += bytes;
    current.nextOffset = group[0]!.record.offset + 1n;
  }
  if (current) transactions.push(current);
  return transactions;
}

/** Consecutive letters of the same source record (a record failing in two branches has two). */
function bySourceRecord(letters: readonly DeadLetter[]): DeadLetter[][] {
  const groups: DeadLetter[][] = [];
  for (const letter of letters) {
    const last = groups[groups.length - 1];
    const head = last?.[0];
    if (
      last &&
      head &&
      head.record.topic === letter.record.topic &&
      head.record.offset === letter.record.offset
    )
      last.push(letter);
    else groups.push([letter]);
  }
  return groups;
}
