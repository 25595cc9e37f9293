/**
 * JSON encoding for state and outbox values that also round-trips the two non-JSON types the engine
 * hands around: bigint (Kafka offsets) and Buffer (raw keys, values and headers of dead letters).
 */

const BIGINT_TAG = '$bigint';
const BUFFER_TAG = '$buffer';

function replacer(this: Record<string, unknown>, key: string, value: unknown): unknown {
  // JSON.stringify calls Buffer#toJSON before the replacer sees the value, so look at the holder.
  const original = this[key];
  if (typeof original === 'bigint') return { [BIGINT_TAG]: original.toString() };
  if (Buffer.isBuffer(original)) return { [BUFFER_TAG]: original.toString('base64') };
  return value;
}

function reviver(_key: string, value: unknown): unknown {
  if (value !== null && typeof value === 'object' && !Array.isArray(value)) {
    const tagged = value as Record<string, unknown>;
    // Node's own Buffer#toJSON form, written by the fast path of encodeValue.
    if (tagged.type === 'Buffer' && Array.isArray(tagged.data) && Object.keys(tagged).length === 2) {
      return Buffer.from(tagged.data as number[]);
    }
    const bigintText = tagged[BIGINT_TAG];
    if (typeof bigintText === 'string' && Object.keys(tagged).length === 1) return BigInt(bigintText);
    const base64 = tagged[BUFFER_TAG];
    if (typeof base64 === 'string' && Object.keys(tagged).length === 1) return Buffer.from(base64, 'base64');
  }
  return value;
}

/**
 * Encodes a value as JSON text, keeping bigints and Buffers. Plain JSON.stringify first: a replacer
 * costs a property lookup per node, and most values (window results) hold neither type. Buffers
 * survive the plain path as Node's `{ type: 'Buffer', data }`; only a bigint makes it throw.
 */
export function encodeValue(value: unknown): string {
  try {
    return JSON.stringify(value);
  } catch (error) {
    if (!(error instanceof TypeError)) throw error;
    return JSON.stringify(value, replacer);
  }
}

/** Decodes text written by encodeValue. */
export function decodeValue<T = unknown>(text: string): T {
  return JSON.parse(text, reviver) as T;
}

/** Fixed-width hex so that LevelDB's byte order equals numeric order (non-negative integers below 2^64). */
export function sortableHex(value: number | bigint, width = 16): string {
  return value.toString(16).padStart(width, '0');
}

/**
 * Order-preserving text for any finite epoch-ms number, including negative ones (offset by 2^52 so that
 * all safe integers map to non-negative values).
 */
export function sortableTime(ms: number): string {
  return sortableHex(ms + 2 ** 52, 14);
}

export function parseSortableTime(text: string): number {
  return parseInt(text, 16) - 2 ** 52;
}
