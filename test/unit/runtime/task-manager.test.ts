/**
 * The TaskManager (runtime/task-manager.ts) on real tasks (the ids topology, LevelDB in a temp folder)
 * and the fake Kafka's admin: the states a task goes through on assignment, revoke, a lost
 * transaction and shutdown; and a state folder written under its name from before task ids
 * (`task-3`) opened through an Instance on the fake Kafka, without reset.
 */
import assert from 'node:assert/strict';
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { Writable } from 'node:stream';
import { test } from 'node:test';
import { pino } from 'pino';
import { CacheBudget } from '../../../src/core/cache-budget.js';
import { FencedError } from '../../../src/core/task.js';
import { taskIdOf } from '../../../src/core/task-id.js';
import { Checkpoint } from '../../../src/runtime/checkpoint.js';
import { DropLog } from '../../../src/runtime/drop-log.js';
import { Instance } from '../../../src/runtime/instance.js';
import { RuntimeMetrics } from '../../../src/runtime/metrics.js';
import type { TaskHost } from '../../../src/runtime/task-host.js';
import { TaskManager } from '../../../src/runtime/task-manager.js';
import { FakeKafka } from '../../helpers/fake-kafka.js';
import {
  INPUT,
  events,
  idsTopology,
  instanceHarness,
  quietLogger,
  switchableSink,
  testConfig,
} from './instance-fixtures.js';

const harness = instanceHarness();
const T0 = taskIdOf(0, 0);
const T1 = taskIdOf(0, 1);

interface Harness {
  manager: TaskManager;
  /** Partitions whose DLQ writer the manager released, in order. */
  released: number[];
  failures: Error[];
  reopened: TaskHost[];
  stop(): Promise<void>;
}

function managerOn(stateDir: string): Harness {
  const logger = quietLogger();
  const metrics = new RuntimeMetrics('test', 'app');
  const drops = new DropLog(logger);
  const released: number[] = [];
  const failures: Error[] = [];
  const reopened: TaskHost[] = [];
  let running = true;
  const kafka = new FakeKafka();
  kafka.createTopic(INPUT, 2);
  const manager = new TaskManager({
    topology: idsTopology(switchableSink()),
    settings: { appId: 'app', stateDir, resetStores: [], stateLockTimeoutMs: 2_000, deliveryBatchRows: 100 },
    cache: new CacheBudget(8 * 1024 * 1024),
    logger,
    metrics,
    drops,
    delivery: {
      forgetPartition: () => undefined,
      releasePartition: async (partition) => void released.push(partition),
    },
    checkpoint: new Checkpoint(metrics, logger, drops),
    admin: () => undefined,
    isRunning: () => running,
    fail: (error) => failures.push(error),
    reopened: (host) => reopened.push(host),
  });
  return {
    manager,
    released,
    failures,
    reopened,
    async stop() {
      running = false;
      await manager.settleOpenings();
      await manager.closeRunning();
    },
  };
}

test('assigned tasks open to running in their task-0_N folders; a revoked one goes through closing and leaves', async () => {
  const h = managerOn(harness.dir);
  try {
    h.manager.assign([T0, T1]);
    assert.deepEqual(
      h.manager.opening().map((o) => o.task),
      ['0_0', '0_1'],
      'both opening until their folders are open',
    );
    assert.equal(h.manager.stateOf(T0), 'opening');
    const host = await h.manager.hostFor(T0);
    await h.manager.hostFor(T1);
    assert.equal(host.id, T0);
    assert.equal(h.manager.stateOf(T0), 'running');
    assert.equal(h.manager.running(T0), host);
    assert.deepEqual(h.manager.opening(), []);
    assert.ok(existsSync(join(harness.dir, 'app', 'task-0_0')), 'the folder is named by the task id');

    h.manager.assign([T1]);
    assert.equal(h.manager.stateOf(T0), 'closing', 'revoked: closing at once, no longer running');
    assert.equal(h.manager.running(T0), undefined);
    assert.deepEqual(h.manager.runningHosts(), [h.manager.running(T1)]);
    // hostFor of a closing task waits for it to close, then opens a new incarnation on the folder.
    const again = await h.manager.hostFor(T0);
    assert.notEqual(again, host, 'a new incarnation');
    assert.equal(host.closed, true, 'the old one was checkpointed and closed');
    assert.deepEqual(h.released, [0]);
    assert.equal(h.manager.stateOf(T0), 'running');
    assert.deepEqual(h.failures, []);
  } finally {
    await h.stop();
  }
  assert.equal(h.manager.stateOf(T0), undefined, 'shutdown closes every task');
  assert.equal(h.manager.stateOf(T1), undefined);
});

