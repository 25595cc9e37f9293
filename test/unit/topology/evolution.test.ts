/**
 * Topology evolution: stateful operators keep their stores when stateless steps come and go, a state
 * folder whose stores the topology lost or changed refuses to open (naming the store and the way out),
 * `resetStores` discards such a store explicitly, and an accumulator that would not survive its own
 * serialization is refused before it can lose state at a restart.
 */
import assert from 'node:assert/strict';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { ClassicLevel } from 'classic-level';
import {
  TestDriver,
  TopologyBuilder,
  count,
  custom,
  memorySink,
  minutes,
  sum,
  tumbling,
} from '../../../src/index.js';
import type { Stream, WindowResult } from '../../../src/index.js';
import { T0, byWindowAndKey, jsonSerde } from './helpers.js';
import type { UsageEvent } from './helpers.js';

type Totals = WindowResult<{ subject: string }, { n: number; total: number }>;

interface Shape {
  /** Extra stateless steps, before and after the dedupe (what issue 9 tried: one `.peek()`). */
  extraSteps?: boolean;
  dedupeName?: string;
  windowName?: string;
}

/** The reference shape: dedupe by id, then per-subject totals in 1-minute windows. */
function meteringTopology(shape: Shape = {}) {
  const builder = new TopologyBuilder();
  let events: Stream<UsageEvent> = builder.stream('usage', jsonSerde<UsageEvent>(), {
    timestamp: (e) => e.time,
  });
  if (shape.extraSteps) events = events.peek(() => {}).filter((e) => e.value >= 0);
  let unique = events.dedupe((e) => e.id, {
    horizon: minutes(30),
    ...(shape.dedupeName === undefined ? {} : { name: shape.dedupeName }),
  });
  if (shape.extraSteps) unique = unique.map((e) => ({ ...e }));
  unique
    .groupBy((e) => ({ subject: e.subject }))
    .window(tumbling(minutes(1)), shape.windowName === undefined ? {} : { name: shape.windowName })
    .aggregate({ n: count(), total: sum((e: UsageEvent) => e.value) })
    .to(memorySink<Totals>('totals'));
  return builder.build();
}

const event = (id: string, subject: string, value: number, secondsAfterT0: number): UsageEvent => ({
  id,
  subject,
  value,
  time: T0 + secondsAfterT0 * 1000,
});

const totals = (rows: Totals[]) =>
  byWindowAndKey(rows).map(
    (row) => `${(row.windowStart - T0) / 1000}s ${row.key.subject}: ${row.value.n} ${row.value.total}`,
  );

test('stateful operators are named from what the user wrote, not from their position', () => {
  const plain = meteringTopology().describe().stores;
  const evolved = meteringTopology({ extraSteps: true }).describe().stores;
  assert.deepEqual(plain, evolved, 'extra stateless steps change no store name');
  assert.deepEqual(
    plain.map((store) => store.name),
    ['usage-dedupe', 'usage-1m-n-total'],
    'source topic plus dedupe; source topic, window size and fields',
  );
});

test('a topology restarted with extra stateless steps keeps its dedupe ids and open windows: exact totals', async () => {
  const driver = new TestDriver(meteringTopology());
  try {
    await driver.pipe('usage', event('1', 'a', 5, 1));
    await driver.pipe('usage', event('2', 'a', 7, 2));
    await driver.pipe('usage', event('3', 'b', 1, 3));
    await driver.restart({ topology: meteringTopology({ extraSteps: true }) });
    await driver.pipe('usage', event('2', 'a', 7, 4)); // a duplicate of an id seen before the restart
    await driver.pipe('usage', event('4', 'a', 10, 5));
    await driver.pipe('usage', event('5', 'b', 2, 61)); // closes the first window
    assert.deepEqual(totals(await driver.output('totals')), ['0s a: 3 22', '0s b: 1 1']);
    assert.equal((await driver.metrics()).duplicatesDropped, 1);
  } finally {
    await driver.close();
  }
});

