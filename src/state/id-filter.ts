/**
 * The dedupe store's in-memory filter: answers "maybe seen" or "certainly not seen" for an id hash in
 * about 1.5 bytes per id, so that new ids (nearly all of them) never cost a disk lookup.
 *
 * Split block Bloom filters (split-block-bloom.ts) of 12 bits per id: a false positive rate of about
 * 0.3% per segment. A false positive costs a disk lookup, never a wrong answer.
 *
 * Bloom filters cannot forget, but dedupe forgets by time bucket: ids are filed by generation (a run of
 * `bucketsPerGeneration` buckets), and a generation's filter is dropped whole once all its buckets are
 * past the horizon. A generation's size is not known when it starts: it gets segments, the first sized
 * like the largest generation held (a steady stream fills it once), each next one twice the last.
 *
 * Layout: segments with the same number of blocks share a table, interleaved block by block (block b
 * of every segment of a table lies side by side). Checking an id against all the generations of a
 * table then reads one run of adjacent memory instead of one random place per generation: the filter
 * is far larger than the processor's caches, and a lookup of a new id (which must ask every
 * generation) cost about 90 ns per generation laid out apart, nearly all of it waiting for memory.
 * A table gains a slot when a generation joins it (copied once per generation, every few days) and
 * frees it when that generation is dropped; the next generation reuses it.
 *
 * Each generation serializes to one blob (the store writes it as a local entry, never changelogged):
 * its segments one after the other, as contiguous filters.
 */

import { SALT, WORDS_PER_BLOCK, addToBlock, blockOf, blocksFor, capacityOf } from './split-block-bloom.js';

const MIN_CAPACITY = 262_144;
/**
 * A new generation joins a table whose segments hold between the largest generation held and 1.2
 * times what it should get (that plus a tenth): a steady stream keeps one table, and a table sized
 * for a burst does not cost the generations after it a third more memory.
 */
const LARGEST_TABLE_FACTOR = 1.2;

/** Segments of the same number of blocks, interleaved: block b of slot s at words ((b * slots) + s) * 8. */
class Table {
  words: Uint32Array;
  /** The segment in each slot; undefined: free (its words are zero). */
  readonly segments: Array<Segment | undefined> = [];

  constructor(readonly blocks: number) {
    this.words = new Uint32Array(0);
  }

  get slotCount(): number {
    return this.segments.length;
  }

  get used(): number {
    let used = 0;
    for (const segment of this.segments) if (segment !== undefined) used++;
    return used;
  }

  /** A free slot for `segment` (a new one, copying the table, when none is free). */
  take(segment: Segment): number {
    let slot = this.segments.indexOf(undefined);
    if (slot < 0) {
      slot = this.segments.length;
      this.relayout(slot + 1);
    }
    this.segments[slot] = segment;
    return slot;
  }

  free(slot: number): void {
    this.segments[slot] = undefined;
    const { words, blocks } = this;
    const stride = this.slotCount * WORDS_PER_BLOCK;
    for (let b = 0, at = slot * WORDS_PER_BLOCK; b < blocks; b++, at += stride)
      words.fill(0, at, at + WORDS_PER_BLOCK);
  }

  add(slot: number, high: number, low: number): void {
    addToBlock(this.words, (blockOf(high, this.blocks) * this.slotCount + slot) * WORDS_PER_BLOCK, low);
  }

  /** The slot's segment as a contiguous filter (what serialize() writes). */
  extract(slot: number): Uint32Array {
    const out = new Uint32Array(this.blocks * WORDS_PER_BLOCK);
    const stride = this.slotCount * WORDS_PER_BLOCK;
    for (let b = 0, at = slot * WORDS_PER_BLOCK; b < this.blocks; b++, at += stride)
      out.set(this.words.subarray(at, at + WORDS_PER_BLOCK), b * WORDS_PER_BLOCK);
    return out;
  }

  /** Writes a contiguous filter (from extract(), or a blob) into a slot. */
  implant(slot: number, contiguous: Uint32Array): void {
    const stride = this.slotCount * WORDS_PER_BLOCK;
    for (let b = 0, at = slot * WORDS_PER_BLOCK; b < this.blocks; b++, at += stride)
      this.words.set(contiguous.subarray(b * WORDS_PER_BLOCK, (b + 1) * WORDS_PER_BLOCK), at);
  }

  /** Rebuilds the table with `slots` slots, keeping every segment's bits. */
  relayout(slots: number): void {
    const old = this.words;
    const oldSlots = old.length / (this.blocks * WORDS_PER_BLOCK) || 0;
    const words = new Uint32Array(this.blocks * slots * WORDS_PER_BLOCK);
    if (oldSlots > 0) {
      const oldStride = oldSlots * WORDS_PER_BLOCK;
      const stride = slots * WORDS_PER_BLOCK;
      for (let b = 0; b < this.blocks; b++)
        words.set(old.subarray(b * oldStride, (b + 1) * oldStride), b * stride);
    }
    this.words = words;
    while (this.segments.length < slots) this.segments.push(undefined);
  }
}

