/**
 * The state of one (window, key) of the window operator, shared by the operator (which updates it per
 * record), its codecs (which write and read it) and its store spec.
 */
import type { WindowEntry } from '../state/window-store.js';
import { numericKernelOf } from './aggregators.js';
import type { AnyAggregator, NumericKernel } from './aggregators.js';
import type { GroupKeyText } from './group-key.js';

/**
 * State of one (window, key). With a numeric spec (every aggregator has a NumericKernel) the
 * accumulators are `width` float64s of `slots` from index `at`, and `accumulators` is empty;
 * otherwise the reverse. One shape for both keeps the hot path monomorphic. `slots` is a chunk
 * shared by many entries rather than a Float64Array per entry: at 100k new entries per window, a
 * typed array each was a large share of the objects the garbage collector had to promote.
 */
export interface WindowState {
  key: unknown;
  accumulators: unknown[];
  slots: Float64Array;
  at: number;
  /** Emissions so far; 0 while the window is open. */
  version: number;
}

export const NO_ACCUMULATORS: unknown[] = [];
/**
 * `key` of a numeric state whose key is its compact key text (GroupKeyText.exact): the key object
 * (and its strings) need not stay in memory for the window's life, the text holds the same data.
 */
export const KEY_IN_TEXT = Object.freeze({});
export const NO_SLOTS = new Float64Array(0);

/** The key of an entry (rebuilt from its text when the state does not keep it). */
export function keyOfEntry(entry: WindowEntry<WindowState>, keys: GroupKeyText): unknown {
  return entry.state.key === KEY_IN_TEXT ? keys.keyOf(entry.keyText) : entry.state.key;
}

/** Where each aggregator's float64s sit in a numeric state, and how many there are in all. */
export interface NumericLayout {
  kernels: NumericKernel[];
  /** First slot of each kernel. */
  offsets: number[];
  width: number;
}

/** The kernels of a spec when every aggregator has one, with each one's first slot. */
export function numericLayout(spec: Record<string, AnyAggregator<unknown>>): NumericLayout | undefined {
  const kernels: NumericKernel[] = [];
  const offsets: number[] = [];
  let width = 0;
  for (const aggregator of Object.values(spec)) {
    const kernel = numericKernelOf(aggregator);
    if (kernel === undefined) return undefined;
    kernels.push(kernel);
    offsets.push(width);
    width += kernel.width;
  }
  return { kernels, offsets, width };
}
