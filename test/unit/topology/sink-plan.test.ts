import assert from 'node:assert/strict';
import { test } from 'node:test';
import { TopologyBuilder, count, memorySink, minutes, sum, tumbling } from '../../../src/index.js';
import type { WindowResult } from '../../../src/index.js';
import { windowResultCodec } from '../../../src/topology/result-codec.js';
import { jsonSerde } from './helpers.js';
import type { UsageEvent } from './helpers.js';

test('each sink is planned once at build: window-result outboxes only for sinks fed only by window aggregates', () => {
  const builder = new TopologyBuilder();
  const events = builder.stream('usage', jsonSerde<UsageEvent>());
  const perMinute = events
    .groupBy((e) => e.subject)
    .window(tumbling(minutes(1)))
    .aggregate({ n: count(), total: sum((e) => e.value) });
  perMinute.to(memorySink('totals'));
  // Fed by a window aggregate through a map: the values are not WindowResults any more.
  perMinute.map((row) => ({ ...row, note: 'mapped' })).to(memorySink('mapped'));
  // Fed by a window aggregate and by a plain stream.
  const mixed = memorySink<unknown>('mixed');
  perMinute.to(mixed);
  events.to(mixed);
  events.to(memorySink<UsageEvent>('raw'));
  const plan = new Map(builder.build().sinks.map((sink) => [sink.spec.name, sink]));

  assert.deepEqual([...plan.keys()], ['totals', 'mapped', 'mixed', 'raw']);
  assert.equal(plan.get('totals')?.outboxCodec, windowResultCodec);
  assert.deepEqual(
    plan.get('totals')?.schema?.valueColumns.map((column) => column.name),
    ['n', 'total'],
  );
  for (const name of ['mapped', 'mixed', 'raw']) {
    assert.equal(plan.get(name)?.outboxCodec, undefined, `${name}: JSON segments`);
    assert.equal(plan.get(name)?.schema, undefined, `${name}: no row schema`);
  }
});

test('two different sinks with one name are refused at build', () => {
  const builder = new TopologyBuilder();
  const events = builder.stream('usage', jsonSerde<UsageEvent>());
  events.to(memorySink<UsageEvent>('out'));
  events
    .groupBy((e) => e.subject)
    .window(tumbling(minutes(1)))
    .aggregate({ n: count() })
    .to(memorySink<WindowResult<string, { n: number }>>('out'));
  assert.throws(() => builder.build(), /two different sinks are named "out"/);
});

test("a sink fed only by window aggregates of one grace is planned with that grace (for the runtime's latency metric)", () => {
  const builder = new TopologyBuilder();
  const events = builder.stream('usage', jsonSerde<UsageEvent>());
  const window = (grace: number) =>
    events
      .groupBy((e) => e.subject)
      .window(tumbling(minutes(1)), { grace, name: `grace-${grace}` })
      .aggregate({ n: count() });
  const fiveSeconds = window(5_000);
  fiveSeconds.to(memorySink('five'));
  const mixedGraces = memorySink<unknown>('mixed-graces');
  fiveSeconds.to(mixedGraces);
  window(0).to(mixedGraces);
  fiveSeconds.map((row) => row.value).to(memorySink('mapped'));
  const plan = new Map(builder.build().sinks.map((sink) => [sink.spec.name, sink]));

  assert.equal(plan.get('five')?.windowGraceMs, 5_000);
  assert.equal(
    plan.get('mixed-graces')?.windowGraceMs,
    undefined,
    'two graces: no single one to measure from',
  );
  assert.equal(plan.get('mapped')?.windowGraceMs, undefined, 'not window results');
});