class Segment {
  constructor(
    readonly generation: Generation,
    readonly table: Table,
    public slot: number,
    public count: number,
  ) {}

  get capacity(): number {
    return capacityOf(this.table.blocks);
  }
}

class Generation {
  readonly segments: Segment[] = [];
  constructor(readonly number: number) {}

  get count(): number {
    let count = 0;
    for (const segment of this.segments) count += segment.count;
    return count;
  }
}

export class IdFilter {
  private readonly generations = new Map<number, Generation>();
  private tables: Table[] = [];
  /** Generations changed since the last call of takeDirty(). */
  private readonly dirty = new Set<number>();
  /** The generation used last: consecutive ids nearly always share one. */
  private last: Generation | undefined;

  /**
   * `expectedIds` (optional) tells how many ids a generation is known to hold already, wherever they
   * are (a dedupe store counts its ids per bucket): a generation's first segment is sized for them,
   * so a generation spilled or re-read as a whole (a store's first spills, an open after a restore)
   * gets one segment instead of a run of doublings from the smallest, each a table every lookup reads.
   */
  constructor(
    readonly bucketsPerGeneration: number,
    private readonly expectedIds: (generation: number) => number = () => 0,
  ) {}

  generationOf(bucket: number): number {
    return Math.floor(bucket / this.bucketsPerGeneration);
  }

  /** Files the id hash (two 32-bit lanes) under the generation of `bucket`. */
  add(high: number, low: number, bucket: number): void {
    const number = this.generationOf(bucket);
    let generation = this.last?.number === number ? this.last : this.generations.get(number);
    if (generation === undefined) {
      generation = new Generation(number);
      this.generations.set(number, generation);
      this.addSegment(generation, this.nextCapacity(number), true);
    }
    this.last = generation;
    let segment = generation.segments[generation.segments.length - 1] as Segment;
    if (segment.count >= segment.capacity) segment = this.addSegment(generation, segment.capacity * 2, false);
    segment.table.add(segment.slot, high, low);
    segment.count++;
    this.dirty.add(number);
  }

  /**
   * The generations that may hold the id hash, written into `out` (cleared first); false when none
   * may (the id was certainly never added to a generation still held).
   */
  generationsMaybeHolding(high: number, low: number, out: number[]): boolean {
    out.length = 0;
    // The bit each word of a block must have, the same in every segment.
    const m0 = 1 << (Math.imul(low, SALT[0] as number) >>> 27);
    const m1 = 1 << (Math.imul(low, SALT[1] as number) >>> 27);
    const m2 = 1 << (Math.imul(low, SALT[2] as number) >>> 27);
    const m3 = 1 << (Math.imul(low, SALT[3] as number) >>> 27);
    const m4 = 1 << (Math.imul(low, SALT[4] as number) >>> 27);
    const m5 = 1 << (Math.imul(low, SALT[5] as number) >>> 27);
    const m6 = 1 << (Math.imul(low, SALT[6] as number) >>> 27);
    const m7 = 1 << (Math.imul(low, SALT[7] as number) >>> 27);
    const tables = this.tables;
    for (let t = 0; t < tables.length; t++) {
      const table = tables[t] as Table;
      const slots = table.slotCount;
      const words = table.words;
      let at = blockOf(high, table.blocks) * slots * WORDS_PER_BLOCK;
      for (let s = 0; s < slots; s++, at += WORDS_PER_BLOCK) {
        // Branch-free over the block: the slots' words are adjacent, their loads overlap.
        const missing =
          (~(words[at] as number) & m0) |
          (~(words[at + 1] as number) & m1) |
          (~(words[at + 2] as number) & m2) |
          (~(words[at + 3] as number) & m3) |
          (~(words[at + 4] as number) & m4) |
          (~(words[at + 5] as number) & m5) |
          (~(words[at + 6] as number) & m6) |
          (~(words[at + 7] as number) & m7);
        if (missing !== 0) continue;
        // A free slot is all zeros: it holds nothing, so it never gets here.
        const number = (table.segments[s] as Segment).generation.number;
        // A generation growing past its first segment has several, maybe in several tables.
        if (!out.includes(number)) out.push(number);
      }
    }
    return out.length > 0;
  }

  /** Whether any id is held (an empty filter rules out everything without hashing). */
  get empty(): boolean {
    return this.generations.size === 0;
  }

