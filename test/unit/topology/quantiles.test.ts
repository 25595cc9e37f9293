import assert from 'node:assert/strict';
import { test } from 'node:test';
import { quantileName, quantiles, type SketchBuckets } from '../../../src/topology/aggregators.js';
import { seededRandom } from '../../helpers/random.js';

/** What the totals view does in SQL: add counts per value, then DDSketch's rank rule on the merged buckets. */
function quantileOfMergedBuckets(parts: readonly SketchBuckets[], quantile: number): number {
  const merged = new Map<number, number>();
  for (const part of parts) {
    part.values.forEach((value, i) =>
      merged.set(value, (merged.get(value) ?? 0) + (part.counts[i] as number)),
    );
  }
  const buckets = [...merged].sort(([a], [b]) => a - b);
  const total = buckets.reduce((sum, [, count]) => sum + count, 0);
  const rank = quantile * (total - 1);
  let running = 0;
  for (const [value, count] of buckets) {
    running += count;
    if (running > rank) return value;
  }
  return NaN;
}

test('quantiles are named p<percent>, with _ for the decimal point', () => {
  assert.deepEqual([0.5, 0.9, 0.95, 0.99, 0.999, 0.9999, 0.05, 0.001, 0, 1].map(quantileName), [
    'p50',
    'p90',
    'p95',
    'p99',
    'p99_9',
    'p99_99',
    'p5',
    'p0_1',
    'p0',
    'p100',
  ]);
  assert.throws(() => quantileName(1.5), /not a quantile/);
  assert.throws(() => quantiles((n: number) => n, { quantiles: [] }), /empty/);
  assert.throws(() => quantiles((n: number) => n, { quantiles: [0.5, 0.5] }), /twice/);
});

test('the quantile list is the caller’s choice; the default stays p50, p90, p99', () => {
  const chosen = quantiles((n: number) => n, { quantiles: [0.95, 0.999] });
  const defaults = quantiles((n: number) => n);
  let a = chosen.init();
  let b = defaults.init();
  for (let i = 1; i <= 1000; i++) {
    a = chosen.add(a, i);
    b = defaults.add(b, i);
  }
  const custom = chosen.result(a);
  const standard = defaults.result(b);
  assert.deepEqual(Object.keys(custom), ['p95', 'p99_9', 'sketch']);
  assert.deepEqual(Object.keys(standard), ['p50', 'p90', 'p99', 'sketch']);
  // Ranks 949 and 998 (0-based) of 1..1000, within 1% relative accuracy.
  assert.ok(Math.abs((custom['p95'] as number) - 950) <= 0.01 * 950, `p95 ${custom['p95']}`);
  assert.ok(Math.abs((custom['p99_9'] as number) - 999) <= 0.01 * 999, `p99.9 ${custom['p99_9']}`);
  assert.deepEqual(
    chosen.columns('latency').map((column) => `${column.name} ${column.type} ${column.merge}`),
    [
      'latency_p95 Float64 quantile',
      'latency_p99_9 Float64 quantile',
      'latency_sketch_values Array(Float64) buckets',
      'latency_sketch_counts Array(UInt64) buckets',
    ],
  );
});

test('buckets of partitions added up give the merged sketch’s quantiles, within the stated accuracy of the exact ones', () => {
  const next = seededRandom(13);
  const list = [0.01, 0.25, 0.5, 0.9, 0.95, 0.99, 0.999];
  const aggregator = quantiles((n: number) => n, { quantiles: list, relativeAccuracy: 0.02 });
  for (let round = 0; round < 20; round++) {
    const partitions = Array.from({ length: 8 }, () => aggregator.init());
    const raw: number[] = [];
    const size = 1 + Math.floor(next() * 300);
    for (let i = 0; i < size; i++) {
      // Heavy-tailed and mixed-sign, with exact zeros: every store of the sketch is used.
      const pick = next();
      const value = pick < 0.05 ? 0 : (pick < 0.2 ? -1 : 1) * Math.exp(next() * 8 - 2);
      raw.push(value);
      const p = Math.floor(next() * 8);
      partitions[p] = aggregator.add(partitions[p] as ReturnType<typeof aggregator.init>, value);
    }
    const parts = partitions.map((sketch) => aggregator.result(sketch).sketch);
    const merged = partitions.reduce((a, b) => aggregator.merge(a, b));
    const mergedResult = aggregator.result(merged);
    const sorted = [...raw].sort((a, b) => a - b);
    for (const quantile of list) {
      const fromBuckets = quantileOfMergedBuckets(parts, quantile);
      assert.equal(fromBuckets, mergedResult[quantileName(quantile) as `p${string}`], `q ${quantile}`);
      const exact = sorted[Math.floor(quantile * (sorted.length - 1))] as number;
      assert.ok(
        Math.abs(fromBuckets - exact) <= 0.02 * Math.abs(exact) + 1e-12,
        `q ${quantile}: ${fromBuckets} vs exact ${exact}`,
      );
    }
  }
});

test('a sketch survives its state round trip with its buckets', () => {
  const aggregator = quantiles((n: number) => n, { quantiles: [0.5, 0.99] });
  let sketch = aggregator.init();
  for (const value of [-3, 0, 0, 1.5, 2, 250, 1e6]) sketch = aggregator.add(sketch, value);
  const state = JSON.parse(JSON.stringify(aggregator.toState?.(sketch))) as unknown;
  const restored = aggregator.fromState?.(state);
  assert.ok(restored !== undefined);
  assert.deepEqual(aggregator.result(restored), aggregator.result(sketch));
});
