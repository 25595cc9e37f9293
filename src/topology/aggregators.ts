/**
 * Aggregators for windowed aggregation. An aggregator folds the values of one (window, key) into an
 * accumulator and turns it into a result; it also says how to persist the accumulator (JSON by default)
 * and which ClickHouse columns its result becomes, so a sink's ResultSchema follows from the spec.
 */
import { DDSketch } from '@datadog/sketches-js';
import type { Column, ColumnType, TotalsMerge } from '../core/sink.js';

export interface Aggregator<T, A, R> {
  /** Short name for describe(), e.g. `sum`. */
  readonly kind: string;
  init(): A;
  add(accumulator: A, value: T): A;
  /** Combines two partial accumulators (for merging windows or partitions). */
  merge(left: A, right: A): A;
  result(accumulator: A): R;
  /** Accumulator to JSON-compatible data for the state store; identity when absent. */
  toState?(accumulator: A): unknown;
  fromState?(state: unknown): A;
  /** Columns of the result under output name `name`. */
  columns(name: string): Column[];
}

/** Any aggregator over T. Method parameters are bivariant, so concrete aggregators are assignable. */
export type AnyAggregator<T> = Aggregator<T, unknown, unknown>;
export type AggregateSpec<T> = Record<string, AnyAggregator<T>>;

/** The value of a window result: one field per spec entry, typed by its aggregator's result. */
export type AggregateResult<S> = {
  [Name in keyof S]: S[Name] extends Aggregator<never, infer _A, infer R> ? R : never;
};

const column = (name: string, type: ColumnType, merge?: TotalsMerge): Column[] => [
  merge === undefined ? { name, type } : { name, type, merge },
];

/**
 * A fixed-width numeric form of an aggregator: its accumulator lives in `width` float64 slots of a
 * Float64Array (from `at`), starting as zeros. The window operator uses it when every aggregator of a
 * spec has one: no accumulator object or boxed number per update, and window state persists as raw
 * float64s instead of JSON. Built-in numeric aggregators register one; custom aggregators never do.
 * Kept beside the public Aggregator interface (a WeakMap, not a field) so that interface is unchanged.
 */
export interface NumericKernel {
  readonly width: number;
  add(slots: Float64Array, at: number, value: unknown): void;
  result(slots: Float64Array, at: number): number;
}

const numericKernels = new WeakMap<object, NumericKernel>();

/** The numeric form of `aggregator`, when it is a built-in that has one. */
export function numericKernelOf(aggregator: object): NumericKernel | undefined {
  return numericKernels.get(aggregator);
}

function withKernel<A extends object>(aggregator: A, kernel: NumericKernel): A {
  numericKernels.set(aggregator, kernel);
  return aggregator;
}

export function count(): Aggregator<unknown, number, number> {
  const aggregator: Aggregator<unknown, number, number> = {
    kind: 'count',
    init: () => 0,
    add: (n) => n + 1,
    merge: (a, b) => a + b,
    result: (n) => n,
    columns: (name) => column(name, 'UInt64', 'sum'),
  };
  return withKernel(aggregator, {
    width: 1,
    add: (slots, at) => {
      slots[at] = (slots[at] as number) + 1;
    },
    result: (slots, at) => slots[at] as number,
  });
}

export function sum<T>(valueOf: (value: T) => number): Aggregator<T, number, number> {
  const aggregator: Aggregator<T, number, number> = {
    kind: 'sum',
    init: () => 0,
    add: (total, value) => total + valueOf(value),
    merge: (a, b) => a + b,
    result: (total) => total,
    columns: (name) => column(name, 'Float64', 'sum'),
  };
  return withKernel(aggregator, {
    width: 1,
    add: (slots, at, value) => {
      slots[at] = (slots[at] as number) + valueOf(value as T);
    },
    result: (slots, at) => slots[at] as number,
  });
}

/** Null until the first value: JSON has no Infinity to start from. */
function extreme<T>(
  kind: 'min' | 'max',
  valueOf: (value: T) => number,
): Aggregator<T, number | null, number> {
  const pick = kind === 'min' ? Math.min : Math.max;
  const aggregator: Aggregator<T, number | null, number> = {
    kind,
    init: () => null,
    add: (current, value) => (current === null ? valueOf(value) : pick(current, valueOf(value))),
    merge: (a, b) => (a === null ? b : b === null ? a : pick(a, b)),
    // A window result exists only for a key with at least one value, so null cannot reach a result.
    result: (current) => current ?? NaN,
    columns: (name) => column(name, 'Float64', kind),
  };
  // Slots: [has a value (0/1), extreme]; a flag rather than a NaN sentinel, so NaN inputs behave as above.
  return withKernel(aggregator, {
    width: 2,
    add: (slots, at, value) => {
      const next = valueOf(value as T);
      if (slots[at] === 0) {
        slots[at] = 1;
        slots[at + 1] = next;
      } else slots[at + 1] = pick(slots[at + 1] as number, next);
    },
    result: (slots, at) => (slots[at] === 0 ? NaN : (slots[at + 1] as number)),
  });
}

