// The sinks panel, from the instance's Prometheus text (/metrics): rows and writes per sink, failed
// attempts, whether it is failing now (readiness), and the end-to-end latency of window rows (the
// time a row is written minus its window's end + grace) as quantiles read off the histogram buckets.

import { el, formatNumber } from './dom.js';

const SERIES = /^([a-zA-Z_:][\w:]*)\{([^}]*)\}\s+(\S+)$/;
const LABEL = /(\w+)="((?:[^"\\]|\\.)*)"/g;

/** The samples of the metrics named in `names`: `{ name, labels, value }`. */
export function parseSamples(text, names) {
  const samples = [];
  for (const line of text.split('\n')) {
    const match = SERIES.exec(line);
    if (!match || !names.has(match[1])) continue;
    const labels = Object.fromEntries([...match[2].matchAll(LABEL)].map(([, key, value]) => [key, value]));
    samples.push({ name: match[1], labels, value: Number(match[3]) });
  }
  return samples;
}

/** The upper bound of the bucket holding quantile q, from cumulative `[le, count]` pairs. */
export function bucketQuantile(buckets, q) {
  const sorted = [...buckets].sort((a, b) => a[0] - b[0]);
  const total = sorted[sorted.length - 1]?.[1] ?? 0;
  if (total === 0) return undefined;
  return sorted.find(([, count]) => count >= q * total)?.[0];
}

const NAMES = new Set([
  'tributary_sink_rows_total',
  'tributary_sink_writes_total',
  'tributary_sink_failures_total',
  'tributary_window_delivery_latency_seconds_bucket',
  'tributary_window_delivery_latency_seconds_count',
]);

function formatLatency(seconds) {
  if (seconds === undefined) return '—';
  return seconds === Infinity ? '> 15 min' : `≤ ${formatNumber(seconds)} s`;
}

/** `sinkNames`: the topology's sinks, shown before they write anything. */
export function renderSinks(tbody, empty, { metricsText, failingSinks, sinkNames }) {
  const bySink = new Map();
  const sinkOf = (name) => {
    if (!bySink.has(name))
      bySink.set(name, { rows: 0, writes: 0, failures: 0, latencyCount: 0, buckets: [] });
    return bySink.get(name);
  };
  for (const name of sinkNames ?? []) sinkOf(name);
  for (const { name, labels, value } of parseSamples(metricsText, NAMES)) {
    if (labels.sink === undefined) continue;
    const sink = sinkOf(labels.sink);
    if (name === 'tributary_sink_rows_total') sink.rows = value;
    else if (name === 'tributary_sink_writes_total') sink.writes = value;
    else if (name === 'tributary_sink_failures_total') sink.failures = value;
    else if (name === 'tributary_window_delivery_latency_seconds_count') sink.latencyCount = value;
    else sink.buckets.push([labels.le === '+Inf' ? Infinity : Number(labels.le), value]);
  }
  const failing = new Map((failingSinks ?? []).map(({ sink, error }) => [sink, error]));
  for (const name of failing.keys()) sinkOf(name);
  tbody.replaceChildren(
    ...[...bySink].map(([name, sink]) =>
      el(
        'tr',
        { 'data-sink': name, class: failing.has(name) ? 'failing' : undefined },
        el('td', {}, name),
        el('td', { 'data-field': 'rows' }, formatNumber(sink.rows)),
        el('td', { 'data-field': 'writes' }, formatNumber(sink.writes)),
        el('td', { 'data-field': 'failures' }, formatNumber(sink.failures)),
        el(
          'td',
          { 'data-field': 'state', class: 'message' },
          failing.has(name) ? `failing: ${failing.get(name)}` : 'ok',
        ),
        el('td', { 'data-field': 'latency-count' }, formatNumber(sink.latencyCount)),
        el('td', { 'data-field': 'latency-p50' }, formatLatency(bucketQuantile(sink.buckets, 0.5))),
        el('td', { 'data-field': 'latency-p99' }, formatLatency(bucketQuantile(sink.buckets, 0.99))),
      ),
    ),
  );
  empty.hidden = bySink.size > 0;
}
