/**
 * The record collector's promise, on any KafkaClient: records a task sends to an extra topic travel in
 * its commit's one transaction with its state changes and input positions, so a read_committed reader
 * sees a record of an aborted commit never and one of a committed commit exactly once. Run on the fake
 * (test/unit/runtime/record-collector.test.ts) and on the broker (test/integration/kafka/).
 */
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { test } from 'node:test';
import pino from 'pino';
import { BufferedRecordCollector } from '../../src/core/record-collector.js';
import { FencedError } from '../../src/core/task.js';
import { TaskChangelogLink, changelogTopics } from '../../src/runtime/changelog.js';
import type { KafkaClient } from '../../src/runtime/kafka/client.js';
import { RuntimeMetrics } from '../../src/runtime/metrics.js';
import { readCommitted } from './kafka-conformance.js';

export function recordCollectorTests(clientName: string, makeClient: () => KafkaClient): void {
  test(`${clientName}: a record sent to an extra topic is read_committed once across an aborted and a committed commit`, async () => {
    const client = makeClient();
    const admin = await client.admin();
    const suffix = `${Date.now().toString(36)}-${randomBytes(3).toString('hex')}`;
    const appId = `collector-${suffix}`;
    const input = `collector-input-${suffix}`;
    const extra = `collector-extra-${suffix}`;
    const topics = changelogTopics(appId, ['counts']);
    const reader = client.partitionReader(`${appId}.restore`);
    const link = (transactionalId: string) =>
      new TaskChangelogLink({
        appId,
        partition: 1,
        topics,
        transactions: client.taskTransactions(transactionalId),
        reader,
        admin,
        logger: pino({ level: 'silent' }),
        metrics: new RuntimeMetrics('i', appId),
      });
    const first = link(`${appId}-task-1`);
    let second: TaskChangelogLink | undefined;
    try {
      await admin.createTopic(input, 2, {});
      // Records over 10 kB are refused: a commit sending one aborts after its first records landed.
      await admin.createTopic(extra, 2, { 'max.message.bytes': '10000' });
      for (const topic of topics.values()) await admin.createTopic(topic, 2, { 'cleanup.policy': 'compact' });
      await reader.start([...topics.values()]);
      await first.fence();

      const aborted = new BufferedRecordCollector();
      aborted.send({ topic: extra, partition: 0, key: Buffer.from('k'), value: Buffer.from('aborted') });
      aborted.send({ topic: extra, partition: 0, key: Buffer.from('big'), value: Buffer.alloc(600 * 1024) });
      await assert.rejects(
        first.write({
          changes: [{ store: 'counts', key: 'k', value: 'from the aborted commit' }],
          records: aborted.pending(),
          positions: new Map([[input, 5n]]),
        }),
      );
      assert.equal(aborted.pending().length, 2, 'a failed commit lets no record go');

      // The task reopens (a new producer fences the old one) and reprocessing sends its records again.
      second = link(`${appId}-task-1`);
      await second.fence();
      await assert.rejects(
        first.write({ changes: [], records: aborted.pending(), positions: new Map() }),
        FencedError,
        'the fenced incarnation can send nothing more',
      );
      const committed = new BufferedRecordCollector();
      const headers = { trace: Buffer.from('t1') };
      committed.send({
        topic: extra,
        partition: 0,
        key: Buffer.from('k'),
        value: Buffer.from('committed'),
        headers,
        timestamp: 1_700_000_000_000,
      });
      committed.send({ topic: extra, key: Buffer.from('by-key'), value: Buffer.from('anywhere') });
      const offsets = await second.write({
        changes: [{ store: 'counts', key: 'k', value: 'from the committed commit' }],
        records: committed.pending(),
        positions: new Map([[input, 9n]]),
      });
      committed.committed(committed.pending().length);
      assert.deepEqual(committed.pending(), []);
      assert.deepEqual(
        [...offsets.keys()],
        ['counts'],
        'the last changelog offset per store, and only stores',
      );
      assert.equal(offsets.has(extra), false, 'an output topic is no store');

      const onZero = await readCommitted(client, { topic: extra, partition: 0 });
      const onOne = await readCommitted(client, { topic: extra, partition: 1 });
      const values = [...onZero, ...onOne].map((r) => r.value?.toString());
      assert.deepEqual(
        values.sort(),
        ['anywhere', 'committed'],
        'the aborted record never, the committed ones once',
      );
      const record = onZero.find((r) => r.value?.toString() === 'committed');
      assert.equal(record?.headers['trace']?.toString(), 't1');
      assert.equal(record?.timestamp, 1_700_000_000_000);
      // The aborted record did reach the log: record, abort marker, record(s), commit marker.
      assert.ok(
        ((await admin.topicOffsets(extra)).get(0)?.end ?? 0n) >= 4n,
        'the aborted record was written',
      );

      const changelog = await readCommitted(client, { topic: topics.get('counts') as string, partition: 1 });
      assert.deepEqual(
        changelog.map((r) => r.value?.toString()),
        ['from the committed commit'],
        'state changes of the aborted commit are gone with its records',
      );
      assert.deepEqual([...(await admin.groupOffsets(appId, input))], [[1, 9n]]);
    } finally {
      await first.close();
      await second?.close();
      await reader.stop();
      await admin.close();
    }
  });
}
