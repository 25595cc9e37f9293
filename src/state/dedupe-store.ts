/**
 * Dedupe store: remembers the ids seen within a horizon of event time.
 *
 * Memory is the constraint (OpenMeter keeps 32 days of ids), so ids are not kept as strings: each id is
 * reduced to a 64-bit hash in an open-addressing table of typed arrays (16 bytes a slot, at most half
 * full: about 32 bytes per remembered id, no per-id objects for the garbage collector). The price is a
 * false "duplicate" when two distinct ids share all 64 bits: probability about n^2 / 2^65 for n ids in
 * the horizon (3e-8 for 1M ids, 3e-4 for 100M).
 *
 * Persistence: each commit writes the hashes first seen since the previous commit as one packed binary
 * chunk per time bucket (key `<bucket start>!<chunk seq>`), so a commit costs a handful of LevelDB puts
 * however many ids arrived. Expiry is per bucket: once the stream time passes bucket end + horizon the
 * bucket's chunks go in one range delete. Lookups ignore expired buckets themselves, so results never
 * depend on when that physical cleanup happens.
 */
import { parseSortableTime, sortableHex, sortableTime } from './codec.js';
import type { BinarySublevel, ManagedStore, StateDb, WriteBatch } from './db.js';
import type { StoreView } from '../core/task.js';
import { StoreQueryError, decodeCursor, pageOf, storeTime } from '../core/store-reads.js';
import { storeLevelName, storeMetaKeys } from './store-manifest.js';

/** How entries are written (the store manifest compares it): packed 64-bit hash chunks per bucket. */
export const DEDUPE_FORMAT = 'dedupe-hash-chunks/1';

const EMPTY = -Infinity;
/** At most 32768 ids (256 KiB) per stored chunk. */
const CHUNK_WORDS = 65536;
const INITIAL_CAPACITY = 1024;

/** 64-bit hash of a string in two 32-bit lanes (cyrb53's mixing, keeping all 64 bits); results in hashHigh/hashLow. */
let hashHigh = 0;
let hashLow = 0;
function hashId(id: string): void {
  let h1 = 0xdeadbeef;
  let h2 = 0x41c6ce57;
  for (let i = 0; i < id.length; i++) {
    const ch = id.charCodeAt(i);
    h1 = Math.imul(h1 ^ ch, 2654435761);
    h2 = Math.imul(h2 ^ ch, 1597334677);
  }
  h1 = Math.imul(h1 ^ (h1 >>> 16), 2246822507);
  h1 ^= Math.imul(h2 ^ (h2 >>> 13), 3266489909);
  h2 = Math.imul(h2 ^ (h2 >>> 16), 2246822507);
  h2 ^= Math.imul(h1 ^ (h1 >>> 13), 3266489909);
  hashHigh = h2 >>> 0;
  hashLow = h1 >>> 0;
}

export interface DedupeOptions {
  /** How long (event time) an id is remembered. */
  horizon: number;
  /** Expiry granularity; ids live between `horizon` and `horizon + bucket`. Default: horizon / 64. */
  bucket?: number;
}

export class DedupeStore implements ManagedStore {
  readonly kind = 'dedupe' as const;
  readonly horizon: number;
  readonly bucketSize: number;
  private readonly level: BinarySublevel;
  private high = new Uint32Array(INITIAL_CAPACITY);
  private low = new Uint32Array(INITIAL_CAPACITY);
  /** Bucket number of each slot, EMPTY for a free slot. */
  private buckets = new Float64Array(INITIAL_CAPACITY).fill(EMPTY);
  private count = 0;
  private minBucket = Infinity;
  /** Hashes first seen since the last commit, per bucket, as [high, low, high, low, ...]. */
  private fresh = new Map<number, number[]>();
  /** The list of `fresh` used last (cleared whenever `fresh` is replaced or pruned). */
  private freshBucket = NaN;
  private freshList: number[] | undefined;
  private nextChunk = 0;
  /** Chunks the pending commit writes (nextChunk moves past them once it is durable). */
  private chunksWritten = 0;
  private expiredBefore = -Infinity;
  private clearedBefore = -Infinity;

  constructor(
    private readonly db: StateDb,
    readonly name: string,
    options: DedupeOptions,
  ) {
    if (!(options.horizon > 0)) throw new Error(`dedupe "${name}": horizon must be positive`);
    this.horizon = options.horizon;
    this.bucketSize = options.bucket ?? Math.max(1, Math.ceil(options.horizon / 64));
    this.level = db.binaryLevel(storeLevelName('dedupe', name));
  }

