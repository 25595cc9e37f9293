/** UTF-8 strings, typically for keys. Invalid UTF-8 is a bad record, not a string with U+FFFD in it. */
import { DeserializationError, type Serde, type SerdeContext } from './types.js';

const strictUtf8 = new TextDecoder('utf-8', { fatal: true });

export function string(): Serde<string> {
  return {
    name: 'string',
    deserialize(data: Buffer | null, ctx: SerdeContext): string {
      if (data === null) {
        throw new DeserializationError(
          'decode-failed',
          `${ctx.topic} ${ctx.role ?? 'value'}: null where a string was expected (wrap the serde in nullable())`,
        );
      }
      try {
        return strictUtf8.decode(data);
      } catch (error) {
        throw new DeserializationError(
          'decode-failed',
          `${ctx.topic} ${ctx.role ?? 'value'}: not valid UTF-8`,
          {
            cause: error,
          },
        );
      }
    },
    serialize(value: string): Buffer {
      return Buffer.from(value, 'utf8');
    },
  };
}
