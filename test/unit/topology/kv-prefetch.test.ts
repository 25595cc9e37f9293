import assert from 'node:assert/strict';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { TopologyBuilder, memorySink, seconds } from '../../../src/index.js';
import type { RawRecord } from '../../../src/index.js';
import { CacheBudget } from '../../../src/core/cache-budget.js';
import type { KeyValueStoreImpl } from '../../../src/state/kv-store.js';
import { T0, jsonSerde, memoryChangelog } from './helpers.js';

interface Payment {
  account: string;
  amount: number;
  time: number;
}

type Path = 'prefetch' | 'no-prefetch' | 'prefetch-behind-a-processor';

/**
 * Running balances per account in a process() store, reached from the source through stateless steps
 * (the pre-pass can name the keys), or behind another processor (it cannot: reads are synchronous).
 */
function balancesTopology(path: Path) {
  const seen: { store?: KeyValueStoreImpl<number>; outputs: string[] } = { outputs: [] };
  const builder = new TopologyBuilder();
  const payments = builder.stream('payments', jsonSerde<Payment>(), { timestamp: (p) => p.time });
  const before =
    path === 'prefetch-behind-a-processor'
      ? payments.process<Payment>(() => (p) => ({ ...p, account: p.account.toLowerCase() }))
      : payments.filter((p) => p.amount !== 0).map((p) => ({ ...p, account: p.account.toLowerCase() }));
  before
    .process<string>(
      (ctx) => {
        const balances = ctx.getStore<number>('balances');
        seen.store = balances as KeyValueStoreImpl<number>;
        return (p) => {
          const balance = (balances.get(p.account) ?? 0) + p.amount;
          balances.put(p.account, balance);
          seen.outputs.push(`${p.account}=${balance}`);
          return `${p.account}=${balance}`;
        };
      },
      {
        stores: ['balances'],
        ...(path === 'no-prefetch'
          ? {}
          : { prefetch: { balances: (p: Payment) => p.account.toLowerCase() } }),
      },
    )
    .to(memorySink<string>('balance-lines'));
  return { topology: builder.build(), seen };
}

function payments(from: number, count: number, accounts: number): Payment[] {
  return Array.from({ length: count }, (_, i) => ({
    account: `ACCT-${((from + i) * 7919) % accounts}`,
    amount: ((from + i) % 5) + 1,
    time: T0 + (from + i) * 10,
  }));
}

function recordsOf(values: readonly Payment[], firstOffset: number): RawRecord[] {
  return values.map((value, i) => ({
    topic: 'payments',
    partition: 0,
    offset: BigInt(firstOffset + i),
    timestamp: value.time,
    key: null,
    value: Buffer.from(JSON.stringify(value)),
    headers: {},
  }));
}

function expectedOutputs(values: readonly Payment[]): string[] {
  const balances = new Map<string, number>();
  return values.map((p) => {
    const account = p.account.toLowerCase();
    const balance = (balances.get(account) ?? 0) + p.amount;
    balances.set(account, balance);
    return `${account}=${balance}`;
  });
}

