import assert from 'node:assert/strict';
import { test } from 'node:test';
import { TopologyBuilder, count, minutes, tumbling } from '../../../src/index.js';
import type { Topology } from '../../../src/topology/topology.js';
import { SKIP } from '../../../src/topology/graph.js';
import { planPrefetch } from '../../../src/topology/prefetch-plan.js';
import type { PrefetchPath } from '../../../src/topology/prefetch-plan.js';
import { jsonSerde } from './helpers.js';

interface Payment {
  id: string;
  account: string;
  amount: number;
}

/** A path as the test compares it: its topic, the read's kind, and what its steps make of a value. */
function shown(path: PrefetchPath, value: Payment): [string, string, unknown] {
  let passed: unknown = value;
  for (const step of path.steps) if (passed !== SKIP) passed = step(passed);
  const read = path.read;
  const named = passed === SKIP ? 'skipped' : read.kind === 'keys' ? read.keysOf(passed) : read.keyOf(passed);
  return [path.topic, read.kind, named];
}

function topology(): Topology {
  const builder = new TopologyBuilder();
  const payments = builder.stream('payments', jsonSerde<Payment>());
  const refunds = builder.stream('refunds', jsonSerde<Payment>());
  const checked = payments
    .merge(refunds)
    .filter((p) => p.amount !== 0)
    .map((p) => ({ ...p, account: p.account.toUpperCase() }))
    .dedupe((p) => p.id, { name: 'seen', horizon: minutes(10) });
  const balanced = checked.process<Payment>(() => (p) => p, {
    stores: ['balances', 'limits'],
    prefetch: { balances: (p) => p.account, limits: (p) => [p.account, 'default'] },
  });
  // Behind a processor: what it passes on is not known before the batch runs.
  balanced.process<Payment>(() => (p) => p, { stores: ['late'], prefetch: { late: (p) => p.account } });
  checked
    .groupBy((p) => p.account)
    .window(tumbling(minutes(1)), { name: 'per-account' })
    .aggregate({ count: count() });
  return builder.build();
}

test('the planner names every declared read reached through lookaheads, on each route from a source', () => {
  const plan = planPrefetch(topology().nodes);
  assert.deepEqual([...plan.keys()].sort(), ['balances', 'limits', 'per-account', 'seen']);
  const value: Payment = { id: 'p1', account: 'acme', amount: 5 };
  const of = (store: string) => (plan.get(store) ?? []).map((path) => shown(path, value));
  assert.deepEqual(of('seen'), [
    ['payments', 'keys', 'p1'],
    ['refunds', 'keys', 'p1'],
  ]);
  assert.deepEqual(of('balances'), [
    ['payments', 'keys', 'ACME'],
    ['refunds', 'keys', 'ACME'],
  ]);
  assert.deepEqual(of('limits')[0], ['payments', 'keys', ['ACME', 'default']]);
  assert.deepEqual(of('per-account')[1], ['refunds', 'window', 'ACME']);
  // The filter's lookahead is on the path: a value it drops names nothing.
  assert.deepEqual(shown(plan.get('seen')?.[0] as PrefetchPath, { ...value, amount: 0 }), [
    'payments',
    'keys',
    'skipped',
  ]);
});

test('a read behind a step without a lookahead (a process()) is not planned: its store reads on demand', () => {
  assert.equal(planPrefetch(topology().nodes).has('late'), false);
});
