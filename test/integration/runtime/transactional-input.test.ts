// Input written by a transactional producer has offset gaps: every commit marker takes an offset that no
// consumer ever sees. A restarted instance must process every record once and never mistake such a gap
// for "Kafka is ahead of my state" (which would seek back to the marker, forever).
import assert from 'node:assert/strict';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { Kafka, logLevel } from 'kafkajs';
import { memorySink, string, tributary } from '../../../src/index.js';
import { sleep } from '../../../src/core/retry.js';
import { brokers, uniqueName } from '../../helpers/services.js';

const kafka = new Kafka({ clientId: 'tributary-txn-input-test', brokers, logLevel: logLevel.NOTHING });

async function produceInTransactions(
  topic: string,
  from: number,
  transactions: number,
  perTransaction: number,
) {
  const producer = kafka.producer({
    transactionalId: uniqueName('txn-input'),
    idempotent: true,
    maxInFlightRequests: 1,
  });
  await producer.connect();
  try {
    for (let t = 0; t < transactions; t++) {
      const transaction = await producer.transaction();
      const first = from + t * perTransaction;
      await transaction.send({
        topic,
        messages: Array.from({ length: perTransaction }, (_, i) => ({ value: `e${first + i}` })),
      });
      await transaction.commit();
    }
  } finally {
    await producer.disconnect();
  }
}

async function runUntil(appId: string, topic: string, stateDir: string, expected: number): Promise<string[]> {
  const sink = memorySink<string>('seen');
  const app = tributary({
    appId,
    brokers,
    stateDir,
    commitIntervalMs: 200,
    admin: { enabled: false },
    logLevel: 'warn',
  });
  app.stream(topic, string()).to(sink);
  await app.start();
  try {
    const deadline = Date.now() + 45_000;
    while (sink.rows.length < expected && Date.now() < deadline) await sleep(100);
    await sleep(1_000); // anything beyond the expected count would show up now
  } finally {
    await app.stop();
  }
  return sink.rows;
}

test('records of a transactional producer are processed once each across a restart (offset gaps are no reason to seek)', async () => {
  const topic = uniqueName('txn_input');
  const appId = uniqueName('txn_app');
  const stateDir = await mkdtemp(join(tmpdir(), 'tributary-txn-input-'));
  const admin = kafka.admin();
  await admin.connect();
  try {
    await admin.createTopics({ topics: [{ topic, numPartitions: 1 }], waitForLeaders: true });
    await produceInTransactions(topic, 0, 5, 20);
    const firstRun = await runUntil(appId, topic, stateDir, 100);
    assert.equal(firstRun.length, 100);

    // The checkpoint's next offset is now a commit marker's; the restarted instance starts at a gap.
    await produceInTransactions(topic, 100, 5, 20);
    const secondRun = await runUntil(appId, topic, stateDir, 100);
    assert.deepEqual(
      secondRun,
      Array.from({ length: 100 }, (_, i) => `e${100 + i}`),
      'the second run sees exactly the new records, in order',
    );
  } finally {
    await admin.deleteTopics({ topics: [topic] }).catch(() => undefined);
    await admin.disconnect();
    await rm(stateDir, { recursive: true, force: true });
  }
});
