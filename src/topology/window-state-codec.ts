/**
 * How window states are written to the window store and read back: the binary blob of numeric states
 * (format 'NUM2', still reading 'NUM1'), the JSON codec of any other spec, and how the store view
 * shows their keys. Existing state folders depend on these layouts: change them only with a new tag.
 */
import {
  JSON_WINDOW_ENTRY_OVERHEAD_BYTES,
  WINDOW_ENTRY_OVERHEAD_BYTES,
  jsonBlobCodec,
} from '../state/window-store.js';
import type { WindowBlobCodec, WindowEntry } from '../state/window-store.js';
import type { AnyAggregator } from './aggregators.js';
import { GroupKeyText } from './group-key.js';
import { NO_ACCUMULATORS, NO_SLOTS, keyOfEntry } from './window-state.js';
import type { WindowState } from './window-state.js';

const BLOB_MAGIC_V1 = 0x314d554e; // 'NUM1'
const BLOB_MAGIC = 0x324d554e; // 'NUM2'
const HEADER_BYTES_V1 = 16;
const HEADER_BYTES = 24;
/** Key kinds in a blob. */
const STRING_KEY = 0;
const JSON_KEY = 1;
const COMPACT_KEY = 2;
/**
 * Memory of a quantile sketch (DDSketch) beyond its JSON, per quantiles() aggregator of a JSON-layout
 * state: measured as for JSON_WINDOW_ENTRY_OVERHEAD_BYTES with count + quantiles (one value per key),
 * 2,560 bytes per entry for about 206 bytes of JSON.
 */
const QUANTILE_SKETCH_OVERHEAD_BYTES = 2_100;
/** What every compact key text starts with (GroupKeyText). */
const COMPACT_PREFIX = '\u0001';

/** How the store view shows a key: as it was before compact key texts (the string, or its JSON). */
function describeKeyWith(keys: GroupKeyText): (entry: WindowEntry<WindowState>) => string {
  return (entry) => {
    const key = keyOfEntry(entry, keys);
    return typeof key === 'string'
      ? key
      : GroupKeyText.isCompact(entry.keyText, key)
        ? (JSON.stringify(key) ?? 'null')
        : entry.keyText;
  };
}
/**
 * The key of a spilled window's per-key record: a compact text's key as its JSON (the key's identity,
 * whatever shape this instance learned), any other text as it is (a string key, a JSON text).
 */
function storeKeyWith(keys: GroupKeyText): (keyText: string) => string {
  return (keyText) => {
    if (!keyText.startsWith(COMPACT_PREFIX)) return keyText;
    try {
      return JSON.stringify(keys.keyOf(keyText));
    } catch {
      return keyText; // a string key that starts like a compact text: it is its own text
    }
  };
}

/**
 * Binary blob of numeric window states: a 24-byte header (magic, entry count, slot width, key bytes,
 * shape bytes, 0), then per entry `[version, ...slots]` as float64, then the key texts' UTF-16
 * lengths (uint32), their kinds (uint8: 0 string key, 1 JSON text, 2 compact text, see
 * GroupKeyText), the key texts concatenated as UTF-8, and the JSON array of the compact texts'
 * field names. Encoding costs a typed-array copy per entry and one string join, instead of a JSON
 * document per commit; the in-memory key texts are written as they are (no JSON.stringify per key).
 * Blobs of the earlier layout ('NUM1': 16-byte header, kinds 0 and 1 only, no shape) still load.
 */
