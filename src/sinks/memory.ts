/** An in-memory sink for tests and examples: rows written to it are kept in `rows`. */
import type { SinkSpec, SinkWriter } from '../core/sink.js';

export interface MemorySink<T> extends SinkSpec<T> {
  readonly kind: 'memory';
  /** Every row written by any writer of this sink, in write order. */
  readonly rows: T[];
}

export function memorySink<T>(name: string): MemorySink<T> {
  const rows: T[] = [];
  return {
    kind: 'memory',
    name,
    rows,
    async open(): Promise<SinkWriter<T>> {
      return {
        async write(batch) {
          rows.push(...batch);
        },
        async close() {},
      };
    },
  };
}
