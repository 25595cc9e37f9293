/** Listing and replaying dead letters over an in-memory topic (the CLI's logic, without a broker). */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import type { DeadLetter, DeadLetterReason, RawRecord } from '../../../src/core/records.js';
import { listDeadLetters, replayMessagesOf } from '../../../src/runtime/dead-letters.js';
import type { PublishedMessage, TopicTools } from '../../../src/runtime/kafka/client.js';
import { toDlqMessage } from '../../../src/serde/dlq.js';

function deadLetter(reason: DeadLetterReason, partition: number, offset: number): DeadLetter {
  return {
    record: {
      topic: 'usage',
      partition,
      offset: BigInt(offset),
      timestamp: 1_700_000_000_000 + offset,
      key: Buffer.from(`key-${offset}`),
      value: Buffer.from([0xff, offset]),
      headers: { 'trace-id': Buffer.from(`trace-${offset}`) },
    },
    reason,
    errorClass: 'DeserializationError',
    message: `${reason} at ${offset}`,
  };
}

/** The DLQ topic as a reader gets it back: the envelope of each letter, then one record of another writer. */
function dlqTopicOf(letters: DeadLetter[]): RawRecord[] {
  const records: RawRecord[] = letters.map((letter, index) => ({
    ...toDlqMessage(letter),
    topic: 'app.dlq',
    partition: 0,
    offset: BigInt(index),
    timestamp: Date.now(),
  }));
  records.push({
    topic: 'app.dlq',
    partition: 0,
    offset: 99n,
    timestamp: 0,
    key: null,
    value: null,
    headers: {},
  });
  return records;
}

function toolsOver(records: RawRecord[]): TopicTools & { published: PublishedMessage[] } {
  const published: PublishedMessage[] = [];
  return {
    published,
    readTopic: (topic) => Promise.resolve(records.filter((record) => record.topic === topic)),
    publish: (messages) => Promise.resolve(void published.push(...messages)),
    close: () => Promise.resolve(),
  };
}

const letters = [
  deadLetter('decode-failed', 0, 10),
  deadLetter('validation-failed', 1, 11),
  deadLetter('decode-failed', 1, 12),
  deadLetter('bad-magic-byte', 2, 13),
];

test('lists every dead letter with its DLQ position, and counts records that are not dead letters', async () => {
  const listing = await listDeadLetters(toolsOver(dlqTopicOf(letters)), 'app.dlq');
  assert.equal(listing.total, 4);
  assert.equal(listing.foreign, 1);
  assert.deepEqual(
    listing.letters.map(({ dlqOffset, letter }) => [dlqOffset, letter.reason, letter.record.offset]),
    [
      [0n, 'decode-failed', 10n],
      [1n, 'validation-failed', 11n],
      [2n, 'decode-failed', 12n],
      [3n, 'bad-magic-byte', 13n],
    ],
  );
  assert.deepEqual(listing.letters[0]!.letter, letters[0], 'the dead letter as it was written');
});

test('selects by reason, source partition and limit, all together', async () => {
  const tools = toolsOver(dlqTopicOf(letters));
  const offsets = async (selection: Parameters<typeof listDeadLetters>[2]) =>
    (await listDeadLetters(tools, 'app.dlq', selection)).letters.map(({ letter }) => letter.record.offset);
  assert.deepEqual(await offsets({ reasons: ['decode-failed'] }), [10n, 12n]);
  assert.deepEqual(await offsets({ sourcePartition: 1 }), [11n, 12n]);
  assert.deepEqual(await offsets({ reasons: ['decode-failed'], sourcePartition: 1 }), [12n]);
  assert.deepEqual(await offsets({ reasons: ['bad-magic-byte', 'validation-failed'], limit: 1 }), [11n]);
  assert.deepEqual(await offsets({ reasons: ['late-event'] }), []);
});

test('replays the original records, to their source topic or another, without the dlq headers', async () => {
  const { letters: stored } = await listDeadLetters(toolsOver(dlqTopicOf(letters)), 'app.dlq', { limit: 2 });
  const toSource = replayMessagesOf(stored);
  assert.deepEqual(toSource, [
    {
      topic: 'usage',
      key: Buffer.from('key-10'),
      value: Buffer.from([0xff, 10]),
      headers: { 'trace-id': Buffer.from('trace-10') },
      timestamp: 1_700_000_000_010,
    },
    {
      topic: 'usage',
      key: Buffer.from('key-11'),
      value: Buffer.from([0xff, 11]),
      headers: { 'trace-id': Buffer.from('trace-11') },
      timestamp: 1_700_000_000_011,
    },
  ]);
  assert.deepEqual(
    replayMessagesOf(stored, 'usage-fixed').map((message) => message.topic),
    ['usage-fixed', 'usage-fixed'],
  );
});
