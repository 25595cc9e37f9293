/**
 * The quantile scenario of issue 13, shared by the 18.16 and current-engine tests: per (window, key), raw
 * values from a heavy-tailed distribution spread over 8 source partitions; each partition folds its
 * share into the real `quantiles()` aggregator, and its window result is what the sink writes. Checking
 * `<table>_totals` against the exact quantiles of the raw values proves the merge, not an average.
 */
import assert from 'node:assert/strict';
import type { WindowResult } from '../../src/core/records.js';
import type { Column, ResultSchema } from '../../src/core/sink.js';
import { count, quantileName, quantiles, type QuantileValues } from '../../src/topology/aggregators.js';
import { seededRandom } from './random.js';

export const SCENARIO_QUANTILES = [0.5, 0.9, 0.95, 0.99, 0.999] as const;
export const SCENARIO_ACCURACY = 0.01;
export const SCENARIO_PARTITIONS = 8;
const WINDOW_MS = 60_000;
const FIRST_WINDOW = Date.UTC(2024, 4, 1, 12, 0, 0);

export interface ScenarioKey {
  subject: string;
}
export interface ScenarioValue {
  count: number;
  latency: QuantileValues;
}
export type ScenarioRow = WindowResult<ScenarioKey, ScenarioValue>;

export interface QuantileScenario {
  /** Window results as the 8 partitions emit them (only partitions that saw values of a window and key). */
  rows: ScenarioRow[];
  /** Raw values per `<window start seconds>/<subject>`, sorted. */
  raw: Map<string, number[]>;
  keyColumns: Column[];
  schema: ResultSchema;
}

/** 36 keys over 2 windows, 3 to 400 values each: a latency-like log-normal around 50 ms with a long tail. */
export function quantileScenario(seed = 13): QuantileScenario {
  const next = seededRandom(seed);
  const counter = count();
  const sketcher = quantiles((value: number) => value, {
    quantiles: [...SCENARIO_QUANTILES],
    relativeAccuracy: SCENARIO_ACCURACY,
  });
  const rows: ScenarioRow[] = [];
  const raw = new Map<string, number[]>();
  for (let window = 0; window < 2; window++) {
    const windowStart = FIRST_WINDOW + window * WINDOW_MS;
    for (let k = 0; k < 36; k++) {
      const subject = `tenant-${String(k).padStart(2, '0')}`;
      const size = k % 6 === 0 ? 3 + (k % 5) : 20 + Math.floor(next() * 380);
      const counts = new Array<number>(SCENARIO_PARTITIONS).fill(0);
      const sketches = Array.from({ length: SCENARIO_PARTITIONS }, () => sketcher.init());
      const values: number[] = [];
      for (let i = 0; i < size; i++) {
        // Box-Muller normal -> log-normal; every 25th value a slow outlier.
        const normal = Math.sqrt(-2 * Math.log(1 - next())) * Math.cos(2 * Math.PI * next());
        const value = Math.exp(Math.log(50) + 0.6 * normal) * (next() < 0.04 ? 20 : 1);
        values.push(value);
        const partition = Math.floor(next() * SCENARIO_PARTITIONS);
        counts[partition] = (counts[partition] as number) + 1;
        sketches[partition] = sketcher.add(sketches[partition] as ReturnType<typeof sketcher.init>, value);
      }
      raw.set(
        `${windowStart / 1000}/${subject}`,
        values.sort((a, b) => a - b),
      );
      sketches.forEach((sketch, partition) => {
        const n = counts[partition] as number;
        if (n === 0) return;
        rows.push({
          windowStart,
          windowEnd: windowStart + WINDOW_MS,
          key: { subject },
          value: { count: n, latency: sketcher.result(sketch) },
          partition,
          version: 1,
        });
      });
    }
  }
  return {
    rows,
    raw,
    keyColumns: [{ name: 'subject', type: 'String' }],
    schema: { valueColumns: [...counter.columns('count'), ...sketcher.columns('latency')] },
  };
}

/** The SELECT that reads the scenario's totals back (quantile columns and the merged count). */
export function scenarioTotalsQuery(database: string, table: string): string {
  const columns = SCENARIO_QUANTILES.map((q) => `latency_${quantileName(q)}`).join(', ');
  return (
    `SELECT toUnixTimestamp(window_start) AS ws, subject, toString(count) AS n, ${columns} ` +
    `FROM ${database}.${table}_totals ORDER BY ws, subject`
  );
}

/**
 * Every quantile of every (window, key) in the totals is within the sketch's relative accuracy of the
 * exact quantile of the raw values (DDSketch's rank: the value at floor(q * (n - 1)) of the sorted values).
 */
export function assertTotalsWithinAccuracy(
  scenario: QuantileScenario,
  totals: ReadonlyArray<Record<string, unknown>>,
): void {
  assert.equal(totals.length, scenario.raw.size, 'one totals row per (window, key)');
  let checked = 0;
  for (const row of totals) {
    const values = scenario.raw.get(`${String(row['ws'])}/${String(row['subject'])}`);
    assert.ok(values !== undefined, `unexpected totals row ${JSON.stringify(row)}`);
    assert.equal(Number(row['n']), values.length, `count of ${String(row['subject'])}`);
    for (const quantile of SCENARIO_QUANTILES) {
      const exact = values[Math.floor(quantile * (values.length - 1))] as number;
      const column = `latency_${quantileName(quantile)}`;
      const actual = Number(row[column]);
      assert.ok(
        Math.abs(actual - exact) <= SCENARIO_ACCURACY * exact * (1 + 1e-9),
        `${column} of ${String(row['subject'])} at ${String(row['ws'])}: ${actual}, exact ${exact} ` +
          `(${values.length} values), beyond ${SCENARIO_ACCURACY * 100}%`,
      );
      checked++;
    }
  }
  assert.equal(checked, scenario.raw.size * SCENARIO_QUANTILES.length);
}
