/**
 * Key-value store for processors, resident in LevelDB and read through a bounded cache, so a store may
 * hold more keys than memory:
 * - reads stay synchronous: a cache hit answers, a miss reads LevelDB with `getSync` and caches the
 *   answer (a missing key too); `getMany` and the engine's per-batch prefetch warm the cache with one
 *   `getMany` on LevelDB's thread pool instead;
 * - writes (puts and deletes) are pinned in memory until the commit writes them, then become clean
 *   cache entries; after each commit the least recently used clean entries are dropped down to the
 *   store's share of `state.cacheMaxBytes`, so an eviction never loses a write;
 * - `size` is exact without a scan: the committed count lives in a meta entry written with each commit
 *   that changes it, plus the net change of the uncommitted writes;
 * - opening reads that count only: constant time whatever the store holds.
 */
import { decodeValue, encodeValue } from './codec.js';
import type { ManagedStore, StateDb, TextSublevel, WriteBatch } from './db.js';
import type { CacheMemory, StoreView } from '../core/task.js';
import { CacheShareAccount } from './cache-share.js';
import { StoreQueryError, decodeCursor, pageOf } from '../core/store-reads.js';
import { storeLevelName, storeMetaKeys } from './store-layout.js';

/** How entries are written (the store manifest compares it): JSON text per key. */
export const KEY_VALUE_FORMAT = 'kv-json/1';

/**
 * Memory a cached entry costs beyond its key's characters and its encoded value's length: the Map slot,
 * the entry object, the key string's header and the decoded value's header. Measured on Node 20 as the
 * heap growth of 200k cached entries (short keys; numbers, small objects and strings as values): 150 to
 * 167 bytes per entry beyond key and text length.
 */
export const KEY_VALUE_ENTRY_OVERHEAD_BYTES = 160;

/** A key absent from the store: cached like a value, so a repeated miss costs no LevelDB read. */
const ABSENT: unique symbol = Symbol('absent');
type Cached<V> = V | typeof ABSENT;

/** The view a processor gets of its store. Values must be JSON-serializable (bigint and Buffer allowed). */
export interface KeyValueStore<V> {
  readonly name: string;
  /**
   * The value, from the cache or else read from LevelDB synchronously. Change a value with put(): a
   * value changed in place without put() may be dropped from the cache and read back as it was.
   */
  get(key: string): V | undefined;
  has(key: string): boolean;
  put(key: string, value: V): void;
  delete(key: string): void;
  /** Reads the keys not cached with one LevelDB `getMany` and caches them, so later get/has answer from memory. */
  getMany(keys: Iterable<string>): Promise<void>;
  /**
   * Every entry in key order (UTF-8 byte order, LevelDB's): the committed entries merged with the
   * uncommitted writes, as of the start of the iteration (writes made while iterating are not seen).
   * Asynchronous: a store may be larger than memory.
   */
  entries(): AsyncIterableIterator<[string, V]>;
  /** The number of entries, exact (uncommitted writes included). */
  readonly size: number;
}

/** An uncommitted write: the value (ABSENT for a delete) and whether the key existed as of the last commit. */
interface PendingWrite<V> {
  value: Cached<V>;
  /** Whether LevelDB holds the key as of the last commit; undefined until looked up (a blind write). */
  before: boolean | undefined;
  /** The entry's estimated bytes once committed (measured when the commit encodes it). */
  bytes: number;
}

interface CleanEntry<V> {
  readonly value: Cached<V>;
  readonly bytes: number;
}

export interface KeyValueStoreOptions {
  /** The cache memory this store takes a share of (default: a budget of its own, `state.cacheMaxBytes`'s default). */
  cache?: CacheMemory;
}

