import assert from 'node:assert/strict';
import { test } from 'node:test';
import { setImmediate } from 'node:timers/promises';
import { TestDriver, TopologyBuilder, count, memorySink, minutes, tumbling } from '../../../src/index.js';
import type { ProcessorContext, SinkSpec, Stream, WindowResult } from '../../../src/index.js';
import { createTableSql } from '../../../src/sinks/clickhouse-sql.js';
import { inferKeyColumns, toInsertRow } from '../../../src/sinks/clickhouse-rows.js';
import { T0, jsonSerde } from './helpers.js';
import type { UsageEvent } from './helpers.js';

const event = (id: string, subject: string, value: number, time = T0): UsageEvent => ({
  id,
  subject,
  value,
  time,
});

/** 'settled', or 'pending' if `promise` is still pending once every queued microtask has run. */
async function settles(promise: Promise<unknown>): Promise<'settled' | 'pending'> {
  return Promise.race([promise.then(() => 'settled' as const), setImmediate('pending' as const)]);
}

test('awaiting a stream, or returning one from an async function, settles and adds no node', async () => {
  const builder = new TopologyBuilder();
  const events = builder.stream('usage', jsonSerde<UsageEvent>());
  const filtered = events.filter((e) => e.value > 0);
  const grouped = filtered.groupBy((e) => e.subject);
  const windowed = grouped.window(tumbling());
  const aggregated = windowed.aggregate({ n: count() });
  aggregated.to(memorySink('rows'));
  const before = builder.build().describe();

  assert.equal(await settles((async () => await filtered)()), 'settled');
  for (const handle of [events, filtered, grouped, windowed, aggregated])
    assert.equal(await handle, handle, 'awaiting a DSL handle gives the handle itself');
  const declared = async (): Promise<Stream<UsageEvent>> => filtered;
  assert.equal(await settles(declared()), 'settled');
  assert.equal(await declared(), filtered);

  assert.deepEqual(builder.build().describe(), before);
});

test('branch() gives one stream per predicate; a value goes to the first that matches, or nowhere', async () => {
  const builder = new TopologyBuilder();
  const isLarge = (e: UsageEvent): e is UsageEvent & { large: true } => e.value >= 100;
  const [large, medium] = builder
    .stream('usage', jsonSerde<UsageEvent>())
    .branch(isLarge, (e) => e.value >= 10);
  large.map((e) => e.id).to(memorySink<string>('large'));
  medium.map((e) => e.id).to(memorySink<string>('medium'));
  const driver = new TestDriver(builder.build());
  try {
    for (const [id, value] of [
      ['a', 500],
      ['b', 50],
      ['c', 5],
      ['d', 100],
    ] as const)
      await driver.pipe('usage', event(id, 's', value));
    assert.deepEqual(await driver.output('large'), ['a', 'd']);
    assert.deepEqual(await driver.output('medium'), ['b']);
  } finally {
    await driver.close();
  }
});

test('a processor forwards what it returns (not undefined), after what it passed to ctx.forward', async () => {
  const builder = new TopologyBuilder();
  const events = builder.stream('usage', jsonSerde<UsageEvent>());
  events
    .process(
      (ctx) => {
        const totals = ctx.getStore<number>('totals');
        return (e) => {
          const total = (totals.get(e.subject) ?? 0) + e.value;
          totals.put(e.subject, total);
          return total >= 10 ? { subject: e.subject, total } : undefined;
        };
      },
      { stores: ['totals'] },
    )
    .map((row) => `${row.subject}=${row.total}`)
    .to(memorySink<string>('subject-totals'));
  events
    .process((ctx: ProcessorContext<string>) => ({
      process(e: UsageEvent) {
        ctx.forward(`forwarded:${e.id}`);
        return `returned:${e.id}`;
      },
    }))
    .to(memorySink<string>('both'));
  events.process<string>((ctx) => (e) => ctx.forward(e.id)).to(memorySink<string>('forwarded-only'));

  const driver = new TestDriver(builder.build());
  try {
    await driver.pipe('usage', event('1', 'a', 4));
    await driver.pipe('usage', event('2', 'a', 6));
    await driver.pipe('usage', event('3', 'b', 20));
    assert.deepEqual(await driver.output('subject-totals'), ['a=10', 'b=20']);
    assert.deepEqual(await driver.output('both'), [
      'forwarded:1',
      'returned:1',
      'forwarded:2',
      'returned:2',
      'forwarded:3',
      'returned:3',
    ]);
    assert.deepEqual(await driver.output('forwarded-only'), ['1', '2', '3']);
  } finally {
    await driver.close();
  }
});

