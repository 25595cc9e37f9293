import assert from 'node:assert/strict';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import type { Serde } from '../../../src/serde/types.js';
import { TopologyBuilder, memorySink } from '../../../src/index.js';
import type { PartitionTask, RawRecord } from '../../../src/index.js';
import { T0 } from './helpers.js';

/** A topology passing ids through to a sink, whose serde counts what it decodes. */
function countingTopology() {
  const decoded: number[] = [];
  const serde: Serde<number> = {
    name: 'counting',
    serialize: (value) => Buffer.from(String(value)),
    deserialize: (data) => {
      const value = Number(String(data));
      decoded.push(value);
      return value;
    },
  };
  const builder = new TopologyBuilder();
  builder.stream('in', serde).to(memorySink<number>('out'));
  return { topology: builder.build(), decoded };
}

const records = (first: number, last: number, topic = 'in'): RawRecord[] =>
  Array.from({ length: last - first + 1 }, (_, i) => ({
    topic,
    partition: 0,
    offset: BigInt(first + i),
    timestamp: T0,
    key: null,
    value: Buffer.from(String(first + i)),
    headers: {},
  }));

async function withTaskDir(body: (dir: string) => Promise<void>): Promise<void> {
  const dir = await mkdtemp(join(tmpdir(), 'tributary-positions-'));
  try {
    await body(dir);
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
}

test('without a checkpoint every fetched batch is processed from where Kafka starts', async () => {
  const { topology } = countingTopology();
  await withTaskDir(async (dir) => {
    const task = await topology.openTask({ partition: 0, dir });
    try {
      assert.deepEqual(task.resumeFrom('in', 40n, 49n), { action: 'process' });
      assert.deepEqual(task.positions(), new Map());
    } finally {
      await task.close();
    }
  });
});

test('a reopened task resumes from its checkpoint: seek back, skip a covered batch, process the rest once', async () => {
  const { topology, decoded } = countingTopology();
  await withTaskDir(async (dir) => {
    let task: PartitionTask = await topology.openTask({ partition: 0, dir });
    await task.process(records(0, 4));
    await task.commit();
    await task.process(records(5, 6)); // not committed: lost with the "crash" below
    await task.close();

    task = await topology.openTask({ partition: 0, dir });
    try {
      assert.deepEqual(task.positions(), new Map([['in', 5n]]));
      // Kafka would start after the checkpoint (e.g. group offsets committed before the crash).
      assert.deepEqual(task.resumeFrom('in', 7n, 9n), { action: 'seek', offset: 5n });
      // Entirely below it: redelivered, nothing to do but mark it consumed.
      assert.deepEqual(task.resumeFrom('in', 2n, 4n), { action: 'covered' });
      // Straddling it: processed, and only the records the checkpoint does not cover count.
      assert.deepEqual(task.resumeFrom('in', 3n, 8n), { action: 'process' });
      decoded.length = 0;
      await task.process(records(3, 8));
      assert.deepEqual(decoded, [5, 6, 7, 8], 'the redelivered head is not even decoded');
      assert.equal(task.metrics().recordsProcessed, 5 + 4);
    } finally {
      await task.close();
    }
  });
});

test('the live position moves with every batch, the committed one with every commit', async () => {
  const { topology } = countingTopology();
  await withTaskDir(async (dir) => {
    const task = await topology.openTask({ partition: 0, dir });
    try {
      await task.process(records(0, 9));
      // The first batch since open is checked against the state: Kafka ahead of it means seek back.
      assert.deepEqual(task.resumeFrom('in', 12n, 15n), { action: 'seek', offset: 10n });
      assert.deepEqual(task.resumeFrom('in', 10n, 15n), { action: 'process' });
      assert.deepEqual(task.resumeFrom('in', 5n, 9n), { action: 'covered' });
      assert.deepEqual(task.positions(), new Map(), 'nothing committed yet');
      await task.process(records(8, 11)); // a redelivery overlapping the live position
      assert.equal(task.metrics().recordsProcessed, 12);
      await task.commit();
      assert.deepEqual(task.positions(), new Map([['in', 12n]]));
    } finally {
      await task.close();
    }
  });
});

test('after the first check, a gap in offsets (transaction markers, compaction) is processed, not sought back', async () => {
  const { topology, decoded } = countingTopology();
  await withTaskDir(async (dir) => {
    let task: PartitionTask = await topology.openTask({ partition: 0, dir });
    await task.process(records(0, 4));
    await task.commit();
    await task.close();
    task = await topology.openTask({ partition: 0, dir });
    try {
      assert.deepEqual(task.resumeFrom('in', 5n, 9n), { action: 'process' });
      await task.process(records(5, 9));
      // Offset 10 is a transaction's commit marker: Kafka never hands it to a consumer. Seeking back to
      // it would fetch 11 again, forever.
      assert.deepEqual(task.resumeFrom('in', 11n, 14n), { action: 'process' });
      decoded.length = 0;
      await task.process(records(11, 14));
      assert.deepEqual(decoded, [11, 12, 13, 14]);
      await task.commit();
      assert.deepEqual(task.positions(), new Map([['in', 15n]]));
    } finally {
      await task.close();
    }
  });
});

test('a checkpointed topic the topology no longer reads keeps its position', async () => {
  const first = new TopologyBuilder();
  const serde: Serde<string> = {
    name: 'text',
    serialize: (value) => Buffer.from(value),
    deserialize: (data) => String(data),
  };
  first.stream('old', serde).to(memorySink<string>('out'));
  await withTaskDir(async (dir) => {
    let task = await first.build().openTask({ partition: 0, dir });
    await task.process(records(0, 2, 'old'));
    await task.commit();
    await task.close();
    const { topology } = countingTopology();
    task = await topology.openTask({ partition: 0, dir });
    try {
      await task.process(records(0, 0));
      await task.commit();
      assert.deepEqual(
        task.positions(),
        new Map([
          ['old', 3n],
          ['in', 1n],
        ]),
      );
    } finally {
      await task.close();
    }
  });
});