export class KeyValueStoreImpl<V> implements KeyValueStore<V>, ManagedStore {
  readonly kind = 'key-value' as const;
  private readonly level: TextSublevel;
  private readonly countKey: string;
  private readonly share: CacheShareAccount;
  /** Committed entries (and known-absent keys) in least-recently-used order: the first is evicted first. */
  private readonly clean = new Map<string, CleanEntry<V>>();
  private cleanBytes = 0;
  /** Writes since the last commit, pinned until it writes them; never also in `clean`. */
  private dirty = new Map<string, PendingWrite<V>>();
  /** Dirty keys whose committed existence is not known yet (counted into `size` once looked up). */
  private unresolved = new Set<string>();
  /** Entries as of the last commit. */
  private committedCount = 0;
  /** Net change of the dirty writes whose committed existence is known. */
  private pendingDelta = 0;
  /** Whether the committed count must be written although it did not change (counted by a scan at open). */
  private countNeedsWrite = false;
  /** Keys the coming batch will read, named by the engine's pre-pass (beginBatch/want/prefetch). */
  private wanted: string[] = [];
  private synchronousReads = 0;

  constructor(
    private readonly db: StateDb,
    readonly name: string,
    options: KeyValueStoreOptions = {},
  ) {
    this.level = db.textLevel(storeLevelName('key-value', name));
    this.countKey = storeMetaKeys('key-value', name)[0] as string;
    this.share = new CacheShareAccount(options.cache);
  }

  /** Reads the committed count only; a folder written before counts were kept is counted once (keys only). */
  async load(): Promise<void> {
    const text = await this.db.getMeta(this.countKey);
    if (text !== undefined) {
      this.committedCount = Number(text);
      return;
    }
    let count = 0;
    for await (const key of this.level.keys()) if (key !== undefined) count++;
    this.committedCount = count;
    this.countNeedsWrite = count > 0;
  }

  get(key: string): V | undefined {
    const pending = this.dirty.get(key);
    const value = pending !== undefined ? pending.value : this.readCommitted(key);
    return value === ABSENT ? undefined : value;
  }

  has(key: string): boolean {
    const pending = this.dirty.get(key);
    return (pending !== undefined ? pending.value : this.readCommitted(key)) !== ABSENT;
  }

  put(key: string, value: V): void {
    this.write(key, value);
  }

  delete(key: string): void {
    this.write(key, ABSENT);
  }

  get size(): number {
    this.resolveExistence();
    return this.committedCount + this.pendingDelta;
  }

  async getMany(keys: Iterable<string>): Promise<void> {
    const missing = [...new Set(keys)].filter((key) => !this.dirty.has(key) && !this.clean.has(key));
    if (missing.length === 0) return;
    const texts = await this.level.getMany(missing);
    missing.forEach((key, i) => {
      // A write or a synchronous read while the read was under way knows better.
      if (this.dirty.has(key) || this.clean.has(key)) return;
      const text = texts[i];
      this.remember(key, text === undefined ? ABSENT : decodeValue<V>(text), entryBytes(key, text));
    });
    this.evictToFit();
  }

  entries(): AsyncIterableIterator<[string, V]> {
    return this.scan(undefined);
  }

  // ---- the engine's batch protocol: want() each key the batch will read, then await prefetch() ----

  /** Starts naming the keys of a new batch. */
  /** Any key may be on disk only: the pre-pass named by the `prefetch` option always pays. */
  readonly wantsPrefetch = true;

  beginBatch(): void {
    this.wanted = [];
  }

  /** A key the coming batch will read. */
  want(key: string): void {
    this.wanted.push(key);
  }

  /** Reads the wanted keys that are not cached, in one `getMany`. */
  async prefetch(): Promise<void> {
    const wanted = this.wanted;
    this.wanted = [];
    await this.getMany(wanted);
  }

  /** LevelDB reads made synchronously, on a cache miss or to count a blind write (tests and diagnostics). */
  get syncReads(): number {
    return this.synchronousReads;
  }

  /** Estimated bytes of the clean cache (after a commit, everything the store keeps in memory). */
  get residentBytes(): number {
    return this.cleanBytes;
  }

