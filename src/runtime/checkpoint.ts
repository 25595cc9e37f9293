/**
 * The commit protocol of an instance, named once. Exactly-once, as built (ARCHITECTURE.md tells why
 * each step holds):
 *
 *  1. Each task is ticked and committed in its queue: one atomic LevelDB batch with its dirty state,
 *     the outbox appends and acks since the last commit, and the next input offset per topic (plus
 *     watermarks and counters). After a crash the task reopens exactly at this checkpoint.
 *  2. The task, not Kafka, says where to resume: it owns its input positions, skips the records it
 *     has processed (redelivery) and asks the consumer to seek back when Kafka would resume after
 *     them (PartitionTask.resumeFrom, applied in Instance.handleBatch).
 *  3. Group offsets are committed after the checkpoints, asynchronously, from the tasks' committed
 *     positions; a failure is harmless (they only matter for a partition with no local state).
 *  4. Outputs are delivered only from committed outboxes, after the checkpoint that made them
 *     durable, and acked afterwards; the sinks make a replay harmless (delivery.ts).
 *     With changelogs (changelog.ts), step 1 is preceded by a Kafka transaction of the task: its state
 *     changes and input offsets; LevelDB is written only after it committed. A task whose transaction
 *     fails (fenced by a newer owner, Kafka unreachable) is closed without writing and reopened from
 *     its changelog: state in memory that Kafka has not accepted is never trusted again.
 *  5. A revoked task is committed then closed in one section of its queue, with no batch in between,
 *     releasing its LevelDB for the next owner. On shutdown: checkpoint (1), deliver within the
 *     shutdown timeout (4), commit group offsets and wait for it (3), then commit (the acks of what
 *     was delivered) and close each task (5).
 */
import type { Logger } from 'pino';
import { FencedError } from '../core/task.js';
import type { GroupConsumer, TopicPartition } from './kafka/client.js';
import type { DropLog } from './drop-log.js';
import type { RuntimeMetrics } from './metrics.js';
import type { TaskHost } from './task-host.js';

export type GroupOffset = TopicPartition & { offset: bigint };

/** A task whose changelog transaction failed: closed without writing, to be reopened from the changelog. */
export interface LostTask {
  host: TaskHost;
  error: unknown;
}

export class Checkpoint {
  constructor(
    private readonly metrics: RuntimeMetrics,
    private readonly logger: Logger,
    /** Logs late events and dead letters from the counters' growth at each commit, rate-limited. */
    private readonly drops?: DropLog,
  ) {}

  /**
   * Step 1 for every open task; returns the group offsets of step 3 and the tasks lost to a failed
   * changelog transaction (closed here). A failed commit of a task without changelog rejects.
   */
  async commit(
    hosts: readonly TaskHost[],
    nowMs: number,
  ): Promise<{ offsets: GroupOffset[]; lost: LostTask[] }> {
    const offsets: GroupOffset[] = [];
    const lost: LostTask[] = [];
    // Tasks commit side by side: with changelogs each commit waits on a few Kafka round trips.
    const commits = hosts.map((host) =>
      host.queue.run(async () => {
        if (host.closed) return;
        await host.task.tick(nowMs);
        try {
          await host.task.commit();
        } catch (error) {
          if (host.changelog === undefined) throw error;
          host.closed = true;
          await host.task.close().catch(() => undefined);
          lost.push({ host, error });
          return;
        }
        const metrics = host.task.metrics();
        this.metrics.observeTask(host.partition, metrics);
        this.drops?.observe(host.partition, metrics, host.task.dropExamples?.());
        offsets.push(...groupOffsetsOf(host));
      }),
    );
    // Every commit settles before a failure is reported: no task is left mid-commit.
    const failed = (await Promise.allSettled(commits)).find((r) => r.status === 'rejected');
    if (failed) throw failed.reason;
    return { offsets, lost };
  }

  /** Step 3: group offsets trail the checkpoints; a failure (e.g. mid-rebalance) is only logged. */
  async commitGroupOffsets(consumer: GroupConsumer | undefined, offsets: GroupOffset[]): Promise<void> {
    await consumer
      ?.commit(offsets)
      .catch((error: unknown) => this.logger.debug({ err: error }, 'offset commit skipped'));
  }

  /** Step 5, on revoke and at the end of a shutdown: commit then close, in one queue section. */
  async handOver(host: TaskHost): Promise<void> {
    await host.queue.run(async () => {
      if (host.closed) return;
      host.closed = true;
      try {
        await host.task.commit();
      } catch (error) {
        // A task with a changelog loses nothing: its next owner restores the last transaction (and
        // reprocesses what came after it). Fenced: the new owner was quicker, as rebalances go.
        if (host.changelog === undefined) throw error;
        const fenced = error instanceof FencedError;
        this.logger[fenced ? 'info' : 'warn'](
          { partition: host.partition, err: error },
          fenced
            ? 'the new owner took over before the final commit'
            : 'final commit of a revoked task failed',
        );
      } finally {
        await host.task.close();
      }
    });
    await host.changelog?.close().catch(() => undefined);
  }
}

/** The committed positions of a task as group offsets. */
export function groupOffsetsOf(host: TaskHost): GroupOffset[] {
  return [...host.task.positions()].map(([topic, offset]) => ({ topic, partition: host.partition, offset }));
}
