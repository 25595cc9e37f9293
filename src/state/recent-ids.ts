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
 * Entries are never moved out one by one: a spilled or expired chunk's slots are left naming a chunk
 * that is gone; lookups skip them, new ids reuse them, and the next resize drops them.
 */
import {
  CHUNK_MAX_BYTES,
  appendIdEntry,
  entryBytesStart,
  entryEnd,
  idsInChunk,
  maxEntryBytes,
} from './id-chunks.js';
import { hashIdBytes, idHash } from './id-hash.js';

const ABSENT = -Infinity;
/**
 * A slot is 16 bytes in one buffer: four 32-bit words (hash high, hash low, chunk number, offset). The
 * chunk word also marks free slots; an id's bucket is its chunk's (or, fresh, its fresh list's).
 */
const SLOT_BYTES = 16;
const SLOT_WORDS = 4;
const HIGH = 0;
const LOW = 1;
const CHUNK = 2;
const OFFSET = 3;
/** Chunk word of an id not committed yet: its offset word is its index in the fresh lists. */
const FRESH = 0xffffffff;
/** Chunk word of a slot never used since the table was built. */
const EMPTY = 0xfffffffe;
/** Chunk word of a slot whose id went to disk: never live, reusable, dropped by the next resize. */
const DEAD = 0xfffffffd;
const INITIAL_CAPACITY = 1024;
/** Slot of a fresh id once commitFresh() moved it into a chunk (no table is this large). */
const COMMITTED = 0xffffffff;
/** Below every real bucket: nothing has expired yet. */
const LOWEST_LIVE = -Number.MAX_VALUE;
/**
 * Resize above this load: most lookups are of new ids, which probe to the next empty slot, and that
 * run grows fast beyond half full.
 */
const MAX_LOAD = 0.5;
/**
 * Slots per live id after a resize (any table size, not a power of two). A table whose ids come and
 * go (the cache share is full: a commit spills as many as it adds) is rebuilt at three, so it holds
 * between two and three slots per id, three at most. A growing table is rebuilt at four, a doubling,
 * which keeps its rehashing to about one pass over its final size.
 */
const SLOTS_PER_ID = 3;
const SLOTS_PER_ID_GROWING = 4;
/** A table has been growing when its live ids passed this many times those of its last resize. */
const GROWING = 1.25;

/**
 * Memory per recent id besides its chunk bytes, as the cache share is charged: three table slots
 * (while a table grows, up to four).
 */
export const RECENT_ID_SLOT_BYTES = SLOTS_PER_ID * SLOT_BYTES;

/** What a chunk of `ids` ids costs the cache share while they are recent. */
function recentChunkCost(bytes: Uint8Array, ids: number): number {
  return bytes.byteLength + ids * RECENT_ID_SLOT_BYTES;
}

/**
 * How many of `chunks` (oldest first, each with its id count) are the newest whose ids fit in
 * `limitBytes` as recent ids.
 */
export function newestWithin(
  chunks: ReadonlyArray<{ bytes: Uint8Array; ids: number }>,
  limitBytes: number,
): number {
  let cost = 0;
  let kept = 0;
  for (let i = chunks.length - 1; i >= 0; i--) {
    const { bytes, ids } = chunks[i] as { bytes: Uint8Array; ids: number };
    cost += recentChunkCost(bytes, ids);
    if (cost > limitBytes) break;
    kept++;
  }
  return kept;
}

/** Where an id's probe starts, as a fraction of the table in 32 bits (the same order at any capacity). */
function slotPosition(high: number, low: number): number {
  return (low ^ Math.imul(high, 0x9e3779b1)) >>> 0;
}

/** The slot an id's probe starts at: its hash scaled into [0, capacity) (any capacity). */
function homeSlot(high: number, low: number, capacity: number): number {
  return Math.floor((slotPosition(high, low) * capacity) / 4294967296);
}

/** A bulk load orders ids by home slot to within 1/LOAD_RUNS of the table (a run fits in caches). */
const LOAD_RUN_BITS = 12;
const LOAD_RUNS = 1 << LOAD_RUN_BITS;

function loadRunOf(high: number, low: number): number {
  return slotPosition(high, low) >>> (32 - LOAD_RUN_BITS);
}

export interface RecentChunk {
  readonly key: string;
  readonly bucket: number;
  readonly bytes: Uint8Array;
  readonly ids: number;
  /** Bytes this chunk costs in memory (its bytes and its ids' slots). */
  readonly cost: number;
}