export function numericBlobCodec(
  name: string,
  width: number,
  keys: GroupKeyText,
): WindowBlobCodec<WindowState> {
  const stride = width + 1;
  return {
    encodeBlob(entries) {
      const count = entries.length;
      const texts: string[] = new Array(count);
      for (let i = 0; i < count; i++) texts[i] = (entries[i] as WindowEntry<WindowState>).keyText;
      const joined = texts.join('');
      const keyBytes = Buffer.byteLength(joined, 'utf8');
      const shape = JSON.stringify(keys.fields ?? []);
      const shapeBytes = Buffer.byteLength(shape, 'utf8');
      const floatsEnd = HEADER_BYTES + count * stride * 8;
      const lengthsEnd = floatsEnd + count * 4;
      const kindsEnd = lengthsEnd + count;
      const buffer = new ArrayBuffer(kindsEnd + keyBytes + shapeBytes);
      const header = new Uint32Array(buffer, 0, 6);
      header[0] = BLOB_MAGIC;
      header[1] = count;
      header[2] = width;
      header[3] = keyBytes;
      header[4] = shapeBytes;
      const floats = new Float64Array(buffer, HEADER_BYTES, count * stride);
      const lengths = new Uint32Array(buffer, floatsEnd, count);
      const kinds = new Uint8Array(buffer, lengthsEnd, count);
      for (let i = 0; i < count; i++) {
        const state = (entries[i] as WindowEntry<WindowState>).state;
        const text = texts[i] as string;
        const base = i * stride;
        floats[base] = state.version;
        for (let j = 0; j < width; j++) floats[base + 1 + j] = state.slots[state.at + j] as number;
        lengths[i] = text.length;
        kinds[i] =
          typeof state.key === 'string'
            ? STRING_KEY
            : GroupKeyText.isCompact(text, state.key)
              ? COMPACT_KEY
              : JSON_KEY;
      }
      const bytes = Buffer.from(buffer);
      bytes.write(joined, kindsEnd, keyBytes, 'utf8');
      bytes.write(shape, kindsEnd + keyBytes, shapeBytes, 'utf8');
      return new Uint8Array(buffer);
    },
    decodeBlob(bytes) {
      // Copy: LevelDB's buffer may not be 8-byte aligned for a Float64Array view.
      const header = new Uint32Array(6);
      new Uint8Array(header.buffer).set(bytes.subarray(0, Math.min(HEADER_BYTES, bytes.byteLength)));
      const [magic, count = 0, blobWidth, keyBytes = 0, shapeBytes = 0] = header;
      const v1 = magic === BLOB_MAGIC_V1;
      if ((magic !== BLOB_MAGIC && !v1) || blobWidth !== width)
        throw new Error(`window store "${name}": blob does not match the aggregate spec (width ${width})`);
      const headerBytes = v1 ? HEADER_BYTES_V1 : HEADER_BYTES;
      const floatsEnd = headerBytes + count * stride * 8;
      const lengthsEnd = floatsEnd + count * 4;
      const keysStart = lengthsEnd + count;
      const floats = new Float64Array(count * stride);
      new Uint8Array(floats.buffer).set(bytes.subarray(headerBytes, floatsEnd));
      const lengths = new Uint32Array(count);
      new Uint8Array(lengths.buffer).set(bytes.subarray(floatsEnd, lengthsEnd));
      const kinds = bytes.subarray(lengthsEnd, keysStart);
      const text = (from: number, size: number): string =>
        Buffer.from(bytes.buffer, bytes.byteOffset + from, size).toString('utf8');
      const joined = text(keysStart, keyBytes);
      const fields = v1 ? [] : (JSON.parse(text(keysStart + keyBytes, shapeBytes)) as string[]);
      const rows: Array<[string, WindowState]> = new Array(count);
      let at = 0;
      for (let i = 0; i < count; i++) {
        const stored = joined.slice(at, at + (lengths[i] as number));
        at += lengths[i] as number;
        const kind = kinds[i];
        // The text in memory is re-derived under this task's key shape, which may differ from the
        // shape the blob was written with.
        const key: unknown =
          kind === STRING_KEY
            ? stored
            : kind === COMPACT_KEY
              ? GroupKeyText.parse(stored, fields)
              : (JSON.parse(stored) as unknown);
        rows[i] = [
          kind === STRING_KEY ? stored : kind === COMPACT_KEY ? keys.of(key) : keys.ofJson(stored),
          {
            key,
            accumulators: NO_ACCUMULATORS,
            // The decoded array is the entries' shared chunk.
            slots: floats,
            at: i * stride + 1,
            version: floats[i * stride] as number,
          },
        ];
      }
      return rows;
    },
    describe: (entry) => ({
      key: keyOfEntry(entry, keys),
      slots: [...entry.state.slots.subarray(entry.state.at, entry.state.at + width)],
      version: entry.state.version,
    }),
    describeKey: describeKeyWith(keys),
    storeKey: storeKeyWith(keys),
    entryOverheadBytes: WINDOW_ENTRY_OVERHEAD_BYTES,
  };
}

/**
 * The codec of a spec without a numeric layout: each state as JSON, its accumulators through their
 * aggregators' toState/fromState.
 */
export function jsonWindowStateCodec(
  aggregators: readonly AnyAggregator<unknown>[],
  keys: GroupKeyText,
): WindowBlobCodec<WindowState> {
  const json = jsonBlobCodec<WindowState>({
    encode: (state) => ({
      k: state.key,
      a: state.accumulators.map((acc, i) => aggregators[i]?.toState?.(acc) ?? acc),
      v: state.version,
    }),
    decode: (data) => {
      const raw = data as { k: unknown; a: unknown[]; v: number };
      return {
        key: raw.k,
        accumulators: raw.a.map((acc, i) => {
          const aggregator = aggregators[i];
          return aggregator?.fromState ? aggregator.fromState(acc) : acc;
        }),
        slots: NO_SLOTS,
        at: 0,
        version: raw.v,
      };
    },
  });
  return {
    encodeBlob: json.encodeBlob,
    // Each state holds its key: the text in memory is re-derived under this task's key shape.
    decodeBlob: (bytes) => json.decodeBlob(bytes).map(([, state]) => [keys.of(state.key), state]),
    describeKey: describeKeyWith(keys),
    storeKey: storeKeyWith(keys),
    entryOverheadBytes:
      JSON_WINDOW_ENTRY_OVERHEAD_BYTES +
      QUANTILE_SKETCH_OVERHEAD_BYTES *
        aggregators.filter((aggregator) => aggregator.kind === 'quantiles').length,
  };
}
