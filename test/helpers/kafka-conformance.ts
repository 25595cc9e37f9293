/**
 * What the runtime relies on from a KafkaClient (src/runtime/kafka/client.ts), as one set of tests any
 * client must pass: the in-memory fake (test/unit/runtime/kafka-conformance.test.ts) and kafkajs on
 * the real broker (test/integration/kafka/conformance.test.ts). A difference between the two is a bug
 * of the fake: it lets a unit test pass on behaviour a broker does not have.
 */
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { describe, test } from 'node:test';
import type { RawRecord } from '../../src/core/records.js';
import { sleep } from '../../src/core/retry.js';
import type {
  BatchControl,
  FetchedBatch,
  GroupConsumer,
  GroupMembership,
  KafkaAdmin,
  KafkaClient,
  TaskMessage,
  TopicPartition,
} from '../../src/runtime/kafka/client.js';
import { KafkaFencedError } from '../../src/runtime/kafka/client.js';

export interface ConformanceHarness {
  client: KafkaClient;
  /**
   * Runs a started group consumer's group: a broker assigns and fetches by itself (nothing to do);
   * the fake is driven by the test (assign every partition, announce the view, poll). Returns a stop.
   */
  drive(consumer: GroupConsumer): () => void;
  close(): Promise<void>;
}

/** How long a real broker may take (a group's first join waits for the initial rebalance delay). */
const WAIT_MS = 30_000;

async function waitFor(what: string, condition: () => boolean, timeoutMs = WAIT_MS): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!condition()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await sleep(20);
  }
}

const name = (prefix: string) =>
  `conformance-${prefix}-${Date.now().toString(36)}-${randomBytes(3).toString('hex')}`;

const message = (topic: string, partition: number, key: string, value: string | null): TaskMessage => ({
  topic,
  partition,
  key: Buffer.from(key),
  value: value === null ? null : Buffer.from(value),
});

/** Every committed record of `tp` up to the partition's end now, read with the client's partition reader. */
export async function readCommitted(client: KafkaClient, tp: TopicPartition): Promise<RawRecord[]> {
  const admin = await client.admin();
  try {
    const end = (await admin.topicOffsets(tp.topic)).get(tp.partition)?.end ?? 0n;
    const reader = client.partitionReader(name('reader'));
    await reader.start([tp.topic]);
    const records: RawRecord[] = [];
    const read = reader.read(tp, 0n, async (batch) => void records.push(...batch.records));
    try {
      await read.reached(end);
    } finally {
      await read.stop();
      await reader.stop();
    }
    return records;
  } finally {
    await admin.close();
  }
}

/** What a conformance case gets. */
interface CaseKit {
  client: KafkaClient;
  admin: KafkaAdmin;
  /** The harness's drive() of a started group consumer. */
  drive: ConformanceHarness['drive'];
  /** Runs `cleanup` after the case, pass or fail (the latest deferred first). */
  defer(cleanup: () => unknown): void;
}

const keysOf = (records: readonly RawRecord[]) => records.map((r) => r.key?.toString() ?? '');

