/** describe() as a user reads it: each node once, the group key, where dead letters go, and dead ends. */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import {
  TopologyBuilder,
  count,
  memorySink,
  minutes,
  renderTopologyGraph,
  tumbling,
  tributary,
} from '../../../src/index.js';
import { jsonSerde } from './helpers.js';
import type { UsageEvent } from './helpers.js';

test('describe() names a branch once, shows the group key and the DLQ topic', () => {
  const builder = new TopologyBuilder();
  const [big, small] = builder.stream('usage', jsonSerde<UsageEvent>()).branch(
    (e) => e.value > 10,
    () => true,
  );
  big!
    .groupBy((e) => e.subject)
    .window(tumbling(minutes(1)), { name: 'per-minute' })
    .aggregate({ count: count() })
    .to(memorySink('big'));
  small!.to(memorySink('small'));
  const text = builder.build().describeText({ dlqTopic: 'metering.dlq' });

  assert.match(text, /Processor: branch-1 \(branch 1 of 2\)/);
  assert.match(text, /Processor: branch-2 \(branch 2 of 2\)/);
  assert.doesNotMatch(text, /branch branch/);
  assert.match(text, /Processor: per-minute \(window-aggregate .*group by \(?e\)? ?=> ?e\.subject/);
  assert.match(text, /^Dead letters: topic metering\.dlq /m);
  assert.doesNotMatch(text, /Warning/, 'every stream ends in a sink');
  assert.deepEqual(builder.build().describe().warnings, []);
});

test('describe() warns about every stream that reaches no sink, with its path', () => {
  const builder = new TopologyBuilder();
  const events = builder.stream('usage', jsonSerde<UsageEvent>());
  events.to(memorySink('archive'));
  events.filter((e) => e.value > 0).map((e) => e.subject); // forgot .to()
  builder.stream('other', jsonSerde<UsageEvent>()); // a source nobody reads
  const topology = builder.build();

  assert.deepEqual(topology.describe().warnings, [
    'map-3 (map) reaches no sink: the values of source-0 (topic usage) -> filter-2 -> map-3 are dropped; ' +
      'end that stream with .to(sink)',
    'source-4 (source) reaches no sink: the values of source-4 (topic other) are dropped; ' +
      'end that stream with .to(sink)',
  ]);
  const text = topology.describeText();
  assert.match(
    text,
    /^Warning: map-3 \(map\) reaches no sink: .*source-0 \(topic usage\) -> filter-2 -> map-3/m,
  );
  assert.match(text, /^Warning: source-4 \(source\) reaches no sink/m);
});

test('App.describe() shows the configured DLQ topic, and <appId>.dlq by default', () => {
  const withDefault = tributary({ appId: 'describe-me', handleSignals: false });
  withDefault.stream('usage', jsonSerde<UsageEvent>()).to(memorySink('out'));
  assert.match(withDefault.describe(), /^Dead letters: topic describe-me\.dlq /m);

  const configured = tributary({ appId: 'describe-me', dlq: { topic: 'bad-usage' }, handleSignals: false });
  configured.stream('usage', jsonSerde<UsageEvent>()).to(memorySink('out'));
  assert.match(configured.describe(), /^Dead letters: topic bad-usage /m);
});

test('describe() says that a dedupe and an aggregate see only their input partition, and what key to produce with', () => {
  const builder = new TopologyBuilder();
  builder
    .stream('clicks', jsonSerde<UsageEvent>())
    .dedupe((e) => e.id, { horizon: minutes(10), name: 'click-ids' })
    .groupBy((e) => e.subject)
    .window(tumbling(minutes(1)), { name: 'per-minute' })
    .aggregate({ count: count() })
    .to(memorySink('out'));
  const topology = builder.build();
  const text = topology.describeText();

  assert.match(text, /Processor: click-ids \(dedupe horizon 600000 ms; per input partition\)/);
  assert.match(text, /Processor: per-minute \(window-aggregate .*; per input partition\)/);
  const [note, ...others] = text.split('\n').filter((line) => line.startsWith('Partitions: '));
  assert.equal(others.length, 0, text);
  assert.match(note ?? '', /only that partition's records/);
  assert.match(note ?? '', /click-ids \(dedupe\): the same id arriving on two partitions .* counted twice/);
  assert.match(note ?? '', /per-minute \(aggregate\): .*one result per partition/);
  assert.match(note ?? '', /Produce with a Kafka key that decides the partition: the dedupe id/);
  assert.match(
    renderTopologyGraph(topology.describe(), 'mermaid'),
    /click-ids<br\/>dedupe horizon 600000 ms<br\/>per input partition/,
  );

  const stateless = new TopologyBuilder();
  stateless.stream('clicks', jsonSerde<UsageEvent>()).to(memorySink('out'));
  assert.doesNotMatch(stateless.build().describeText(), /Partitions:/, 'no note where no state is kept');
});