test('a task lost to a fenced transaction closes and reopens while still assigned; not when unassigned', async () => {
  const h = managerOn(harness.dir);
  try {
    h.manager.assign([T0, T1]);
    const lost = await h.manager.hostFor(T0);
    const other = await h.manager.hostFor(T1);
    // As Checkpoint.commit leaves a lost task: closed in its queue, without writing.
    lost.closed = true;
    await lost.task.close();
    await h.manager.lose({ host: lost, error: new FencedError('fenced') });
    await h.manager.settleOpenings();
    assert.equal(h.reopened.length, 1, 'reopened once');
    assert.notEqual(h.reopened[0], lost);
    assert.equal(h.manager.running(T0), h.reopened[0]);

    // Revoked (closing), and its commit fails as the new owner fenced it meanwhile: not reopened.
    h.manager.assign([T0]);
    assert.equal(h.manager.stateOf(T1), 'closing');
    await h.manager.lose({ host: other, error: new FencedError('fenced') });
    while (h.manager.stateOf(T1) !== undefined) await new Promise((resolve) => setTimeout(resolve, 10));
    assert.equal(h.reopened.length, 1, 'not reopened: no longer assigned');
    assert.equal(h.manager.stateOf(T1), undefined);
    assert.deepEqual(h.failures, []);
  } finally {
    await h.stop();
  }
});

test('a state folder written under its name from before task ids (task-0) opens without reset, renamed, with one log line', async () => {
  const kafka = new FakeKafka();
  kafka.createTopic(INPUT, 1);
  kafka.produce(INPUT, 0, events(['a0', 'a1', 'a2']));
  // Today's main wrote `<stateDir>/<appId>/task-<partition>`: open a task there and checkpoint it.
  const legacy = join(harness.dir, 'app', 'task-0');
  const topology = idsTopology(switchableSink());
  const old = await topology.openTask({ partition: 0, dir: legacy });
  await old.process(kafka.records(INPUT));
  await old.commit();
  await old.close();

  const lines: Array<{ msg: string; from?: string; to?: string; task?: string }> = [];
  const logger = pino(
    { level: 'info' },
    new Writable({
      write(chunk: Buffer, _encoding, done) {
        lines.push(JSON.parse(chunk.toString()) as (typeof lines)[number]);
        done();
      },
    }),
  );
  const sink = switchableSink();
  const instance = harness.track(new Instance(idsTopology(sink), testConfig(harness.dir), kafka, logger));
  await instance.start();
  kafka.consumer('app').assign([0]);
  await kafka.consumer('app').pollUntilIdle();

  const [task] = instance.tasks();
  assert.equal(task?.id, '0_0');
  assert.deepEqual(task?.positions, { [INPUT]: '3' }, "the old folder's checkpoint, not an empty state");
  assert.ok(!existsSync(legacy), 'the legacy folder is gone');
  assert.ok(existsSync(join(harness.dir, 'app', 'task-0_0')), 'renamed to the task id');
  const renamed = lines.filter((line) => /renamed/.test(line.msg));
  assert.equal(renamed.length, 1, 'one log line');
  assert.deepEqual(
    [renamed[0]?.task, renamed[0]?.from, renamed[0]?.to],
    ['0_0', legacy, join(harness.dir, 'app', 'task-0_0')],
  );

  // Nothing processed again: the outputs of the old folder are delivered once, with what comes next.
  kafka.produce(INPUT, 0, events(['a3']));
  await kafka.consumer('app').pollUntilIdle();
  await instance.commitAll('test');
  await instance.deliverAll();
  assert.deepEqual(sink.rows, ['a0', 'a1', 'a2', 'a3']);
});
