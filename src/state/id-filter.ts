/**
 * The dedupe store's in-memory filter: answers "maybe seen" or "certainly not seen" for an id hash in
 * about 1.5 bytes per id, so that new ids (nearly all of them) never cost a disk lookup.
 *
 * Split block Bloom filters (Parquet's design): 256-bit blocks of eight 32-bit words; an id sets one
 * bit in each word of one block, so a lookup touches one cache line. At 12 bits per id the false
 * positive rate is about 0.3% per segment. A false positive costs a disk lookup, never a wrong answer.
 *
 * Bloom filters cannot forget, but dedupe forgets by time bucket: ids are filed by generation (a run of
 * `bucketsPerGeneration` buckets), and a generation's filter is dropped whole once all its buckets are
 * past the horizon. A generation's size is not known when it starts: it gets segments, the first sized
 * like the largest generation held (a steady stream fills it once), each next one twice the last.
 * Each generation serializes to one blob (the store writes it as a local entry, never changelogged).
 */

/** Odd constants that spread the id hash over the 8 words of a block (from Parquet's SBBF). */
const SALT = new Uint32Array([
  0x47b6137b, 0x44974d91, 0x8824ad5b, 0xa2b7289d, 0x705495c7, 0x2df1424b, 0x9efc4947, 0x5c6bfb31,
]);
const BITS_PER_ID = 12;
const MIN_CAPACITY = 262_144;
const WORDS_PER_BLOCK = 8;

class Segment {
  readonly blocks: number;
  constructor(
    readonly capacity: number,
    readonly words: Uint32Array,
    public count: number,
  ) {
    this.blocks = words.length / WORDS_PER_BLOCK;
  }

  static wordsFor(capacity: number): number {
    return Math.max(1, Math.ceil((capacity * BITS_PER_ID) / 256)) * WORDS_PER_BLOCK;
  }

  static forCapacity(capacity: number): Segment {
    return new Segment(capacity, new Uint32Array(Segment.wordsFor(capacity)), 0);
  }

  add(high: number, low: number): void {
    const base = Math.floor((high * this.blocks) / 4294967296) * WORDS_PER_BLOCK;
    const words = this.words;
    for (let w = 0; w < WORDS_PER_BLOCK; w++)
      words[base + w] = (words[base + w] as number) | (1 << (Math.imul(low, SALT[w] as number) >>> 27));
    this.count++;
  }

  has(high: number, low: number): boolean {
    const base = Math.floor((high * this.blocks) / 4294967296) * WORDS_PER_BLOCK;
    const words = this.words;
    for (let w = 0; w < WORDS_PER_BLOCK; w++)
      if (((words[base + w] as number) & (1 << (Math.imul(low, SALT[w] as number) >>> 27))) === 0)
        return false;
    return true;
  }
}

class Generation {
  constructor(
    readonly number: number,
    readonly segments: Segment[],
  ) {}

  get count(): number {
    let count = 0;
    for (const segment of this.segments) count += segment.count;
    return count;
  }
}

export class IdFilter {
  private readonly generations = new Map<number, Generation>();
  /** The generations as an array, for the lookup loop. */
  private list: Generation[] = [];
  /** Generations changed since the last call of takeDirty(). */
  private readonly dirty = new Set<number>();
  /** The generation used last: consecutive ids nearly always share one. */
  private last: Generation | undefined;

  constructor(readonly bucketsPerGeneration: number) {}

  generationOf(bucket: number): number {
    return Math.floor(bucket / this.bucketsPerGeneration);
  }

  /** Files the id hash (two 32-bit lanes) under the generation of `bucket`. */
  add(high: number, low: number, bucket: number): void {
    const number = this.generationOf(bucket);
    let generation = this.last?.number === number ? this.last : this.generations.get(number);
    if (generation === undefined) {
      generation = new Generation(number, [Segment.forCapacity(this.nextCapacity())]);
      this.generations.set(number, generation);
      this.list = [...this.generations.values()];
    }
    this.last = generation;
    let segment = generation.segments[generation.segments.length - 1] as Segment;
    if (segment.count >= segment.capacity) {
      segment = Segment.forCapacity(segment.capacity * 2);
      generation.segments.push(segment);
    }
    segment.add(high, low);
    this.dirty.add(number);
  }

  /** False when the id was certainly never added (to a generation still held). */
  mightContain(high: number, low: number): boolean {
    const list = this.list;
    for (let g = 0; g < list.length; g++) {
      const segments = (list[g] as Generation).segments;
      for (let s = 0; s < segments.length; s++) if ((segments[s] as Segment).has(high, low)) return true;
    }
    return false;
  }

  /**
   * The generations that may hold the id hash, written into `out` (cleared first); false when none
   * may (the id was certainly never added to a generation still held).
   */
  generationsMaybeHolding(high: number, low: number, out: number[]): boolean {
    out.length = 0;
    const list = this.list;
    for (let g = 0; g < list.length; g++) {
      const generation = list[g] as Generation;
      const segments = generation.segments;
      for (let s = 0; s < segments.length; s++)
        if ((segments[s] as Segment).has(high, low)) {
          out.push(generation.number);
          break;
        }
    }
    return out.length > 0;
  }

  /** Whether any id is held (an empty filter rules out everything without hashing). */
  get empty(): boolean {
    return this.list.length === 0;
  }

  /** Drops the generations whose every bucket is below `liveFromBucket`; returns their numbers. */
  dropBefore(liveFromBucket: number): number[] {
    const dropped: number[] = [];
    for (const number of this.generations.keys())
      if ((number + 1) * this.bucketsPerGeneration <= liveFromBucket) dropped.push(number);
    for (const number of dropped) {
      this.generations.delete(number);
      this.dirty.delete(number);
    }
    if (dropped.length > 0) {
      this.list = [...this.generations.values()];
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
    for (const generation of this.list)
      for (const segment of generation.segments) bytes += segment.words.byteLength;
    return bytes;
  }

  /** One generation as a blob: [segment count, then capacity and count per segment, then the words]. */
  serialize(number: number): Uint8Array | undefined {
    const generation = this.generations.get(number);
    if (generation === undefined) return undefined;
    const header = 1 + 2 * generation.segments.length;
    let words = header;
    for (const segment of generation.segments) words += segment.words.length;
    const out = new Uint32Array(words);
    out[0] = generation.segments.length;
    let at = header;
    generation.segments.forEach((segment, i) => {
      out[1 + 2 * i] = segment.capacity;
      out[2 + 2 * i] = segment.count;
      out.set(segment.words, at);
      at += segment.words.length;
    });
    return new Uint8Array(out.buffer);
  }

  /** Restores a generation written by serialize(). */
  load(number: number, bytes: Uint8Array): void {
    // Copy: LevelDB's buffer may not be 4-byte aligned.
    const all = new Uint32Array(bytes.byteLength / 4);
    new Uint8Array(all.buffer).set(bytes);
    const segmentCount = all[0] as number;
    const segments: Segment[] = [];
    let at = 1 + 2 * segmentCount;
    for (let i = 0; i < segmentCount; i++) {
      const capacity = all[1 + 2 * i] as number;
      const length = Segment.wordsFor(capacity);
      segments.push(new Segment(capacity, all.subarray(at, at + length), all[2 + 2 * i] as number));
      at += length;
    }
    this.generations.set(number, new Generation(number, segments));
    this.list = [...this.generations.values()];
    this.last = undefined;
  }

  private nextCapacity(): number {
    let largest = 0;
    for (const generation of this.list) largest = Math.max(largest, generation.count);
    return Math.max(MIN_CAPACITY, Math.ceil(largest * 1.1));
  }
}