/** Two subjects, one window, through a count per subject keyed as `groupBy` was told to. */
async function countsBySubject(
  group: (events: Stream<UsageEvent>) => { to(sink: SinkSpec<WindowResult<unknown, { n: number }>>): void },
): Promise<Array<WindowResult<unknown, { n: number }>>> {
  const builder = new TopologyBuilder();
  group(builder.stream('usage', jsonSerde<UsageEvent>(), { timestamp: (e) => e.time })).to(
    memorySink('counts'),
  );
  const driver = new TestDriver(builder.build());
  try {
    await driver.pipe('usage', event('1', 'a', 1, T0));
    await driver.pipe('usage', event('2', 'b', 1, T0 + 1));
    await driver.pipe('usage', event('3', 'a', 1, T0 + 2));
    await driver.pipe('usage', event('4', 'a', 1, T0 + minutes(1)));
    const rows = await driver.output<WindowResult<unknown, { n: number }>>('counts');
    return rows.sort((x, y) => JSON.stringify(x.key).localeCompare(JSON.stringify(y.key)));
  } finally {
    await driver.close();
  }
}

test('a primitive group key takes the name groupBy gives it in the results; unnamed it stays the key itself', async () => {
  const named = await countsBySubject((events) =>
    events
      .groupBy((e) => e.subject, { key: 'subject' })
      .window(tumbling(minutes(1)))
      .aggregate({ n: count() }),
  );
  assert.deepEqual(
    named.map((row) => [row.windowStart, row.key, row.value]),
    [
      [T0, { subject: 'a' }, { n: 2 }],
      [T0, { subject: 'b' }, { n: 1 }],
    ],
  );
  const unnamed = await countsBySubject((events) =>
    events
      .groupBy((e) => e.subject)
      .window(tumbling(minutes(1)))
      .aggregate({ n: count() }),
  );
  assert.deepEqual(
    unnamed.map((row) => [row.key, row.value]),
    [
      ['a', { n: 2 }],
      ['b', { n: 1 }],
    ],
  );
  assert.throws(() => new TopologyBuilder().stream('x', jsonSerde<string>()).groupBy((s) => s, { key: '' }), {
    message: /key name must not be empty/,
  });
});

test('a named primitive group key becomes a ClickHouse column of that name (table and rows)', async () => {
  const [named] = await countsBySubject((events) =>
    events
      .groupBy((e) => e.subject, { key: 'subject' })
      .window(tumbling(minutes(1)))
      .aggregate({ n: count() }),
  );
  const [unnamed] = await countsBySubject((events) =>
    events
      .groupBy((e) => e.subject)
      .window(tumbling(minutes(1)))
      .aggregate({ n: count() }),
  );
  assert.ok(named && unnamed);
  const valueColumns = [{ name: 'n', type: 'UInt64' as const }];

  const layout = { keyColumns: inferKeyColumns(named.key), valueColumns };
  assert.deepEqual(layout.keyColumns, [{ name: 'subject', type: 'String' }]);
  assert.match(createTableSql({ database: 'db', table: 't' }, layout), /`subject` String/);
  assert.deepEqual(toInsertRow(named, layout), {
    window_start: T0 / 1000,
    window_end: T0 / 1000 + 60,
    subject: 'a',
    n: 2,
    partition: 0,
    version: 1,
  });

  // The default stays the column `key`, as before.
  const defaultLayout = { keyColumns: inferKeyColumns(unnamed.key), valueColumns };
  assert.deepEqual(defaultLayout.keyColumns, [{ name: 'key', type: 'String' }]);
  assert.equal(toInsertRow(unnamed, defaultLayout).key, 'a');
});