  async load(): Promise<void> {
    const chunkText = await this.db.getMeta(this.chunkMetaKey());
    this.nextChunk = chunkText === undefined ? 0 : Number(chunkText);
    for await (const [key, bytes] of this.level.iterator()) {
      const bucket = Math.floor(parseSortableTime(key.slice(0, key.indexOf('!'))) / this.bucketSize);
      // Copy: LevelDB's buffer may not be 4-byte aligned.
      const words = new Uint32Array(bytes.byteLength / 4);
      new Uint8Array(words.buffer).set(bytes);
      for (let i = 0; i < words.length; i += 2)
        this.remember(words[i] as number, words[i + 1] as number, bucket);
    }
  }

  /**
   * True when `id` was seen within the horizon (a duplicate); otherwise remembers it under the bucket of
   * `eventTime` and returns false. `streamTime` (max event time of the task) decides what has expired.
   */
  checkAndRemember(id: string, eventTime: number, streamTime: number): boolean {
    hashId(id);
    const liveFrom = this.liveFromBucket(streamTime);
    const bucket = Math.floor(eventTime / this.bucketSize);
    const slot = this.findSlot(hashHigh, hashLow);
    const existing = this.buckets[slot] as number;
    if (existing !== EMPTY && existing >= liveFrom) return true;
    if (bucket < liveFrom) return false; // already beyond the horizon: nothing to remember
    if (existing === EMPTY) {
      this.buckets[slot] = bucket;
      this.high[slot] = hashHigh;
      this.low[slot] = hashLow;
      this.count++;
      if (this.count * 2 > this.buckets.length) this.resize(this.buckets.length * 2, liveFrom);
    } else {
      this.buckets[slot] = bucket; // an expired leftover: reuse its slot
    }
    if (bucket < this.minBucket) this.minBucket = bucket;
    // Consecutive ids nearly always share a bucket: reuse the last list instead of a Map lookup.
    let list = bucket === this.freshBucket ? this.freshList : this.fresh.get(bucket);
    if (list === undefined) {
      list = [];
      this.fresh.set(bucket, list);
    }
    this.freshBucket = bucket;
    this.freshList = list;
    list.push(hashHigh, hashLow);
    return false;
  }

  /** Whether `id` counts as seen now (no side effects); for tests and inspection. */
  contains(id: string, streamTime: number): boolean {
    hashId(id);
    const bucket = this.buckets[this.findSlot(hashHigh, hashLow)] as number;
    return bucket !== EMPTY && bucket >= this.liveFromBucket(streamTime);
  }

  /** Drops expired ids from memory and schedules the range delete of their chunks for after the commit. */
  expire(streamTime: number): void {
    const liveFrom = this.liveFromBucket(streamTime);
    if (liveFrom > this.expiredBefore) this.expiredBefore = liveFrom;
    for (const bucket of this.fresh.keys()) if (bucket < liveFrom) this.fresh.delete(bucket);
    this.freshBucket = NaN;
    this.freshList = undefined;
    if (this.minBucket < liveFrom) this.resize(this.buckets.length, liveFrom);
  }

  /** Expiry rides on every commit, so the checkpoint never carries ids past the horizon. */
  beforeCommit(streamTime: number): void {
    this.expire(streamTime);
  }

  get size(): number {
    return this.count;
  }

  collectWrites(batch: WriteBatch): void {
    let chunk = this.nextChunk;
    for (const [bucket, hashes] of this.fresh) {
      // Chunks stay small enough to be one changelog record each (a Kafka record is at most ~1 MB).
      for (let from = 0; from < hashes.length; from += CHUNK_WORDS) {
        const words = Uint32Array.from(hashes.slice(from, from + CHUNK_WORDS));
        const key = `${sortableTime(bucket * this.bucketSize)}!${sortableHex(chunk++, 8)}`;
        batch.putBinary(this.level, this.name, key, new Uint8Array(words.buffer));
      }
    }
    this.chunksWritten = chunk - this.nextChunk;
    if (this.chunksWritten > 0) this.db.putMeta(this.chunkMetaKey(), String(chunk));
  }

  async committed(): Promise<void> {
    this.nextChunk += this.chunksWritten;
    this.chunksWritten = 0;
    this.fresh = new Map();
    this.freshBucket = NaN;
    this.freshList = undefined;
    if (this.expiredBefore > this.clearedBefore) {
      // Deleted with the next commit, each chunk a tombstone in the changelog; until then lookups
      // already ignore them, so results never depend on when they go.
      const expired = await this.level.keys({ lt: sortableTime(this.expiredBefore * this.bucketSize) }).all();
      this.db.queueDeletes(this.level, this.name, expired);
      this.clearedBefore = this.expiredBefore;
    }
  }