  /** The bytes this store may keep resident: its share of the cache memory. */
  get limitBytes(): number {
    return this.share.limitBytes;
  }

  // ---- ManagedStore ----

  collectWrites(batch: WriteBatch): void {
    if (this.dirty.size > 0) {
      this.resolveExistence();
      for (const [key, pending] of this.dirty) {
        if (pending.value === ABSENT) {
          pending.bytes = entryBytes(key, undefined);
          // A key that never existed needs no tombstone.
          if (pending.before === true) batch.del(this.level, this.name, key);
        } else {
          // Serialized at commit, not at put: a value mutated in place after put() is written as it is now.
          const text = encodeValue(pending.value);
          pending.bytes = entryBytes(key, text);
          batch.put(this.level, this.name, key, text);
        }
      }
    }
    // Goes into the same batch: StateDb.commit writes the meta entries put while stores collect.
    if (this.pendingDelta !== 0 || this.countNeedsWrite)
      this.db.putMeta(this.countKey, String(this.committedCount + this.pendingDelta));
  }

  async committed(): Promise<void> {
    this.committedCount += this.pendingDelta;
    this.pendingDelta = 0;
    this.countNeedsWrite = false;
    for (const [key, pending] of this.dirty) this.remember(key, pending.value, pending.bytes);
    this.dirty = new Map();
    this.evictToFit();
  }

  view(): StoreView {
    return {
      name: this.name,
      kind: this.kind,
      entries: async ({ limit = Infinity, after } = {}) => {
        const entries: Array<{ key: string; value: unknown }> = [];
        if (limit <= 0) return entries;
        for await (const [key, value] of this.scan(after)) {
          entries.push({ key, value });
          if (entries.length >= limit) break;
        }
        return entries;
      },
      read: async ({ limit = Infinity, after } = {}) => {
        const from = after === undefined ? undefined : decodeCursor(after);
        if (from !== undefined && typeof from !== 'string')
          throw new StoreQueryError(`"${after}" is not a cursor of a key-value store`);
        // One more than the page: pageOf tells by it whether a next page exists.
        const rows: Array<[string, V]> = [];
        for await (const row of this.scan(from)) {
          rows.push(row);
          if (rows.length > limit) break;
        }
        return pageOf(
          rows,
          limit,
          ([key]) => key,
          ([key, value]) => ({ key, value }),
        );
      },
      lookup: async (key) => (this.has(key) ? { kind: 'key-value', value: this.get(key) } : undefined),
      approximateSize: () => this.size,
    };
  }

  release(): void {
    this.share.leave();
  }

  // ---- internals ----

  /** The committed value of `key` (ABSENT if none): from the cache, else read synchronously and cached. */
  private readCommitted(key: string): Cached<V> {
    const cached = this.clean.get(key);
    if (cached !== undefined) {
      // Most recently used goes last.
      this.clean.delete(key);
      this.clean.set(key, cached);
      return cached.value;
    }
    this.synchronousReads++;
    const text = this.level.getSync(key);
    const value = text === undefined ? ABSENT : decodeValue<V>(text);
    this.remember(key, value, entryBytes(key, text));
    // Between commits the clean entries still stay within the share (dirty ones are pinned).
    if (this.share.excessOf(this.cleanBytes) > 0) this.evictToFit();
    return value;
  }

  private write(key: string, value: Cached<V>): void {
    const pending = this.dirty.get(key);
    if (pending !== undefined) {
      if (pending.before !== undefined) this.pendingDelta += presence(value) - presence(pending.value);
      pending.value = value;
      return;
    }
    // The clean entry, if any, tells whether the key existed; the write replaces it.
    const cached = this.clean.get(key);
    let before: boolean | undefined;
    if (cached !== undefined) {
      this.clean.delete(key);
      this.cleanBytes -= cached.bytes;
      before = cached.value !== ABSENT;
      this.pendingDelta += presence(value) - (before ? 1 : 0);
    } else {
      this.unresolved.add(key);
    }
    this.dirty.set(key, { value, before, bytes: 0 });
  }

