/**
 * Key-value store for processors. The whole store is resident in memory (loaded on open) so reads are
 * synchronous on the hot path; writes are remembered as dirty keys and reach LevelDB at commit.
 */
import { decodeValue, encodeValue } from './codec.js';
import type { ManagedStore, StateDb, TextSublevel, WriteBatch } from './db.js';
import type { StoreView } from '../core/task.js';
import { StoreQueryError, decodeCursor, pageOf } from '../core/store-reads.js';
import { storeLevelName } from './store-manifest.js';

/** How entries are written (the store manifest compares it): JSON text per key. */
export const KEY_VALUE_FORMAT = 'kv-json/1';

/** The view a processor gets of its store. Values must be JSON-serializable (bigint and Buffer allowed). */
export interface KeyValueStore<V> {
  readonly name: string;
  get(key: string): V | undefined;
  has(key: string): boolean;
  put(key: string, value: V): void;
  delete(key: string): void;
  /** Entries in insertion order. */
  entries(): IterableIterator<[string, V]>;
  readonly size: number;
}

export class KeyValueStoreImpl<V> implements KeyValueStore<V>, ManagedStore {
  readonly kind = 'key-value' as const;
  private readonly level: TextSublevel;
  private readonly data = new Map<string, V>();
  private dirty = new Set<string>();

  constructor(
    db: StateDb,
    readonly name: string,
  ) {
    this.level = db.textLevel(storeLevelName('key-value', name));
  }

  async load(): Promise<void> {
    for await (const [key, text] of this.level.iterator()) this.data.set(key, decodeValue<V>(text));
  }

  get(key: string): V | undefined {
    return this.data.get(key);
  }

  has(key: string): boolean {
    return this.data.has(key);
  }

  put(key: string, value: V): void {
    this.data.set(key, value);
    this.dirty.add(key);
  }

  delete(key: string): void {
    if (this.data.delete(key)) this.dirty.add(key);
  }

  entries(): IterableIterator<[string, V]> {
    return this.data.entries();
  }

  get size(): number {
    return this.data.size;
  }

  collectWrites(batch: WriteBatch): void {
    for (const key of this.dirty) {
      // Serialized at commit, not at put: a value mutated in place after put() is written as it is now.
      if (this.data.has(key)) batch.put(this.level, this.name, key, encodeValue(this.data.get(key)));
      else batch.del(this.level, this.name, key);
    }
  }

  async committed(): Promise<void> {
    this.dirty = new Set();
  }

  view(): StoreView {
    return {
      name: this.name,
      kind: this.kind,
      entries: async ({ limit = Infinity, after } = {}) =>
        [...this.data.keys()]
          .sort()
          .filter((key) => after === undefined || key > after)
          .slice(0, limit)
          .map((key) => ({ key, value: this.data.get(key) })),
      read: async ({ limit = Infinity, after } = {}) => {
        const from = after === undefined ? undefined : decodeCursor(after);
        if (from !== undefined && typeof from !== 'string')
          throw new StoreQueryError(`"${after}" is not a cursor of a key-value store`);
        const keys = [...this.data.keys()].filter((key) => from === undefined || key > from).sort();
        return pageOf(
          keys,
          limit,
          (key) => key,
          (key) => ({ key, value: this.data.get(key) }),
        );
      },
      lookup: async (key) =>
        this.data.has(key) ? { kind: 'key-value', value: this.data.get(key) } : undefined,
      approximateSize: () => this.data.size,
    };
  }
}
