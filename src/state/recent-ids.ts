/**
 * The dedupe store's memory tier: the exact ids remembered most recently, found without touching disk
 * and without an object per id for the garbage collector to walk.
 *
 * An open-addressing table of typed arrays (24 bytes a slot, at most half full) maps an id's 64-bit
 * hash to its bucket and to where the exact id is kept: in the encoded chunk the commit wrote (the
 * chunk's bytes stay in memory while its ids are recent) or, until the commit, in the fresh arena,
 * where each new id is written in the chunk format as it arrives (no string kept per id; the commit
 * copies runs of entries into chunks). A hash match is confirmed against those exact bytes, so two
 * ids sharing a hash are two entries.
 *
 * Entries are never moved out one by one: a spilled or expired chunk's slots are marked dead (or left
 * to the bucket check) and the next resize drops them.
 */
import {
  CHUNK_MAX_BYTES,
  appendIdEntry,
  decodeIdChunk,
  entryBytesStart,
  entryEnd,
  maxEntryBytes,
} from './id-chunks.js';
import { hashAsciiId, hashId, idHash } from './id-hash.js';

const EMPTY = -Infinity;
/** A slot whose id went to disk: never live, reusable, dropped by the next resize. */
const DEAD = -Number.MAX_VALUE;
/** The chunk word of an id not committed yet: its offset word is its index in the fresh lists. */
const FRESH = 0xffffffff;
const INITIAL_CAPACITY = 1024;
/** Below every real bucket, above DEAD: nothing has expired yet. */
const LOWEST_LIVE = -Number.MAX_VALUE / 2;
/**
 * A slot is 24 bytes in one buffer, so a probe touches one cache line: six 32-bit words (hash high,
 * hash low, chunk number, offset, then the bucket as a float64 in words 4-5).
 */
const SLOT_BYTES = 24;
const SLOT_WORDS = 6;
const HIGH = 0;
const LOW = 1;
const CHUNK = 2;
const OFFSET = 3;
/** Float64 index of the bucket: slot * 3 + 2. */
const BUCKET_FLOATS = 3;
/**
 * Resize above this load, to a third of it or less: most lookups are of new ids, which probe to the
 * next empty slot, and that run grows fast beyond half full.
 */
const MAX_LOAD = 0.5;
const SLOTS_PER_ID_AFTER_RESIZE = 3;

/** Memory per recent id besides its chunk bytes: three table slots (the table is 17% to 50% full). */
export const RECENT_ID_SLOT_BYTES = SLOTS_PER_ID_AFTER_RESIZE * SLOT_BYTES;

export interface RecentChunk {
  readonly key: string;
  readonly bucket: number;
  readonly bytes: Uint8Array;
  /** Bytes this chunk costs in memory (its bytes and its ids' slots). */
  readonly cost: number;
}

export class RecentIds {
  private capacity = INITIAL_CAPACITY;
  private words = new Uint32Array(0);
  private floats = new Float64Array(0);
  /** Occupied slots, dead ones included (the resize trigger). */
  private occupied = 0;
  /** Chunks by number (numbers are reused once a chunk leaves). */
  private chunks: Array<RecentChunk | undefined> = [];
  private freeNumbers: number[] = [];
  /** Chunk numbers in the order they came (spill order), from `head`. */
  private order: number[] = [];
  private head = 0;
  private chunkCost = 0;
  /** The fresh ids' entries, in arrival order (chunk format), and per fresh id its start, bucket and slot. */
  private arena = Buffer.allocUnsafeSlow(64 * 1024);
  private arenaUsed = 0;
  private freshStarts: number[] = [];
  private freshBuckets: number[] = [];
  private freshSlots: number[] = [];
  /** Buckets below this are expired: their slots are never live, their chunks may be gone. */
  private liveFrom = LOWEST_LIVE;
  /** Where the last lookup() that found nothing would insert the id. */
  private insertAt = -1;

  constructor() {
    this.allocate(INITIAL_CAPACITY);
  }

  /** Memory the committed recent ids cost (chunks and slots); fresh ids come on top until the commit. */
  get bytes(): number {
    return this.chunkCost;
  }

  get chunkCount(): number {
    return this.order.length - this.head;
  }

