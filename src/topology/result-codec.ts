/**
 * Outbox segment codec for window results, used for a sink fed directly by a windowed aggregate. A
 * commit after a window closes writes one row per key (100k+ per minute); as JSON objects that was
 * the largest cost of a commit. Here the numeric columns (window bounds, version, partition and every
 * aggregate field whose values are all numbers) are written as raw float64 columns, and only the keys
 * and non-numeric fields as JSON (bigint and Buffer kept, as in the JSON segment format).
 *
 * Layout: byte 0 the format (0x02), bytes 4..15 three uint32 (row count, float64 column count, JSON
 * byte length), then the float64 columns (column-major), then the UTF-8 JSON part
 * `{ fields, numeric, columns, keys }`. Decoding rebuilds rows with the property order of emission.
 */
import { decodeValue, encodeValue } from '../state/codec.js';
import type { SegmentCodec } from '../state/outbox-store.js';
import type { WindowResult } from '../core/records.js';

const FORMAT = 0x02;
const HEADER_BYTES = 16;
/** windowStart, windowEnd, version, partition. */
const FIXED_COLUMNS = 4;

type Row = WindowResult<unknown, Record<string, unknown>>;

interface JsonPart {
  fields: string[];
  /** Fields stored as float64 columns, in column order after the fixed ones. */
  numeric: string[];
  /** The other fields, one array of values each. */
  columns: Record<string, unknown[]>;
  keys: unknown[];
}

function isRow(value: unknown): value is Row {
  if (typeof value !== 'object' || value === null) return false;
  const row = value as Partial<Row>;
  return (
    typeof row.windowStart === 'number' &&
    typeof row.windowEnd === 'number' &&
    typeof row.version === 'number' &&
    typeof row.partition === 'number' &&
    typeof row.value === 'object' &&
    row.value !== null
  );
}

export const windowResultCodec: SegmentCodec<unknown> = {
  format: 'window-results/1',
  encode(values) {
    const count = values.length;
    const first = values[0];
    if (!isRow(first)) return undefined;
    const fields = Object.keys(first.value);
    const numericFlags = fields.map(() => true);
    for (let i = 0; i < count; i++) {
      const row = values[i];
      if (!isRow(row)) return undefined; // not what a window aggregate emits: let the outbox write JSON
      const value = row.value;
      for (let f = 0; f < fields.length; f++)
        if (numericFlags[f] && typeof value[fields[f] as string] !== 'number') numericFlags[f] = false;
    }
    const numeric = fields.filter((_, f) => numericFlags[f]);
    const other = fields.filter((_, f) => !numericFlags[f]);
    const columnCount = FIXED_COLUMNS + numeric.length;
    const floats = new Float64Array(count * columnCount);
    const keys: unknown[] = new Array(count);
    const columns: Record<string, unknown[]> = {};
    for (const field of other) columns[field] = new Array(count);
    for (let i = 0; i < count; i++) {
      const row = values[i] as Row;
      floats[i] = row.windowStart;
      floats[count + i] = row.windowEnd;
      floats[2 * count + i] = row.version;
      floats[3 * count + i] = row.partition;
      for (let f = 0; f < numeric.length; f++)
        floats[(FIXED_COLUMNS + f) * count + i] = row.value[numeric[f] as string] as number;
      for (const field of other) (columns[field] as unknown[])[i] = row.value[field];
      keys[i] = row.key;
    }
    const json: JsonPart = { fields, numeric, columns, keys };
    const text = encodeValue(json);
    const jsonBytes = Buffer.byteLength(text, 'utf8');
    const floatBytes = floats.byteLength;
    const buffer = new ArrayBuffer(HEADER_BYTES + floatBytes + jsonBytes);
    const bytes = new Uint8Array(buffer);
    bytes[0] = FORMAT;
    const header = new Uint32Array(buffer, 4, 3);
    header[0] = count;
    header[1] = columnCount;
    header[2] = jsonBytes;
    bytes.set(new Uint8Array(floats.buffer), HEADER_BYTES);
    Buffer.from(buffer).write(text, HEADER_BYTES + floatBytes, jsonBytes, 'utf8');
    return bytes;
  },

  decode(bytes) {
    if (bytes[0] !== FORMAT) throw new Error(`not a window-result segment (format ${bytes[0]})`);
    // Copy: LevelDB's buffer may not be aligned for typed-array views.
    const header = new Uint32Array(3);
    new Uint8Array(header.buffer).set(bytes.subarray(4, HEADER_BYTES));
    const [count = 0, columnCount = 0, jsonBytes = 0] = header;
    const floatBytes = count * columnCount * 8;
    const floats = new Float64Array(count * columnCount);
    new Uint8Array(floats.buffer).set(bytes.subarray(HEADER_BYTES, HEADER_BYTES + floatBytes));
    const text = Buffer.from(bytes.buffer, bytes.byteOffset + HEADER_BYTES + floatBytes, jsonBytes).toString(
      'utf8',
    );
    const { fields, numeric, columns, keys } = decodeValue<JsonPart>(text);
    const numericIndex = new Map(numeric.map((field, f) => [field, FIXED_COLUMNS + f]));
    const rows: Row[] = new Array(count);
    for (let i = 0; i < count; i++) {
      const value: Record<string, unknown> = {};
      for (const field of fields) {
        const column = numericIndex.get(field);
        value[field] = column === undefined ? columns[field]?.[i] : floats[column * count + i];
      }
      rows[i] = {
        windowStart: floats[i] as number,
        windowEnd: floats[count + i] as number,
        key: keys[i],
        value,
        version: floats[2 * count + i] as number,
        partition: floats[3 * count + i] as number,
      };
    }
    return rows;
  },
};
