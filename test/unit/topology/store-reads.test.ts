/**
 * Store reads in the user's terms (StoreView.read / lookup): window entries with their window times,
 * group key and aggregates by name, paging with a cursor and a window-time range; key lookups in
 * window, key-value and dedupe stores; outbox entries. Through the TestDriver, on the engine's stores.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import {
  TestDriver,
  TopologyBuilder,
  avg,
  count,
  custom,
  max,
  memorySink,
  minutes,
  sum,
  tumbling,
} from '../../../src/index.js';
import type {
  DedupeBucketView,
  KeyValueEntryView,
  OutboxEntryView,
  StorePage,
  WindowEntryView,
} from '../../../src/index.js';
import { T0, jsonSerde } from './helpers.js';
import type { UsageEvent } from './helpers.js';

const event = (id: string, subject: string, value: number, secondsAfterT0: number): UsageEvent => ({
  id,
  subject,
  value,
  time: T0 + secondsAfterT0 * 1000,
});

function windowTopology() {
  const builder = new TopologyBuilder();
  builder
    .stream('usage', jsonSerde<UsageEvent>(), { timestamp: (e) => e.time })
    .dedupe((e) => e.id, { horizon: minutes(10), bucket: minutes(1), name: 'seen-ids' })
    .groupBy((e) => ({ subject: e.subject, meter: 'tokens' }))
    // A long grace keeps the windows of these tests open (a closed window leaves the store).
    .window(tumbling(minutes(1)), { grace: minutes(30), name: 'usage-1m' })
    .aggregate({
      count: count(),
      total: sum((e: UsageEvent) => e.value),
      peak: max((e: UsageEvent) => e.value),
    })
    .to(memorySink('rollup'));
  return builder.build();
}

const iso = (secondsAfterT0: number) => new Date(T0 + secondsAfterT0 * 1000).toISOString();

test('a window store reads as windows, group keys and aggregates by name, equal to what was produced', async () => {
  const driver = new TestDriver(windowTopology());
  try {
    await driver.pipe('usage', event('1', 'alice', 5, 1));
    await driver.pipe('usage', event('2', 'bob', 7, 2));
    await driver.pipe('usage', event('3', 'alice', 3, 30));
    await driver.pipe('usage', event('4', 'alice', 10, 65));
    const page = await (await driver.storeView('usage-1m')).read();
    const entries = page.entries as WindowEntryView[];
    assert.deepEqual(
      entries.map((e) => ({
        start: e.windowStart.iso,
        end: e.windowEnd.iso,
        key: e.key,
        aggregates: e.aggregates,
        version: e.version,
      })),
      [
        {
          start: iso(0),
          end: iso(60),
          key: { subject: 'alice', meter: 'tokens' },
          aggregates: { count: 2, total: 8, peak: 5 },
          version: 0,
        },
        {
          start: iso(0),
          end: iso(60),
          key: { subject: 'bob', meter: 'tokens' },
          aggregates: { count: 1, total: 7, peak: 7 },
          version: 0,
        },
        {
          start: iso(60),
          end: iso(120),
          key: { subject: 'alice', meter: 'tokens' },
          aggregates: { count: 1, total: 10, peak: 10 },
          version: 0,
        },
      ],
    );
    assert.equal(entries[0]?.windowStart.ms, T0);
    assert.equal(page.next, undefined, 'everything on one page');
    // Once the windows close, their emitted results carry the numbers the store showed.
    await driver.pipe('usage', event('5', 'carol', 1, 60 * 40));
    const emitted = await driver.output<{ key: unknown; value: unknown }>('rollup');
    assert.deepEqual(
      emitted.map((row) => [row.key, row.value]),
      entries.map((e) => [e.key, e.aggregates]),
    );
  } finally {
    await driver.close();
  }
});

test('window entries page with the next cursor and filter by window time, also after a restart', async () => {
  const driver = new TestDriver(windowTopology());
  try {
    const subjects = ['a', 'b', 'c', 'd', 'e'];
    let id = 0;
    for (const minute of [0, 1, 2])
      for (const subject of subjects)
        await driver.pipe('usage', event(String(id++), subject, 1, minute * 60 + 5));
    await driver.restart();
    const view = await driver.storeView('usage-1m');
    const seen: string[] = [];
    let page: StorePage = await view.read({ limit: 4 });
    let pages = 1;
    for (;;) {
      for (const entry of page.entries as WindowEntryView[])
        seen.push(`${(entry.windowStart.ms - T0) / 60_000}:${(entry.key as { subject: string }).subject}`);
      if (page.next === undefined) break;
      page = await view.read({ limit: 4, after: page.next });
      pages++;
    }
    assert.equal(pages, 4, '15 entries in pages of 4');
    assert.deepEqual(
      seen,
      [0, 1, 2].flatMap((minute) => subjects.map((subject) => `${minute}:${subject}`)),
      'every entry once, by window then key',
    );
    const middle = (await view.read({ from: T0 + 60_000, to: T0 + 120_000 })).entries as WindowEntryView[];
    assert.deepEqual(
      middle.map((e) => (e.windowStart.ms - T0) / 60_000),
      [1, 1, 1, 1, 1],
      'from (inclusive) and to (exclusive) bound the window start',
    );
    await assert.rejects(view.read({ after: 'not-a-cursor' }), /not a cursor/);
  } finally {
    await driver.close();
  }
});

test('a window lookup finds every window of a group key, written as JSON in any field order', async () => {
  const driver = new TestDriver(windowTopology());
  try {
    await driver.pipe('usage', event('1', 'alice', 5, 1));
    await driver.pipe('usage', event('2', 'alice', 2, 61));
    await driver.pipe('usage', event('3', 'bob', 1, 62));
    const view = await driver.storeView('usage-1m');
    const found = await view.lookup('{"subject":"alice","meter":"tokens"}');
    assert.equal(found?.kind, 'window');
    const windows = found?.kind === 'window' ? found.windows : [];
    assert.deepEqual(
      windows.map((w) => [w.windowStart.iso, w.aggregates.total]),
      [
        [iso(0), 5],
        [iso(60), 2],
      ],
    );
    const reordered = await view.lookup('{"meter":"tokens","subject":"alice"}');
    assert.deepEqual(reordered, found);
    assert.equal(await view.lookup('{"subject":"carol","meter":"tokens"}'), undefined, 'unknown key');
    assert.equal(await view.lookup('alice'), undefined, 'an object key is not found by one field');
  } finally {
    await driver.close();
  }
});

test('a window store of string keys and JSON state: lookups by the plain string, custom aggregates decoded', async () => {
  const builder = new TopologyBuilder();
  builder
    .stream('usage', jsonSerde<UsageEvent>(), { timestamp: (e) => e.time })
    .groupBy((e) => e.subject)
    .window(tumbling(minutes(1)), { name: 'by-subject' })
    .aggregate({
      mean: avg((e: UsageEvent) => e.value),
      ids: custom<UsageEvent, string[], string>({
        init: () => [],
        add: (ids, e) => [...ids, e.id],
        merge: (a, b) => [...a, ...b],
        result: (ids) => ids.join(','),
      }),
    })
    .to(memorySink('out'));
  const driver = new TestDriver(builder.build());
  try {
    await driver.pipe('usage', event('x1', 'alice', 4, 1));
    await driver.pipe('usage', event('x2', 'alice', 8, 2));
    await driver.restart({ crash: true });
    const view = await driver.storeView('by-subject');
    const byPlain = await view.lookup('alice');
    const byJson = await view.lookup('"alice"');
    assert.deepEqual(byPlain, byJson);
    const window = byPlain?.kind === 'window' ? byPlain.windows[0] : undefined;
    assert.deepEqual(window?.key, 'alice');
    assert.deepEqual(window?.aggregates, { mean: 6, ids: 'x1,x2' });
  } finally {
    await driver.close();
  }
});

test('a dedupe lookup says seen, with its bucket and expiry, or nothing; the read lists buckets with id counts', async () => {
  const driver = new TestDriver(windowTopology());
  try {
    await driver.pipe('usage', event('id-1', 'a', 1, 5));
    await driver.pipe('usage', event('id-2', 'a', 1, 70));
    await driver.pipe('usage', event('id-3', 'a', 1, 75));
    await driver.commit();
    const view = await driver.storeView('seen-ids');
    const seen = await view.lookup('id-2');
    assert.deepEqual(seen, {
      kind: 'dedupe',
      seen: true,
      bucketStart: { iso: iso(60), ms: T0 + 60_000 },
      // Forgotten once stream time reaches bucket end (2 min) + horizon (10 min).
      expiresAt: { iso: iso(720), ms: T0 + 720_000 },
    });
    assert.equal(await view.lookup('never-sent'), undefined);
    const buckets = (await view.read()).entries as DedupeBucketView[];
    assert.deepEqual(
      buckets.map((b) => [b.bucketStart.iso, b.bucketEnd.iso, b.ids, b.expiresAt.iso]),
      [
        [iso(0), iso(60), 1, iso(660)],
        [iso(60), iso(120), 2, iso(720)],
      ],
    );
    const firstPage = await view.read({ limit: 1 });
    assert.equal(firstPage.entries.length, 1);
    const secondPage = await view.read({ limit: 1, after: firstPage.next as string });
    assert.deepEqual(secondPage.entries, buckets.slice(1));
    assert.equal(secondPage.next, undefined);

    // Past the horizon of id-1 (and a commit, which expires), it is no longer seen.
    await driver.pipe('usage', event('late-tick', 'a', 1, 661));
    await driver.commit();
    assert.equal(await view.lookup('id-1'), undefined, 'forgotten after its expiry');
    assert.equal((await view.lookup('id-3'))?.kind, 'dedupe');
  } finally {
    await driver.close();
  }
});

test('a key-value store reads as sorted keys and values, pages, and looks up a key', async () => {
  const builder = new TopologyBuilder();
  builder
    .stream('usage', jsonSerde<UsageEvent>(), { timestamp: (e) => e.time })
    .process<string>(
      (ctx) => {
        const totals = ctx.getStore<number>('totals');
        return (e) => totals.put(e.subject, (totals.get(e.subject) ?? 0) + e.value);
      },
      { stores: ['totals'] },
    )
    .to(memorySink<string>('out'));
  const driver = new TestDriver(builder.build());
  try {
    for (const [subject, value] of [
      ['c', 1],
      ['a', 2],
      ['b', 3],
      ['a', 4],
    ] as const)
      await driver.pipe('usage', event(subject, subject, value, 1));
    const view = await driver.storeView('totals');
    const first = await view.read({ limit: 2 });
    assert.deepEqual(first.entries as KeyValueEntryView[], [
      { key: 'a', value: 6 },
      { key: 'b', value: 3 },
    ]);
    const rest = await view.read({ limit: 2, after: first.next as string });
    assert.deepEqual(rest, { entries: [{ key: 'c', value: 1 }] });
    assert.deepEqual(await view.lookup('a'), { kind: 'key-value', value: 6 });
    assert.equal(await view.lookup('z'), undefined);
  } finally {
    await driver.close();
  }
});

test('an outbox reads its undelivered entries with sequence and commit state; it has no keys to look up', async () => {
  const driver = new TestDriver(windowTopology());
  try {
    await driver.pipe('usage', event('1', 'alice', 5, 1));
    await driver.pipe('usage', event('2', 'alice', 5, 60 * 40)); // closes the first window: one result
    const task = await driver.task();
    const outbox = task.stores().find((store) => store.kind === 'outbox' && store.name !== 'dlq');
    assert.ok(outbox, 'the sink has an outbox');
    const before = (await outbox.read()).entries as OutboxEntryView[];
    assert.equal(before.length, 1);
    assert.equal(before[0]?.committed, false, 'appended, not yet committed');
    assert.deepEqual((before[0]?.value as { value: unknown }).value, { count: 1, total: 5, peak: 5 });
    await task.commit();
    assert.equal(((await outbox.read()).entries[0] as OutboxEntryView).committed, true);
    await assert.rejects(outbox.lookup('0'), /no keys to look up/);
  } finally {
    await driver.close();
  }
});