test('a renamed store refuses to start, naming the store and the way out; the state stays', async () => {
  const driver = new TestDriver(meteringTopology({ dedupeName: 'ids' }));
  try {
    await driver.pipe('usage', event('1', 'a', 5, 1));
    await assert.rejects(
      driver.restart({ topology: meteringTopology({ dedupeName: 'event-ids' }) }),
      (error: Error) => {
        assert.equal(error.name, 'StoreMismatchError');
        assert.match(error.message, /dedupe store "ids" is in the state folder but not in the topology/);
        assert.match(error.message, /the topology's dedupe stores: "event-ids"/);
        assert.match(error.message, /give the operator its old store name back/);
        assert.match(error.message, /resetStores: \["ids"\] \(TRIBUTARY_RESET_STORES=ids\)/);
        return true;
      },
    );
    // Renamed back: the state was left alone, the id is still known.
    await driver.restart({ topology: meteringTopology({ dedupeName: 'ids' }) });
    await driver.pipe('usage', event('1', 'a', 5, 2));
    assert.equal((await driver.metrics()).duplicatesDropped, 1);
  } finally {
    await driver.close();
  }
});

test('resetStores discards a store that no longer matches: it starts empty, and the setting is harmless afterwards', async () => {
  const driver = new TestDriver(meteringTopology({ dedupeName: 'ids' }));
  try {
    await driver.pipe('usage', event('1', 'a', 5, 1));
    await driver.restart({ topology: meteringTopology({ dedupeName: 'event-ids' }), resetStores: ['ids'] });
    assert.deepEqual(await driver.store('event-ids'), [], 'the renamed store starts empty');
    await driver.pipe('usage', event('1', 'a', 5, 2)); // not a duplicate any more: the ids were reset
    assert.equal((await driver.metrics()).duplicatesDropped, 0);
    // The folder now matches the topology: listing a matching store keeps it.
    await driver.restart({ resetStores: ['event-ids'] });
    await driver.pipe('usage', event('1', 'a', 5, 3));
    assert.equal((await driver.metrics()).duplicatesDropped, 1, 'event-ids kept its id');
    await driver.pipe('usage', event('9', 'a', 1, 61));
    assert.deepEqual(totals(await driver.output('totals')), ['0s a: 2 10']);
  } finally {
    await driver.close();
  }
});

test('a store that changed kind or format refuses to start, naming both', async () => {
  const driver = new TestDriver(meteringTopology({ windowName: 'per-minute' }));
  try {
    await driver.pipe('usage', event('1', 'a', 5, 1));
    const moreFields = new TopologyBuilder();
    moreFields
      .stream('usage', jsonSerde<UsageEvent>(), { timestamp: (e) => e.time })
      .dedupe((e) => e.id, { horizon: minutes(30) })
      .groupBy((e) => ({ subject: e.subject }))
      .window(tumbling(minutes(1)), { name: 'per-minute' })
      .aggregate({ n: count(), total: sum((e: UsageEvent) => e.value), users: count() })
      .to(memorySink('totals'));
    await assert.rejects(
      driver.restart({ topology: moreFields.build() }),
      /window store "per-minute" was written as window-numeric\/2:count,sum@60000ms and the topology now reads window-numeric\/2:count,sum,count@60000ms/,
    );
    const otherKind = new TopologyBuilder();
    const input = otherKind.stream('usage', jsonSerde<UsageEvent>(), { timestamp: (e) => e.time });
    input.dedupe((e) => e.id, { horizon: minutes(30) }).to(memorySink('totals'));
    input.process(() => () => undefined, { stores: ['per-minute'] });
    await assert.rejects(
      driver.restart({ topology: otherKind.build() }),
      /store "per-minute" was a window store and is now a key-value store/,
    );
  } finally {
    await driver.close();
  }
});

test('a state folder from before store manifests is checked by its store sublevels', async () => {
  const dir = await mkdtemp(join(tmpdir(), 'tributary-evolution-'));
  try {
    // Written with the old counter name of the dedupe, then its manifest removed (as before this check).
    const old = new TestDriver(meteringTopology({ dedupeName: 'dedupe-4' }), { stateDir: dir });
    await old.pipe('usage', event('1', 'a', 5, 1));
    await old.close();
    const db = new ClassicLevel<string, string>(join(dir, 'task-0_0'), { valueEncoding: 'utf8' });
    const meta = db.sublevel<string, string>('meta', { valueEncoding: 'utf8' });
    assert.match((await meta.get('store-manifest')) ?? '', /"dedupe-4"/, 'the commit wrote a manifest');
    await meta.del('store-manifest');
    await db.close();

    const renamed = new TestDriver(meteringTopology(), { stateDir: dir });
    await assert.rejects(
      renamed.pipe('usage', event('2', 'a', 1, 2)),
      /dedupe store "dedupe-4" is in the state folder but not in the topology \(the topology's dedupe stores: "usage-dedupe"\)/,
    );
    await renamed.close();
    const namedBack = new TestDriver(meteringTopology({ dedupeName: 'dedupe-4' }), { stateDir: dir });
    await namedBack.pipe('usage', event('x', 'a', 5, 2)); // offset 0 again: covered by the checkpoint
    await namedBack.pipe('usage', event('1', 'a', 5, 3)); // the id seen before the manifest was removed
    assert.equal((await namedBack.metrics()).duplicatesDropped, 1, 'the ids are still there');
    await namedBack.close();
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
});

test('two unnamed stateful steps that would share a store name must be named', () => {
  const builder = new TopologyBuilder();
  const events = builder.stream('usage', jsonSerde<UsageEvent>());
  events.dedupe((e) => e.id, { horizon: minutes(1) });
  assert.throws(
    () => events.dedupe((e) => `${e.subject}/${e.id}`, { horizon: minutes(1) }),
    /two dedupe\(\) steps reading usage would share the store name "usage-dedupe": give each its own name/,
  );
});

interface Visit {
  user: string;
  time: number;
}

const visits = () => {
  const builder = new TopologyBuilder();
  return { builder, stream: builder.stream('visits', jsonSerde<Visit>(), { timestamp: (v) => v.time }) };
};

test('an accumulator that does not survive its serialization (a Set) is rejected when the topology is built', () => {
  const { stream } = visits();
  const windowed = stream
    .groupBy(() => 'all', { key: 'site' })
    .window(tumbling(minutes(1)), { name: 'users-1m' });
  assert.throws(
    () =>
      windowed.aggregate({
        users: custom<Visit, Set<string>, number>({
          init: () => new Set(),
          add: (set, visit) => set.add(visit.user),
          merge: (a, b) => new Set([...a, ...b]),
          result: (set) => set.size,
          columnType: 'UInt64',
        }),
      }),
    (error: Error) => {
      assert.equal(error.name, 'StateRoundTripError');
      assert.match(
        error.message,
        /aggregate "users-1m": field "users" \(custom\) does not survive its own serialization/,
      );
      assert.match(error.message, /its result is 0 before a restart and undefined after/);
      assert.match(error.message, /not a Set, Map/);
      return true;
    },
  );
});

test('an accumulator that becomes a Set on its first value is rejected on the first record; with toState/fromState it survives restarts', async () => {
  const distinctUsers = (convert: boolean) => {
    const { builder, stream } = visits();
    stream
      .groupBy(() => 'all', { key: 'site' })
      .window(tumbling(minutes(1)), { name: 'users-1m' })
      .aggregate({
        users: custom<Visit, Set<string> | null, number>({
          init: () => null,
          add: (set, visit) => (set ?? new Set<string>()).add(visit.user),
          merge: (a, b) => new Set([...(a ?? []), ...(b ?? [])]),
          result: (set) => set?.size ?? 0,
          columnType: 'UInt64',
          ...(convert
            ? {
                toState: (set: Set<string> | null) => (set === null ? null : [...set]),
                fromState: (state: unknown) => (state === null ? null : new Set(state as string[])),
              }
            : {}),
        }),
      })
      .to(memorySink<WindowResult<{ site: string }, { users: number }>>('users'));
    return builder.build();
  };

  const broken = new TestDriver(distinctUsers(false));
  try {
    await assert.rejects(broken.pipe('visits', { user: 'u1', time: T0 }), (error: Error) => {
      assert.equal(error.name, 'StateRoundTripError');
      assert.match(
        error.message,
        /aggregate "users-1m": field "users" \(custom\) does not survive its own serialization: its result is 1 before a restart and 0 after/,
      );
      return true;
    });
  } finally {
    await broken.close();
  }

  const fixed = new TestDriver(distinctUsers(true));
  try {
    await fixed.pipe('visits', { user: 'u1', time: T0 });
    await fixed.pipe('visits', { user: 'u2', time: T0 + 1 });
    await fixed.restart();
    await fixed.pipe('visits', { user: 'u1', time: T0 + 2 });
    await fixed.pipe('visits', { user: 'u3', time: T0 + 3 });
    await fixed.pipe('visits', { user: 'u9', time: T0 + minutes(1) });
    const rows = await fixed.output<WindowResult<{ site: string }, { users: number }>>('users');
    assert.deepEqual(
      rows.map((row) => row.value.users),
      [3],
    );
  } finally {
    await fixed.close();
  }
});

test('the outbox of a sink the topology dropped is discarded when it was fully delivered, and refused while it holds outputs', async () => {
  const serde = jsonSerde<UsageEvent>();
  const toSink = (name: string) => {
    const builder = new TopologyBuilder();
    builder.stream('usage', serde).to(memorySink<UsageEvent>(name));
    return builder.build();
  };
  const record = (offset: number) => ({
    topic: 'usage',
    partition: 0,
    offset: BigInt(offset),
    timestamp: T0,
    key: null,
    value: Buffer.from(JSON.stringify(event(`e${offset}`, 'a', 1, offset))),
    headers: {},
  });
  const dir = await mkdtemp(join(tmpdir(), 'tributary-dropped-sink-'));
  try {
    // Outputs still in the outbox: dropping the sink would lose them.
    let task = await toSink('old').openTask({ partition: 0, dir });
    await task.process([record(0), record(1)]);
    await task.commit();
    await task.close();
    await assert.rejects(toSink('new').openTask({ partition: 0, dir }), (error: Error) => {
      assert.match(error.message, /outbox store "old" is in the state folder but not in the topology/);
      return true;
    });

    // Delivered and acked (durable with a commit): nothing is lost, the new topology opens.
    task = await toSink('old').openTask({ partition: 0, dir });
    const outbox = task.outboxes().find((candidate) => candidate.name === 'old');
    const entries = (await outbox?.read(10)) ?? [];
    assert.equal(entries.length, 2);
    await outbox?.ack((entries[entries.length - 1] as { seq: bigint }).seq);
    await task.commit();
    await task.close();
    task = await toSink('new').openTask({ partition: 0, dir });
    assert.deepEqual(task.positions(), new Map([['usage', 2n]]), 'the input positions are kept');
    await task.close();
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
});