  view(): StoreView {
    return {
      name: this.name,
      kind: this.kind,
      entries: async ({ limit = Infinity, after } = {}) => {
        const perBucket = new Map<number, number>();
        for (const bucket of this.buckets)
          if (bucket !== EMPTY) perBucket.set(bucket, (perBucket.get(bucket) ?? 0) + 1);
        return [...perBucket.entries()]
          .sort((a, b) => a[0] - b[0])
          .map(([bucket, ids]) => ({
            key: sortableTime(bucket * this.bucketSize),
            value: { bucketStart: bucket * this.bucketSize, ids },
          }))
          .filter((row) => after === undefined || row.key > after)
          .slice(0, limit);
      },
      read: async ({ limit = Infinity, after } = {}) => {
        const from = after === undefined ? undefined : decodeCursor(after);
        if (from !== undefined && typeof from !== 'number')
          throw new StoreQueryError(`"${after}" is not a cursor of a dedupe store`);
        const perBucket = new Map<number, number>();
        for (const bucket of this.buckets)
          if (bucket !== EMPTY && bucket >= this.expiredBefore && (from === undefined || bucket > from))
            perBucket.set(bucket, (perBucket.get(bucket) ?? 0) + 1);
        const rows = [...perBucket.entries()].sort((a, b) => a[0] - b[0]);
        return pageOf(
          rows,
          limit,
          ([bucket]) => bucket,
          ([bucket, ids]) => ({
            bucketStart: storeTime(bucket * this.bucketSize),
            bucketEnd: storeTime((bucket + 1) * this.bucketSize),
            ids,
            expiresAt: storeTime(this.expiryOf(bucket)),
          }),
        );
      },
      // Hashed the way checkAndRemember hashes, so the id is found by the same 64 bits.
      lookup: async (id) => {
        hashId(id);
        const bucket = this.buckets[this.findSlot(hashHigh, hashLow)] as number;
        // Expiry as of the last commit: the bucket of a remembered id is live from there on.
        if (bucket === EMPTY || bucket < this.expiredBefore) return undefined;
        return {
          kind: 'dedupe',
          seen: true,
          bucketStart: storeTime(bucket * this.bucketSize),
          expiresAt: storeTime(this.expiryOf(bucket)),
        };
      },
      approximateSize: () => this.count,
    };
  }

  /** The stream time from which a bucket's ids no longer count (see liveFromBucket). */
  private expiryOf(bucket: number): number {
    return (bucket + 1) * this.bucketSize + this.horizon;
  }

  private liveFromBucket(streamTime: number): number {
    return Math.floor((streamTime - this.horizon) / this.bucketSize);
  }

  private chunkMetaKey(): string {
    return storeMetaKeys('dedupe', this.name)[0] as string;
  }

  /** Slot holding the hash, or the free slot where it would go (linear probing). */
  private findSlot(high: number, low: number): number {
    const mask = this.buckets.length - 1;
    let slot = (low ^ Math.imul(high, 0x9e3779b1)) & mask;
    for (;;) {
      if (this.buckets[slot] === EMPTY || (this.low[slot] === low && this.high[slot] === high)) return slot;
      slot = (slot + 1) & mask;
    }
  }

  private remember(high: number, low: number, bucket: number): void {
    const slot = this.findSlot(high, low);
    const existing = this.buckets[slot] as number;
    if (existing === EMPTY) {
      this.high[slot] = high;
      this.low[slot] = low;
      this.count++;
      this.buckets[slot] = bucket;
      if (this.count * 2 > this.buckets.length) this.resize(this.buckets.length * 2, -Infinity);
    } else if (bucket > existing) {
      this.buckets[slot] = bucket;
    }
    if (bucket < this.minBucket) this.minBucket = bucket;
  }

  /** Rehashes into a table of `capacity` slots, keeping only buckets >= liveFrom. */
  private resize(capacity: number, liveFrom: number): void {
    const { high, low, buckets } = this;
    this.high = new Uint32Array(capacity);
    this.low = new Uint32Array(capacity);
    this.buckets = new Float64Array(capacity).fill(EMPTY);
    this.count = 0;
    this.minBucket = Infinity;
    for (let i = 0; i < buckets.length; i++) {
      const bucket = buckets[i] as number;
      if (bucket !== EMPTY && bucket >= liveFrom) this.remember(high[i] as number, low[i] as number, bucket);
    }
  }
}
