import type { Serde } from '../../../src/serde/types.js';
import { DeserializationError } from '../../../src/serde/types.js';

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
