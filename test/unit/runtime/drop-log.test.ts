import assert from 'node:assert/strict';
import { test } from 'node:test';
import { pino } from 'pino';
import type { TaskMetrics } from '../../../src/core/index.js';
import { DropLog } from '../../../src/runtime/drop-log.js';

function capturingLogger() {
  const lines: Array<Record<string, unknown>> = [];
  const logger = pino(
    { level: 'info' },
    { write: (line: string) => lines.push(JSON.parse(line) as Record<string, unknown>) },
  );
  return { logger, lines };
}

function metricsOf(lateEvents: number, deadLetters: Record<string, number> = {}): TaskMetrics {
  return {
    recordsProcessed: 0,
    lateEvents,
    duplicatesDropped: 0,
    windowsEmitted: 0,
    deadLetters,
    watermark: 0,
  };
}

function fixture() {
  const { logger, lines } = capturingLogger();
  let now = 1_000_000;
  const drops = new DropLog(logger, 30_000, () => now);
  return { drops, lines, advance: (ms: number) => (now += ms) };
}

test('counts restored from a checkpoint are history: no line for them', () => {
  const { drops, lines } = fixture();
  drops.baseline(3, metricsOf(500, { 'decode-failed': 7 }));
  drops.observe(3, metricsOf(500, { 'decode-failed': 7 }));
  assert.deepEqual(lines, []);
});

test('the first late events get a line at once, with the count and an example offset', () => {
  const { drops, lines } = fixture();
  drops.baseline(2, metricsOf(0));
  drops.observe(2, metricsOf(4), { lateEvent: 1234n, deadLetters: {} });
  assert.equal(lines.length, 1);
  assert.equal(lines[0]?.['level'], 30);
  assert.equal(lines[0]?.['partition'], 2);
  assert.equal(lines[0]?.['count'], 4);
  assert.equal(lines[0]?.['reason'], 'late');
  assert.equal(lines[0]?.['exampleOffset'], '1234');
  assert.match(String(lines[0]?.['msg']), /4 late event/);
});

test('then at most one line per interval, with the count since the last line', () => {
  const { drops, lines, advance } = fixture();
  drops.baseline(0, metricsOf(0));
  drops.observe(0, metricsOf(1), { lateEvent: 10n, deadLetters: {} });
  advance(1000);
  drops.observe(0, metricsOf(3), { lateEvent: 12n, deadLetters: {} });
  advance(10_000);
  drops.observe(0, metricsOf(6), { lateEvent: 20n, deadLetters: {} });
  assert.equal(lines.length, 1, 'within 30 s of the first line: counted, not logged');
  advance(19_000);
  drops.observe(0, metricsOf(7), { lateEvent: 25n, deadLetters: {} });
  assert.equal(lines.length, 2);
  assert.equal(lines[1]?.['count'], 6, 'everything since the first line');
  assert.equal(lines[1]?.['exampleOffset'], '25');
  assert.match(String(lines[1]?.['msg']), /in the last 30 s/);
  advance(60_000);
  drops.observe(0, metricsOf(7), { lateEvent: 25n, deadLetters: {} });
  assert.equal(lines.length, 2, 'nothing new, no line');
});

test('dead letters get a warning per reason and per partition', () => {
  const { drops, lines } = fixture();
  drops.baseline(0, metricsOf(0));
  drops.baseline(1, metricsOf(0, { 'decode-failed': 2 }));
  drops.observe(0, metricsOf(0, { 'decode-failed': 1, 'validation-failed': 2 }), {
    deadLetters: { 'decode-failed': 5n, 'validation-failed': 9n },
  });
  drops.observe(1, metricsOf(0, { 'decode-failed': 5 }), { deadLetters: { 'decode-failed': 40n } });
  const summary = lines.map((l) => [l['level'], l['partition'], l['reason'], l['count'], l['exampleOffset']]);
  assert.deepEqual(summary, [
    [40, 0, 'decode-failed', 1, '5'],
    [40, 0, 'validation-failed', 2, '9'],
    [40, 1, 'decode-failed', 3, '40'],
  ]);
});

test('a partition that leaves gets its pending count logged at once', () => {
  const { drops, lines, advance } = fixture();
  drops.baseline(0, metricsOf(0));
  drops.observe(0, metricsOf(1));
  advance(1000);
  drops.observe(0, metricsOf(5));
  assert.equal(lines.length, 1);
  drops.forget(0);
  assert.equal(lines.length, 2);
  assert.equal(lines[1]?.['count'], 4);
});
