/**
 * The Confluent Schema Registry wire format: one magic byte (0), the schema id as a big-endian
 * int32, then the encoded payload. Shared by every Confluent-compatible client, so records written
 * by Java, Python or Go producers decode here and ours decode there.
 */
import { DeserializationError } from './types.js';

export const MAGIC_BYTE = 0;
export const WIRE_HEADER_SIZE = 5;

/** Prefixes an encoded payload with the magic byte and schema id. */
export function encodeWireFormat(schemaId: number, payload: Buffer): Buffer {
  const framed = Buffer.allocUnsafe(WIRE_HEADER_SIZE + payload.length);
  framed[0] = MAGIC_BYTE;
  framed.writeInt32BE(schemaId, 1);
  payload.copy(framed, WIRE_HEADER_SIZE);
  return framed;
}

/**
 * Reads the schema id from a framed payload; the payload starts at WIRE_HEADER_SIZE.
 * Throws DeserializationError ('truncated' or 'bad-magic-byte'), never anything else.
 */
export function readSchemaId(framed: Buffer, where: string): number {
  // Check the magic byte first: a one-byte JSON or string payload is "not ours", not "cut short".
  if (framed.length > 0 && framed[0] !== MAGIC_BYTE) {
    throw new DeserializationError(
      'bad-magic-byte',
      `${where}: expected the Schema Registry magic byte 0x00, found 0x${framed[0]!.toString(16).padStart(2, '0')} ` +
        `(is the producer writing plain JSON/Avro without the registry framing?)`,
    );
  }
  if (framed.length < WIRE_HEADER_SIZE) {
    throw new DeserializationError(
      'truncated',
      `${where}: ${framed.length} bytes is shorter than the ${WIRE_HEADER_SIZE}-byte Schema Registry header`,
    );
  }
  return framed.readInt32BE(1);
}
