/**
 * The split block Bloom filter (Parquet's design) that the dedupe store's id filter (id-filter.ts) and
 * a spilled window's key filter (key-filter.ts) are made of: 256-bit blocks of eight 32-bit words; a
 * hash (two 32-bit lanes, id-hash.ts) picks one block with its high lane and sets one bit in each of
 * the block's words with its low lane, so a lookup touches one cache line. At 12 bits per item the
 * false positive rate is about 0.3%.
 */

export const WORDS_PER_BLOCK = 8;
export const BITS_PER_ITEM = 12;

/** Odd constants that spread the low lane over the 8 words of a block (Parquet's salts). */
export const SALT = new Uint32Array([
  0x47b6137b, 0x44974d91, 0x8824ad5b, 0xa2b7289d, 0x705495c7, 0x2df1424b, 0x9efc4947, 0x5c6bfb31,
]);

/** Blocks for `capacity` items. */
export function blocksFor(capacity: number): number {
  return Math.max(1, Math.ceil((capacity * BITS_PER_ITEM) / 256));
}

/** The items a filter of `blocks` blocks is sized for (blocksFor() gives `blocks` back). */
export function capacityOf(blocks: number): number {
  return Math.floor((blocks * 256) / BITS_PER_ITEM);
}

/** The block (of `blocks`) the hash's high lane picks. */
export function blockOf(high: number, blocks: number): number {
  return Math.floor((high * blocks) / 4294967296);
}

/** Sets the hash's bits in the block whose first word is `words[base]`. */
export function addToBlock(words: Uint32Array, base: number, low: number): void {
  for (let w = 0; w < WORDS_PER_BLOCK; w++)
    words[base + w] = (words[base + w] as number) | (1 << (Math.imul(low, SALT[w] as number) >>> 27));
}

/** Whether the block whose first word is `words[base]` has every bit of the hash. */
export function blockHas(words: Uint32Array, base: number, low: number): boolean {
  for (let w = 0; w < WORDS_PER_BLOCK; w++)
    if (((words[base + w] as number) & (1 << (Math.imul(low, SALT[w] as number) >>> 27))) === 0) return false;
  return true;
}
