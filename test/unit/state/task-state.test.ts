import assert from 'node:assert/strict';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { DLQ_OUTBOX } from '../../../src/core/task.js';
import { KEY_VALUE_FORMAT, KeyValueStoreImpl } from '../../../src/state/kv-store.js';
import type { StoreSpec } from '../../../src/state/store-spec.js';
import { openTaskState } from '../../../src/state/task-state.js';
import type { TaskStatePlan } from '../../../src/state/task-state.js';

async function withDir(fn: (dir: string) => Promise<void>): Promise<void> {
  const dir = await mkdtemp(join(tmpdir(), 'tributary-task-state-'));
  try {
    await fn(dir);
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
}

function kvSpec(name: string): StoreSpec {
  return {
    name,
    kind: 'key-value',
    format: KEY_VALUE_FORMAT,
    create: (db, context) => new KeyValueStoreImpl(db, name, context),
  };
}

function planOf(stores: string[], sinks: string[] = []): TaskStatePlan {
  return { storeSpecs: stores.map(kvSpec), sinkOutboxes: sinks.map((name) => ({ name })) };
}

test('an opened task state holds its stores, the DLQ and sink outboxes, and the checkpoint of the last commit', async () => {
  await withDir(async (dir) => {
    const first = await openTaskState<{ n: number }>(planOf(['totals'], ['clicks']), { partition: 0, dir });
    assert.deepEqual([...first.stores.keys()], ['totals']);
    assert.deepEqual([...first.outboxes.keys()], [DLQ_OUTBOX, 'clicks']);
    assert.equal(first.checkpoint, undefined, 'a new folder has no checkpoint');
    (first.stores.get('totals') as KeyValueStoreImpl<number>).put('a', 1);
    await first.db.commit({ n: 7 });
    await first.db.close();

    const again = await openTaskState<{ n: number }>(planOf(['totals'], ['clicks']), { partition: 0, dir });
    assert.deepEqual(again.checkpoint, { n: 7 });
    assert.equal((again.stores.get('totals') as KeyValueStoreImpl<number>).get('a'), 1);
    await again.db.close();
  });
});

test('an open that fails (a store the topology lost, a sink named twice) closes the folder it opened', async () => {
  await withDir(async (dir) => {
    const first = await openTaskState(planOf(['totals']), { partition: 0, dir });
    (first.stores.get('totals') as KeyValueStoreImpl<number>).put('a', 1);
    await first.db.commit({});
    await first.db.close();

    await assert.rejects(openTaskState(planOf(['renamed']), { partition: 0, dir }), {
      name: 'StoreMismatchError',
    });
    await assert.rejects(openTaskState(planOf(['totals'], ['out', 'out']), { partition: 0, dir }), {
      message: /sink name "out" is reserved or used twice/,
    });
    // LevelDB holds a lock on its folder while open: this open succeeds only if the failed ones closed it.
    const reopened = await openTaskState(planOf(['totals']), { partition: 0, dir });
    assert.equal((reopened.stores.get('totals') as KeyValueStoreImpl<number>).get('a'), 1);
    await reopened.db.close();
  });
});