  /**
   * The live bucket of `id` (hash `high`/`low`), or -Infinity when it is not a live recent id.
   * Buckets below `liveFrom` count as absent.
   */
  lookup(id: string, high: number, low: number, liveFrom: number): number {
    // The query's horizon, not remembered: only expire() moves the table's own.
    const floor = liveFrom > this.liveFrom ? liveFrom : this.liveFrom;
    const { words, floats } = this;
    const mask = this.capacity - 1;
    let slot = (low ^ Math.imul(high, 0x9e3779b1)) & mask;
    let reusable = -1;
    for (;;) {
      const bucket = floats[slot * BUCKET_FLOATS + 2] as number;
      if (bucket === EMPTY) {
        this.insertAt = reusable >= 0 ? reusable : slot;
        return EMPTY;
      }
      if (bucket < floor) {
        // Dead or expired: its chunk may be gone, so it is never compared; a new id may take it.
        if (reusable < 0) reusable = slot;
      } else {
        const w = slot * SLOT_WORDS;
        if (words[w + LOW] === low && words[w + HIGH] === high && this.holds(slot, id)) return bucket;
      }
      slot = (slot + 1) & mask;
    }
  }

  /** Remembers a fresh id where the last lookup() of it (which found nothing) left off. */
  insertFresh(id: string, high: number, low: number, bucket: number): void {
    const slot = this.insertAt;
    const start = this.arenaUsed;
    if (start + maxEntryBytes(id) > this.arena.length) this.growArena(start + maxEntryBytes(id));
    this.arenaUsed = appendIdEntry(this.arena, start, id);
    this.put(slot, high, low, bucket, FRESH, this.freshStarts.length);
    this.freshStarts.push(start);
    this.freshBuckets.push(bucket);
    this.freshSlots.push(slot);
    if (this.occupied > this.capacity * MAX_LOAD) this.resize();
  }

  get freshCount(): number {
    return this.freshStarts.length;
  }

  /** The fresh ids still live and still in their slot, by bucket: their indexes in arrival order. */
  freshByBucket(): Map<number, number[]> {
    const byBucket = new Map<number, number[]>();
    let lastBucket = NaN;
    let last: number[] = [];
    for (let i = 0; i < this.freshStarts.length; i++) {
      const bucket = this.freshBuckets[i] as number;
      const slot = this.freshSlots[i] as number;
      const w = slot * SLOT_WORDS;
      if (bucket < this.liveFrom || this.words[w + CHUNK] !== FRESH || this.words[w + OFFSET] !== i) continue;
      if (bucket !== lastBucket) {
        let list = byBucket.get(bucket);
        if (list === undefined) byBucket.set(bucket, (list = []));
        lastBucket = bucket;
        last = list;
      }
      last.push(i);
    }
    return byBucket;
  }

  /**
   * Commits the fresh ids `fresh` (indexes from freshByBucket(), all of `bucket`): copies their
   * entries into chunks of at most CHUNK_MAX_BYTES, keeps each chunk as recent under the key `keyOf()`
   * gives it, and points the ids' slots into it. Returns the chunks to write.
   */
  commitFresh(
    bucket: number,
    fresh: readonly number[],
    keyOf: () => string,
  ): Array<{ key: string; bytes: Uint8Array }> {
    const chunks: Array<{ key: string; bytes: Uint8Array }> = [];
    let from = 0;
    while (from < fresh.length) {
      // The ids of one chunk: as many as fit (an entry larger than a chunk gets one of its own).
      let size = 0;
      let to = from;
      while (to < fresh.length) {
        const entry = this.freshEntryBytes(fresh[to] as number);
        if (to > from && size + entry > CHUNK_MAX_BYTES) break;
        size += entry;
        to++;
      }
      const bytes = Buffer.allocUnsafeSlow(size);
      let at = 0;
      // Copy runs of entries that lie next to each other in the arena (nearly always all of them).
      let runStart = -1;
      let runEnd = -1;
      for (let j = from; j < to; j++) {
        const start = this.freshStarts[fresh[j] as number] as number;
        const end = start + this.freshEntryBytes(fresh[j] as number);
        if (start !== runEnd) {
          if (runStart >= 0) at += this.arena.copy(bytes, at, runStart, runEnd);
          runStart = start;
        }
        runEnd = end;
      }
      if (runStart >= 0) this.arena.copy(bytes, at, runStart, runEnd);
      const key = keyOf();
      const number = this.addChunk(key, bucket, bytes, to - from);
      let offset = 0;
      for (let j = from; j < to; j++) {
        const index = fresh[j] as number;
        const w = (this.freshSlots[index] as number) * SLOT_WORDS;
        this.words[w + CHUNK] = number;
        this.words[w + OFFSET] = offset;
        offset += this.freshEntryBytes(index);
      }
      chunks.push({ key, bytes });
      from = to;
    }
    return chunks;
  }

