/**
 * Owns one PartitionTask inside a running instance: the one queue every call on the task goes through
 * (batches, commits, deliveries, close) and whether it is closed, and opens it even while another
 * process still holds the partition's LevelDB lock during a rebalance handover.
 */
import type { Logger } from 'pino';
import { RetriesExhaustedError, retry } from '../core/retry.js';
import { SerialQueue } from '../core/serial-queue.js';
import type { TaskId } from '../core/task-id.js';
import type { OpenTaskOptions, Outbox, PartitionTask, RunnableTopology } from '../core/task.js';
import type { TaskChangelogLink } from './changelog.js';

/** How often a new owner tries again to open a state its previous owner still locks. */
const LOCK_POLL_MS = 200;

export function isLockError(error: unknown): boolean {
  for (let e: unknown = error; e instanceof Error; e = e.cause) {
    if ((e as { code?: string }).code === 'LEVEL_LOCKED' || /lock/i.test(e.message)) return true;
  }
  return false;
}

export async function openTaskWaitingForLock(
  topology: RunnableTopology,
  options: OpenTaskOptions,
  timeoutMs: number,
  logger: Logger,
): Promise<PartitionTask> {
  let warned = false;
  try {
    return await retry(
      () => topology.openTask(options),
      { maxElapsedMs: timeoutMs, initialDelayMs: LOCK_POLL_MS, maxDelayMs: LOCK_POLL_MS },
      {
        isTransient: isLockError,
        onRetry: () => {
          if (warned) return;
          warned = true;
          logger.info(
            { partition: options.partition },
            'state is locked by its previous owner; waiting for the handover',
          );
        },
        random: () => 1, // a steady poll: every wait is the full LOCK_POLL_MS
      },
    );
  } catch (error) {
    const stillLocked = error instanceof RetriesExhaustedError;
    throw new Error(
      `cannot open the state of partition ${options.partition} at ${options.dir}` +
        (stillLocked ? ` (still locked by another process after ${timeoutMs} ms)` : ''),
      { cause: stillLocked ? error.lastError : error },
    );
  }
}

export class TaskHost {
  /** Task calls must not overlap (see PartitionTask): every section on the task runs through here. */
  readonly queue = new SerialQueue();
  paused = false;
  /** Set inside the queue by the section that closes the task; later sections skip the task. */
  closed = false;
  /** Records behind the partition's high watermark after the last batch (undefined before one). */
  lag: number | undefined;
  /** When the last checkpoint of this task was written (epoch ms; undefined before the first). */
  lastCommitAt: number | undefined;

  constructor(
    readonly id: TaskId,
    readonly task: PartitionTask,
    /** The task's changelog link (transactions, restore), when changelogs are on. */
    readonly changelog?: TaskChangelogLink,
  ) {}

  /** The partition the task reads (of every source topic). */
  get partition(): number {
    return this.id.partition;
  }

  /** The outbox feeding `name` (a sink's name, or DLQ_OUTBOX). */
  outbox(name: string): Outbox | undefined {
    return this.task.outboxes().find((o) => o.name === name);
  }

  pendingOutputs(): number {
    let pending = 0;
    for (const outbox of this.task.outboxes()) pending += outbox.pending();
    return pending;
  }
}
