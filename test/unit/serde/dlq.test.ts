import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import {
  deadLetterFor,
  defaultDlqTopic,
  DeserializationError,
  DLQ_HEADERS,
  MAX_DLQ_ERROR_MESSAGE_BYTES,
  NotADeadLetterError,
  parseDlqMessage,
  toDlqMessage,
  truncatedSize,
} from '../../../src/serde/index.js';
import { dlqMessageBytes } from '../../../src/serde/dlq.js';
import type { DeadLetter, RawRecord } from '../../../src/core/records.js';

const record: RawRecord = {
  topic: 'usage-events',
  partition: 3,
  offset: 9_007_199_254_740_993n, // beyond Number precision: must survive as a decimal string
  timestamp: 1_700_000_000_123,
  key: Buffer.from('customer-1'),
  value: Buffer.from([1, 2, 3, 0, 255]),
  headers: { 'trace-id': Buffer.from('abc'), empty: Buffer.alloc(0), gone: undefined },
};

const letter: DeadLetter = {
  record,
  reason: 'bad-magic-byte',
  errorClass: 'DeserializationError',
  message: 'expected 0x00',
};

describe('DLQ envelope', () => {
  it('keeps key, value and headers byte for byte and adds the tributary.dlq headers', () => {
    const message = toDlqMessage(letter);
    assert.deepEqual(message.key, record.key);
    assert.deepEqual(message.value, record.value);
    assert.deepEqual(message.headers['trace-id'], Buffer.from('abc'));
    assert.deepEqual(message.headers['empty'], Buffer.alloc(0));
    assert.ok(!('gone' in message.headers));
    const text = (name: string): string | undefined => message.headers[name]?.toString();
    assert.equal(text(DLQ_HEADERS.reason), 'bad-magic-byte');
    assert.equal(text(DLQ_HEADERS.errorClass), 'DeserializationError');
    assert.equal(text(DLQ_HEADERS.errorMessage), 'expected 0x00');
    assert.equal(text(DLQ_HEADERS.sourceTopic), 'usage-events');
    assert.equal(text(DLQ_HEADERS.sourcePartition), '3');
    assert.equal(text(DLQ_HEADERS.sourceOffset), '9007199254740993');
    assert.equal(text(DLQ_HEADERS.sourceTimestamp), '1700000000123');
  });

  it('round-trips through the parser, also from string headers and repeated headers', () => {
    assert.deepEqual(parseDlqMessage(toDlqMessage(letter)), {
      ...letter,
      record: { ...record, headers: { 'trace-id': Buffer.from('abc'), empty: Buffer.alloc(0) } },
    });
    const asStrings = Object.fromEntries(
      Object.entries(toDlqMessage(letter).headers).map(([name, value]) => [name, value?.toString('latin1')]),
    );
    const parsed = parseDlqMessage({
      key: 'customer-1',
      value: null,
      headers: { ...asStrings, [DLQ_HEADERS.reason]: ['late-event', 'truncated'] },
    });
    assert.equal(parsed.reason, 'truncated');
    assert.equal(parsed.record.value, null);
    assert.equal(parsed.record.offset, record.offset);
  });

  it('keeps null keys and values null', () => {
    const message = toDlqMessage({ ...letter, record: { ...record, key: null, value: null } });
    assert.equal(message.key, null);
    assert.equal(message.value, null);
  });

  it('truncates long error messages at a character boundary', () => {
    const message = toDlqMessage({ ...letter, message: 'é'.repeat(5000) });
    const header = message.headers[DLQ_HEADERS.errorMessage];
    assert.ok(header && header.length <= MAX_DLQ_ERROR_MESSAGE_BYTES);
    const text = header.toString('utf8');
    assert.ok(!text.includes('\uFFFD'), 'no broken UTF-8 sequence');
    assert.ok(text.endsWith('…'));
  });

  it('a letter too large leaves out the original value, keeps why and where, and says it was truncated', () => {
    const big: DeadLetter = { ...letter, record: { ...record, value: Buffer.alloc(50_000, 7) } };
    const full = toDlqMessage(big);
    const message = toDlqMessage(big, { maxBytes: 10_000 });
    assert.ok(dlqMessageBytes(message) <= 10_000);
    assert.equal(message.value, null);
    assert.deepEqual(message.key, record.key, 'what still fits stays');
    assert.deepEqual(message.headers['trace-id'], Buffer.from('abc'));
    assert.equal(truncatedSize(message), dlqMessageBytes(full));
    const parsed = parseDlqMessage(message);
    assert.deepEqual(
      [parsed.reason, parsed.errorClass, parsed.message, parsed.record.topic, parsed.record.offset],
      ['bad-magic-byte', 'DeserializationError', 'expected 0x00', 'usage-events', record.offset],
    );
    assert.equal(truncatedSize(toDlqMessage(big)), undefined, 'a letter that fits is whole');
    assert.deepEqual(toDlqMessage(letter, { maxBytes: 10_000 }), toDlqMessage(letter));
  });

  it('a letter whose headers alone are too large keeps only the tributary headers, shortened to fit', () => {
    const heavy: DeadLetter = {
      ...letter,
      message: 'x'.repeat(5000),
      record: { ...record, key: Buffer.alloc(2000), headers: { big: Buffer.alloc(3000) } },
    };
    const message = toDlqMessage(heavy, { maxBytes: 600 });
    assert.ok(dlqMessageBytes(message) <= 600, `${dlqMessageBytes(message)} bytes`);
    assert.equal(message.key, null);
    assert.ok(!('big' in message.headers));
    assert.equal(parseDlqMessage(message).reason, 'bad-magic-byte');
    assert.equal(parseDlqMessage(message).record.offset, record.offset);
    assert.ok(Number(truncatedSize(message)) > 5000);
  });

  it('replaces dlq headers of a record that was dead-lettered before', () => {
    const again = toDlqMessage({
      ...letter,
      record: parseDlqMessage(toDlqMessage(letter)).record,
      reason: 'validation-failed',
    });
    assert.equal(again.headers[DLQ_HEADERS.reason]?.toString(), 'validation-failed');
    assert.equal(Object.keys(again.headers).filter((name) => name === DLQ_HEADERS.reason).length, 1);
  });

  it('refuses messages that are not tributary dead letters', () => {
    assert.throws(() => parseDlqMessage({ key: null, value: null, headers: {} }), NotADeadLetterError);
    const headers = { ...toDlqMessage(letter).headers, [DLQ_HEADERS.reason]: Buffer.from('because') };
    assert.throws(() => parseDlqMessage({ key: null, value: null, headers }), /unknown dead-letter reason/);
    const badOffset = { ...toDlqMessage(letter).headers, [DLQ_HEADERS.sourceOffset]: Buffer.from('12x') };
    assert.throws(() => parseDlqMessage({ key: null, value: null, headers: badOffset }), /not an integer/);
  });

  it('maps errors to dead letters and names the default topic', () => {
    const fromDecode = deadLetterFor(record, new DeserializationError('truncated', 'cut short'));
    assert.deepEqual(
      [fromDecode.reason, fromDecode.errorClass, fromDecode.message],
      ['truncated', 'DeserializationError', 'cut short'],
    );
    const fromBug = deadLetterFor(record, new TypeError('x is undefined'));
    assert.deepEqual([fromBug.reason, fromBug.errorClass], ['processing-failed', 'TypeError']);
    assert.equal(deadLetterFor(record, 'thrown string').message, 'thrown string');
    assert.equal(defaultDlqTopic('metering'), 'metering.dlq');
  });
});
