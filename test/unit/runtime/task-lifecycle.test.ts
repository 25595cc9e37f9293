/**
 * The task lifecycle's state machine (runtime/task-lifecycle.ts) and the task id (core/task-id.ts): every
 * valid transition is taken, every other one refused naming the task and both states; ids parse,
 * print, order and name their folder and transactional id.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import {
  TaskId,
  compareTaskIds,
  legacyFolderName,
  parseTaskRef,
  taskIdOf,
} from '../../../src/core/task-id.js';
import { taskTransactionalId } from '../../../src/runtime/task-folder.js';
import {
  InvalidTaskTransitionError,
  TRANSITIONS,
  TaskLifecycle,
} from '../../../src/runtime/task-lifecycle.js';
import type { TaskState } from '../../../src/runtime/task-lifecycle.js';

const STATES: TaskState[] = ['opening', 'restoring', 'running', 'closing', 'closed', 'standby'];

/** A lifecycle of task 0_3 brought to `state` along valid transitions. */
function lifecycleIn(state: TaskState): TaskLifecycle {
  const paths: Record<TaskState, TaskState[]> = {
    opening: [],
    restoring: ['restoring'],
    running: ['running'],
    closing: ['closing'],
    closed: ['closing', 'closed'],
    standby: [],
  };
  const lifecycle = new TaskLifecycle(taskIdOf(0, 3), state === 'standby' ? 'standby' : 'opening');
  for (const next of paths[state]) lifecycle.transitionTo(next);
  assert.equal(lifecycle.state, state);
  return lifecycle;
}

test('the valid transitions are the lifecycle as designed, and each one is taken', () => {
  assert.deepEqual(TRANSITIONS, {
    opening: ['restoring', 'running', 'closing'],
    restoring: ['running', 'opening', 'closing'],
    running: ['closing'],
    closing: ['closed'],
    closed: [],
    standby: ['opening', 'closing'],
  });
  for (const from of STATES)
    for (const to of TRANSITIONS[from]) {
      const lifecycle = lifecycleIn(from);
      lifecycle.transitionTo(to);
      assert.equal(lifecycle.state, to, `${from} → ${to}`);
    }
});

test('every other transition is refused with an error naming the task, the from and the to state', () => {
  let refused = 0;
  for (const from of STATES)
    for (const to of STATES) {
      if (TRANSITIONS[from].includes(to)) continue;
      const lifecycle = lifecycleIn(from);
      assert.throws(
        () => lifecycle.transitionTo(to),
        (error: unknown) =>
          error instanceof InvalidTaskTransitionError &&
          error.message === `task 0_3: invalid transition ${from} → ${to}` &&
          error.from === from &&
          error.to === to,
        `${from} → ${to}`,
      );
      assert.equal(lifecycle.state, from, 'a refused transition leaves the state as it was');
      refused++;
    }
  // 36 pairs, 10 valid ones.
  assert.equal(refused, 26);
});

test('a task id prints as 0_3, parses back to the same (interned) id, orders numerically and names its folder', () => {
  const id = taskIdOf(0, 3);
  assert.equal(id.toString(), '0_3');
  assert.equal(JSON.stringify({ id }), '{"id":"0_3"}');
  assert.equal(TaskId.parse('0_3'), id);
  assert.equal(taskIdOf(0, 3), id, 'interned: usable as a Map key');
  assert.equal(id.folderName, 'task-0_3');
  assert.equal(legacyFolderName(id), 'task-3');
  assert.equal(legacyFolderName(taskIdOf(1, 3)), undefined, 'no version before task ids had sub-topology 1');
  for (const bad of ['3', '0_', '_3', '0_3_1', 'a_b', '-1_3', '0_3 ', ''])
    assert.equal(TaskId.parse(bad), undefined, bad);
  assert.throws(() => taskIdOf(-1, 0), RangeError);
  assert.throws(() => taskIdOf(0, 1.5), RangeError);
  const sorted = ['1_0', '0_10', '0_2'].map((text) => TaskId.parse(text)!).sort(compareTaskIds);
  assert.deepEqual(sorted.map(String), ['0_2', '0_10', '1_0']);
});

test('an admin route names a task by its id or, as before task ids, by its bare partition', () => {
  assert.equal(parseTaskRef('0_3'), taskIdOf(0, 3));
  assert.equal(parseTaskRef('3'), taskIdOf(0, 3));
  assert.equal(parseTaskRef('1_3'), taskIdOf(1, 3));
  assert.equal(parseTaskRef('x'), undefined);
  assert.equal(parseTaskRef('3.0'), undefined);
});

test('sub-topology 0 keeps the transactional id of the versions before task ids; others carry the id', () => {
  // An old instance fences `<appId>-task-<p>`: a new zombie must commit under that id to be fenced.
  assert.equal(taskTransactionalId('app', taskIdOf(0, 3)), 'app-task-3');
  assert.equal(taskTransactionalId('app', taskIdOf(1, 3)), 'app-task-1_3');
});