export class RecentIds {
  private capacity = INITIAL_CAPACITY;
  private words = new Uint32Array(0);
  /** Used slots, dead ones included (the resize trigger). */
  private occupied = 0;
  /**
   * Chunks by number. Numbers are never reused, so a slot left pointing at a chunk that expired can
   * never be taken for an id of a newer chunk.
   */
  private readonly chunks = new Map<number, RecentChunk>();
  /** 1 for each chunk number held (the probe loop's test for slots it may reuse). */
  private heldChunks = new Uint8Array(1024);
  private nextNumber = 0;
  /** Ids in the chunks held (an id remembered again since counts twice until its chunk leaves). */
  private liveIds = 0;
  /** Live ids when the table was last rebuilt (tells a growing table from one whose ids come and go). */
  private liveAtResize = 0;
  /** Chunk numbers in the order they came (spill order), from `head`. */
  private order: number[] = [];
  private head = 0;
  private chunkCost = 0;
  /** The fresh ids' entries, in arrival order (chunk format), and per fresh id its start, bucket and slot. */
  private arena = Buffer.allocUnsafeSlow(64 * 1024);
  private arenaUsed = 0;
  /**
   * Typed and kept from one commit to the next (only `freshIds` is reset): a commit's worth of fresh
   * ids in growing JS arrays was garbage that lived long enough for the collector to promote it.
   */
  private freshStarts = new Uint32Array(INITIAL_CAPACITY);
  private freshBuckets = new Float64Array(INITIAL_CAPACITY);
  private freshSlots = new Uint32Array(INITIAL_CAPACITY);
  private freshIds = 0;
  /** freshByBucket()'s scratch list of live fresh indexes. */
  private liveFresh = new Uint32Array(0);
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
    const { words, capacity } = this;
    let slot = homeSlot(high, low, capacity);
    let reusable = -1;
    for (;;) {
      const w = slot * SLOT_WORDS;
      const chunk = words[w + CHUNK] as number;
      if (chunk === EMPTY) {
        this.insertAt = reusable >= 0 ? reusable : slot;
        return ABSENT;
      }
      if (words[w + LOW] === low && words[w + HIGH] === high) {
        const bucket = this.bucketOf(chunk, words[w + OFFSET] as number);
        // Expired or gone: its bytes may be gone, so it is never compared; a new id may take the slot.
        if (bucket < floor) {
          if (reusable < 0) reusable = slot;
        } else if (this.holds(slot, id)) return bucket;
      } else if (reusable < 0 && chunk !== FRESH && this.heldChunks[chunk] !== 1) {
        reusable = slot; // dead, or its chunk spilled or expired
      }
      slot = slot + 1 === capacity ? 0 : slot + 1;
    }
  }

  /** Remembers a fresh id where the last lookup() of it (which found nothing) left off. */
  insertFresh(id: string, high: number, low: number, bucket: number): void {
    const slot = this.insertAt;
    const start = this.arenaUsed;
    if (start + maxEntryBytes(id) > this.arena.length) this.growArena(start + maxEntryBytes(id));
    this.arenaUsed = appendIdEntry(this.arena, start, id);
    const index = this.freshIds;
    if (index === this.freshSlots.length) this.growFresh();
    this.put(slot, high, low, FRESH, index);
    this.freshStarts[index] = start;
    this.freshBuckets[index] = bucket;
    this.freshSlots[index] = slot;
    this.freshIds = index + 1;
    if (this.occupied > this.capacity * MAX_LOAD) this.resize();
  }

  get freshCount(): number {
    return this.freshIds;
  }

  /** The fresh ids still live and still in their slot, by bucket: their indexes in arrival order. */
  freshByBucket(): Map<number, Uint32Array> {
    // One pass over the slots (each a likely cache miss) gathers the live indexes and counts them per
    // bucket; the lists are then cut from that, as typed arrays rather than growing JS arrays.
    if (this.liveFresh.length < this.freshIds) this.liveFresh = new Uint32Array(this.freshSlots.length);
    const live = this.liveFresh;
    const counts = new Map<number, number>();
    let lastBucket = NaN;
    let run = 0;
    let n = 0;
    for (let i = 0; i < this.freshIds; i++) {
      if (!this.freshIsLive(i)) continue;
      live[n++] = i;
      const bucket = this.freshBuckets[i] as number;
      if (bucket !== lastBucket) {
        if (run > 0) counts.set(lastBucket, (counts.get(lastBucket) ?? 0) + run);
        lastBucket = bucket;
        run = 0;
      }
      run++;
    }
    if (run > 0) counts.set(lastBucket, (counts.get(lastBucket) ?? 0) + run);
    const byBucket = new Map<number, Uint32Array>();
    if (counts.size === 1) {
      byBucket.set(lastBucket, live.slice(0, n));
      return byBucket;
    }
    const filled = new Map<number, number>();
    for (const [bucket, count] of counts) {
      byBucket.set(bucket, new Uint32Array(count));
      filled.set(bucket, 0);
    }
    let list: Uint32Array = new Uint32Array(0);
    let at = 0;
    lastBucket = NaN;
    for (let j = 0; j < n; j++) {
      const i = live[j] as number;
      const bucket = this.freshBuckets[i] as number;
      if (bucket !== lastBucket) {
        if (lastBucket === lastBucket) filled.set(lastBucket, at);
        list = byBucket.get(bucket) as Uint32Array;
        at = filled.get(bucket) as number;
        lastBucket = bucket;
      }
      list[at++] = i;
    }
    return byBucket;
  }

  /** Whether fresh id `index` is not expired and still in its slot (not replaced by a later id). */
  private freshIsLive(index: number): boolean {
    return (
      (this.freshBuckets[index] as number) >= this.liveFrom &&
      this.slotNamesFresh(this.freshSlots[index] as number, index)
    );
  }

  /** Whether `slot` still names fresh id `index`. */
  private slotNamesFresh(slot: number, index: number): boolean {
    const w = slot * SLOT_WORDS;
    return this.words[w + CHUNK] === FRESH && this.words[w + OFFSET] === index;
  }

  /**
   * Commits the fresh ids `fresh` (indexes from freshByBucket(), all of `bucket`): copies their
   * entries into chunks of at most CHUNK_MAX_BYTES, keeps each chunk as recent under the key `keyOf()`
   * gives it, and points the ids' slots into it. Returns the chunks to write.
   */
  commitFresh(
    bucket: number,
    fresh: ArrayLike<number>,
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
        this.freshSlots[index] = COMMITTED;
        offset += this.freshEntryBytes(index);
      }
      chunks.push({ key, bytes });
      from = to;
    }
    return chunks;
  }

  /** The fresh list is written: forget it (every live fresh id now points into a chunk). */
  clearFresh(): void {
    // A fresh id that expired before its commit still names its fresh index: free its slot, or it
    // would name the next commit's fresh id of that index.
    // Committed ones are skipped without a look at their slot (a likely cache miss each).
    for (let i = 0; i < this.freshIds; i++) {
      const slot = this.freshSlots[i] as number;
      if (slot !== COMMITTED && this.slotNamesFresh(slot, i)) this.words[slot * SLOT_WORDS + CHUNK] = DEAD;
    }
    this.arenaUsed = 0;
    this.freshIds = 0;
  }

  /**
   * Loads chunks written before (open): their ids become recent. The table is sized once for all of
   * them and ASCII ids are hashed from their bytes (no string per id). A chunk's id count is counted
   * here unless given.
   */
  loadChunks(chunks: ReadonlyArray<{ key: string; bucket: number; bytes: Uint8Array; ids?: number }>): void {
    const counts = chunks.map(({ bytes, ids }) => ids ?? idsInChunk(bytes));
    const total = counts.reduce((sum, count) => sum + count, 0);
    this.reserve(total);
    // A table of millions of ids is far larger than the processor's caches: inserted in chunk order
    // (random slots), nearly every id waited on memory. So the ids are hashed first, laid out in the
    // order of their home slots, and inserted in that order: the table is written front to back.
    // The ordering costs 24 bytes per id until the load returns (half what the table keeps).
    const highs = new Uint32Array(total);
    const lows = new Uint32Array(total);
    const runStarts = new Uint32Array(LOAD_RUNS + 1);
    let n = 0;
    for (const { bytes } of chunks) {
      const buffer = Buffer.isBuffer(bytes)
        ? bytes
        : Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength);
      for (let offset = 0; offset < buffer.length; n++) {
        const end = entryEnd(buffer, offset);
        hashIdBytes(buffer, entryBytesStart(buffer, offset), end);
        highs[n] = idHash.high;
        lows[n] = idHash.low;
        const next = loadRunOf(idHash.high, idHash.low) + 1;
        runStarts[next] = (runStarts[next] as number) + 1;
        offset = end;
      }
    }
    // Each run's first place in the order.
    for (let run = 1; run <= LOAD_RUNS; run++)
      runStarts[run] = (runStarts[run] as number) + (runStarts[run - 1] as number);
    // Slot-shaped entries (hash, chunk number, offset), in home-slot order.
    const ordered = new Uint32Array(total * SLOT_WORDS);
    n = 0;
    chunks.forEach(({ key, bucket, bytes }, c) => {
      const number = this.addChunk(key, bucket, bytes, counts[c] as number);
      for (let offset = 0; offset < bytes.byteLength; n++) {
        const high = highs[n] as number;
        const low = lows[n] as number;
        const run = loadRunOf(high, low);
        const place = runStarts[run] as number;
        runStarts[run] = place + 1;
        const w = place * SLOT_WORDS;
        ordered[w + HIGH] = high;
        ordered[w + LOW] = low;
        ordered[w + CHUNK] = number;
        ordered[w + OFFSET] = offset;
        offset = entryEnd(bytes, offset);
      }
    });
    // Ids of two loaded chunks are never both live (one is remembered again only after the other
    // expired), and lookups skip expired entries: no comparison needed here.
    for (let w = 0; w < ordered.length; w += SLOT_WORDS) {
      const high = ordered[w + HIGH] as number;
      const low = ordered[w + LOW] as number;
      this.put(
        this.freeSlot(high, low),
        high,
        low,
        ordered[w + CHUNK] as number,
        ordered[w + OFFSET] as number,
      );
    }
  }

  /** The oldest chunk, if any. */
  oldest(): RecentChunk | undefined {
    while (this.head < this.order.length) {
      const chunk = this.chunks.get(this.order[this.head] as number);
      if (chunk !== undefined) return chunk;
      this.head++;
    }
    return undefined;
  }

  /**
   * Takes the oldest chunk out of memory; returns it, with whether its ids are still live (not
   * expired): those are the ones to keep on disk. Every id of a live chunk is live: an id is
   * remembered again only once it expired. Its slots are not visited: they name a chunk that is gone,
   * which lookups skip and the next resize drops.
   */
  spillOldest(): { chunk: RecentChunk; live: boolean } | undefined {
    const chunk = this.oldest();
    if (chunk === undefined) return undefined;
    const number = this.order[this.head++] as number;
    this.removeChunk(number);
    return { chunk, live: chunk.bucket >= this.liveFrom };
  }

  /**
   * After spills: rebuilds the table when it has grown far beyond what the ids left need (the cache
   * share shrank), so its memory follows the share instead of staying at its largest.
   */
  shrinkIfOversized(): void {
    const live = this.liveIds + this.freshIds;
    if (this.capacity > INITIAL_CAPACITY && this.capacity > 2 * SLOTS_PER_ID_GROWING * live) this.resize();
  }

  /** Drops the chunks of buckets below `liveFrom` (their slots are expired by the bucket check). */
  expire(liveFrom: number): void {
    if (liveFrom > this.liveFrom) this.liveFrom = liveFrom;
    for (let i = this.head; i < this.order.length; i++) {
      const number = this.order[i] as number;
      const chunk = this.chunks.get(number);
      if (chunk !== undefined && chunk.bucket < this.liveFrom) this.removeChunk(number);
    }
  }

  private addChunk(key: string, bucket: number, bytes: Uint8Array, ids: number): number {
    const number = this.nextNumber++;
    if (number >= DEAD) throw new Error('recent ids: chunk numbers exhausted');
    const chunk: RecentChunk = {
      key,
      bucket,
      bytes,
      ids,
      cost: recentChunkCost(bytes, ids),
    };
    this.chunks.set(number, chunk);
    if (number >= this.heldChunks.length) {
      const held = new Uint8Array(this.heldChunks.length * 2);
      held.set(this.heldChunks);
      this.heldChunks = held;
    }
    this.heldChunks[number] = 1;
    this.order.push(number);
    this.chunkCost += chunk.cost;
    this.liveIds += ids;
    return number;
  }

  private removeChunk(number: number): void {
    const chunk = this.chunks.get(number);
    if (chunk === undefined) return;
    this.chunks.delete(number);
    this.heldChunks[number] = 0;
    this.chunkCost -= chunk.cost;
    this.liveIds -= chunk.ids;
    if (this.head > 1024 && this.head * 2 > this.order.length) {
      this.order = this.order.slice(this.head);
      this.head = 0;
    }
  }

  /** The bucket of a used slot's id (chunk word `chunk`, offset word `offset`); -Infinity when gone. */
  private bucketOf(chunk: number, offset: number): number {
    if (chunk === FRESH) return offset < this.freshIds ? (this.freshBuckets[offset] as number) : ABSENT;
    return this.chunks.get(chunk)?.bucket ?? ABSENT;
  }

  /** Whether the slot's exact id is `id` (its hash already matched). */
  private holds(slot: number, id: string): boolean {
    const chunkNumber = this.words[slot * SLOT_WORDS + CHUNK] as number;
    const offset = this.words[slot * SLOT_WORDS + OFFSET] as number;
    const bytes = chunkNumber === FRESH ? this.arena : this.chunks.get(chunkNumber)?.bytes;
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

  private growFresh(): void {
    const size = this.freshSlots.length * 2;
    const starts = new Uint32Array(size);
    starts.set(this.freshStarts);
    this.freshStarts = starts;
    const buckets = new Float64Array(size);
    buckets.set(this.freshBuckets);
    this.freshBuckets = buckets;
    const slots = new Uint32Array(size);
    slots.set(this.freshSlots);
    this.freshSlots = slots;
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
    if (this.occupied + more > this.capacity * MAX_LOAD) this.resize(more, SLOTS_PER_ID);
  }

  /**
   * Whether a used slot still holds a live id: a fresh one not expired, or one of a chunk still held
   * (expire() drops a chunk as soon as its bucket expires). Not dead, not of a spilled chunk.
   */
  private isLive(chunk: number, offset: number): boolean {
    if (chunk === FRESH)
      return offset < this.freshIds && (this.freshBuckets[offset] as number) >= this.liveFrom;
    return this.heldChunks[chunk] === 1;
  }

  /** Rehashes the live entries into a table of `slotsPerId` slots per id once `more` ids are in. */
  private resize(more = 0, slotsPerId?: number): void {
    const { words, capacity: oldCapacity } = this;
    // At most this many live ids (a fresh id expired before its commit still counts): no pass to count.
    const live = this.liveIds + this.freshIds + more;
    const perId = slotsPerId ?? (live > this.liveAtResize * GROWING ? SLOTS_PER_ID_GROWING : SLOTS_PER_ID);
    this.liveAtResize = live;
    this.allocate(Math.max(INITIAL_CAPACITY, Math.ceil(live * perId)));
    for (let i = 0; i < oldCapacity; i++) {
      const w = i * SLOT_WORDS;
      const chunk = words[w + CHUNK] as number;
      const offset = words[w + OFFSET] as number;
      if (chunk === EMPTY || !this.isLive(chunk, offset)) continue;
      const high = words[w + HIGH] as number;
      const low = words[w + LOW] as number;
      const slot = this.freeSlot(high, low);
      this.put(slot, high, low, chunk, offset);
      if (chunk === FRESH) this.freshSlots[offset] = slot;
    }
  }

  private allocate(capacity: number): void {
    const words = new Uint32Array(capacity * SLOT_WORDS);
    // Every slot empty, by doubling copies of the first (memory speed, not a store per slot).
    words[CHUNK] = EMPTY;
    for (let filled = SLOT_WORDS; filled < words.length; filled *= 2) words.copyWithin(filled, 0, filled);
    this.words = words;
    this.capacity = capacity;
    this.occupied = 0;
  }

  /** The first empty slot on the hash's probe path. */
  private freeSlot(high: number, low: number): number {
    const capacity = this.capacity;
    let slot = homeSlot(high, low, capacity);
    while (this.words[slot * SLOT_WORDS + CHUNK] !== EMPTY) slot = slot + 1 === capacity ? 0 : slot + 1;
    return slot;
  }

  private put(slot: number, high: number, low: number, chunk: number, offset: number): void {
    const w = slot * SLOT_WORDS;
    if (this.words[w + CHUNK] === EMPTY) this.occupied++;
    this.words[w + HIGH] = high;
    this.words[w + LOW] = low;
    this.words[w + CHUNK] = chunk;
    this.words[w + OFFSET] = offset;
  }
}