export function kafkaClientConformance(
  clientName: string,
  makeHarness: () => Promise<ConformanceHarness>,
): void {
  describe(`KafkaClient conformance: ${clientName}`, () => {
    /** One case: a fresh client and admin; what it opens is closed after it through `defer`, newest first. */
    const kafkaCase = (title: string, body: (kit: CaseKit) => Promise<void>) =>
      test(title, async () => {
        const harness = await makeHarness();
        const cleanups: Array<() => unknown> = [() => harness.close()];
        try {
          const admin = await harness.client.admin();
          cleanups.push(() => admin.close());
          await body({
            client: harness.client,
            admin,
            drive: (consumer) => harness.drive(consumer),
            defer: (cleanup) => void cleanups.push(cleanup),
          });
        } finally {
          for (const cleanup of cleanups.reverse()) await cleanup();
        }
      });

    kafkaCase('probe answers for a reachable cluster with no note', async ({ client }) => {
      assert.deepEqual(await client.probe(), []);
    });

    kafkaCase(
      'createTopic, describeTopic (absent: undefined), ensureTopic and topicOffsets of a new topic',
      async ({ admin }) => {
        const topic = name('topic');
        assert.equal(await admin.describeTopic(topic), undefined);
        await admin.createTopic(topic, 2, { 'cleanup.policy': 'compact' });
        await admin.createTopic(topic, 2, { 'cleanup.policy': 'compact' }); // exists: no error
        assert.deepEqual(await admin.describeTopic(topic), { partitions: 2, cleanupPolicy: 'compact' });
        const plain = name('plain');
        await admin.ensureTopic(plain, 3);
        assert.deepEqual(await admin.describeTopic(plain), { partitions: 3, cleanupPolicy: 'delete' });
        assert.deepEqual(
          [...(await admin.topicOffsets(plain))].sort(([a], [b]) => a - b),
          [0, 1, 2].map((p) => [p, { earliest: 0n, end: 0n }]),
        );
      },
    );

    kafkaCase(
      'a task transaction: its records and its group offsets together, read_committed',
      async ({ client, admin, defer }) => {
        const transactions = client.taskTransactions(name('txn'));
        defer(() => transactions.close());
        const topic = name('out');
        const input = name('in');
        const group = name('group');
        await admin.createTopic(topic, 2, {});
        await admin.createTopic(input, 2, {});
        await transactions.fence();
        const last = await transactions.commit(
          [message(topic, 0, 'a', '1'), message(topic, 0, 'b', null), message(topic, 1, 'c', '3')],
          { groupId: group, offsets: [{ topic: input, partition: 1, offset: 42n }] },
        );
        assert.ok(last.has(topic), 'the last offset written to the topic');
        const p0 = await readCommitted(client, { topic, partition: 0 });
        assert.deepEqual(keysOf(p0), ['a', 'b']);
        assert.deepEqual(
          p0.map((r) => r.offset),
          [0n, 1n],
        );
        assert.equal(p0[1]?.value, null, 'a tombstone stays a tombstone');
        assert.deepEqual(keysOf(await readCommitted(client, { topic, partition: 1 })), ['c']);
        // The commit marker takes an offset: the end is beyond the last record.
        assert.ok(((await admin.topicOffsets(topic)).get(0)?.end ?? 0n) > 2n, 'a marker follows the records');
        assert.deepEqual([...(await admin.groupOffsets(group, input))], [[1, 42n]]);
        assert.deepEqual(await admin.groupTopics(group), [input]);
      },
    );

    kafkaCase(
      'an aborted transaction leaves nothing a reader sees, and none of its offsets',
      async ({ client, admin, defer }) => {
        const transactions = client.taskTransactions(name('txn'));
        defer(() => transactions.close());
        const topic = name('small');
        const input = name('in');
        const group = name('group');
        // A topic that refuses records over 10 kB: the second send of the transaction fails after the first landed.
        await admin.createTopic(topic, 1, { 'max.message.bytes': '10000' });
        await admin.createTopic(input, 1, {});
        await transactions.fence();
        const big = { ...message(topic, 0, 'big', null), value: Buffer.alloc(600 * 1024, 1) };
        await assert.rejects(
          transactions.commit([message(topic, 0, 'aborted', 'x'), big], {
            groupId: group,
            offsets: [{ topic: input, partition: 0, offset: 7n }],
          }),
        );
        await transactions.commit([message(topic, 0, 'committed', 'y')], {
          groupId: group,
          offsets: [{ topic: input, partition: 0, offset: 9n }],
        });
        assert.deepEqual(keysOf(await readCommitted(client, { topic, partition: 0 })), ['committed']);
        // The aborted record was written (then aborted): record, abort marker, record, commit marker.
        assert.equal((await admin.topicOffsets(topic)).get(0)?.end, 4n);
        assert.deepEqual([...(await admin.groupOffsets(group, input))], [[0, 9n]]);
      },
    );

    kafkaCase(
      'offsets for a partition that does not exist fail the transaction',
      async ({ client, admin, defer }) => {
        const writer = await client.transactionalWriter(name('dlq'));
        defer(() => writer.close());
        const topic = name('letters');
        await admin.ensureTopic(topic, 1);
        const letter = { topic, key: null, value: Buffer.from('v'), headers: {} };
        await assert.rejects(
          writer.sendWithOffset([letter], {
            groupId: name('g'),
            topic: name('absent'),
            partition: 0,
            offset: 1n,
          }),
        );
        assert.deepEqual(
          await readCommitted(client, { topic, partition: 0 }),
          [],
          'the letter was not committed',
        );
      },
    );

    kafkaCase(
      'fencing: a newer producer with the same transactional id makes the older one fail',
      async ({ client, admin, defer }) => {
        const id = name('txn');
        const older = client.taskTransactions(id);
        const newer = client.taskTransactions(id);
        defer(() => older.close());
        defer(() => newer.close());
        const topic = name('fenced');
        await admin.createTopic(topic, 1, {});
        await older.fence();
        await older.commit([message(topic, 0, 'before', '1')], { groupId: name('g'), offsets: [] });
        await newer.fence();
        await assert.rejects(
          older.commit([message(topic, 0, 'zombie', '2')], { groupId: name('g'), offsets: [] }),
          KafkaFencedError,
        );
        await newer.commit([message(topic, 0, 'after', '3')], { groupId: name('g'), offsets: [] });
        assert.deepEqual(keysOf(await readCommitted(client, { topic, partition: 0 })), ['before', 'after']);
      },
    );

    kafkaCase(
      'a transactional writer: messages without a partition and a progress offset, together',
      async ({ client, admin, defer }) => {
        const writer = await client.transactionalWriter(name('dlq'));
        defer(() => writer.close());
        const topic = name('letters');
        const source = name('source');
        const group = name('progress');
        await admin.ensureTopic(topic, 1);
        await admin.ensureTopic(source, 4);
        await writer.sendWithOffset(
          [{ topic, key: Buffer.from('k'), value: Buffer.from('v'), headers: { h: Buffer.from('x') } }],
          { groupId: group, topic: source, partition: 3, offset: 5n },
        );
        const [record] = await readCommitted(client, { topic, partition: 0 });
        assert.equal(record?.value?.toString(), 'v');
        assert.equal(record?.headers['h']?.toString(), 'x');
        assert.deepEqual([...(await admin.groupOffsets(group, source))], [[3, 5n]]);
      },
    );

    kafkaCase(
      'a partition reader follows a partition: later commits arrive, reached() waits for them',
      async ({ client, admin, defer }) => {
        const transactions = client.taskTransactions(name('txn'));
        defer(() => transactions.close());
        const reader = client.partitionReader(name('reader'));
        defer(() => reader.stop());
        const topic = name('follow');
        await admin.createTopic(topic, 2, {});
        await transactions.fence();
        await transactions.commit([message(topic, 1, 'first', '1')], { groupId: name('g'), offsets: [] });
        await reader.start([topic]);
        const seen: string[] = [];
        const read = reader.read(
          { topic, partition: 1 },
          0n,
          async (batch) => void seen.push(...keysOf(batch.records)),
        );
        await transactions.commit([message(topic, 1, 'second', '2'), message(topic, 0, 'other', '0')], {
          groupId: name('g'),
          offsets: [],
        });
        const end = (await admin.topicOffsets(topic)).get(1)?.end ?? 0n;
        await read.reached(end);
        await read.stop();
        assert.deepEqual(seen, ['first', 'second'], 'only the partition read, in order, once');
      },
    );

    kafkaCase(
      'a group consumer: assignment and membership, batches once each with markConsumed, seek, pause and resume, commit',
      async ({ client, admin, defer, drive }) => {
        const transactions = client.taskTransactions(name('txn'));
        defer(() => transactions.close());
        const group = name('group');
        const consumer = client.groupConsumer(group, { standbyReplicas: 0 });
        defer(() => consumer.stop());
        let stopDriving = () => undefined as void;
        defer(() => stopDriving());
        const topic = name('input');
        await admin.createTopic(topic, 2, {});
        await transactions.fence();
        const produce = (partition: number, keys: string[]) =>
          transactions.commit(
            keys.map((key) => message(topic, partition, key, key)),
            { groupId: name('g'), offsets: [] },
          );
        await produce(0, ['a0', 'a1']);
        await produce(1, ['b0']);

        let assigned: TopicPartition[] | undefined;
        let membership: GroupMembership | undefined;
        const seen = new Map<string, number>();
        const batches: FetchedBatch[] = [];
        let sought = false;
        let paused = false;
        await consumer.start([topic], {
          onAssignment: (tps) => (assigned = tps),
          onMembership: (view) => (membership = view),
          onCrash: (error) => assert.fail(error),
          onBatch: async (batch: FetchedBatch, control: BatchControl) => {
            batches.push(batch);
            for (const r of batch.records)
              seen.set(r.key?.toString() ?? '', (seen.get(r.key?.toString() ?? '') ?? 0) + 1);
            const last = batch.records.at(-1)?.offset ?? 0n;
            // The first batch of partition 0 is handed over again after a seek back to its start.
            if (batch.partition === 0 && !sought) {
              sought = true;
              control.seek(batch.records[0]?.offset ?? 0n);
              return;
            }
            control.markConsumed(last);
          },
        });
        stopDriving = drive(consumer);
        await waitFor('the assignment', () => assigned !== undefined && membership !== undefined);
        assert.deepEqual(
          assigned?.map((tp) => `${tp.topic}:${tp.partition}`).sort(),
          [`${topic}:0`, `${topic}:1`],
          'the complete assignment',
        );
        const self = membership?.members.find((m) => m.memberId === membership?.self);
        assert.deepEqual(self?.active, [0, 1], 'this member runs both partition numbers');
        await waitFor('every record', () => ['a0', 'a1', 'b0'].every((k) => seen.has(k)));
        await sleep(1000); // a record handed over again without a seek would show now
        assert.deepEqual(
          Object.fromEntries(seen),
          { a0: 2, a1: 2, b0: 1 },
          'after the seek back, partition 0 again; after markConsumed, nothing again',
        );

        consumer.pause([{ topic, partition: 0 }]);
        paused = true;
        await produce(0, ['a2']);
        await produce(1, ['b1']);
        await waitFor('the unpaused partition', () => seen.has('b1'));
        await sleep(1000);
        assert.equal(seen.has('a2'), false, 'a paused partition is not fetched');
        consumer.resume([{ topic, partition: 0 }]);
        await waitFor('the resumed partition', () => seen.has('a2'));
        assert.ok(paused);

        await consumer.commit([
          { topic, partition: 0, offset: 3n },
          { topic, partition: 1, offset: 2n },
        ]);
        assert.deepEqual(
          [...(await admin.groupOffsets(group, topic))].sort(([a], [b]) => a - b),
          [
            [0, 3n],
            [1, 2n],
          ],
        );
      },
    );
  });
}
