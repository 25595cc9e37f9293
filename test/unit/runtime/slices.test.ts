// slicesOf: how produce requests are cut (dead-letter replays, changelog transactions).
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { slicesOf } from '../../../src/runtime/kafka/slices.js';

test('slices stay within the byte and count limits, keep the order, and an oversized item goes alone', () => {
  const sizes = [4, 4, 4, 20, 1, 1, 1, 1];
  const slices = [...slicesOf(sizes, (n) => n, { maxBytes: 10, maxCount: 3 })];
  assert.deepEqual(slices, [[4, 4], [4], [20], [1, 1, 1], [1]]);
  assert.deepEqual([...slicesOf([], (n: number) => n, { maxBytes: 10 })], []);
});