  /** Looks up whether each blind write's key existed as of the last commit (for `size` and the count). */
  private resolveExistence(): void {
    if (this.unresolved.size === 0) return;
    for (const key of this.unresolved) {
      const pending = this.dirty.get(key) as PendingWrite<V>;
      this.synchronousReads++;
      pending.before = this.level.getSync(key) !== undefined;
      this.pendingDelta += presence(pending.value) - (pending.before ? 1 : 0);
    }
    this.unresolved = new Set();
  }

  private remember(key: string, value: Cached<V>, bytes: number): void {
    const previous = this.clean.get(key);
    if (previous !== undefined) {
      this.clean.delete(key);
      this.cleanBytes -= previous.bytes;
    }
    this.clean.set(key, { value, bytes });
    this.cleanBytes += bytes;
  }

  /** Drops least recently used clean entries until the clean cache fits the share, and reports it. */
  private evictToFit(): void {
    let excess = this.share.excessOf(this.cleanBytes);
    if (excess > 0)
      for (const [key, entry] of this.clean) {
        this.clean.delete(key);
        this.cleanBytes -= entry.bytes;
        excess -= entry.bytes;
        if (excess <= 0) break;
      }
    this.share.report(this.cleanBytes);
  }

  /**
   * Entries after `after` in key order: LevelDB (an iterator reads a snapshot taken when it opens)
   * merged with the uncommitted writes as of the call.
   */
  private async *scan(after: string | undefined): AsyncGenerator<[string, V]> {
    const writes = [...this.dirty]
      .filter(([key]) => after === undefined || compareKeys(key, after) > 0)
      .map(([key, pending]) => [key, pending.value] as const)
      .sort(([a], [b]) => compareKeys(a, b));
    const iterator = this.level.iterator(after === undefined ? {} : { gt: after });
    try {
      let next = 0;
      for await (const [key, text] of iterator) {
        while (
          next < writes.length &&
          compareKeys((writes[next] as readonly [string, Cached<V>])[0], key) < 0
        ) {
          const [writtenKey, value] = writes[next++] as readonly [string, Cached<V>];
          if (value !== ABSENT) yield [writtenKey, value];
        }
        const write = writes[next];
        if (write !== undefined && write[0] === key) {
          next++;
          if (write[1] !== ABSENT) yield [key, write[1]];
          continue;
        }
        yield [key, decodeValue<V>(text)];
      }
      for (; next < writes.length; next++) {
        const [key, value] = writes[next] as readonly [string, Cached<V>];
        if (value !== ABSENT) yield [key, value];
      }
    } finally {
      await iterator.close();
    }
  }
}

function presence(value: unknown): number {
  return value === ABSENT ? 0 : 1;
}

/** Estimated memory of a cached entry (see KEY_VALUE_ENTRY_OVERHEAD_BYTES); `text` undefined: absent. */
function entryBytes(key: string, text: string | undefined): number {
  return key.length + (text?.length ?? 0) + KEY_VALUE_ENTRY_OVERHEAD_BYTES;
}

/**
 * Orders keys as LevelDB does (UTF-8 bytes, i.e. code points). UTF-16 code units order the same except
 * a surrogate (a code point above U+FFFF) against a unit from U+E000 up, which it must follow.
 */
export function compareKeys(a: string, b: string): number {
  const length = Math.min(a.length, b.length);
  for (let i = 0; i < length; i++) {
    const x = a.charCodeAt(i);
    const y = b.charCodeAt(i);
    if (x === y) continue;
    if (x >= 0xd800 && y >= 0xd800) {
      const xSurrogate = x <= 0xdfff;
      const ySurrogate = y <= 0xdfff;
      if (xSurrogate !== ySurrogate) return xSurrogate ? 1 : -1;
    }
    return x - y;
  }
  return a.length - b.length;
}
