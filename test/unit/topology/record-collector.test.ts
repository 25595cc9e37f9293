import assert from 'node:assert/strict';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { TopologyBuilder, memorySink } from '../../../src/index.js';
import type { RecordCollector } from '../../../src/core/task.js';
import { T0, jsonSerde, memoryChangelog } from './helpers.js';

test("a task's output records leave with the commit whose transaction committed, and only then", async () => {
  const builder = new TopologyBuilder();
  builder.stream('in', jsonSerde<{ n: number }>()).to(memorySink('out'));
  const dir = await mkdtemp(join(tmpdir(), 'tributary-record-collector-'));
  const changelog = memoryChangelog();
  const task = await builder.build().openTask({ partition: 0, dir, changelog });
  try {
    const { recordCollector: collector } = task as unknown as { recordCollector: RecordCollector };
    const output = (value: string) => ({ topic: 'extra', key: null, value: Buffer.from(value) });
    const input = (offset: number) => ({
      topic: 'in',
      partition: 0,
      offset: BigInt(offset),
      timestamp: T0,
      key: null,
      value: Buffer.from(JSON.stringify({ n: offset })),
      headers: {},
    });

    await task.process([input(0)]);
    collector.send(output('first'));
    changelog.failNextWrite = true;
    await assert.rejects(task.commit());
    assert.deepEqual(
      collector.pending().map((r) => r.value?.toString()),
      ['first'],
      'a failed commit keeps them',
    );

    await task.commit();
    assert.deepEqual(collector.pending(), [], 'the committed transaction carried them');
    assert.deepEqual(
      changelog.outputs.map((r) => r.value?.toString()),
      ['first', 'first'],
      'each transaction carried the record',
    );

    collector.send(output('second'));
    await task.commit(); // nothing processed since: no transaction
    assert.deepEqual(
      collector.pending().map((r) => r.value?.toString()),
      ['second'],
      'an idle commit sends nothing',
    );
    assert.equal(changelog.outputs.length, 2);
  } finally {
    await task.close();
    await rm(dir, { recursive: true, force: true });
  }
});
