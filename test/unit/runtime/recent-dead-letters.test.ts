// The console's recent dead letters: the last `capacity` kept, newest first, with what an operator
// reads (source coordinates, reason, error, a key preview, the value's size) and nothing unbounded.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import type { DeadLetter } from '../../../src/core/records.js';
import { RECENT_DEAD_LETTERS, RecentDeadLetters } from '../../../src/runtime/recent-dead-letters.js';

const letter = (offset: number, overrides: Partial<DeadLetter['record']> = {}): DeadLetter => ({
  record: {
    topic: 'usage',
    partition: 2,
    offset: BigInt(offset),
    timestamp: 0,
    key: Buffer.from(`key-${offset}`),
    value: Buffer.from('{"bad":true}'),
    headers: {},
    ...overrides,
  },
  reason: 'validation-failed',
  errorClass: 'ValidationError',
  message: `record ${offset} is invalid`,
});

test('keeps the last `capacity` letters, newest first, across wrap-arounds', () => {
  const recent = new RecentDeadLetters(3);
  assert.deepEqual(recent.list(), []);
  recent.add(letter(10), 1000);
  recent.add(letter(11), 1001);
  assert.deepEqual(
    recent.list().map((l) => l.offset),
    ['11', '10'],
  );
  for (let offset = 12; offset < 20; offset++) recent.add(letter(offset), 1000 + offset);
  assert.deepEqual(
    recent.list().map((l) => [l.offset, l.deliveredAt]),
    [
      ['19', 1019],
      ['18', 1018],
      ['17', 1017],
    ],
  );
  assert.equal(recent.total, 10);
  assert.equal(new RecentDeadLetters().capacity, RECENT_DEAD_LETTERS);
  assert.throws(() => new RecentDeadLetters(0), /positive integer/);
});

test('an entry tells where the record was, why it failed, a preview of its key and the size of its value', () => {
  const recent = new RecentDeadLetters();
  recent.add(letter(7), 5000);
  recent.add(
    { ...letter(8, { key: Buffer.from('k'.repeat(500)), value: null }), message: 'm'.repeat(2000) },
    5001,
  );
  recent.add(letter(9, { key: null }), 5002);
  const [noKey, long, plain] = recent.list();
  assert.deepEqual(plain, {
    deliveredAt: 5000,
    topic: 'usage',
    partition: 2,
    offset: '7',
    reason: 'validation-failed',
    errorClass: 'ValidationError',
    message: 'record 7 is invalid',
    key: 'key-7',
    valueBytes: 12,
  });
  assert.equal(long?.key, `${'k'.repeat(120)}…`);
  assert.equal(long?.message.length, 501);
  assert.equal(long?.valueBytes, null);
  assert.equal(noKey?.key, null);
});
