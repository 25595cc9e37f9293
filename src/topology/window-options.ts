/**
 * The options of `groupBy().window()`: what a user may pass, and the resolved form the window
 * operator runs with. The builder validates and defaults them once, when the topology is declared,
 * so a mistake fails at `window()` with the option's name rather than as windows that never close.
 */
import { checkedWindowSize } from './time.js';
import type { TumblingWindows } from './time.js';
import { windowsOf } from './windows.js';
import type { Windows } from './windows.js';

/**
 * What happens to an event whose window was already emitted:
 * - `drop`: counted in metrics (lateEvents) and dropped;
 * - `dlq`: counted and sent to the DLQ outbox with reason `late-event`;
 * - `side-output`: counted and forwarded to the stream returned by `lateEvents()`;
 * - `re-emit`: counted, added to the window, and the window's updated result is emitted again with
 *   version + 1; the window is kept for `allowedLateness` after closing, later events are dropped.
 */
export type LatePolicy = 'drop' | 'dlq' | 'side-output' | 're-emit';

const LATE_POLICIES: readonly LatePolicy[] = ['drop', 'dlq', 'side-output', 're-emit'];

export interface WindowOptions {
  /** Extra time after the window end (in watermark time) before the window closes. Default 0. */
  grace?: number;
  /** How far behind the max event time the watermark trails. Default 0. */
  outOfOrderness?: number;
  late?: LatePolicy;
  /** With `re-emit`: how long after closing a window still accepts late events. Default 10 windows. */
  allowedLateness?: number;
  /** After this much wall time without records, the watermark advances with wall time. Default: never. */
  idleness?: number;
  /** Name of the node and its window store. */
  name?: string;
}

/** Window options with their defaults applied: every duration is a finite number of ms >= 0. */
export interface ResolvedWindowOptions {
  /** The declared windows as the strategy the operator runs, with the `grace` option as its grace. */
  readonly windows: Windows;
  readonly outOfOrderness: number;
  readonly late: LatePolicy;
  /** Used by `re-emit` only. */
  readonly allowedLateness: number;
  /** Undefined: the watermark never follows the wall clock. */
  readonly idleness: number | undefined;
  /** Undefined: the builder names the node when aggregate() adds it. */
  readonly name: string | undefined;
}

/** Shows a rejected value as the user wrote it (NaN and Infinity as such, a string in quotes). */
function shown(value: unknown): string {
  return typeof value === 'number' ? String(value) : (JSON.stringify(value) ?? String(value));
}

/** A duration option: `fallback` when absent, else a finite number of ms >= 0. */
function duration<Fallback extends number | undefined>(
  option: keyof WindowOptions,
  value: unknown,
  fallback: Fallback,
  hint = '',
): number | Fallback {
  if (value === undefined) return fallback;
  if (typeof value !== 'number' || !Number.isFinite(value) || value < 0)
    throw new Error(`window option ${option} must be a finite number of ms >= 0${hint}, got ${shown(value)}`);
  return value;
}

/** Validates the options of `window()` and applies their defaults; throws naming the first bad option. */
export function resolveWindowOptions(
  windows: TumblingWindows,
  options: WindowOptions,
): ResolvedWindowOptions {
  const size = checkedWindowSize(windows.size);
  const late = options.late ?? 'drop';
  if (!LATE_POLICIES.includes(late))
    throw new Error(`window option late must be one of ${LATE_POLICIES.join(', ')}, got ${shown(late)}`);
  return {
    windows: windowsOf(windows, duration('grace', options.grace, 0)),
    outOfOrderness: duration('outOfOrderness', options.outOfOrderness, 0),
    late,
    allowedLateness: duration('allowedLateness', options.allowedLateness, 10 * size),
    idleness: duration('idleness', options.idleness, undefined, ' (leave it out for never)'),
    name: options.name,
  };
}
