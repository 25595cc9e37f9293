/**
 * A spilled window's filter of the keys it holds on disk: answers "maybe on disk" or "certainly not",
 * so a new key of a spilled window (most keys of a new minute) costs no LevelDB read.
 *
 * A split block Bloom filter like the dedupe store's (id-filter.ts): 256-bit blocks of eight 32-bit
 * words, a key sets one bit in each word of one block. At 12 bits per key of its capacity the false
 * positive rate is about 0.3%; past its capacity it only answers "maybe" more often (never a wrong
 * "not"), and the window store rebuilds it twice as large. Its words are the bytes the store writes in
 * the window's spill record, so opening needs no per-key read.
 */
import { hashId, idHash } from './id-hash.js';

/** Odd constants that spread the hash over the 8 words of a block (Parquet's SBBF salts). */
const SALT = new Uint32Array([
  0x47b6137b, 0x44974d91, 0x8824ad5b, 0xa2b7289d, 0x705495c7, 0x2df1424b, 0x9efc4947, 0x5c6bfb31,
]);
const BITS_PER_KEY = 12;
const WORDS_PER_BLOCK = 8;

export class KeyFilter {
  private readonly blocks: number;

  private constructor(
    /** Keys the filter is sized for. */
    readonly capacity: number,
    readonly words: Uint32Array,
  ) {
    this.blocks = words.length / WORDS_PER_BLOCK;
  }

  static forCapacity(capacity: number): KeyFilter {
    return new KeyFilter(capacity, new Uint32Array(KeyFilter.bytesFor(capacity) / 4));
  }

  /** Memory of a filter sized for `capacity` keys. */
  static bytesFor(capacity: number): number {
    return Math.max(1, Math.ceil((capacity * BITS_PER_KEY) / 256)) * WORDS_PER_BLOCK * 4;
  }

  /** A filter from words written by an earlier one of the same capacity. */
  static fromWords(capacity: number, words: Uint32Array): KeyFilter {
    if (words.length === 0 || words.length % WORDS_PER_BLOCK !== 0)
      throw new Error(`a key filter has whole blocks of ${WORDS_PER_BLOCK} words, got ${words.length}`);
    return new KeyFilter(capacity, words);
  }

  add(key: string): void {
    hashId(key);
    const base = this.blockOf(idHash.high);
    const low = idHash.low;
    const words = this.words;
    for (let w = 0; w < WORDS_PER_BLOCK; w++)
      words[base + w] = (words[base + w] as number) | (1 << (Math.imul(low, SALT[w] as number) >>> 27));
  }

  mayHave(key: string): boolean {
    hashId(key);
    const base = this.blockOf(idHash.high);
    const low = idHash.low;
    const words = this.words;
    for (let w = 0; w < WORDS_PER_BLOCK; w++)
      if (((words[base + w] as number) & (1 << (Math.imul(low, SALT[w] as number) >>> 27))) === 0)
        return false;
    return true;
  }

  /** Memory of the filter's words. */
  get bytes(): number {
    return this.words.byteLength;
  }

  private blockOf(high: number): number {
    return Math.floor((high * this.blocks) / 4294967296) * WORDS_PER_BLOCK;
  }
}