/** Two batches with a reopen in between (a cold cache), returning the outputs and the second batch's synchronous reads. */
async function runTwoBatches(path: Path, cacheMaxBytes: number) {
  const dir = await mkdtemp(join(tmpdir(), 'tributary-kv-prefetch-'));
  const first = payments(0, 2_000, 500);
  const second = payments(2_000, 2_000, 500);
  try {
    const { topology, seen } = balancesTopology(path);
    let task = await topology.openTask({ partition: 0, dir, cache: new CacheBudget(cacheMaxBytes) });
    await task.process(recordsOf(first, 0));
    await task.commit();
    await task.close();
    task = await topology.openTask({ partition: 0, dir, cache: new CacheBudget(cacheMaxBytes) });
    try {
      const store = seen.store as KeyValueStoreImpl<number>;
      const readsBefore = store.syncReads;
      await task.process(recordsOf(second, first.length));
      const syncReads = store.syncReads - readsBefore;
      await task.commit();
      assert.ok(store.residentBytes <= store.limitBytes);
      return {
        outputs: seen.outputs,
        syncReads,
        size: store.size,
        expected: expectedOutputs([...first, ...second]),
      };
    } finally {
      await task.close();
    }
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
}

test('process() with a prefetch option reads its keys before the batch: exact, and no synchronous read', async () => {
  const run = await runTwoBatches('prefetch', 1024 * 1024);
  assert.deepEqual(run.outputs, run.expected);
  assert.equal(run.size, 500);
  assert.equal(run.syncReads, 0);
});

test('without a prefetch option, or behind a stateful step, a cache miss reads LevelDB synchronously: same answers', async () => {
  for (const path of ['no-prefetch', 'prefetch-behind-a-processor'] as const) {
    const run = await runTwoBatches(path, 1024 * 1024);
    assert.deepEqual(run.outputs, run.expected, path);
    assert.equal(run.size, 500, path);
    // Every account of the second batch was read once from disk after the reopen.
    assert.equal(run.syncReads, 500, path);
  }
});

test('a cache too small for a batch evicts prefetched keys before use and falls back to synchronous reads, still exact', async () => {
  const run = await runTwoBatches('prefetch', 2048);
  assert.deepEqual(run.outputs, run.expected);
  assert.equal(run.size, 500);
  assert.ok(run.syncReads > 0);
});

test('a process() prefetch must name one of its stores', () => {
  const builder = new TopologyBuilder();
  assert.throws(
    () =>
      builder
        .stream('payments', jsonSerde<Payment>())
        .process(() => () => undefined, { stores: ['balances'], prefetch: { balance: (p) => p.account } }),
    /prefetch names store "balance", which is not in its stores option/,
  );
});

test('an async punctuation listing a store runs between the records of a batch, in order', async () => {
  const dir = await mkdtemp(join(tmpdir(), 'tributary-kv-punctuation-'));
  try {
    const outputs: string[] = [];
    const builder = new TopologyBuilder();
    builder
      .stream('payments', jsonSerde<Payment>(), { timestamp: (p) => p.time })
      .process<string>(
        (ctx) => {
          const balances = ctx.getStore<number>('balances');
          ctx.schedule(seconds(1), 'event-time', async (time) => {
            const listed: string[] = [];
            for await (const [account, balance] of balances.entries()) listed.push(`${account}=${balance}`);
            outputs.push(`at ${time - T0}: ${listed.join(',')}`);
          });
          return (p) => {
            balances.put(p.account, (balances.get(p.account) ?? 0) + p.amount);
            outputs.push(`${p.account}+${p.amount}`);
          };
        },
        { stores: ['balances'] },
      )
      .to(memorySink<string>('unused'));
    const task = await builder.build().openTask({ partition: 0, dir, cache: new CacheBudget(300) });
    try {
      await task.process(
        recordsOf(
          [
            { account: 'a', amount: 1, time: T0 + 100 },
            { account: 'b', amount: 2, time: T0 + 900 },
            { account: 'a', amount: 3, time: T0 + 1_200 },
            { account: 'c', amount: 4, time: T0 + 1_300 },
          ],
          0,
        ),
      );
      assert.deepEqual(outputs, ['a+1', 'b+2', 'a+3', 'at 1200: a=4,b=2', 'c+4']);
    } finally {
      await task.close();
    }
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
});

test('a store restored from its changelog into an empty folder has the same entries and an exact size', async () => {
  const dirs = [
    await mkdtemp(join(tmpdir(), 'tributary-kv-restore-')),
    await mkdtemp(join(tmpdir(), 'tributary-kv-restore-')),
  ];
  const changelog = memoryChangelog();
  try {
    const owner = balancesTopology('prefetch');
    const task = await owner.topology.openTask({
      partition: 0,
      dir: dirs[0] as string,
      changelog,
      cache: new CacheBudget(2048),
    });
    const values = payments(0, 3_000, 700);
    for (let i = 0; i < values.length; i += 500) {
      await task.process(recordsOf(values.slice(i, i + 500), i));
      await task.commit();
    }
    const ownerEntries = await task
      .stores()
      .find((view) => view.name === 'balances')
      ?.entries();
    assert.equal(ownerEntries?.length, 700);
    await task.close();

    const next = balancesTopology('prefetch');
    const restored = await next.topology.openTask({
      partition: 0,
      dir: dirs[1] as string,
      changelog,
      cache: new CacheBudget(2048),
    });
    try {
      const view = restored.stores().find((store) => store.name === 'balances');
      assert.equal(view?.approximateSize(), 700);
      assert.deepEqual(await view?.entries(), ownerEntries);
      await restored.process(recordsOf([{ account: 'ACCT-1', amount: 1, time: T0 + 99_999 }], values.length));
      const expected = expectedOutputs([...values, { account: 'ACCT-1', amount: 1, time: T0 + 99_999 }]);
      assert.deepEqual(next.seen.outputs, expected.slice(-1));
    } finally {
      await restored.close();
    }
  } finally {
    for (const dir of dirs) await rm(dir, { recursive: true, force: true });
  }
});