  /** The fresh list is written: forget it (every live fresh id now points into a chunk). */
  clearFresh(): void {
    this.arenaUsed = 0;
    this.freshStarts = [];
    this.freshBuckets = [];
    this.freshSlots = [];
  }

  /**
   * Loads chunks written before (open): their ids become recent. The table is sized once for all of
   * them and ASCII ids are hashed from their bytes (no string per id).
   */
  loadChunks(chunks: ReadonlyArray<{ key: string; bucket: number; bytes: Uint8Array }>): void {
    const counts = chunks.map(({ bytes }) => {
      let count = 0;
      for (let at = 0; at < bytes.byteLength; at = entryEnd(bytes, at)) count++;
      return count;
    });
    this.reserve(counts.reduce((total, count) => total + count, 0));
    chunks.forEach(({ key, bucket, bytes }, c) => {
      const buffer = Buffer.isBuffer(bytes)
        ? bytes
        : Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength);
      const number = this.addChunk(key, bucket, bytes, counts[c] as number);
      for (let offset = 0; offset < buffer.length;) {
        const end = entryEnd(buffer, offset);
        const start = entryBytesStart(buffer, offset);
        if (!hashAsciiId(buffer, start, end)) hashId(buffer.toString('utf8', start, end));
        // Ids of two loaded chunks are never both live (one is remembered again only after the other
        // expired), and lookups skip expired entries: no comparison needed here.
        this.put(this.freeSlot(idHash.high, idHash.low), idHash.high, idHash.low, bucket, number, offset);
        offset = end;
      }
    });
  }

  /** The oldest chunk, if any. */
  oldest(): RecentChunk | undefined {
    while (this.head < this.order.length) {
      const chunk = this.chunks[this.order[this.head] as number];
      if (chunk !== undefined) return chunk;
      this.head++;
    }
    return undefined;
  }

  /**
   * Takes the oldest chunk out of memory; returns its ids that were still live and recent (those to
   * keep on disk).
   */
  spillOldest(): { chunk: RecentChunk; ids: string[] } | undefined {
    const chunk = this.oldest();
    if (chunk === undefined) return undefined;
    const number = this.order[this.head++] as number;
    const kept: string[] = [];
    if (chunk.bucket >= this.liveFrom) {
      const ids = decodeIdChunk(chunk.bytes);
      let offset = 0;
      for (const id of ids) {
        hashId(id);
        const slot = this.slotOf(idHash.high, idHash.low, number, offset);
        if (slot >= 0) {
          this.floats[slot * BUCKET_FLOATS + 2] = DEAD;
          kept.push(id);
        }
        offset = entryEnd(chunk.bytes, offset);
      }
    }
    this.removeChunk(number);
    return { chunk, ids: kept };
  }

  /** Drops the chunks of buckets below `liveFrom` (their slots are expired by the bucket check). */
  expire(liveFrom: number): void {
    if (liveFrom > this.liveFrom) this.liveFrom = liveFrom;
    for (let i = this.head; i < this.order.length; i++) {
      const number = this.order[i] as number;
      const chunk = this.chunks[number];
      if (chunk !== undefined && chunk.bucket < this.liveFrom) this.removeChunk(number);
    }
  }

  private addChunk(key: string, bucket: number, bytes: Uint8Array, ids: number): number {
    const number = this.freeNumbers.pop() ?? this.chunks.length;
    const chunk: RecentChunk = { key, bucket, bytes, cost: bytes.byteLength + ids * RECENT_ID_SLOT_BYTES };
    this.chunks[number] = chunk;
    this.order.push(number);
    this.chunkCost += chunk.cost;
    return number;
  }

  private removeChunk(number: number): void {
    const chunk = this.chunks[number];
    if (chunk === undefined) return;
    this.chunks[number] = undefined;
    this.freeNumbers.push(number);
    this.chunkCost -= chunk.cost;
    if (this.head > 1024 && this.head * 2 > this.order.length) {
      this.order = this.order.slice(this.head);
      this.head = 0;
    }
  }

  /** The slot of the id at `offset` of chunk `number`, or -1 (it was re-remembered or has expired). */
  private slotOf(high: number, low: number, number: number, offset: number): number {
    const { words, floats } = this;
    const mask = this.capacity - 1;
    let slot = (low ^ Math.imul(high, 0x9e3779b1)) & mask;
    for (;;) {
      const bucket = floats[slot * BUCKET_FLOATS + 2] as number;
      if (bucket === EMPTY) return -1;
      const w = slot * SLOT_WORDS;
      if (
        bucket >= this.liveFrom &&
        words[w + CHUNK] === number &&
        words[w + OFFSET] === offset &&
        words[w + LOW] === low &&
        words[w + HIGH] === high
      )
        return slot;
      slot = (slot + 1) & mask;
    }
  }

  /** Whether the slot's exact id is `id` (its hash already matched). */
  private holds(slot: number, id: string): boolean {
    const chunkNumber = this.words[slot * SLOT_WORDS + CHUNK] as number;
    const offset = this.words[slot * SLOT_WORDS + OFFSET] as number;
    const bytes = chunkNumber === FRESH ? this.arena : this.chunks[chunkNumber]?.bytes;
    if (bytes === undefined) return false;
    const buffer = Buffer.isBuffer(bytes)
      ? bytes
      : Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength);
    const at = chunkNumber === FRESH ? (this.freshStarts[offset] as number) : offset;
    return buffer.toString('utf8', entryBytesStart(buffer, at), entryEnd(buffer, at)) === id;
  }

  /** Bytes of fresh id `index`'s entry in the arena. */
  private freshEntryBytes(index: number): number {
    const start = this.freshStarts[index] as number;
    return entryEnd(this.arena, start) - start;
  }

  private growArena(needed: number): void {
    let size = this.arena.length * 2;
    while (size < needed) size *= 2;
    const arena = Buffer.allocUnsafeSlow(size);
    this.arena.copy(arena, 0, 0, this.arenaUsed);
    this.arena = arena;
  }

  /** Makes room for `more` ids without a resize on the way. */
  private reserve(more: number): void {
    if (this.occupied + more > this.capacity * MAX_LOAD) this.resize(more);
  }

  /** Rehashes the live entries into a table at most a third full once `more` ids are in. */
  private resize(more = 0): void {
    const { words, floats, capacity: oldCapacity } = this;
    let live = more;
    for (let i = 0; i < oldCapacity; i++)
      if ((floats[i * BUCKET_FLOATS + 2] as number) >= this.liveFrom) live++;
    let capacity = INITIAL_CAPACITY;
    while (capacity < live * SLOTS_PER_ID_AFTER_RESIZE) capacity *= 2;
    this.allocate(capacity);
    for (let i = 0; i < oldCapacity; i++) {
      const bucket = floats[i * BUCKET_FLOATS + 2] as number;
      if (bucket < this.liveFrom) continue;
      const w = i * SLOT_WORDS;
      const high = words[w + HIGH] as number;
      const low = words[w + LOW] as number;
      const slot = this.freeSlot(high, low);
      this.put(slot, high, low, bucket, words[w + CHUNK] as number, words[w + OFFSET] as number);
      if (words[w + CHUNK] === FRESH) this.freshSlots[words[w + OFFSET] as number] = slot;
    }
  }

  private allocate(capacity: number): void {
    const buffer = new ArrayBuffer(capacity * SLOT_BYTES);
    this.words = new Uint32Array(buffer);
    this.floats = new Float64Array(buffer);
    for (let slot = 0; slot < capacity; slot++) this.floats[slot * BUCKET_FLOATS + 2] = EMPTY;
    this.capacity = capacity;
    this.occupied = 0;
  }

  /** The first empty slot on the hash's probe path. */
  private freeSlot(high: number, low: number): number {
    const mask = this.capacity - 1;
    let slot = (low ^ Math.imul(high, 0x9e3779b1)) & mask;
    while (this.floats[slot * BUCKET_FLOATS + 2] !== EMPTY) slot = (slot + 1) & mask;
    return slot;
  }

  private put(slot: number, high: number, low: number, bucket: number, chunk: number, offset: number): void {
    if (this.floats[slot * BUCKET_FLOATS + 2] === EMPTY) this.occupied++;
    const w = slot * SLOT_WORDS;
    this.words[w + HIGH] = high;
    this.words[w + LOW] = low;
    this.words[w + CHUNK] = chunk;
    this.words[w + OFFSET] = offset;
    this.floats[slot * BUCKET_FLOATS + 2] = bucket;
  }
}
