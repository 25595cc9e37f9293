// The topology graph the console draws (/topology.json): every node once, placed in layers from the
// sources (longest path), stores under the operator that owns them, the DLQ under the sinks, and
// rows ordered after the parents so that branches do not cross.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { topologyGraph } from '../../../src/admin/topology-graph.js';
import type { GraphNode, TopologyShape } from '../../../src/admin/topology-graph.js';
import { json, memorySink, minutes, sum, TopologyBuilder, tumbling } from '../../../src/index.js';

const at = (nodes: GraphNode[], id: string) => {
  const node = nodes.find((n) => n.id === id);
  assert.ok(node, `node ${id}`);
  return [node.layer, node.order];
};

test('a pipeline: one column per step, the stores under their operators, the DLQ under the sink', () => {
  const builder = new TopologyBuilder();
  builder
    .stream('usage', json<{ id: string; subject: string; value: number }>())
    .dedupe((e) => e.id, { horizon: minutes(10), name: 'dedupe-id' })
    .groupBy((e) => ({ subject: e.subject }))
    .window(tumbling(minutes(1)), { name: 'per-minute' })
    .aggregate({ total: sum((e: { value: number }) => e.value) })
    .to(memorySink('out'));
  const graph = topologyGraph(builder.build().describe({ dlqTopic: 'app.dlq' }));

  assert.equal(graph.layers, 4);
  assert.deepEqual(
    graph.nodes.map((n) => [n.id, n.kind, n.layer, n.order]),
    [
      ['node:source-0', 'source', 0, 0],
      ['node:dedupe-id', 'processor', 1, 0],
      ['node:per-minute', 'processor', 2, 0],
      ['node:sink-3', 'sink', 3, 0],
      // An operator and its store share a name; their ids differ.
      ['store:dedupe-id', 'store', 1, 1],
      ['store:per-minute', 'store', 2, 1],
      ['dlq', 'dlq', 3, 1],
    ],
  );
  assert.deepEqual(
    graph.edges.map((e) => `${e.from} -${e.kind}-> ${e.to}`),
    [
      'node:source-0 -flow-> node:dedupe-id',
      'node:dedupe-id -flow-> node:per-minute',
      'node:per-minute -flow-> node:sink-3',
      'node:dedupe-id -store-> store:dedupe-id',
      'node:per-minute -store-> store:per-minute',
    ],
  );
  const source = graph.nodes.find((n) => n.kind === 'source');
  assert.deepEqual([source?.type, source?.detail], ['topic', 'usage']);
  assert.equal(graph.nodes.find((n) => n.kind === 'dlq')?.detail, 'app.dlq');
  assert.equal(graph.nodes.find((n) => n.kind === 'sink')?.detail, 'out');
});

const shape = (overrides: Partial<TopologyShape>): TopologyShape => ({
  sources: [],
  processors: [],
  stores: [],
  sinks: [],
  edges: [],
  warnings: [],
  ...overrides,
});

test('a node is placed after its longest path; branches keep the rows of their parents', () => {
  const processor = (name: string) => ({ name, kind: 'map', detail: '', stores: [] });
  const graph = topologyGraph(
    shape({
      sources: [
        { name: 'a', topic: 'ta' },
        { name: 'b', topic: 'tb' },
      ],
      // b -> b1; a -> a1 -> a2; the merge m after both (longest path: 3); a late port out of a1.
      processors: [processor('b1'), processor('a1'), processor('a2'), processor('m')],
      sinks: [
        { name: 'late-sink', sink: 'late', kind: 'memory' },
        { name: 'out', sink: 'out', kind: 'memory' },
      ],
      edges: [
        { from: 'b', to: 'b1' },
        { from: 'a', to: 'a1' },
        { from: 'a1', to: 'a2' },
        { from: 'a2', to: 'm' },
        { from: 'b1', to: 'm' },
        { from: 'm', to: 'out' },
        { from: 'a1', to: 'late-sink', port: 'late' },
      ],
    }),
  );
  const { nodes } = graph;
  assert.deepEqual(at(nodes, 'node:a'), [0, 0]);
  assert.deepEqual(at(nodes, 'node:b'), [0, 1]);
  // b1 (parent b, row 1) sorts below a1 (parent a, row 0) although the topology lists it first.
  assert.deepEqual(at(nodes, 'node:a1'), [1, 0]);
  assert.deepEqual(at(nodes, 'node:b1'), [1, 1]);
  assert.deepEqual(at(nodes, 'node:a2'), [2, 0]);
  assert.deepEqual(at(nodes, 'node:late-sink'), [2, 1]);
  assert.deepEqual(at(nodes, 'node:m'), [3, 0]);
  assert.deepEqual(at(nodes, 'node:out'), [4, 0]);
  assert.deepEqual(at(nodes, 'dlq'), [4, 1]);
  assert.equal(graph.layers, 5);
  assert.deepEqual(
    graph.edges.find((e) => e.to === 'node:late-sink'),
    { from: 'node:a1', to: 'node:late-sink', kind: 'flow', port: 'late' },
  );
  // No two nodes share a place.
  assert.equal(new Set(nodes.map((n) => `${n.layer}/${n.order}`)).size, nodes.length);
});

test('edges to unknown nodes are left out and a cycle does not hang the layout', () => {
  const graph = topologyGraph(
    shape({
      sources: [{ name: 's', topic: 't' }],
      processors: [
        { name: 'x', kind: 'map', detail: '', stores: [] },
        { name: 'y', kind: 'map', detail: '', stores: [] },
      ],
      edges: [
        { from: 's', to: 'x' },
        { from: 'x', to: 'y' },
        { from: 'y', to: 'x' },
        { from: 'x', to: 'nowhere' },
      ],
      warnings: ['x reaches no sink'],
    }),
  );
  assert.equal(graph.edges.length, 3);
  assert.equal(graph.nodes.length, 4); // s, x, y, the DLQ
  assert.deepEqual(graph.warnings, ['x reaches no sink']);
  assert.equal(graph.nodes.find((n) => n.kind === 'dlq')?.detail, "the app's DLQ topic");
});
