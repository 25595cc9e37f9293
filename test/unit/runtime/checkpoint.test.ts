import assert from 'node:assert/strict';
import { test } from 'node:test';
import pino from 'pino';
import type { PartitionTask, RawRecord, ResumeDecision } from '../../../src/core/index.js';
import { Checkpoint } from '../../../src/runtime/checkpoint.js';
import { RuntimeMetrics } from '../../../src/runtime/metrics.js';
import { taskIdOf } from '../../../src/core/task-id.js';
import { TaskHost, openTaskWaitingForLock } from '../../../src/runtime/task-host.js';
import type { RunnableTopology } from '../../../src/core/index.js';

const logger = pino({ level: 'silent' });

/** A task that records the calls made on it; each call yields once so that overlaps would show. */
function fakeTask(partition: number, positions: Map<string, bigint>) {
  const calls: string[] = [];
  const yieldOnce = () => new Promise<void>((resolve) => setImmediate(resolve));
  const call = (name: string) => async () => {
    calls.push(`${name}:start`);
    await yieldOnce();
    calls.push(`${name}:end`);
  };
  const task: PartitionTask = {
    partition,
    positions: () => positions,
    resumeFrom: (): ResumeDecision => ({ action: 'process' }),
    process: (_records: readonly RawRecord[]) => call('process')(),
    tick: call('tick'),
    commit: call('commit'),
    close: call('close'),
    outboxes: () => [],
    stores: () => [],
    metrics: () => ({
      recordsProcessed: 0,
      lateEvents: 0,
      duplicatesDropped: 0,
      windowsEmitted: 0,
      deadLetters: {},
      watermark: -Infinity,
    }),
  };
  return { task, calls };
}

test('commit ticks and commits every open task in its queue and returns their committed positions as group offsets', async () => {
  const checkpoint = new Checkpoint(new RuntimeMetrics('test'), logger);
  const a = fakeTask(0, new Map([['in', 5n]]));
  const b = fakeTask(1, new Map([['in', 7n]]));
  const closed = fakeTask(2, new Map([['in', 9n]]));
  const hosts = [
    new TaskHost(taskIdOf(0, 0), a.task),
    new TaskHost(taskIdOf(0, 1), b.task),
    new TaskHost(taskIdOf(0, 2), closed.task),
  ];
  (hosts[2] as TaskHost).closed = true;

  const { offsets } = await checkpoint.commit(hosts, 1_000);

  assert.deepEqual(offsets, [
    { topic: 'in', partition: 0, offset: 5n },
    { topic: 'in', partition: 1, offset: 7n },
  ]);
  assert.deepEqual(a.calls, ['tick:start', 'tick:end', 'commit:start', 'commit:end']);
  assert.deepEqual(closed.calls, [], 'a closed task is left alone');
});

test('hand-over on revoke: commit then close with no batch in between, and nothing runs on the task after', async () => {
  const checkpoint = new Checkpoint(new RuntimeMetrics('test'), logger);
  const { task, calls } = fakeTask(0, new Map());
  const host = new TaskHost(taskIdOf(0, 0), task);
  const batch = () =>
    host.queue.run(async () => {
      if (!host.closed) await task.process([]);
    });

  const first = batch();
  const handOver = checkpoint.handOver(host);
  const late = batch(); // a batch fetched before the revoke, arriving after it
  await Promise.all([first, handOver, late]);

  assert.deepEqual(calls, [
    'process:start',
    'process:end',
    'commit:start',
    'commit:end',
    'close:start',
    'close:end',
  ]);
  await checkpoint.handOver(host);
  assert.equal(calls.length, 6, 'handing over twice does not reach the task');
});

function lockedTopology(failures: number, task: PartitionTask): RunnableTopology & { attempts: number } {
  const topology = {
    attempts: 0,
    sourceTopics: ['in'],
    sinks: [],
    storeNames: [],
    openTask: async () => {
      topology.attempts++;
      if (topology.attempts <= failures)
        throw Object.assign(new Error('IO error: lock held by another process'), { code: 'LEVEL_LOCKED' });
      return task;
    },
  };
  return topology;
}

test('a new owner waits for the lock of the previous owner, polling, then opens the task', async () => {
  const { task } = fakeTask(3, new Map());
  const topology = lockedTopology(2, task);
  const started = Date.now();
  const opened = await openTaskWaitingForLock(topology, { partition: 3, dir: '/nowhere' }, 5_000, logger);
  assert.equal(opened, task);
  assert.equal(topology.attempts, 3);
  assert.ok(Date.now() - started >= 2 * 200 - 20, 'two polls of about 200 ms');
});

test('a lock still held after the timeout fails the open, naming the partition and the wait', async () => {
  const { task } = fakeTask(3, new Map());
  const topology = lockedTopology(Infinity, task);
  await assert.rejects(
    openTaskWaitingForLock(topology, { partition: 3, dir: '/nowhere' }, 300, logger),
    (error: Error) => {
      assert.match(error.message, /cannot open the state of partition 3 at \/nowhere/);
      assert.match(error.message, /still locked by another process after 300 ms/);
      assert.equal((error.cause as { code?: string }).code, 'LEVEL_LOCKED');
      return true;
    },
  );
  assert.ok(topology.attempts >= 2 && topology.attempts <= 4, `${topology.attempts} attempts in 300 ms`);
});

test('any other failure to open is not waited for', async () => {
  const topology: RunnableTopology = {
    sourceTopics: ['in'],
    sinks: [],
    storeNames: [],
    openTask: async () => {
      throw new Error('corrupt manifest');
    },
  };
  await assert.rejects(
    openTaskWaitingForLock(topology, { partition: 1, dir: '/nowhere' }, 5_000, logger),
    (error: Error) =>
      /cannot open the state of partition 1 at \/nowhere$/.test(error.message) &&
      (error.cause as Error).message === 'corrupt manifest',
  );
});
