/**
 * Building avsc types for untrusted input. avsc decodes arrays and maps by looping over the block
 * count read from the payload, without checking that the bytes are there: a corrupted record whose
 * count decodes to 2^40 keeps a partition busy for hours (and `new Array(n)` may allocate gigabytes).
 * The types built here stop reading as soon as the buffer is exhausted (the decode then reports a
 * truncated payload) and cap the item count of each collection.
 */
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
interface Tap {
  pos: number;
  readonly buf: Buffer;
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
          const key = tap.readString();
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
    if (typeof schema !== 'object' || schema === null || Array.isArray(schema)) return undefined;
    const { type } = schema as SchemaObject;
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
