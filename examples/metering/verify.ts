/** Compares the ClickHouse rollup with the generator's ground truth, window by window and key by key. */
import { setTimeout as sleep } from 'node:timers/promises';
import { createClient } from '@clickhouse/client';
import { totalsViewName } from '../../src/index.js';
import type { GroundTruth, WindowTotals } from './generator.js';
import { truthKey } from './generator.js';

export interface RollupRow extends WindowTotals {
  windowStart: number;
  subject: string;
  meter: string;
}

export interface Comparison {
  matches: boolean;
  expectedKeys: number;
  actualKeys: number;
  missing: string[];
  unexpected: string[];
  different: Array<{ key: string; expected: WindowTotals; actual: WindowTotals }>;
  rows: RollupRow[];
}

/** Final totals per (window, subject, meter) across partitions and versions, from the sink's totals view. */
export async function readRollup(url: string, database: string, table: string): Promise<RollupRow[]> {
  const client = createClient({ url, request_timeout: 30_000 });
  try {
    const result = await client.query({
      query: `SELECT toUInt64(window_start) AS window_start, subject, meter, count, total, max
              FROM ${database}.${totalsViewName(table)} ORDER BY window_start, subject, meter`,
      format: 'JSONEachRow',
    });
    const rows = await result.json<Record<string, string | number>>();
    return rows.map((r) => ({
      windowStart: Number(r.window_start) * 1000,
      subject: String(r.subject),
      meter: String(r.meter),
      count: Number(r.count),
      total: Number(r.total),
      max: Number(r.max),
    }));
  } finally {
    await client.close();
  }
}

export function compare(truth: GroundTruth, rows: RollupRow[]): Comparison {
  const actual = new Map(rows.map((r) => [truthKey(r.windowStart, r.subject, r.meter), r]));
  const missing: string[] = [];
  const different: Comparison['different'] = [];
  for (const [key, expected] of truth.windows) {
    const row = actual.get(key);
    if (!row) missing.push(key);
    else if (row.count !== expected.count || row.total !== expected.total || row.max !== expected.max) {
      different.push({ key, expected, actual: { count: row.count, total: row.total, max: row.max } });
    }
  }
  const unexpected = [...actual.keys()].filter((key) => !truth.windows.has(key));
  return {
    matches: missing.length === 0 && unexpected.length === 0 && different.length === 0,
    expectedKeys: truth.windows.size,
    actualKeys: actual.size,
    missing,
    unexpected,
    different,
    rows,
  };
}

export function describeMismatch(c: Comparison): string {
  const parts = [`${c.actualKeys} of ${c.expectedKeys} (window, key) rows`];
  if (c.missing.length) parts.push(`${c.missing.length} missing, e.g. ${c.missing.slice(0, 3).join(', ')}`);
  if (c.unexpected.length)
    parts.push(`${c.unexpected.length} unexpected, e.g. ${c.unexpected.slice(0, 3).join(', ')}`);
  if (c.different.length) {
    const d = c.different[0]!;
    parts.push(
      `${c.different.length} differ, e.g. ${d.key}: expected ${JSON.stringify(d.expected)}, got ${JSON.stringify(d.actual)}`,
    );
  }
  return parts.join('; ');
}

/** Polls until the rollup equals the truth or the deadline passes; returns the last comparison. */
export async function waitForMatch(
  truth: GroundTruth,
  read: () => Promise<RollupRow[]>,
  timeoutMs: number,
  onPoll?: (c: Comparison) => void,
): Promise<Comparison> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    let comparison: Comparison;
    try {
      comparison = compare(truth, await read());
    } catch (error) {
      // The table appears with the first delivered window.
      if (Date.now() >= deadline) throw error;
      await sleep(1000);
      continue;
    }
    onPoll?.(comparison);
    if (comparison.matches || Date.now() >= deadline) return comparison;
    await sleep(1000);
  }
}
