import assert from 'node:assert/strict';
import { test } from 'node:test';
import type { DeadLetter } from '../../../src/core/records.js';
import { packDeadLetters } from '../../../src/runtime/dlq-transactions.js';
import { parseDlqMessage, truncatedSize } from '../../../src/serde/dlq.js';

function letter(
  offset: number,
  valueBytes: number,
  reason: DeadLetter['reason'] = 'decode-failed',
): DeadLetter {
  return {
    record: {
      topic: 'in',
      partition: 0,
      offset: BigInt(offset),
      timestamp: 0,
      key: Buffer.from(`k${offset}`),
      value: Buffer.alloc(valueBytes, 1),
      headers: {},
    },
    reason,
    errorClass: 'DeserializationError',
    message: 'not JSON',
  };
}

const MAX = 1_000_000;
const offsets = (letters: DeadLetter[]) => letters.map((l) => Number(l.record.offset));

test('dead letters are cut into transactions by bytes, in order, each within the limit', () => {
  const letters = [letter(1, 900_000), letter(2, 900_000), letter(3, 100), letter(4, 100)];
  const transactions = packDeadLetters(letters, MAX);
  assert.deepEqual(
    transactions.map((t) => offsets(t.letters)),
    [[1], [2, 3, 4]],
  );
  assert.deepEqual(
    transactions.map((t) => t.nextOffset),
    [2n, 5n],
  );
  for (const t of transactions) assert.ok(t.bytes <= MAX, `${t.bytes} bytes`);
  assert.ok(transactions.every((t) => t.messages.every((m) => truncatedSize(m) === undefined)));
});

test('many small letters share one transaction', () => {
  const transactions = packDeadLetters(
    Array.from({ length: 100 }, (_, i) => letter(i, 1000)),
    MAX,
  );
  assert.equal(transactions.length, 1);
  assert.equal(transactions[0]!.messages.length, 100);
});

test('a letter larger than the limit goes alone, without its record, with its reason and source', () => {
  const transactions = packDeadLetters([letter(7, 3_000_000), letter(8, 10)], MAX);
  assert.deepEqual(
    transactions.map((t) => offsets(t.letters)),
    [[7, 8]],
  );
  const [oversized, small] = transactions[0]!.messages;
  assert.ok(transactions[0]!.bytes <= MAX);
  assert.equal(oversized!.value, null);
  assert.ok(Number(truncatedSize(oversized!)) > 3_000_000);
  assert.deepEqual(
    [parseDlqMessage(oversized!).reason, parseDlqMessage(oversized!).record.offset],
    ['decode-failed', 7n],
  );
  assert.equal(small!.value?.length, 10);
});

test('the letters of one source record stay in one transaction, shrunk to share it when needed', () => {
  const letters = [
    letter(1, 10),
    letter(2, 700_000, 'validation-failed'),
    letter(2, 700_000, 'processing-failed'),
  ];
  const transactions = packDeadLetters(letters, MAX);
  assert.deepEqual(
    transactions.map((t) => offsets(t.letters)),
    [[1, 2, 2]],
  );
  const [, first, second] = transactions[0]!.messages;
  assert.ok(transactions[0]!.bytes <= MAX);
  assert.ok(first!.value === null && second!.value === null, 'together they would not fit');
  assert.deepEqual(
    transactions[0]!.letters.map((l) => l.reason),
    ['decode-failed', 'validation-failed', 'processing-failed'],
  );
});

test('nothing to send, no transaction', () => {
  assert.deepEqual(packDeadLetters([], MAX), []);
});
