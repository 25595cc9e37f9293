import type { Serde } from '../../../src/serde/types.js';
import { DeserializationError } from '../../../src/serde/types.js';
import type { OutputRecord, StateChange, TaskChangelog, TaskCommit } from '../../../src/core/task.js';
import type { RawRecord } from '../../../src/core/records.js';

/** Minimal JSON serde for driver tests (the real ones live in src/serde, owned elsewhere). */
export function jsonSerde<T>(): Serde<T> {
  return {
    name: 'test-json',
    serialize: (value) => Buffer.from(JSON.stringify(value)),
    deserialize: (data) => {
      if (data === null) throw new DeserializationError('decode-failed', 'null value');
      try {
        return JSON.parse(data.toString('utf8')) as T;
      } catch (error) {
        throw new DeserializationError('decode-failed', 'not JSON', { cause: error });
      }
    },
  };
}

export interface UsageEvent {
  id: string;
  subject: string;
  value: number;
  /** Event time, epoch ms. */
  time: number;
}

export const T0 = Date.UTC(2024, 0, 1, 12, 0, 0);

/** Sorts window results the way a reader of the sink table would look at them. */
export function byWindowAndKey<R extends { windowStart: number; key: unknown; version: number }>(
  rows: R[],
): R[] {
  return [...rows].sort(
    (a, b) =>
      a.windowStart - b.windowStart ||
      JSON.stringify(a.key).localeCompare(JSON.stringify(b.key)) ||
      a.version - b.version,
  );
}

/**
 * An in-memory changelog: per store, its change records in order (offset = index), and the output
 * records the transactions carried. Set
 * `failNextWrite` to lose the process right after the next transaction (the records are in the
 * changelog, the write rejects as a kill before the LevelDB batch would).
 */
export function memoryChangelog(): TaskChangelog & {
  records: Map<string, StateChange[]>;
  /** The output records of the transactions, in order (a failed write's too: they were sent). */
  outputs: OutputRecord[];
  failNextWrite: boolean;
} {
  const records = new Map<string, StateChange[]>();
  const changelog = {
    records,
    outputs: [] as OutputRecord[],
    failNextWrite: false,
    write: async ({ changes, records: outputs }: TaskCommit) => {
      changelog.outputs.push(...outputs);
      const offsets = new Map<string, bigint>();
      for (const change of changes) {
        const log = records.get(change.store) ?? [];
        log.push(change);
        records.set(change.store, log);
        offsets.set(change.store, BigInt(log.length - 1));
      }
      if (changelog.failNextWrite) {
        changelog.failNextWrite = false;
        throw new Error('killed after the changelog transaction, before the LevelDB write');
      }
      return offsets;
    },
    restore: async (target: Parameters<TaskChangelog['restore']>[0]) => {
      for (const [store, log] of records) {
        const from = Number((target.local.get(store) ?? -1n) + 1n);
        if (from < log.length) await target.apply(store, log.slice(from), BigInt(log.length - 1));
      }
    },
  };
  return changelog;
}

/** A JSON-encoded usage event as partition 0 of topic `usage` hands it over at `offset`. */
export function usageRecord(offset: number, event: UsageEvent): RawRecord {
  return {
    topic: 'usage',
    partition: 0,
    offset: BigInt(offset),
    timestamp: event.time,
    key: null,
    value: Buffer.from(JSON.stringify(event)),
    headers: {},
  };
}
