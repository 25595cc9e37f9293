/**
 * Records the engine handles without failing (late events, dead letters) made visible in the log, not
 * only in metrics: at each commit the task's counters are compared with the last ones seen, and each
 * kind of drop on each partition gets at most one line per interval, with the count since its last
 * line and the offset of a recent example. Nothing runs per record: the engine only counts.
 */
import type { Logger } from 'pino';
import type { DropExamples, TaskMetrics } from '../core/task.js';

export const DROP_LOG_INTERVAL_MS = 30_000;

/** What is counted but not yet logged, for one kind of drop on one partition. */
interface Pending {
  count: number;
  exampleOffset: bigint | undefined;
  /** When this kind last had a line; undefined before its first (which is logged at once). */
  lastLineAt: number | undefined;
}

/** Late events (`late`) or dead letters of one reason (`dead-letter`). */
type DropKind = { kind: 'late' } | { kind: 'dead-letter'; reason: string };

export class DropLog {
  /** Per partition, the counters as last seen: only what exceeds them is new. */
  private readonly seen = new Map<number, TaskMetrics>();
  /** Per partition, then per kind key (`late`, `dead-letter:<reason>`). */
  private readonly pending = new Map<number, Map<string, Pending>>();

  constructor(
    private readonly logger: Logger,
    private readonly intervalMs = DROP_LOG_INTERVAL_MS,
    private readonly now: () => number = Date.now,
  ) {}

  /** A task opened: its counters so far (restored from its checkpoint) are history, not news. */
  baseline(partition: number, metrics: TaskMetrics): void {
    this.seen.set(partition, snapshotOf(metrics));
  }

  /** At a commit: counts what is new since the last call and logs each kind whose interval has passed. */
  observe(partition: number, metrics: TaskMetrics, examples?: DropExamples): void {
    const before = this.seen.get(partition);
    this.seen.set(partition, snapshotOf(metrics));
    const late = metrics.lateEvents - (before?.lateEvents ?? 0);
    if (late > 0) this.add(partition, { kind: 'late' }, late, examples?.lateEvent);
    for (const [reason, total] of Object.entries(metrics.deadLetters)) {
      const added = total - (before?.deadLetters[reason] ?? 0);
      if (added > 0)
        this.add(partition, { kind: 'dead-letter', reason }, added, examples?.deadLetters[reason]);
    }
    this.flush(partition, false);
  }

  /** The partition left this instance: what is still unlogged gets its line now. */
  forget(partition: number): void {
    this.flush(partition, true);
    this.seen.delete(partition);
    this.pending.delete(partition);
  }

  private add(partition: number, drop: DropKind, count: number, exampleOffset: bigint | undefined): void {
    let kinds = this.pending.get(partition);
    if (kinds === undefined) this.pending.set(partition, (kinds = new Map()));
    const key = drop.kind === 'late' ? 'late' : `dead-letter:${drop.reason}`;
    const entry = kinds.get(key) ?? { count: 0, exampleOffset: undefined, lastLineAt: undefined };
    entry.count += count;
    entry.exampleOffset = exampleOffset ?? entry.exampleOffset;
    kinds.set(key, entry);
  }

  private flush(partition: number, all: boolean): void {
    const now = this.now();
    for (const [key, entry] of this.pending.get(partition) ?? []) {
      if (entry.count === 0) continue;
      if (!all && entry.lastLineAt !== undefined && now - entry.lastLineAt < this.intervalMs) continue;
      const since =
        entry.lastLineAt === undefined ? '' : ` in the last ${Math.round((now - entry.lastLineAt) / 1000)} s`;
      const fields = {
        partition,
        count: entry.count,
        exampleOffset: entry.exampleOffset?.toString(),
      };
      if (key === 'late') {
        this.logger.info(
          { ...fields, reason: 'late' },
          `${entry.count} late event(s)${since}: their window had closed (dropped, unless the window's ` +
            'late option says dlq, side-output or re-emit; tributary_late_events_total)',
        );
      } else {
        const reason = key.slice('dead-letter:'.length);
        this.logger.warn(
          { ...fields, reason },
          `${entry.count} record(s) sent to the dead-letter topic${since}, reason ${reason} ` +
            '(`tributary dlq <appId>` lists them; tributary_dead_letters_total)',
        );
      }
      entry.count = 0;
      entry.exampleOffset = undefined;
      entry.lastLineAt = now;
    }
  }
}

function snapshotOf(metrics: TaskMetrics): TaskMetrics {
  return { ...metrics, deadLetters: { ...metrics.deadLetters } };
}
