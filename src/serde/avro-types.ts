/**
 * Building avsc types for untrusted input. avsc decodes arrays and maps by looping over the block
 * count read from the payload, without checking that the bytes are there: a corrupted record whose
 * count decodes to 2^40 keeps a partition busy for hours (and `new Array(n)` may allocate gigabytes).
 * The types built here stop reading as soon as the buffer is exhausted (the decode then reports a
 * truncated payload) and cap the item count of each collection.
 *
 * Strings are decoded strictly: avsc decodes invalid UTF-8 with U+FFFD substitutes, which would turn
 * a corrupted record into a real event (the string and JSON serdes reject it). See StrictStringType.
 */
import { isUtf8 } from 'node:buffer';
import avsc from 'avsc';
import type { Schema, Type } from 'avsc';

/**
 * What a schema can be given as: an .avsc object, its JSON text, or an avsc Type. Prefer the first
 * two: a ready-made Type is used as is (its collections are not bounded) and, when registered, loses
 * what avsc does not model (logicalType without a registered logical type class).
 */
export type AvroSchemaInput = Schema | string | Type;

/** Default cap on the items of one array or map; far above any sane event, far below a hang. */
export const DEFAULT_MAX_COLLECTION_ITEMS = 1_000_000;

/** The part of avsc's internal Tap (read cursor) the bounded readers use. */
/** Node's Buffer slicers without argument checks (undocumented, but what avsc itself calls). */
interface SlicingBuffer extends Buffer {
  latin1Slice(start: number, end: number): string;
  utf8Slice(start: number, end: number): string;
}

interface Tap {
  pos: number;
  readonly buf: SlicingBuffer;
  isValid(): boolean;
  readLong(): number;
  skipLong(): void;
  readString(): string;
  skipString(): void;
}

/** avsc's internal per-type readers; a resolver carries the same ones, bound to resolved child types. */
interface TypeInternals {
  _read(tap: Tap): unknown;
  _skip(tap: Tap): void;
}

/** Thrown inside a read; avsc lets it propagate, and the serde reports it as a bad record. */
export class CollectionTooLargeError extends Error {
  override readonly name = 'CollectionTooLargeError';
}

/** Thrown inside a read for a string (or map key) whose bytes are not valid UTF-8. */
export class InvalidUtf8Error extends Error {
  override readonly name = 'InvalidUtf8Error';
  constructor(
    /** Where its bytes start in the buffer being decoded, and how many there are. */
    readonly offset: number,
    readonly byteLength: number,
  ) {
    super(`a string of ${byteLength} bytes at offset ${offset} is not valid UTF-8`);
  }
}

/**
 * Whether strings are checked. Only `withLenientStrings` clears it, around a synchronous decode on the
 * error path (to name the field): nothing else can run meanwhile.
 */
let strictStrings = true;

/** Runs a synchronous decode that substitutes U+FFFD for invalid UTF-8, as avsc does by default. */
export function withLenientStrings<R>(decode: () => R): R {
  strictStrings = false;
  try {
    return decode();
  } finally {
    strictStrings = true;
  }
}

/**
 * Reads one string (avsc's `Tap.readString`, checked). Most strings on the hot path are ASCII: a scan
 * of their bytes proves them valid, and `latin1Slice` builds them without UTF-8 decoding. Any other
 * string is validated with `buffer.isUtf8` (simdutf) before it is decoded, so invalid UTF-8 never
 * becomes U+FFFD substitutes.
 */
function readCheckedString(tap: Tap): string {
  const length = tap.readLong();
  if (length < 0) {
    tap.pos = tap.buf.length + 1; // what avsc's _invalidate() does: the read is reported as truncated
    return '';
  }
  const buf = tap.buf;
  const start = tap.pos;
  const end = start + length;
  tap.pos = end;
  if (end > buf.length) return undefined as unknown as string; // truncated: the caller checks tap.isValid()
  let ascii = true;
  for (let i = start; i < end; i++) {
    if (buf[i]! >= 0x80) {
      ascii = false;
      break;
    }
  }
  if (ascii) return buf.latin1Slice(start, end);
  if (strictStrings && !isUtf8(buf.subarray(start, end))) throw new InvalidUtf8Error(start, length);
  return buf.utf8Slice(start, end);
}

type SchemaObject = Exclude<Schema, string> & { type?: unknown };
type TypeHook = (schema: Schema, opts: Partial<avsc.ForSchemaOptions>) => Type | undefined;

function blockCount(tap: Tap): number {
  let count = tap.readLong();
  if (count < 0) {
    // A negative count is followed by the block's byte size, which readers do not need.
    count = -count;
    tap.skipLong();
  }
  return count;
}

