/**
 * How bench/restore.ts talks to its instances (bench/restore/runner.ts): one JSON object per line on
 * the child's stdout, as in the e2e benchmark (bench/e2e/protocol.ts starts the children).
 */
import { z } from 'zod';

export const runnerMessage = z.discriminatedUnion('type', [
  /** About to call `app.start()`. */
  z.object({ type: z.literal('starting'), at: z.number() }),
  z.object({ type: z.literal('started'), at: z.number() }),
  /** The partitions this instance keeps a standby copy of changed (after a rebalance). */
  z.object({ type: z.literal('standbys'), at: z.number(), partitions: z.array(z.number()) }),
  /** A task began restoring from its changelog (the runtime's log line): `records` offsets to replay. */
  z.object({ type: z.literal('restoring'), at: z.number(), partition: z.number(), records: z.number() }),
  /** A restore finished (the runtime's log line, with its own measure of the time it took). */
  z.object({
    type: z.literal('restored'),
    at: z.number(),
    partition: z.number(),
    records: z.number(),
    seconds: z.number(),
  }),
  /** A task is open (restored, if it had to): its stores' sizes. */
  z.object({
    type: z.literal('opened'),
    at: z.number(),
    partition: z.number(),
    ids: z.number(),
    keys: z.number(),
    /** The input offset the task resumes from (0 for a task that starts over). */
    position: z.number(),
  }),
  /**
   * Input records through the topology (live counters of the open tasks, restored with their state)
   * and ids held by the dedupe stores, on every change.
   */
  z.object({ type: z.literal('processed'), at: z.number(), records: z.number(), ids: z.number() }),
  z.object({ type: z.literal('stopped'), at: z.number(), maxRssBytes: z.number() }),
  /** A commit's changelog transaction failed (the runtime's warning; the task reopens from its changelog). */
  z.object({ type: z.literal('commitFailed'), at: z.number(), error: z.string() }),
]);
export type RunnerMessage = z.infer<typeof runnerMessage>;

/**
 * One input record: `count` events with ids `from` .. `from + count - 1`, all at event time `time`
 * (so in one window); the i-th has the key `keyBase + (keyOffset + i) % keys`.
 */
export interface IdRange {
  from: number;
  count: number;
  time: number;
  keyBase: number;
  keyOffset: number;
  keys: number;
}

/** The event the topology sees (one per id). */
export interface RestoreEvent {
  id: string;
  key: number;
}

/** The group key of the i-th id of a range. */
export function keyOf(i: number, range: IdRange): number {
  return range.keyBase + ((range.keyOffset + i) % range.keys);
}
