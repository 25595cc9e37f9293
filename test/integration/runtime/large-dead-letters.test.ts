/**
 * Large bad records on the real broker (default `message.max.bytes`, about 1 MiB): two ~900 KB
 * malformed records next to each other, and one larger than the broker takes at all, reach the DLQ
 * in order with their reasons, and the small dead letters behind them are not held up.
 */
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, test } from 'node:test';
import { pino } from 'pino';
import { Kafka, logLevel } from 'kafkajs';
import { tributary } from '../../../src/app.js';
import type { RawRecord } from '../../../src/core/records.js';
import { json } from '../../../src/serde/json.js';
import { parseDlqMessage, truncatedSize } from '../../../src/serde/dlq.js';
import { memorySink } from '../../../src/sinks/memory.js';
import { brokers, uniqueName } from '../../helpers/services.js';
import { consume, produce } from '../serde/kafka-helpers.js';

const stateDirs: string[] = [];

after(() => {
  for (const dir of stateDirs) rmSync(dir, { recursive: true, force: true });
});

/** A one-partition input topic; `maxMessageBytes` raises its own limit above the broker's default. */
async function inputTopic(maxMessageBytes?: number): Promise<string> {
  const topic = uniqueName('large-dead-letters');
  const admin = new Kafka({ clientId: 'large-dead-letters', brokers, logLevel: logLevel.WARN }).admin();
  await admin.connect();
  try {
    await admin.createTopics({
      topics: [
        {
          topic,
          numPartitions: 1,
          configEntries: maxMessageBytes
            ? [{ name: 'max.message.bytes', value: String(maxMessageBytes) }]
            : [],
        },
      ],
      waitForLeaders: true,
    });
  } finally {
    await admin.disconnect();
  }
  return topic;
}

/** Not JSON: a decode failure of `bytes` bytes. */
const malformed = (key: string, bytes: number) => ({ key, value: Buffer.alloc(bytes, 'x') });

/** Runs a job (JSON in, ids to a memory sink) over `topic` until the DLQ holds `expected` letters. */
async function deadLettersOf(topic: string, expected: number): Promise<RawRecord[]> {
  const stateDir = mkdtempSync(join(tmpdir(), 'tributary-large-dlq-'));
  stateDirs.push(stateDir);
  const appId = uniqueName('large-dlq');
  const app = tributary(
    {
      appId,
      brokers,
      stateDir,
      commitIntervalMs: 200,
      handleSignals: false,
      admin: { enabled: false },
      kafka: { sessionTimeoutMs: 6000 },
    },
    { logger: pino({ level: 'silent' }) },
  );
  app
    .stream(topic, json<{ id: string }>())
    .map((event) => event.id)
    .to(memorySink<string>('ids'));
  await app.start();
  try {
    return await consume(`${appId}.dlq`, expected, 60_000);
  } finally {
    await app.stop();
  }
}

const summary = (records: RawRecord[]) =>
  records.map((record) => {
    const letter = parseDlqMessage(record);
    return [String(record.key), record.value?.length ?? null, letter.reason, Number(letter.record.offset)];
  });

test('two ~900 KB malformed records next to each other and a small one behind them all reach the DLQ, in order', async () => {
  const topic = await inputTopic();
  // One produce call each: the two together would exceed the broker's limit on the way in, too.
  await produce(topic, [malformed('big-1', 900_000)]);
  await produce(topic, [malformed('big-2', 900_000)]);
  await produce(topic, [malformed('small', 20), { key: 'good', value: JSON.stringify({ id: 'good' }) }]);

  const dlq = await deadLettersOf(topic, 3);

  assert.deepEqual(summary(dlq), [
    ['big-1', 900_000, 'decode-failed', 0],
    ['big-2', 900_000, 'decode-failed', 1],
    ['small', 20, 'decode-failed', 2],
  ]);
  assert.ok(
    dlq.every((record) => truncatedSize(record) === undefined),
    'each letter carries its record whole',
  );
});

test('a malformed record larger than the broker takes reaches the DLQ as a reference with its reason', async () => {
  // The input topic allows 3 MB records; the DLQ topic has the broker's default limit.
  const topic = await inputTopic(3_000_000);
  await produce(topic, [malformed('huge', 2_000_000)]);
  await produce(topic, [malformed('after', 20)]);

  const dlq = await deadLettersOf(topic, 2);

  assert.deepEqual(summary(dlq), [
    ['huge', null, 'decode-failed', 0],
    ['after', 20, 'decode-failed', 1],
  ]);
  const huge = parseDlqMessage(dlq[0]!);
  assert.equal(huge.record.topic, topic);
  assert.equal(huge.errorClass, 'DeserializationError');
  assert.ok(Number(truncatedSize(dlq[0]!)) > 2_000_000, 'the letter says how large it was');
});