export const min = <T>(valueOf: (value: T) => number): Aggregator<T, number | null, number> =>
  extreme('min', valueOf);
export const max = <T>(valueOf: (value: T) => number): Aggregator<T, number | null, number> =>
  extreme('max', valueOf);

export function avg<T>(valueOf: (value: T) => number): Aggregator<T, { sum: number; count: number }, number> {
  const aggregator: Aggregator<T, { sum: number; count: number }, number> = {
    kind: 'avg',
    init: () => ({ sum: 0, count: 0 }),
    add: (acc, value) => {
      acc.sum += valueOf(value);
      acc.count++;
      return acc;
    },
    merge: (a, b) => ({ sum: a.sum + b.sum, count: a.count + b.count }),
    result: (acc) => (acc.count === 0 ? NaN : acc.sum / acc.count),
    columns: (name) => column(name, 'Float64', 'avg'),
  };
  // Slots: [sum, count].
  return withKernel(aggregator, {
    width: 2,
    add: (slots, at, value) => {
      slots[at] = (slots[at] as number) + valueOf(value as T);
      slots[at + 1] = (slots[at + 1] as number) + 1;
    },
    result: (slots, at) => (slots[at + 1] === 0 ? NaN : (slots[at] as number) / (slots[at + 1] as number)),
  });
}

export interface Quantiles {
  p50: number;
  p90: number;
  p99: number;
}

interface SketchState {
  /** Relative accuracy the sketch was built with. */
  accuracy: number;
  zeros: number;
  count: number;
  sum: number;
  min: number;
  max: number;
  /** Non-empty bins as [index, count, index, count, ...]. */
  positive: number[];
  negative: number[];
}

function storeBins(store: DDSketch['store']): number[] {
  const bins: number[] = [];
  for (let i = 0; i < store.bins.length; i++) {
    const binCount = store.bins[i] as number;
    if (binCount > 0) bins.push(i + store.offset, binCount);
  }
  return bins;
}

/**
 * Approximate p50/p90/p99 with DDSketch (relative-error guarantee, mergeable). The sketch is persisted
 * as its non-empty bins plus summary statistics, which round-trips exactly (its protobuf form would
 * lose min and max and need an extra dependency).
 */
export function quantiles<T>(
  valueOf: (value: T) => number,
  options: { relativeAccuracy?: number } = {},
): Aggregator<T, DDSketch, Quantiles> {
  const relativeAccuracy = options.relativeAccuracy ?? 0.01;
  return {
    kind: 'quantiles',
    init: () => new DDSketch({ relativeAccuracy }),
    add: (sketch, value) => {
      sketch.accept(valueOf(value));
      return sketch;
    },
    merge: (a, b) => {
      const merged = new DDSketch({ relativeAccuracy });
      merged.merge(a);
      merged.merge(b);
      return merged;
    },
    result: (sketch) => ({
      p50: sketch.getValueAtQuantile(0.5),
      p90: sketch.getValueAtQuantile(0.9),
      p99: sketch.getValueAtQuantile(0.99),
    }),
    toState: (sketch): SketchState => ({
      accuracy: relativeAccuracy,
      zeros: sketch.zeroCount,
      count: sketch.count,
      sum: sketch.sum,
      min: sketch.min,
      max: sketch.max,
      positive: storeBins(sketch.store),
      negative: storeBins(sketch.negativeStore),
    }),
    fromState: (raw) => {
      const state = raw as SketchState;
      const sketch = new DDSketch({ relativeAccuracy: state.accuracy });
      for (let i = 0; i < state.positive.length; i += 2)
        sketch.store.add(state.positive[i] as number, state.positive[i + 1]);
      for (let i = 0; i < state.negative.length; i += 2)
        sketch.negativeStore.add(state.negative[i] as number, state.negative[i + 1]);
      sketch.zeroCount = state.zeros;
      sketch.count = state.count;
      sketch.sum = state.sum;
      sketch.min = state.min;
      sketch.max = state.max;
      return sketch;
    },
    columns: (name) => [
      // Quantiles of different partitions cannot be merged exactly; the totals weight them by count.
      { name: `${name}_p50`, type: 'Float64', merge: 'avg' },
      { name: `${name}_p90`, type: 'Float64', merge: 'avg' },
      { name: `${name}_p99`, type: 'Float64', merge: 'avg' },
    ],
  };
}

/** An aggregator's functions, without the name and columns that custom() supplies. */
export interface CustomAggregatorDefinition<T, A, R> extends Omit<Aggregator<T, A, R>, 'kind' | 'columns'> {
  /** ClickHouse type of the result (a single column); default String (the sink writes JSON text). */
  columnType?: ColumnType;
}

/** A user-defined aggregator. The accumulator must be JSON-serializable unless toState/fromState are given. */
export function custom<T, A, R>(definition: CustomAggregatorDefinition<T, A, R>): Aggregator<T, A, R> {
  const { columnType = 'String', ...rest } = definition;
  return { kind: 'custom', ...rest, columns: (name) => column(name, columnType) };
}
