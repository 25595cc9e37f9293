/**
 * Reading a DLQ topic back and replaying what is in it (the `tributary dlq` command), so the DLQ is
 * not a write-only place. Dead letters are parsed with the envelope of serde/dlq.ts; a replayed record
 * is the original one (key, value, headers, timestamp), without the `tributary.dlq.*` headers.
 */
import type { DeadLetter } from '../core/records.js';
import { NotADeadLetterError, parseDlqMessage } from '../serde/dlq.js';
import type { PublishedMessage, TopicTools } from './kafka/client.js';

/** A dead letter and where it sits in the DLQ topic. */
export interface StoredDeadLetter {
  dlqPartition: number;
  dlqOffset: bigint;
  letter: DeadLetter;
}

/** Which dead letters to list or replay; every criterion given must hold. */
export interface DeadLetterSelection {
  /** Only these reasons (e.g. `decode-failed`). */
  reasons?: readonly string[];
  /** Only dead letters of this partition of their source topic. */
  sourcePartition?: number;
  /** At most this many, oldest first (by DLQ partition and offset). */
  limit?: number;
}

export interface DeadLetterListing {
  /** The selected dead letters, in DLQ partition and offset order. */
  letters: StoredDeadLetter[];
  /** Dead letters in the topic before selection. */
  total: number;
  /** Records of the topic that are not tributary dead letters (written by something else), skipped. */
  foreign: number;
}

export async function listDeadLetters(
  tools: TopicTools,
  dlqTopic: string,
  selection: DeadLetterSelection = {},
): Promise<DeadLetterListing> {
  const records = await tools.readTopic(dlqTopic);
  const all: StoredDeadLetter[] = [];
  let foreign = 0;
  for (const record of records) {
    try {
      all.push({ dlqPartition: record.partition, dlqOffset: record.offset, letter: parseDlqMessage(record) });
    } catch (error) {
      if (!(error instanceof NotADeadLetterError)) throw error;
      foreign++;
    }
  }
  const { reasons, sourcePartition, limit } = selection;
  const selected = all.filter(
    ({ letter }) =>
      (reasons === undefined || reasons.includes(letter.reason)) &&
      (sourcePartition === undefined || letter.record.partition === sourcePartition),
  );
  return { letters: limit === undefined ? selected : selected.slice(0, limit), total: all.length, foreign };
}

/** The original records of the dead letters, addressed to their source topic or to `to`. */
export function replayMessagesOf(letters: readonly StoredDeadLetter[], to?: string): PublishedMessage[] {
  return letters.map(({ letter: { record } }) => ({
    topic: to ?? record.topic,
    key: record.key,
    value: record.value,
    headers: record.headers,
    timestamp: record.timestamp,
  }));
}
