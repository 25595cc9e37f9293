import assert from 'node:assert/strict';
import { test } from 'node:test';
import { readWholeRecords } from '../../../src/runtime/delivery.js';
import type { DeadLetter } from '../../../src/core/records.js';
import type { Outbox, OutboxEntry } from '../../../src/core/task.js';

function letter(offset: number): DeadLetter {
  return {
    record: {
      topic: 'in',
      partition: 0,
      offset: BigInt(offset),
      timestamp: 0,
      key: null,
      value: null,
      headers: {},
    },
    reason: 'validation-failed',
    errorClass: 'Error',
    message: 'bad',
  };
}

function outboxOf(offsets: number[]): Outbox {
  const entries: OutboxEntry<unknown>[] = offsets.map((offset, i) => ({
    seq: BigInt(i),
    value: letter(offset),
  }));
  return {
    name: 'dlq',
    read: async (max) => entries.slice(0, max),
    ack: async () => undefined,
    pending: () => entries.length,
  };
}

const offsetsOf = (entries: OutboxEntry<unknown>[]) =>
  entries.map((e) => Number((e.value as DeadLetter).record.offset));

test('a batch never splits the dead letters of one source record', async () => {
  // Record 7 failed in three branches; a batch of 4 would cut it after its first letter.
  assert.deepEqual(offsetsOf(await readWholeRecords(outboxOf([3, 5, 5, 7, 7, 7, 9]), 4)), [3, 5, 5]);
});

test('everything pending fits: the batch is all of it', async () => {
  assert.deepEqual(offsetsOf(await readWholeRecords(outboxOf([3, 5, 5]), 10)), [3, 5, 5]);
});

test('one record with more letters than a batch goes out whole', async () => {
  assert.deepEqual(offsetsOf(await readWholeRecords(outboxOf([4, 4, 4, 4, 4, 8]), 2)), [4, 4, 4, 4, 4]);
});

test('nothing pending, nothing read', async () => {
  assert.deepEqual(await readWholeRecords(outboxOf([]), 10), []);
});
