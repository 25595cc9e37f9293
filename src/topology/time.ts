/** Durations are plain milliseconds; these helpers make topologies read like the design card. */
export const seconds = (n: number): number => n * 1000;
export const minutes = (n: number): number => n * 60_000;
export const hours = (n: number): number => n * 3_600_000;
export const days = (n: number): number => n * 86_400_000;

/**
 * Tumbling windows as the user declares them (`tumbling(size)`); `window()` turns them, with its grace,
 * into the strategy the operator runs (windows.ts).
 */
export interface TumblingWindows {
  readonly kind: 'tumbling';
  /** Window length in ms; windows are [k * size, (k + 1) * size) in epoch time. */
  readonly size: number;
}

/** `size` if it is a valid window length (a positive integer of ms); throws otherwise. */
export function checkedWindowSize(size: number): number {
  if (!Number.isInteger(size) || size <= 0)
    throw new Error(`tumbling window size must be a positive integer of ms, got ${size}`);
  return size;
}

/** Fixed-size, non-overlapping windows aligned to the epoch (a 1-minute window starts at :00). */
export function tumbling(size: number = minutes(1)): TumblingWindows {
  return { kind: 'tumbling', size: checkedWindowSize(size) };
}

/** Start of the tumbling window that contains `time`. */
export function windowStartOf(time: number, size: number): number {
  return time - (((time % size) + size) % size);
}

/** A duration in its largest whole unit, as derived store names show it: 60000 -> `1m`, 1500 -> `1500ms`. */
export function durationText(ms: number): string {
  for (const [unit, size] of [
    ['d', 86_400_000],
    ['h', 3_600_000],
    ['m', 60_000],
    ['s', 1000],
  ] as const) {
    if (ms % size === 0) return `${ms / size}${unit}`;
  }
  return `${ms}ms`;
}
