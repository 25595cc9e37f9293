/**
 * The 64-bit hash of a dedupe id (cyrb53's mixing, keeping all 64 bits) that the recent-id table and
 * the filter share: computed once per check, read from `idHash` (no array allocated per id).
 */
export const idHash = { high: 0, low: 0 };

export function hashId(id: string): void {
  let h1 = 0xdeadbeef;
  let h2 = 0x41c6ce57;
  for (let i = 0; i < id.length; i++) {
    const ch = id.charCodeAt(i);
    h1 = Math.imul(h1 ^ ch, 2654435761);
    h2 = Math.imul(h2 ^ ch, 1597334677);
  }
  finish(h1, h2);
}

/**
 * hashId() of the id whose UTF-8 bytes are `bytes[start, end)`, without decoding it, when they are
 * all ASCII (its UTF-16 code units are then its bytes); false, and idHash untouched, otherwise.
 */
export function hashAsciiId(bytes: Uint8Array, start: number, end: number): boolean {
  let h1 = 0xdeadbeef;
  let h2 = 0x41c6ce57;
  for (let i = start; i < end; i++) {
    const ch = bytes[i] as number;
    if (ch >= 0x80) return false;
    h1 = Math.imul(h1 ^ ch, 2654435761);
    h2 = Math.imul(h2 ^ ch, 1597334677);
  }
  finish(h1, h2);
  return true;
}

/** hashId() of the id whose UTF-8 bytes are `bytes[start, end)`: from the bytes when ASCII, else decoded. */
export function hashIdBytes(bytes: Buffer, start: number, end: number): void {
  if (!hashAsciiId(bytes, start, end)) hashId(bytes.toString('utf8', start, end));
}

function finish(h1: number, h2: number): void {
  h1 = Math.imul(h1 ^ (h1 >>> 16), 2246822507);
  h1 ^= Math.imul(h2 ^ (h2 >>> 13), 3266489909);
  h2 = Math.imul(h2 ^ (h2 >>> 16), 2246822507);
  h2 ^= Math.imul(h1 ^ (h1 >>> 13), 3266489909);
  idHash.high = h2 >>> 0;
  idHash.low = h1 >>> 0;
}
