/** JSON values as UTF-8 text, for keys or values of topics without a registry. */
import { DeserializationError, SerializationError, type Serde, type SerdeContext } from './types.js';

export interface JsonSerdeOptions {
  /** Name shown by describe(); default `json`. */
  name?: string;
}

const strictUtf8 = new TextDecoder('utf-8', { fatal: true });

export function json<T>(options: JsonSerdeOptions = {}): Serde<T> {
  return {
    name: options.name ?? 'json',
    deserialize(data: Buffer | null, ctx: SerdeContext): T {
      if (data === null) {
        throw new DeserializationError(
          'decode-failed',
          `${ctx.topic} ${ctx.role ?? 'value'}: null is not a JSON document`,
        );
      }
      if (data.length > 0 && data[0] === 0) {
        // A Schema Registry frame on a JSON topic: the producer and the consumer disagree on the format.
        throw new DeserializationError(
          'bad-magic-byte',
          `${ctx.topic} ${ctx.role ?? 'value'}: starts with 0x00 (Schema Registry framing?), expected JSON text`,
        );
      }
      try {
        return JSON.parse(strictUtf8.decode(data)) as T;
      } catch (error) {
        throw new DeserializationError(
          'decode-failed',
          `${ctx.topic} ${ctx.role ?? 'value'}: not valid JSON: ${error instanceof Error ? error.message : String(error)}`,
          { cause: error },
        );
      }
    },
    serialize(value: T, ctx: SerdeContext): Buffer {
      let text: string | undefined;
      try {
        text = JSON.stringify(value);
      } catch (error) {
        throw new SerializationError(
          `${ctx.topic} ${ctx.role ?? 'value'}: cannot encode as JSON: ${error instanceof Error ? error.message : String(error)}`,
          { cause: error },
        );
      }
      if (text === undefined)
        throw new SerializationError(`${ctx.topic} ${ctx.role ?? 'value'}: ${typeof value} has no JSON form`);
      return Buffer.from(text, 'utf8');
    },
  };
}
