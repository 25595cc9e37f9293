/**
 * Owns one PartitionTask inside a running instance: serializes the work on it (batches, commits,
 * close), and opens it even while another process still holds the partition's LevelDB lock during
 * a rebalance handover.
 */
import type { Logger } from 'pino';
import type { OpenTaskOptions, Outbox, PartitionTask, RunnableTopology } from '../core/task.js';

/** Runs async sections one at a time, in call order. */
export class SerialQueue {
  private tail: Promise<unknown> = Promise.resolve();

  run<T>(section: () => Promise<T>): Promise<T> {
    const result = this.tail.then(section, section);
    this.tail = result.catch(() => undefined);
    return result;
  }
}

function isLockError(error: unknown): boolean {
  for (let e: unknown = error; e instanceof Error; e = e.cause) {
    if ((e as { code?: string }).code === 'LEVEL_LOCKED' || /lock/i.test(e.message)) return true;
  }
  return false;
}

export const sleep = (ms: number) => new Promise<void>((resolve) => setTimeout(resolve, ms));

export async function openTaskWaitingForLock(
  topology: RunnableTopology,
  options: OpenTaskOptions,
  timeoutMs: number,
  logger: Logger,
): Promise<PartitionTask> {
  const deadline = Date.now() + timeoutMs;
  let warned = false;
  for (;;) {
    try {
      return await topology.openTask(options);
    } catch (error) {
      if (!isLockError(error) || Date.now() >= deadline) {
        throw new Error(
          `cannot open the state of partition ${options.partition} at ${options.dir}` +
            (isLockError(error) ? ` (still locked by another process after ${timeoutMs} ms)` : ''),
          { cause: error },
        );
      }
      if (!warned) {
        logger.info(
          { partition: options.partition },
          'state is locked by its previous owner; waiting for the handover',
        );
        warned = true;
      }
      await sleep(200);
    }
  }
}

export class TaskHost {
  readonly queue = new SerialQueue();
  paused = false;
  closed = false;
  /**
   * Next offset to process per topic: the checkpoint's at open, then advanced by every batch. The
   * checkpoint itself trails it until the next commit.
   */
  readonly nextOffsets: Map<string, bigint>;

  constructor(
    readonly partition: number,
    readonly task: PartitionTask,
  ) {
    this.nextOffsets = new Map(task.positions());
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
