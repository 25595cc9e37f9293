/**
 * A spilled window's filter of the keys it holds on disk: answers "maybe on disk" or "certainly not",
 * so a new key of a spilled window (most keys of a new minute) costs no LevelDB read.
 *
 * A split block Bloom filter (split-block-bloom.ts) of 12 bits per key of its capacity: a false
 * positive rate of about 0.3%; past its capacity it only answers "maybe" more often (never a wrong
 * "not"), and the window store rebuilds it twice as large. Its words are the bytes the store writes in
 * the window's spill record, so opening needs no per-key read.
 */
import { hashId, idHash } from './id-hash.js';
import { WORDS_PER_BLOCK, addToBlock, blockHas, blockOf, blocksFor } from './split-block-bloom.js';

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
    return blocksFor(capacity) * WORDS_PER_BLOCK * 4;
  }

  /** A filter from words written by an earlier one of the same capacity. */
  static fromWords(capacity: number, words: Uint32Array): KeyFilter {
    if (words.length === 0 || words.length % WORDS_PER_BLOCK !== 0)
      throw new Error(`a key filter has whole blocks of ${WORDS_PER_BLOCK} words, got ${words.length}`);
    return new KeyFilter(capacity, words);
  }

  add(key: string): void {
    hashId(key);
    addToBlock(this.words, blockOf(idHash.high, this.blocks) * WORDS_PER_BLOCK, idHash.low);
  }

  mayHave(key: string): boolean {
    hashId(key);
    return blockHas(this.words, blockOf(idHash.high, this.blocks) * WORDS_PER_BLOCK, idHash.low);
  }

  /** Memory of the filter's words. */
  get bytes(): number {
    return this.words.byteLength;
  }
}
