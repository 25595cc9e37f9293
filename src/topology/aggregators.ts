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

/**
 * A quantile sketch as buckets: the representative value of every non-empty bucket, ascending, and how
 * many values fell in it. The same value lands in the same bucket in every partition, so adding the
 * counts of equal values merges sketches exactly; ClickHouse does that with `sumMap` (clickhouse-sql.ts).
 */
export interface SketchBuckets {
  values: number[];
  counts: number[];
}

/** Quantiles named `p<percent>` (0.95 -> p95, 0.999 -> p99_9; see quantileName), plus the sketch's buckets. */
export type QuantileValues = { [name: `p${string}`]: number } & { sketch: SketchBuckets };

/** The result of `quantiles()` with the default quantile list. */
export interface Quantiles {
  p50: number;
  p90: number;
  p99: number;
  sketch: SketchBuckets;
}

export interface QuantilesOptions {
  /**
   * DDSketch's relative accuracy: every quantile is within this fraction of the value of that rank in
   * the data (0.01: a true p99 of 200 ms reads between 198 and 202 ms), whatever the distribution.
   * @default 0.01
   */
  relativeAccuracy?: number;
}

export const DEFAULT_QUANTILES: readonly number[] = [0.5, 0.9, 0.99];

/**
 * The field (and column suffix) of a quantile: `p` and its percentage, with `_` for the decimal point:
 * 0.5 -> p50, 0.95 -> p95, 0.999 -> p99_9, 0.05 -> p5, 1 -> p100.
 */
export function quantileName(quantile: number): string {
  if (!Number.isFinite(quantile) || quantile < 0 || quantile > 1) {
    throw new Error(`quantiles: ${quantile} is not a quantile (a number from 0 to 1)`);
  }
  // Rounded to 10 significant digits: 0.999 * 100 is 99.89999999999999 in binary floating point.
  const percent = Number((quantile * 100).toPrecision(10));
  return `p${String(percent).replace('.', '_')}`;
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
 * The sketch's buckets in ascending value order: negative bins (largest magnitude first), the zero
 * bucket, positive bins. Reading "the first bucket whose running count exceeds q * (count - 1)" from
 * them gives exactly what `DDSketch.getValueAtQuantile(q)` gives, which is how the totals view computes
 * quantiles of merged buckets.
 */
export function sketchBuckets(sketch: DDSketch): SketchBuckets {
  const values: number[] = [];
  const counts: number[] = [];
  const negative = sketch.negativeStore;
  for (let i = negative.bins.length - 1; i >= 0; i--) {
    const binCount = negative.bins[i] as number;
    if (binCount > 0) {
      values.push(-sketch.mapping.value(i + negative.offset));
      counts.push(binCount);
    }
  }
  if (sketch.zeroCount > 0) {
    values.push(0);
    counts.push(sketch.zeroCount);
  }
  const positive = sketch.store;
  for (let i = 0; i < positive.bins.length; i++) {
    const binCount = positive.bins[i] as number;
    if (binCount > 0) {
      values.push(sketch.mapping.value(i + positive.offset));
      counts.push(binCount);
    }
  }
  return { values, counts };
}

/**
 * Adds `from` into `into`. sketches-js 2.1.1's merge() drops the negative store when both sketches
 * hold values (it merges the positive store, zeros and statistics only), so negative values would be
 * lost; this merges that store too.
 */
function mergeSketch(into: DDSketch, from: DDSketch): void {
  if (from.count === 0) return;
  const intoHadValues = into.count > 0;
  into.merge(from);
  if (intoHadValues) into.negativeStore.merge(from.negativeStore);
}

/**
 * Quantiles with DDSketch (relative-error guarantee, mergeable). The result holds the chosen quantiles
 * and the sketch's buckets, so a sink can merge partitions exactly: the ClickHouse table stores the
 * buckets and `<table>_totals` reads each quantile from the buckets of all partitions added up.
 *
 *   quantiles((e) => e.latencyMs)                                  // p50, p90, p99
 *   quantiles((e) => e.latencyMs, { quantiles: [0.95, 0.999] })    // p95, p99_9
 *
 * The sketch is persisted as its non-empty bins plus summary statistics, which round-trips exactly (its
 * protobuf form would lose min and max and need an extra dependency).
 */
export function quantiles<T>(
  valueOf: (value: T) => number,
  options?: QuantilesOptions & { quantiles?: undefined },
): Aggregator<T, DDSketch, Quantiles>;
export function quantiles<T>(
  valueOf: (value: T) => number,
  options: QuantilesOptions & { quantiles: readonly number[] },
): Aggregator<T, DDSketch, QuantileValues>;
export function quantiles<T>(
  valueOf: (value: T) => number,
  options: QuantilesOptions & { quantiles?: readonly number[] | undefined } = {},
): Aggregator<T, DDSketch, Quantiles> | Aggregator<T, DDSketch, QuantileValues> {
  const relativeAccuracy = options.relativeAccuracy ?? 0.01;
  const chosen = options.quantiles ?? DEFAULT_QUANTILES;
  if (chosen.length === 0) throw new Error('quantiles: the quantile list is empty');
  const named = chosen.map((quantile) => ({ quantile, name: quantileName(quantile) }));
  const names = new Set(named.map((entry) => entry.name));
  if (names.size !== named.length) {
    throw new Error(`quantiles: the list ${JSON.stringify(chosen)} names a quantile twice`);
  }
  const aggregator: Aggregator<T, DDSketch, QuantileValues> = {
    kind: 'quantiles',
    init: () => new DDSketch({ relativeAccuracy }),
    add: (sketch, value) => {
      sketch.accept(valueOf(value));
      return sketch;
    },
    merge: (a, b) => {
      const merged = new DDSketch({ relativeAccuracy });
      mergeSketch(merged, a);
      mergeSketch(merged, b);
      return merged;
    },
    // Once per emitted window, not per record.
    result: (sketch) => {
      const result: Record<string, number> = {};
      for (const { quantile, name } of named) result[name] = sketch.getValueAtQuantile(quantile);
      return { ...result, sketch: sketchBuckets(sketch) } as QuantileValues;
    },
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
    columns: (name) => {
      const sketch = { values: `${name}_sketch_values`, counts: `${name}_sketch_counts` };
      return [
        // Each partition's row holds its own quantiles; the totals read them from the merged buckets.
        ...named.map(({ quantile, name: field }): Column => ({
          name: `${name}_${field}`,
          type: 'Float64',
          merge: 'quantile',
          sketch,
          quantile,
        })),
        { name: sketch.values, type: 'Array(Float64)', merge: 'buckets', sketch },
        { name: sketch.counts, type: 'Array(UInt64)', merge: 'buckets', sketch },
      ];
    },
  };
  return aggregator;
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
