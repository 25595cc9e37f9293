/**
 * The stored and changelogged form of remembered dedupe ids: chunks of exact ids, each a varint byte
 * length followed by the id's UTF-8 bytes. A chunk is one LevelDB entry and one changelog record, so
 * it stays well below Kafka's 1 MB record limit while holding thousands of ids (a restore writes them
 * at the speed of a sequential read, not one record per id).
 */

/** Upper bound of a chunk's size; an id longer than this gets a chunk of its own. */
export const CHUNK_MAX_BYTES = 256 * 1024;

/** The bytes are not a chunk of this format (e.g. a chunk of 64-bit hashes of an earlier version). */
export class MalformedIdChunkError extends Error {}

/** The ids of a chunk of entries written by appendIdEntry(); throws MalformedIdChunkError on other bytes. */
export function decodeIdChunk(chunk: Uint8Array): string[] {
  const buffer = Buffer.isBuffer(chunk)
    ? chunk
    : Buffer.from(chunk.buffer, chunk.byteOffset, chunk.byteLength);
  const ids: string[] = [];
  let at = 0;
  while (at < buffer.length) {
    let length = 0;
    let shift = 0;
    for (;;) {
      if (at >= buffer.length || shift > 21) throw new MalformedIdChunkError('malformed dedupe id chunk');
      const byte = buffer[at++] as number;
      length |= (byte & 0x7f) << shift;
      if (byte < 0x80) break;
      shift += 7;
    }
    if (at + length > buffer.length) throw new MalformedIdChunkError('malformed dedupe id chunk');
    ids.push(buffer.toString('utf8', at, at + length));
    at += length;
  }
  return ids;
}

/**
 * Appends one id's entry (varint byte length, then its UTF-8 bytes) to `buffer` at `at`; returns where
 * the next entry starts. `buffer` must have room for 5 + 3 * id.length bytes past `at`.
 */
export function appendIdEntry(buffer: Buffer, at: number, id: string): number {
  // Most ids are shorter than 128 bytes: write after a one-byte length and move only the rare longer ones.
  const written = buffer.write(id, at + 1, 'utf8');
  if (written < 0x80) {
    buffer[at] = written;
    return at + 1 + written;
  }
  const header = varintSize(written);
  buffer.copyWithin(at + header, at + 1, at + 1 + written);
  let length = written;
  let i = at;
  while (length >= 0x80) {
    buffer[i++] = (length & 0x7f) | 0x80;
    length >>>= 7;
  }
  buffer[i] = length;
  return at + header + written;
}

/** The UTF-8 bytes an id takes in a chunk entry at most (its varint length included). */
export function maxEntryBytes(id: string): number {
  return 5 + 3 * id.length;
}

/** Where the bytes of the entry starting at `at` start (after its varint length); see entryEnd(). */
export function entryBytesStart(buffer: Uint8Array, at: number): number {
  while ((buffer[at] as number) >= 0x80) at++;
  return at + 1;
}

/** Where the entry starting at `at` ends (after its varint length and bytes). */
export function entryEnd(buffer: Uint8Array, at: number): number {
  let length = 0;
  let shift = 0;
  for (;;) {
    const byte = buffer[at++] as number;
    length |= (byte & 0x7f) << shift;
    if (byte < 0x80) break;
    shift += 7;
  }
  return at + length;
}

/** How many ids an encoded chunk holds. */
export function idsInChunk(chunk: Uint8Array): number {
  let count = 0;
  for (let at = 0; at < chunk.byteLength; at = entryEnd(chunk, at)) count++;
  return count;
}

function varintSize(value: number): number {
  let size = 1;
  while (value >= 0x80) {
    value >>>= 7;
    size++;
  }
  return size;
}
