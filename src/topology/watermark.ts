/**
 * The watermark of one window operator: the event time up to which it takes its input as complete.
 * It trails the task's stream time (max event time) by `outOfOrderness`; once the task has had no
 * records for `idleness` of wall time, it follows the wall clock beyond that, so the windows of an idle
 * partition still close. It never goes back, and its value is what the operator checkpoints and is
 * given back on reopen.
 */
export class Watermark {
  private current: number;

  /** `restored`: the checkpointed value, or undefined on a fresh task (the watermark starts at -Infinity). */
  constructor(
    private readonly outOfOrderness: number,
    /** Undefined: never follow the wall clock. */
    private readonly idleness: number | undefined,
    restored: number | undefined,
  ) {
    this.current = restored ?? -Infinity;
  }

  /** The watermark now; also its checkpointed value. */
  get value(): number {
    return this.current;
  }

  /** Catches up with the task's stream time, once per record (kept tiny: it runs on the hot path). */
  follow(streamTime: number): number {
    const candidate = streamTime - this.outOfOrderness;
    if (candidate > this.current) this.current = candidate;
    return this.current;
  }

  /**
   * After `idleFor` ms of wall time without records: once that reaches the idleness, the watermark
   * follows the wall clock beyond it. Returns whether the task counts as idle.
   */
  idle(streamTime: number, idleFor: number): boolean {
    if (this.idleness === undefined || idleFor < this.idleness) return false;
    const candidate = streamTime - this.outOfOrderness + (idleFor - this.idleness);
    if (candidate > this.current) this.current = candidate;
    return true;
  }
}
