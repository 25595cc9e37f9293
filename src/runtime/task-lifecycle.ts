/**
 * The lifecycle of a task in an instance, as Kafka Streams' Task.State: each task the TaskManager
 * owns is in exactly one of these states, and moves only along TRANSITIONS.
 *
 *   opening ──▶ restoring ──▶ running ──▶ closing ──▶ closed
 *      │  ▲          │                       ▲
 *      │  └──────────┘ (Kafka trouble: fence again)
 *      ├─────────────────────────▶ running (no changelogs: nothing to restore)
 *      └──── opening, restoring ─────────────┘ (an open that failed or was given up)
 *   standby ──▶ opening (promoted: its folder handed to the task, which fences and replays the tail)
 *      └──────▶ closing (moved away, shutdown)
 *
 * - opening: the task is this instance's; its folder is being claimed (the previous owner's lock,
 *   the changelog's transactional id fenced). Without changelogs it goes straight to running.
 * - restoring: fenced; replaying its changelog into the folder, then loading the stores. Kafka
 *   unreachable meanwhile sends it back to opening, to fence again on the next attempt.
 * - running: open, fed batches, committed by the commit loop.
 * - closing: committed and closed on a revoke or shutdown, or closed without writing after its
 *   transaction failed (lost); its folder is released once closed.
 * - standby: a folder of a partition another instance runs, kept warm from its changelogs.
 * - closed: the end of this incarnation; a later open of the same id is a new one.
 *
 * Holding a task on a RetriableError (the registry down) is not a state: the task's lifecycle does not
 * move, its queue stays as it is; the manager records why it is held (TaskManager.hold).
 */
import type { TaskId } from '../core/task-id.js';

export type TaskState = 'opening' | 'restoring' | 'running' | 'closing' | 'closed' | 'standby';

/** The states a task may move to from each state. */
export const TRANSITIONS: Readonly<Record<TaskState, readonly TaskState[]>> = {
  opening: ['restoring', 'running', 'closing'],
  restoring: ['running', 'opening', 'closing'],
  running: ['closing'],
  closing: ['closed'],
  closed: [],
  standby: ['opening', 'closing'],
};

export class InvalidTaskTransitionError extends Error {
  override readonly name = 'InvalidTaskTransitionError';
  constructor(
    readonly task: TaskId,
    readonly from: TaskState,
    readonly to: TaskState,
  ) {
    super(`task ${task.toString()}: invalid transition ${from} → ${to}`);
  }
}

export function isValidTransition(from: TaskState, to: TaskState): boolean {
  return TRANSITIONS[from].includes(to);
}

/** The state of one task: moves only along TRANSITIONS, throwing on anything else. */
export class TaskLifecycle {
  private current: TaskState;

  constructor(
    readonly id: TaskId,
    initial: 'opening' | 'standby',
  ) {
    this.current = initial;
  }

  get state(): TaskState {
    return this.current;
  }

  transitionTo(to: TaskState): void {
    if (!isValidTransition(this.current, to)) throw new InvalidTaskTransitionError(this.id, this.current, to);
    this.current = to;
  }
}
