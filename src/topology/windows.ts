/**
 * Windows as a strategy, as Kafka Streams' `Windows.windowsFor` and Quix's `get_window_ranges`: which
 * windows an event time falls in, how long each lasts, and how long after its end it still takes
 * records. The window aggregate, the window store's pre-pass read and its format go through it, so a
 * hopping window is one more implementation, not a change to the operator.
 *
 * The windows containing a time `t` are those starting at `latestStartFor(t)` and every `advanceMs`
 * before it while the window still contains `t` (start > t - sizeMs; the latest always does): a loop over numbers, no array
 * per record. Tumbling windows advance by their size, so that loop runs once: one window per record.
 */
import { checkedWindowSize, windowStartOf } from './time.js';
import type { TumblingWindows } from './time.js';

export interface Windows {
  /** `tumbling` only, for now; another kind (hopping) joins this union. */
  readonly kind: 'tumbling';
  /** Length of each window, ms: the window starting at `s` is `[s, s + sizeMs)`. */
  readonly sizeMs: number;
  /** Distance between the starts of consecutive windows, ms (`sizeMs` for tumbling windows). */
  readonly advanceMs: number;
  /** How long after its end (in watermark time) a window still takes records before it closes, ms. */
  readonly graceMs: number;
  /** Start of the latest window containing `timestamp` (epoch-aligned multiples of `advanceMs`). */
  latestStartFor(timestamp: number): number;
}

/** Fixed-size, non-overlapping windows aligned to the epoch: each time is in exactly one window. */
export class TumblingWindowStrategy implements Windows {
  readonly kind = 'tumbling';
  readonly advanceMs: number;

  constructor(
    readonly sizeMs: number,
    readonly graceMs: number,
  ) {
    this.advanceMs = checkedWindowSize(sizeMs);
  }

  latestStartFor(timestamp: number): number {
    return windowStartOf(timestamp, this.sizeMs);
  }
}

/** The strategy of the windows a user declared (`tumbling(size)`) with the grace of `window()`'s options. */
export function windowsOf(declared: TumblingWindows, graceMs: number): Windows {
  return new TumblingWindowStrategy(declared.size, graceMs);
}

/**
 * The starts of the windows containing `timestamp`, earliest first: the loop the window aggregate runs
 * inline, as an array for the callers that are not on the hot path (tests, describe).
 */
export function windowStartsFor(windows: Windows, timestamp: number): number[] {
  const starts: number[] = [];
  let start = windows.latestStartFor(timestamp);
  do {
    starts.unshift(start);
    start -= windows.advanceMs;
  } while (start > timestamp - windows.sizeMs);
  return starts;
}
