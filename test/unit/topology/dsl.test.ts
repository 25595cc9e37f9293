import assert from 'node:assert/strict';
import { test } from 'node:test';
import { DeserializationError, RetriableError } from '../../../src/serde/types.js';
import type { Serde } from '../../../src/serde/types.js';
import {
  TestDriver,
  TopologyBuilder,
  avg,
  count,
  custom,
  max,
  memorySink,
  min,
  minutes,
  quantiles,
  sum,
  tumbling,
} from '../../../src/index.js';
import type { WindowResult } from '../../../src/index.js';
import { T0, jsonSerde } from './helpers.js';
import type { UsageEvent } from './helpers.js';

const event = (id: string, subject: string, value: number, time = T0): UsageEvent => ({
  id,
  subject,
  value,
  time,
});

test('the aggregate result type is inferred from the spec, and topology mistakes do not compile', () => {
  const builder = new TopologyBuilder();
  const results = builder
    .stream('usage', jsonSerde<UsageEvent>())
    .groupBy((e) => ({ subject: e.subject }))
    .window(tumbling(minutes(1)))
    .aggregate({ n: count(), total: sum((e) => e.value), p: quantiles((e) => e.value) });
  results.map((row) => {
    const n: number = row.value.n;
    const p99: number = row.value.p.p99;
    const subject: string = row.key.subject;
    // @ts-expect-error: no such aggregate in the spec
    void row.value.missing;
    return [n, p99, subject];
  });
  // @ts-expect-error: a sink of plain events cannot take window results
  results.to(memorySink<UsageEvent>('wrong'));
  const windowed = builder
    .stream('other', jsonSerde<UsageEvent>())
    .groupBy((e) => e.subject)
    .window(tumbling());
  // @ts-expect-error: the aggregator reads a field the event does not have
  windowed.aggregate({ s: sum((e) => e.nope) });
});

test('fan-out: one stream feeds two sinks and a branch; filter, map, flatMap, merge and peek compose as a DAG', async () => {
  const builder = new TopologyBuilder();
  const events = builder.stream('usage', jsonSerde<UsageEvent>());
  const seen: string[] = [];
  events.peek((e) => seen.push(e.id)).to(memorySink<UsageEvent>('raw'));
  const [small, large] = events.branch(
    (e) => e.value < 10,
    (e) => e.value < 100,
  );
  small
    .map((e) => `small:${e.id}`)
    .merge(large.flatMap((e) => [`large:${e.id}`, `large-again:${e.id}`]))
    .to(memorySink<string>('labels'));
  events
    .filter((e) => e.subject === 'b')
    .map((e) => e.value * 2)
    .to(memorySink<number>('doubled-b'));

  const driver = new TestDriver(builder.build());
  try {
    await driver.pipe('usage', event('1', 'a', 5));
    await driver.pipe('usage', event('2', 'b', 50));
    await driver.pipe('usage', event('3', 'b', 500));
    assert.deepEqual(
      (await driver.output<UsageEvent>('raw')).map((e) => e.id),
      ['1', '2', '3'],
    );
    assert.deepEqual(await driver.output('labels'), ['small:1', 'large:2', 'large-again:2']);
    assert.deepEqual(await driver.output('doubled-b'), [100, 1000]);
    assert.deepEqual(seen, ['1', '2', '3']);
  } finally {
    await driver.close();
  }
});

