import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
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

/** What the default logger writes on stderr (here a pipe, not a TTY) in `format`. */
function stderrOf(format: string): string {
  const script =
    "import { createDefaultLogger } from './src/runtime/logger.ts';" +
    `createDefaultLogger({ level: 'info', base: { app: 'demo' } }, '${format}').warn({ partition: 3 }, 'hello there');`;
  const result = spawnSync(process.execPath, ['--import', 'tsx', '--input-type=module', '-e', script], {
    encoding: 'utf8',
  });
  assert.equal(result.status, 0, result.stderr);
  return result.stderr;
}

test('the default logger writes JSON to a pipe and readable lines when asked for pretty', () => {
  const json = JSON.parse(stderrOf('auto').trim()) as Record<string, unknown>;
  assert.equal(json['msg'], 'hello there');
  assert.equal(json['level'], 40);
  assert.equal(json['app'], 'demo');

  const pretty = stderrOf('pretty');
  assert.throws(() => JSON.parse(pretty.trim()), 'not JSON');
  assert.match(pretty, /^\[\d\d:\d\d:\d\d\.\d{3}\] WARN: hello there .*"partition":3/);
  assert.equal(pretty.trim().split('\n').length, 1, 'one line per entry');
});
