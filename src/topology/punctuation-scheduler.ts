/**
 * The punctuation schedules of a partition task, like Kafka Streams' PunctuationQueue. Event-time
 * schedules fire when stream time reaches the next multiple of their interval (checked after each
 * record); wall-time schedules fire from tick() once their interval of wall time has passed.
 *
 * Restore rule: schedules are not checkpointed. An event-time schedule registered on a reopened task
 * starts at the next multiple of its interval after the restored stream time, so a restarted task fires
 * at exactly the stream times an uninterrupted one would. A wall-time schedule starts one interval
 * after it is registered.
 *
 * A callback may be asynchronous (e.g. to list a key-value store larger than memory): the task waits for
 * its promise before it goes on, so it still runs between two records as a synchronous one does.
 */
import type { Cancellable, PunctuationCallback, PunctuationType } from './graph.js';

export interface Punctuation {
  readonly interval: number;
  readonly type: PunctuationType;
  readonly callback: PunctuationCallback;
  /** Time of the next firing; -Infinity for an event-time schedule made before the first record. */
  next: number;
  cancelled: boolean;
}

/** Runs a punctuation callback at a time, outside any input record; returns the callback's promise, if any. */
export type PunctuationRunner = (time: number, fire: () => void | Promise<void>) => void | Promise<void>;

/** The first multiple of `interval` after `streamTime`; -Infinity while stream time is unknown. */
export function nextMultiple(streamTime: number, interval: number): number {
  return Number.isFinite(streamTime) ? Math.floor(streamTime / interval) * interval + interval : -Infinity;
}

export class PunctuationScheduler {
  private readonly punctuations: Punctuation[] = [];

  constructor(
    /** Wall clock. */
    private readonly now: () => number,
    private readonly run: PunctuationRunner,
  ) {}

  schedule(
    intervalMs: number,
    type: PunctuationType,
    callback: PunctuationCallback,
    streamTime: number,
  ): Cancellable {
    if (!(intervalMs > 0)) throw new Error('punctuation interval must be positive');
    const punctuation: Punctuation = {
      interval: intervalMs,
      type,
      callback,
      next: type === 'event-time' ? nextMultiple(streamTime, intervalMs) : this.now() + intervalMs,
      cancelled: false,
    };
    this.punctuations.push(punctuation);
    return {
      cancel: () => {
        punctuation.cancelled = true;
      },
    };
  }

  /** The live event-time schedules, taken once per batch: the engine checks each after every record. */
  eventTimeSchedules(): Punctuation[] {
    return this.punctuations.filter((p) => p.type === 'event-time' && !p.cancelled);
  }

  /**
   * After a record: fires an event-time schedule whose next multiple stream time has reached; returns
   * the callback's promise when it is asynchronous (await it before the next record).
   */
  afterRecord(punctuation: Punctuation, streamTime: number): void | Promise<void> {
    if (punctuation.cancelled || !Number.isFinite(streamTime)) return;
    if (punctuation.next === -Infinity) {
      // Scheduled before the first record: start at the first multiple after it, without firing.
      punctuation.next = nextMultiple(streamTime, punctuation.interval);
      return;
    }
    if (streamTime < punctuation.next) return;
    punctuation.next = nextMultiple(streamTime, punctuation.interval);
    return this.run(streamTime, () => punctuation.callback(streamTime));
  }

  /**
   * From tick(): fires every wall-time schedule that is due, at the task's stream time, one after the
   * other (a promise when a callback is asynchronous).
   */
  tick(nowMs: number, streamTime: number): void | Promise<void> {
    return this.tickFrom(0, nowMs, streamTime);
  }

  /** Fires the due wall-time schedules from index `first` on; after an asynchronous one, the rest when it settles. */
  private tickFrom(first: number, nowMs: number, streamTime: number): void | Promise<void> {
    for (let i = first; i < this.punctuations.length; i++) {
      const punctuation = this.punctuations[i] as Punctuation;
      if (punctuation.cancelled || punctuation.type !== 'wall-time' || nowMs < punctuation.next) continue;
      punctuation.next = nowMs + punctuation.interval;
      const pending = this.run(streamTime, () => punctuation.callback(nowMs));
      if (pending !== undefined) return pending.then(() => this.tickFrom(i + 1, nowMs, streamTime));
    }
  }
}
