/** Serdes built from serdes: null handling and user validation, for any format. */
import { DeserializationError, SerializationError, type Serde, type SerdeContext } from './types.js';

/**
 * Decodes a Kafka null (null key, tombstone value) to null; everything else goes to `inner`.
 * Encoding null throws: a Serializer yields bytes, and a null key or tombstone must be produced as
 * a Kafka null by the writer itself, not as an empty payload that consumers would try to decode.
 */
export function nullable<T>(inner: Serde<T>): Serde<T | null> {
  return {
    name: `nullable(${inner.name})`,
    useServiceDefaults: (defaults) => inner.useServiceDefaults?.(defaults),
    ...probeOf(inner),
    deserialize: (data, ctx) => (data === null ? null : inner.deserialize(data, ctx)),
    serialize(value, ctx) {
      if (value === null) {
        throw new SerializationError(
          `${ctx.topic} ${ctx.role ?? 'value'}: null has no bytes; produce a Kafka null instead of serializing it`,
        );
      }
      return inner.serialize(value, ctx);
    },
  };
}

/**
 * A check on decoded values. Return nothing (or true) when the value is fine; return a description
 * of the problem (or false, or throw) when it is not: the record is dead-lettered as 'validation-failed'.
 */
export type Validator<T> = (value: T, ctx: SerdeContext) => string | boolean | undefined | void;

/** Decodes with `inner`, then dead-letters values the validator rejects. Encoding is not validated. */
export function validated<T>(inner: Serde<T>, validator: Validator<T>, name = 'validated'): Serde<T> {
  const check = (value: T, ctx: SerdeContext): T => {
    let verdict: ReturnType<Validator<T>>;
    try {
      verdict = validator(value, ctx);
    } catch (error) {
      throw new DeserializationError(
        'validation-failed',
        `${ctx.topic} ${ctx.role ?? 'value'}: ${name}: ${error instanceof Error ? error.message : String(error)}`,
        { cause: error },
      );
    }
    if (verdict === undefined || verdict === true) return value;
    const problem = verdict === false ? 'rejected by the validator' : verdict;
    throw new DeserializationError(
      'validation-failed',
      `${ctx.topic} ${ctx.role ?? 'value'}: ${name}: ${problem}`,
    );
  };
  return {
    name: `${name}(${inner.name})`,
    useServiceDefaults: (defaults) => inner.useServiceDefaults?.(defaults),
    ...probeOf(inner),
    deserialize(data, ctx) {
      const decoded = inner.deserialize(data, ctx);
      // Stay synchronous when the inner serde is (the cached Avro path).
      return decoded instanceof Promise ? decoded.then((value) => check(value, ctx)) : check(decoded, ctx);
    },
    serialize: (value, ctx) => inner.serialize(value, ctx),
  };
}

/** A wrapping serde depends on what its inner serde depends on. */
function probeOf(inner: Serde<unknown>): Pick<Serde<unknown>, 'probe'> {
  const { probe } = inner;
  return probe === undefined ? {} : { probe: () => probe.call(inner) };
}
