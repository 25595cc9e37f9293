import assert from 'node:assert/strict';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { windowResultCodec } from '../../../src/topology/result-codec.js';
import {
  TopologyBuilder,
  avg,
  count,
  max,
  memorySink,
  min,
  minutes,
  quantiles,
  sum,
  tumbling,
} from '../../../src/index.js';
import { T0, jsonSerde, usageRecord } from './helpers.js';
import type { UsageEvent } from './helpers.js';

test('window-result segments round-trip numbers exactly (NaN, -0, Infinity), other fields and any key', () => {
  const rows = [
    {
      windowStart: 0,
      windowEnd: 60_000,
      key: 'a',
      value: { n: 1, x: NaN, q: { p50: 1 } },
      version: 1,
      partition: 3,
    },
    {
      windowStart: -60_000,
      windowEnd: 0,
      key: { s: 'b', n: 2n },
      value: { n: -0, x: Infinity, q: null },
      version: 2,
      partition: 3,
    },
    {
      windowStart: T0,
      windowEnd: T0 + 60_000,
      key: 'é"\n',
      value: { n: 1.5, x: -1e300, q: 'text' },
      version: 1,
      partition: 0,
    },
  ];
  const bytes = windowResultCodec.encode(rows);
  assert.ok(bytes !== undefined);
  assert.deepStrictEqual(windowResultCodec.decode(bytes), rows);
  // Not window results: the outbox writes JSON instead.
  assert.equal(windowResultCodec.encode(['text']), undefined);
  assert.equal(windowResultCodec.encode([rows[0], { windowStart: 'x' }]), undefined);
});

async function withDir(fn: (dir: string) => Promise<void>): Promise<void> {
  const dir = await mkdtemp(join(tmpdir(), 'tributary-codec-'));
  try {
    await fn(dir);
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
}

test('numeric window state and window-result outboxes survive close and reopen (min, max, avg, sum, count)', async () => {
  const build = () => {
    const builder = new TopologyBuilder();
    const events = builder.stream('usage', jsonSerde<UsageEvent>(), { timestamp: (e) => e.time });
    events
      .groupBy((e) => ({ subject: e.subject }))
      .window(tumbling(minutes(1)))
      .aggregate({
        n: count(),
        total: sum((e) => e.value),
        lo: min((e) => e.value),
        hi: max((e) => e.value),
        mean: avg((e) => e.value),
      })
      .to(memorySink('numeric'));
    events
      .groupBy((e) => e.subject)
      .window(tumbling(minutes(1)))
      .aggregate({ n: count(), q: quantiles((e) => e.value) })
      .to(memorySink('mixed'));
    return builder.build();
  };
  const events: UsageEvent[] = [
    { id: '1', subject: 'a', value: 3, time: T0 + 1 },
    { id: '2', subject: 'b', value: -2.5, time: T0 + 2 },
    { id: '3', subject: 'a', value: 7, time: T0 + 3 },
    { id: '4', subject: 'a', value: 5, time: T0 + 4 },
    { id: '5', subject: 'b', value: 1, time: T0 + 5 },
    { id: '6', subject: 'c', value: 0, time: T0 + minutes(2) }, // closes the first window
  ];
  const run = async (dir: string, reopenAfter: number[]) => {
    const topology = build();
    let task = await topology.openTask({ partition: 0, dir });
    for (let i = 0; i < events.length; i++) {
      await task.process([usageRecord(i, events[i] as UsageEvent)]);
      if (reopenAfter.includes(i)) {
        await task.commit(); // nothing drained: outbox rows must come back from disk
        await task.close();
        task = await topology.openTask({ partition: 0, dir });
      }
    }
    await task.commit();
    const out: Record<string, unknown[]> = {};
    for (const outbox of task.outboxes()) out[outbox.name] = (await outbox.read(100)).map((e) => e.value);
    await task.close();
    return out;
  };
  await withDir(async (straightDir) => {
    await withDir(async (reopenedDir) => {
      const straight = await run(straightDir, []);
      assert.equal(straight.numeric?.length, 2);
      assert.deepStrictEqual(await run(reopenedDir, [0, 2, 3, 5]), straight);
    });
  });
  const a = { n: 3, total: 15, lo: 3, hi: 7, mean: 5 };
  await withDir(async (dir) => {
    const out = await run(dir, [4, 5]);
    const rowA = (out.numeric as Array<{ key: unknown; value: unknown }>).find(
      (row) => JSON.stringify(row.key) === '{"subject":"a"}',
    );
    assert.deepStrictEqual(rowA?.value, a);
  });
});
