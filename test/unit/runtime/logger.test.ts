import assert from 'node:assert/strict';
import { test } from 'node:test';
import { resolveLogFormat } from '../../../src/runtime/logger.js';
import { RuntimeMetrics } from '../../../src/runtime/metrics.js';

test('auto logs pretty on a terminal and JSON elsewhere; json and pretty are taken as set', () => {
  assert.equal(resolveLogFormat('auto', true), 'pretty');
  assert.equal(resolveLogFormat('auto', false), 'json');
  assert.equal(resolveLogFormat('json', true), 'json');
  assert.equal(resolveLogFormat('pretty', false), 'pretty');
});

test('Node process metrics keep their standard names, with app and instance labels', async () => {
  const text = await new RuntimeMetrics('host-1', 'billing').registry.metrics();
  assert.match(text, /^process_cpu_user_seconds_total\{instance="host-1",app="billing"\} /m);
  assert.match(text, /^nodejs_heap_size_total_bytes\{instance="host-1",app="billing"\} /m);
  assert.doesNotMatch(text, /tributary_process_/);
});
