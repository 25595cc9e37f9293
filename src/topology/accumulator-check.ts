/**
 * Whether the accumulators of a window aggregate survive their own serialization. Window state is
 * written as JSON (through the aggregators' toState/fromState, when given); an accumulator that does
 * not come back as it was (a `Set` in `custom()` comes back as `{}`) would give other results after a
 * restart, long after the topology was deployed. So the check runs early: when the topology is built,
 * on each aggregator's init() accumulator, and once more on the first record an aggregate node
 * processes (operators/window-aggregate.ts), on a real accumulator; never again after that.
 *
 * "Survives" means what the output needs: the result of the accumulator read back equals the result
 * of the original. Numeric specs (built-in kernels only, state as raw float64s) need no check.
 */
import { inspect, isDeepStrictEqual } from 'node:util';
import type { AnyAggregator } from './aggregators.js';
import { GroupKeyText } from './group-key.js';
import { jsonWindowStateCodec } from './window-state-codec.js';
import { NO_SLOTS, numericLayout } from './window-state.js';
import type { WindowState } from './window-state.js';

/**
 * An aggregate whose state would not survive a restart. Not a problem of one record: the engine lets
 * it stop the task instead of dead-lettering the record (the topology must be fixed).
 */
export class StateRoundTripError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'StateRoundTripError';
  }
}

const FIX =
  'Window state is written as JSON: keep the accumulator to arrays, plain objects, strings, numbers, ' +
  'booleans and null (not a Set, Map, Date, bigint or class instance), or give custom() toState/fromState ' +
  'that convert it (e.g. toState: (s) => [...s], fromState: (a) => new Set(a)).';

/** Whether a spec's window state goes through JSON (and so needs the check). */
export function needsRoundTripCheck(spec: Record<string, AnyAggregator<unknown>>): boolean {
  return numericLayout(spec) === undefined;
}

function shown(value: unknown): string {
  return inspect(value, { depth: 3, breakLength: Infinity, maxArrayLength: 5, maxStringLength: 80 });
}

function messageOf(error: unknown): string {
  return error instanceof Error ? error.message : String(error);
}

/**
 * Equal results, as a sink would see them: deeply equal, or -0 and 0 (JSON writes -0 as 0), or two
 * objects with the same JSON text (a property set to undefined and a missing one).
 */
function sameResult(before: unknown, after: unknown): boolean {
  if (isDeepStrictEqual(before, after)) return true;
  if (typeof before === 'number') return before === after;
  if (typeof before !== 'object' || before === null || typeof after !== 'object' || after === null)
    return false;
  try {
    return JSON.stringify(before) === JSON.stringify(after);
  } catch {
    return false;
  }
}

/**
 * Writes `accumulators` (one per field of `spec`, in order) with the store's own JSON codec, reads them
 * back and compares each field's result; throws a StateRoundTripError naming the aggregate, the field
 * and the fix. `results` are the results of the original accumulators, computed by the caller.
 */
function compareRoundTrip(
  aggregate: string,
  spec: Record<string, AnyAggregator<unknown>>,
  key: unknown,
  accumulators: readonly unknown[],
  results: readonly unknown[],
): void {
  const fields = Object.keys(spec);
  const aggregators = Object.values(spec);
  const keys = new GroupKeyText();
  const codec = jsonWindowStateCodec(aggregators, keys);
  const state: WindowState = { key, accumulators: [...accumulators], slots: NO_SLOTS, at: 0, version: 0 };
  let readBack: unknown[];
  try {
    const entry = { start: 0, keyText: keys.of(key), state, dirty: false, removed: false };
    readBack = (codec.decodeBlob(codec.encodeBlob([entry]))[0] as [string, WindowState])[1].accumulators;
  } catch (error) {
    throw new StateRoundTripError(
      `aggregate "${aggregate}": its window state cannot be written and read back (${messageOf(error)}). ${FIX}`,
    );
  }
  for (let i = 0; i < aggregators.length; i++) {
    const aggregator = aggregators[i] as AnyAggregator<unknown>;
    const field = `field "${fields[i]}" (${aggregator.kind})`;
    let after: unknown;
    try {
      after = aggregator.result(readBack[i]);
    } catch (error) {
      throw new StateRoundTripError(
        `aggregate "${aggregate}": ${field} does not survive its own serialization: its result throws ` +
          `after a restart (${messageOf(error)}); the accumulator ${shown(accumulators[i])} is read back as ` +
          `${shown(readBack[i])}. ${FIX}`,
      );
    }
    if (!sameResult(results[i], after))
      throw new StateRoundTripError(
        `aggregate "${aggregate}": ${field} does not survive its own serialization: its result is ` +
          `${shown(results[i])} before a restart and ${shown(after)} after (the accumulator ` +
          `${shown(accumulators[i])} is read back as ${shown(readBack[i])}). ${FIX}`,
      );
  }
}

/**
 * At build time: each aggregator's init() accumulator must survive. Skipped when an aggregator's
 * init() or result() throws on the empty accumulator (some are only meaningful after a value); the
 * first record's check covers those.
 */
export function checkAccumulatorsAtBuild(
  aggregate: string,
  spec: Record<string, AnyAggregator<unknown>>,
): void {
  if (!needsRoundTripCheck(spec)) return;
  let accumulators: unknown[];
  let results: unknown[];
  try {
    accumulators = Object.values(spec).map((aggregator) => aggregator.init());
    results = Object.values(spec).map((aggregator, i) => aggregator.result(accumulators[i]));
  } catch {
    return;
  }
  compareRoundTrip(aggregate, spec, 'build-time check', accumulators, results);
}

/** On the first record of an aggregate node: that record's (window, key) state must survive. */
export function checkStateAfterFirstRecord(
  aggregate: string,
  spec: Record<string, AnyAggregator<unknown>>,
  state: WindowState,
): void {
  const aggregators = Object.values(spec);
  let results: unknown[];
  try {
    results = state.accumulators.map((accumulator, i) =>
      (aggregators[i] as AnyAggregator<unknown>).result(accumulator),
    );
  } catch {
    return; // a result() that throws on live state is the user's function failing, not serialization
  }
  compareRoundTrip(aggregate, spec, state.key, state.accumulators, results);
}