  /** Drops the generations whose every bucket is below `liveFromBucket`; returns their numbers. */
  dropBefore(liveFromBucket: number): number[] {
    const dropped: number[] = [];
    for (const number of this.generations.keys())
      if ((number + 1) * this.bucketsPerGeneration <= liveFromBucket) dropped.push(number);
    for (const number of dropped) {
      const generation = this.generations.get(number) as Generation;
      for (const segment of generation.segments) segment.table.free(segment.slot);
      this.generations.delete(number);
      this.dirty.delete(number);
    }
    if (dropped.length > 0) {
      this.tables = this.tables.filter((table) => table.used > 0);
      this.last = undefined;
    }
    return dropped;
  }

  /** The generations changed since the last call (to persist them). */
  takeDirty(): number[] {
    const numbers = [...this.dirty];
    this.dirty.clear();
    return numbers;
  }

  /** Bytes of memory the filter holds. */
  get bytes(): number {
    let bytes = 0;
    for (const table of this.tables) bytes += table.words.byteLength;
    return bytes;
  }

  /** One generation as a blob: [segment count, then capacity and count per segment, then the words]. */
  serialize(number: number): Uint8Array | undefined {
    const generation = this.generations.get(number);
    if (generation === undefined) return undefined;
    const header = 1 + 2 * generation.segments.length;
    let words = header;
    for (const segment of generation.segments) words += segment.table.blocks * WORDS_PER_BLOCK;
    const out = new Uint32Array(words);
    out[0] = generation.segments.length;
    let at = header;
    generation.segments.forEach((segment, i) => {
      out[1 + 2 * i] = segment.capacity;
      out[2 + 2 * i] = segment.count;
      out.set(segment.table.extract(segment.slot), at);
      at += segment.table.blocks * WORDS_PER_BLOCK;
    });
    return new Uint8Array(out.buffer);
  }

  /**
   * Restores the generations written by serialize(), all at once (each table is laid out once for
   * all the segments it gets).
   */
  loadAll(blobs: ReadonlyArray<{ number: number; bytes: Uint8Array }>): void {
    const parsed: Array<{ generation: Generation; count: number; words: Uint32Array }> = [];
    const slotsNeeded = new Map<number, number>();
    for (const { number, bytes } of blobs) {
      // Copy: LevelDB's buffer may not be 4-byte aligned.
      const all = new Uint32Array(bytes.byteLength / 4);
      new Uint8Array(all.buffer).set(bytes);
      const segmentCount = all[0] as number;
      const generation = new Generation(number);
      this.generations.set(number, generation);
      let at = 1 + 2 * segmentCount;
      for (let i = 0; i < segmentCount; i++) {
        const length = blocksFor(all[1 + 2 * i] as number) * WORDS_PER_BLOCK;
        parsed.push({ generation, count: all[2 + 2 * i] as number, words: all.subarray(at, at + length) });
        slotsNeeded.set(length / WORDS_PER_BLOCK, (slotsNeeded.get(length / WORDS_PER_BLOCK) ?? 0) + 1);
        at += length;
      }
    }
    for (const [blocks, more] of slotsNeeded) {
      const table = this.tableOf(blocks) ?? this.newTable(blocks);
      table.relayout(table.slotCount + more);
    }
    for (const { generation, count, words } of parsed) {
      const table = this.tableOf(words.length / WORDS_PER_BLOCK) as Table;
      const segment = new Segment(generation, table, -1, count);
      segment.slot = table.take(segment);
      table.implant(segment.slot, words);
      generation.segments.push(segment);
    }
    this.last = undefined;
  }

  /**
   * A new segment of at least `capacity` ids for `generation`. A generation's first segment joins a
   * table of about that size when one exists; one that outgrew its segments gets a table of its own.
   */
  private addSegment(generation: Generation, capacity: number, first: boolean): Segment {
    const wanted = blocksFor(capacity);
    const table =
      (first
        ? this.tables.find((t) => t.blocks * 1.1 >= wanted && t.blocks <= wanted * LARGEST_TABLE_FACTOR)
        : undefined) ?? this.newTable(wanted);
    const segment = new Segment(generation, table, -1, 0);
    segment.slot = table.take(segment);
    generation.segments.push(segment);
    return segment;
  }

  private tableOf(blocks: number): Table | undefined {
    return this.tables.find((table) => table.blocks === blocks);
  }

  private newTable(blocks: number): Table {
    const table = new Table(blocks);
    this.tables.push(table);
    return table;
  }

  /**
   * A new generation's first segment: the largest generation held (a steady stream), or the ids the
   * generation is known to hold if more, plus a tenth.
   */
  private nextCapacity(number: number): number {
    let largest = this.expectedIds(number);
    for (const generation of this.generations.values()) largest = Math.max(largest, generation.count);
    return Math.max(MIN_CAPACITY, Math.ceil(largest * 1.1));
  }
}