function makeBoundedTypes(maxItems: number): TypeHook {
  const ArrayType = avsc.types.ArrayType as unknown as new (schema: Schema, opts: unknown) => Type;
  const MapType = avsc.types.MapType as unknown as new (schema: Schema, opts: unknown) => Type;
  const StringType = avsc.types.StringType as unknown as new (schema: Schema, opts: unknown) => Type;

  // A resolver from a string or bytes writer takes the reader's `_read`, so resolved reads check too.
  class StrictStringType extends StringType {
    _read(tap: Tap): string {
      return readCheckedString(tap);
    }
  }

  // The methods below replace avsc's, and avsc also copies `_read` onto resolvers, where `this`
  // is the resolver and `itemsType` / `valuesType` the resolved children; both cases work.
  class BoundedArrayType extends ArrayType {
    _read(this: { itemsType: TypeInternals }, tap: Tap): unknown[] {
      const items: unknown[] = [];
      let count: number;
      while ((count = blockCount(tap)) !== 0) {
        if (items.length + count > maxItems) {
          throw new CollectionTooLargeError(
            `array of ${items.length + count} items exceeds the limit of ${maxItems}`,
          );
        }
        while (count-- > 0) {
          items.push(this.itemsType._read(tap));
          if (!tap.isValid()) return items; // ran past the end: the caller reports truncation
        }
      }
      return items;
    }

    _skip(this: { itemsType: TypeInternals }, tap: Tap): void {
      let count: number;
      let seen = 0;
      while ((count = tap.readLong()) !== 0) {
        if (count < 0) {
          tap.pos += tap.readLong(); // a sized block can be skipped at once
          if (!tap.isValid()) return;
          continue;
        }
        seen += count;
        if (seen > maxItems)
          throw new CollectionTooLargeError(`array of ${seen} items exceeds the limit of ${maxItems}`);
        while (count-- > 0) {
          this.itemsType._skip(tap);
          if (!tap.isValid()) return;
        }
      }
    }
  }

  class BoundedMapType extends MapType {
    _read(this: { valuesType: TypeInternals }, tap: Tap): Record<string, unknown> {
      const entries: Record<string, unknown> = {};
      let seen = 0;
      let count: number;
      while ((count = blockCount(tap)) !== 0) {
        seen += count;
        if (seen > maxItems)
          throw new CollectionTooLargeError(`map of ${seen} entries exceeds the limit of ${maxItems}`);
        while (count-- > 0) {
          const key = readCheckedString(tap);
          entries[key] = this.valuesType._read(tap);
          if (!tap.isValid()) return entries;
        }
      }
      return entries;
    }

    _skip(this: { valuesType: TypeInternals }, tap: Tap): void {
      let count: number;
      let seen = 0;
      while ((count = tap.readLong()) !== 0) {
        if (count < 0) {
          tap.pos += tap.readLong();
          if (!tap.isValid()) return;
          continue;
        }
        seen += count;
        if (seen > maxItems)
          throw new CollectionTooLargeError(`map of ${seen} entries exceeds the limit of ${maxItems}`);
        while (count-- > 0) {
          tap.skipString();
          this.valuesType._skip(tap);
          if (!tap.isValid()) return;
        }
      }
    }
  }

  return (schema, opts) => {
    // `"string"` and `{ "type": "string" }`, with or without a logical type (uuid stays a string).
    if (schema === 'string') return new StrictStringType(schema, opts);
    if (typeof schema !== 'object' || schema === null || Array.isArray(schema)) return undefined;
    const { type } = schema as SchemaObject;
    if (type === 'string') return new StrictStringType(schema, opts);
    // Logical types on collections are not a thing in Avro; leave anything unusual to avsc.
    if ((schema as { logicalType?: unknown }).logicalType !== undefined) return undefined;
    // Built with avsc's own options, so named types referenced inside the collection resolve.
    if (type === 'array') return new BoundedArrayType(schema, opts);
    if (type === 'map') return new BoundedMapType(schema, opts);
    return undefined;
  };
}

const hooksByLimit = new Map<number, TypeHook>();

/**
 * Parses a schema into an avsc Type whose collections are bounded. Longs decode to JS numbers and
 * timestamp-millis stays a number (epoch ms), the representation event time uses everywhere else.
 */
export function parseAvroSchema(input: AvroSchemaInput, maxItems = DEFAULT_MAX_COLLECTION_ITEMS): Type {
  if (avsc.Type.isType(input)) return input as Type;
  const schema: Schema = typeof input === 'string' ? (JSON.parse(input) as Schema) : input;
  let hook = hooksByLimit.get(maxItems);
  if (hook === undefined) {
    hook = makeBoundedTypes(maxItems);
    hooksByLimit.set(maxItems, hook);
  }
  return avsc.Type.forSchema(schema, {
    // Plain objects, no generated methods: decoded values are data the user spreads and serializes.
    omitRecordMethods: true,
    typeHook: hook as avsc.ForSchemaOptions['typeHook'],
  });
}

/**
 * The schema as JSON text for registering. Built from the input, not from the parsed Type: avsc's
 * `schema()` drops attributes it does not model (docs, and logicalType when no logical type class
 * is registered), and a registered timestamp-millis must stay timestamp-millis.
 */
export function avroSchemaText(input: AvroSchemaInput): string {
  if (avsc.Type.isType(input)) return JSON.stringify((input as Type).schema({ exportAttrs: true }));
  return typeof input === 'string' ? JSON.stringify(JSON.parse(input)) : JSON.stringify(input);
}

/** Canonical-form fingerprint: equal for schemas that encode identically (docs, defaults, order of keys ignored). */
export function schemaFingerprint(type: Type): string {
  return type.fingerprint('sha256').toString('hex');
}
