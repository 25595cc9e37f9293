/**
 * The on-disk layout of a window store's spilled windows, beside its blobs, in the same sublevel (so
 * the changelog carries it and a restore replays it like any other entry):
 *
 * - blob `<sortable start>!<blob seq>`: the changed entries of one commit (a window that never spilled);
 * - per-key record `k<sortable start>!<store key>`: one entry of a spilled window, its value a one-entry
 *   blob of the store's codec (the same bytes a blob would hold for it);
 * - spill record `s<sortable start>`: a spilled window's entry count, the estimated encoded bytes of
 *   one entry, and the filter of its keys on disk (key-filter.ts), as of the last time it was written;
 * - key log record `n<sortable start>!<seq>`: the store keys a commit added to a spilled window since
 *   (a JSON array), so a commit writes its new keys, not the whole filter; once the logs hold
 *   KEY_LOG_MAX_KEYS keys the spill record is rewritten and they are deleted.
 *
 * Opening reads the spill records and key logs (at most KEY_LOG_MAX_KEYS keys per spilled window),
 * never a per-key record. A sortable start is 14 hex digits, so every blob key sorts before 'g', every
 * per-key record between 'k' and 'l', every key log between 'n' and 'o' and every spill record between
 * 's' and 't': a range read gets one kind only.
 */
import { parseSortableTime, sortableTime } from './codec.js';
import { KeyFilter } from './key-filter.js';

/** Every blob key sorts below this. */
export const BLOBS_END = 'g';
export const SPILL_RECORDS = { gt: 's', lt: 't' } as const;
export const KEY_LOG_RECORDS = { gt: 'n', lt: 'o' } as const;
/** Keys a spilled window's key logs may hold before its spill record (and filter) is rewritten. */
export const KEY_LOG_MAX_KEYS = 65_536;

const SPILL_MAGIC = 0x31505357; // 'WSP1'
const HEADER_WORDS = 4;

export function perKeyRecordKey(start: number, storeKey: string): string {
  return `k${sortableTime(start)}!${storeKey}`;
}

/** The range of a window's per-key records. */
export function perKeyRange(start: number): { gt: string; lt: string } {
  // '"' follows '!': the first key after every per-key record of this window.
  const prefix = `k${sortableTime(start)}`;
  return { gt: `${prefix}!`, lt: `${prefix}"` };
}

export function spillRecordKey(start: number): string {
  return `s${sortableTime(start)}`;
}

/** The window start of a spill record's key. */
export function spillRecordStart(key: string): number {
  return parseSortableTime(key.slice(1));
}

export function keyLogRecordKey(start: number, seq: string): string {
  return `n${sortableTime(start)}!${seq}`;
}

/** The window start of a key log record's key. */
export function keyLogStart(key: string): number {
  return parseSortableTime(key.slice(1, key.indexOf('!')));
}

export function encodeKeyLog(storeKeys: readonly string[]): Uint8Array {
  return Buffer.from(JSON.stringify(storeKeys), 'utf8');
}

export function decodeKeyLog(bytes: Uint8Array): string[] {
  return JSON.parse(
    Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength).toString('utf8'),
  ) as string[];
}

export interface SpillRecord {
  /** The window's entries, resident or on disk, each key once. */
  readonly count: number;
  /** Estimated encoded bytes of one entry (its resident size is estimated from it). */
  readonly bytesPerEntry: number;
  readonly filter: KeyFilter;
}

/** Header (magic, count, filter capacity, bytes per entry) then the filter's words, all uint32. */
export function encodeSpillRecord(record: SpillRecord): Uint8Array {
  const words = new Uint32Array(HEADER_WORDS + record.filter.words.length);
  words[0] = SPILL_MAGIC;
  words[1] = record.count;
  words[2] = record.filter.capacity;
  words[3] = Math.round(record.bytesPerEntry);
  words.set(record.filter.words, HEADER_WORDS);
  return new Uint8Array(words.buffer);
}

export function decodeSpillRecord(bytes: Uint8Array, store: string): SpillRecord {
  // Copy: LevelDB's buffer may not be 4-byte aligned for a Uint32Array view.
  const words = new Uint32Array(Math.floor(bytes.byteLength / 4));
  new Uint8Array(words.buffer).set(bytes.subarray(0, words.byteLength));
  if (words[0] !== SPILL_MAGIC || words.length <= HEADER_WORDS)
    throw new Error(`window store "${store}": a spill record of an unknown layout`);
  return {
    count: words[1] as number,
    bytesPerEntry: words[3] as number,
    filter: KeyFilter.fromWords(words[2] as number, words.subarray(HEADER_WORDS)),
  };
}