test('describe() lists sources, processors, stores, sinks and edges, and renders them as text', () => {
  const builder = new TopologyBuilder();
  const events = builder.stream('usage', jsonSerde<UsageEvent>());
  const deduped = events.dedupe((e) => e.id, { horizon: minutes(10), name: 'ids' });
  deduped
    .groupBy((e) => e.subject)
    .window(tumbling(minutes(1)), { name: 'per-minute' })
    .aggregate({ count: count() })
    .to(memorySink('clickhouse:usage_1m'));
  deduped.to(memorySink('archive'));
  const topology = builder.build();
  const description = topology.describe();
  assert.deepEqual(description.sources, [{ name: 'source-0', topic: 'usage' }]);
  assert.deepEqual(
    description.stores.map((store) => [store.name, store.kind]),
    [
      ['ids', 'dedupe'],
      ['per-minute', 'window'],
    ],
  );
  assert.deepEqual(
    description.sinks.map((sink) => sink.sink),
    ['clickhouse:usage_1m', 'archive'],
  );
  const targetsOfDedupe = description.edges.filter((edge) => edge.from === 'ids').map((edge) => edge.to);
  assert.equal(targetsOfDedupe.length, 2, 'the dedupe node fans out to the aggregate and the archive sink');
  const text = topology.describeText();
  assert.match(text, /Source: source-0 \(topic usage/);
  assert.match(text, /Processor: per-minute \(window-aggregate tumbling 60000 ms/);
  assert.match(text, /ids \(dedupe\)/);
  assert.equal(topology.sinks.find((sink) => sink.spec.name === 'archive')?.schema, undefined);
});

test('every built-in aggregator declares its ClickHouse columns; the sink schema follows the spec order', () => {
  const builder = new TopologyBuilder();
  builder
    .stream('usage', jsonSerde<UsageEvent>())
    .groupBy((e) => e.subject)
    .window(tumbling())
    .aggregate({
      events: count(),
      total: sum((e) => e.value),
      lowest: min((e) => e.value),
      highest: max((e) => e.value),
      mean: avg((e) => e.value),
      latency: quantiles((e) => e.value),
      ids: custom<UsageEvent, string[], number>({
        init: () => [],
        add: (ids, e) => [...ids, e.id],
        merge: (a, b) => [...a, ...b],
        result: (ids) => new Set(ids).size,
        columnType: 'UInt32',
      }),
    })
    .to(memorySink('rows'));
  const [sink] = builder.build().sinks;
  const latencySketch = { values: 'latency_sketch_values', counts: 'latency_sketch_counts' };
  assert.deepEqual(sink?.schema?.valueColumns, [
    // Each column says how the totals combine it across partitions, whatever its name.
    { name: 'events', type: 'UInt64', merge: 'sum' },
    { name: 'total', type: 'Float64', merge: 'sum' },
    { name: 'lowest', type: 'Float64', merge: 'min' },
    { name: 'highest', type: 'Float64', merge: 'max' },
    { name: 'mean', type: 'Float64', merge: 'avg' },
    // Quantiles: the totals read them from the partitions' sketch buckets added up (issue 13).
    { name: 'latency_p50', type: 'Float64', merge: 'quantile', sketch: latencySketch, quantile: 0.5 },
    { name: 'latency_p90', type: 'Float64', merge: 'quantile', sketch: latencySketch, quantile: 0.9 },
    { name: 'latency_p99', type: 'Float64', merge: 'quantile', sketch: latencySketch, quantile: 0.99 },
    { name: 'latency_sketch_values', type: 'Array(Float64)', merge: 'buckets', sketch: latencySketch },
    { name: 'latency_sketch_counts', type: 'Array(UInt64)', merge: 'buckets', sketch: latencySketch },
    { name: 'ids', type: 'UInt32' },
  ]);
});

test('all aggregators compute their values, and keep them across a restart (quantile sketches included)', async () => {
  const builder = new TopologyBuilder();
  builder
    .stream('usage', jsonSerde<UsageEvent>(), { timestamp: (e) => e.time })
    .groupBy((e) => e.subject)
    .window(tumbling())
    .aggregate({
      n: count(),
      total: sum((e) => e.value),
      lowest: min((e) => e.value),
      highest: max((e) => e.value),
      mean: avg((e) => e.value),
      latency: quantiles((e) => e.value),
      distinct: custom<UsageEvent, string[], number>({
        init: () => [],
        add: (ids, e) => (ids.includes(e.id) ? ids : [...ids, e.id]),
        merge: (a, b) => [...new Set([...a, ...b])],
        result: (ids) => ids.length,
      }),
    })
    .to(memorySink('rows'));
  const driver = new TestDriver(builder.build());
  try {
    for (let i = 1; i <= 100; i++) {
      await driver.pipe('usage', event(`id-${i % 40}`, 's', i, T0 + i));
      if (i === 50) await driver.restart();
    }
    await driver.pipe('usage', event('x', 's', 0, T0 + minutes(1)));
    const [row] = await driver.output<WindowResult<string, Record<string, unknown>>>('rows');
    const value = row?.value as {
      n: number;
      total: number;
      lowest: number;
      highest: number;
      mean: number;
      distinct: number;
      latency: { p50: number; p90: number; p99: number };
    };
    assert.equal(value.n, 100);
    assert.equal(value.total, 5050);
    assert.equal(value.lowest, 1);
    assert.equal(value.highest, 100);
    assert.equal(value.mean, 50.5);
    assert.equal(value.distinct, 40);
    // DDSketch guarantees 1% relative accuracy on the rank it picks (p50 of 1..100 is 50 or 51).
    assert.ok(Math.abs(value.latency.p50 - 50.5) <= 0.51 + 0.01 * 51, `p50 ${value.latency.p50}`);
    assert.ok(Math.abs(value.latency.p90 - 90) <= 1 + 0.01 * 91, `p90 ${value.latency.p90}`);
    assert.ok(Math.abs(value.latency.p99 - 99) <= 1 + 0.01 * 100, `p99 ${value.latency.p99}`);
  } finally {
    await driver.close();
  }
});

test('bad input never stops the pipeline: undecodable, invalid and throwing records become dead letters', async () => {
  const builder = new TopologyBuilder();
  builder
    .stream('usage', jsonSerde<UsageEvent>())
    .validate((e) => (e.value >= 0 ? true : `negative value ${e.value}`))
    .map((e) => {
      if (e.subject === 'boom') throw new TypeError('cannot map boom');
      return e.id;
    })
    .to(memorySink<string>('ids'));
  const driver = new TestDriver(builder.build());
  try {
    await driver.pipe('usage', Buffer.from('{not json'));
    await driver.pipe('usage', event('neg', 'a', -1));
    await driver.pipe('usage', event('bad', 'boom', 1));
    await driver.pipe('usage', event('good', 'a', 1));
    assert.deepEqual(await driver.output('ids'), ['good']);
    const letters = await driver.deadLetters();
    assert.deepEqual(
      letters.map((letter) => [letter.reason, letter.record.offset, letter.errorClass, letter.message]),
      [
        ['decode-failed', 0n, 'DeserializationError', 'not JSON'],
        ['validation-failed', 1n, 'Error', 'negative value -1'],
        ['processing-failed', 2n, 'TypeError', 'cannot map boom'],
      ],
    );
    assert.deepEqual((await driver.metrics()).deadLetters, {
      'decode-failed': 1,
      'validation-failed': 1,
      'processing-failed': 1,
    });
  } finally {
    await driver.close();
  }
});

test('a RetriableError while decoding rejects the whole batch and applies none of it; a retry then succeeds', async () => {
  let registryUp = false;
  const flaky: Serde<UsageEvent> = {
    name: 'flaky',
    serialize: (value) => Buffer.from(JSON.stringify(value)),
    deserialize: async (data) => {
      const value = JSON.parse(String(data)) as UsageEvent;
      if (value.subject === 'needs-registry' && !registryUp) throw new RetriableError('registry unreachable');
      if (value.subject === 'corrupt')
        throw new DeserializationError('unknown-schema-id', 'schema 42 unknown');
      return value;
    },
  };
  const builder = new TopologyBuilder();
  const sink = memorySink<string>('ids');
  builder
    .stream('usage', flaky)
    .map((e) => e.id)
    .to(sink);
  const topology = builder.build();
  const driver = new TestDriver(topology);
  try {
    const task = await driver.task();
    const records = [event('1', 'a', 1), event('2', 'corrupt', 1), event('3', 'needs-registry', 1)].map(
      (e, offset) => ({
        topic: 'usage',
        partition: 0,
        offset: BigInt(offset),
        timestamp: T0,
        key: null,
        value: Buffer.from(JSON.stringify(e)),
        headers: {},
      }),
    );
    await assert.rejects(task.process(records), RetriableError);
    await task.commit();
    assert.deepEqual(task.positions(), new Map(), 'positions did not move');
    assert.equal(task.metrics().recordsProcessed, 0);
    registryUp = true;
    await task.process(records);
    await task.commit();
    assert.deepEqual(task.positions(), new Map([['usage', 3n]]));
    assert.deepEqual(await driver.output('ids'), ['1', '3']);
    assert.deepEqual(
      (await driver.deadLetters()).map((letter) => letter.reason),
      ['unknown-schema-id'],
    );
  } finally {
    await driver.close();
  }
});

test('processor API: record metadata, a key-value store and event-time punctuation that survive a restart', async () => {
  const builder = new TopologyBuilder();
  builder
    .stream('usage', jsonSerde<UsageEvent>(), { timestamp: (e) => e.time })
    .process<string>(
      (ctx) => {
        const totals = ctx.getStore<number>('totals');
        ctx.schedule(minutes(1), 'event-time', async (time) => {
          for await (const [subject, total] of totals.entries())
            ctx.forward(`${time - T0}:${subject}=${total}`);
        });
        return (e) => {
          totals.put(e.subject, (totals.get(e.subject) ?? 0) + e.value);
          ctx.forward(
            `${ctx.record.topic}/${ctx.record.partition}@${ctx.record.offset}:${ctx.record.headers.trace?.toString()}:${ctx.record.timestamp - T0}`,
          );
        };
      },
      { stores: ['totals'] },
    )
    .to(memorySink<string>('out'));
  const driver = new TestDriver(builder.build());
  try {
    await driver.pipe('usage', event('1', 'a', 2, T0 + 1_000), { headers: { trace: Buffer.from('t1') } });
    await driver.pipe('usage', event('2', 'b', 3, T0 + 30_000));
    await driver.restart();
    await driver.pipe('usage', event('3', 'a', 4, T0 + 61_000));
    assert.deepEqual(await driver.output('out'), [
      'usage/0@0:t1:1000',
      'usage/0@1:undefined:30000',
      'usage/0@2:undefined:61000',
      '61000:a=6',
      '61000:b=3',
    ]);
    assert.deepEqual(await driver.store('totals'), [
      { key: 'a', value: 6 },
      { key: 'b', value: 3 },
    ]);
  } finally {
    await driver.close();
  }
});

test('processor API: wall-time punctuation fires from tick() as the wall clock advances', async () => {
  const builder = new TopologyBuilder();
  builder
    .stream('usage', jsonSerde<UsageEvent>())
    .process<number>((ctx) => {
      let seen = 0;
      ctx.schedule(1_000, 'wall-time', (now) => ctx.forward(now * 1000 + seen));
      return () => {
        seen++;
      };
    })
    .to(memorySink<number>('ticks'));
  const driver = new TestDriver(builder.build());
  try {
    await driver.pipe('usage', event('1', 'a', 1));
    await driver.advanceWallClock(999);
    await driver.pipe('usage', event('2', 'a', 1));
    await driver.advanceWallClock(1);
    await driver.advanceWallClock(500);
    await driver.advanceWallClock(500);
    assert.deepEqual(await driver.output('ticks'), [1000 * 1000 + 2, 2000 * 1000 + 2]);
  } finally {
    await driver.close();
  }
});
