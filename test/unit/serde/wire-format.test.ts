import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import {
  DeserializationError,
  encodeWireFormat,
  readSchemaId,
  WIRE_HEADER_SIZE,
} from '../../../src/serde/index.js';

describe('Confluent wire format', () => {
  it('frames a payload with magic byte and big-endian schema id', () => {
    const framed = encodeWireFormat(0x01020304, Buffer.from([9, 8]));
    assert.deepEqual([...framed], [0, 1, 2, 3, 4, 9, 8]);
    assert.equal(readSchemaId(framed, 't'), 0x01020304);
    assert.equal(framed.length, WIRE_HEADER_SIZE + 2);
  });

  it('reports a wrong first byte as bad-magic-byte, even when short', () => {
    for (const data of [Buffer.from('{"a":1}'), Buffer.from([1]), Buffer.from([0x7b, 0, 0, 0, 0, 1])]) {
      assert.throws(
        () => readSchemaId(data, 't value'),
        (error: unknown) => {
          assert.ok(error instanceof DeserializationError);
          assert.equal(error.reason, 'bad-magic-byte');
          assert.match(error.message, /t value/);
          return true;
        },
      );
    }
  });

  it('reports fewer than 5 bytes (or none) as truncated', () => {
    for (const data of [Buffer.alloc(0), Buffer.from([0]), Buffer.from([0, 0, 0, 1])]) {
      assert.throws(
        () => readSchemaId(data, 't'),
        (error: unknown) => error instanceof DeserializationError && error.reason === 'truncated',
      );
    }
  });
});
