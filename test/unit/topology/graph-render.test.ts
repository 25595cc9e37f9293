import assert from 'node:assert/strict';
import { test } from 'node:test';
import {
  TopologyBuilder,
  count,
  memorySink,
  minutes,
  renderTopologyGraph,
  tumbling,
} from '../../../src/index.js';
import { jsonSerde } from './helpers.js';

interface Click {
  id: string;
  page: string;
}

function clicks() {
  const builder = new TopologyBuilder();
  const perPage = builder
    .stream('clicks', jsonSerde<Click>())
    .dedupe((click) => click.id, { horizon: minutes(10), name: 'click-ids' })
    .groupBy((click) => click.page)
    .window(tumbling(minutes(1)), { name: 'clicks-1m', late: 'side-output' })
    .aggregate({ clicks: count() });
  perPage.to(memorySink('per-page'));
  perPage.lateEvents().to(memorySink('late "clicks"'));
  return builder.build().describe();
}

test('mermaid: a node per source, processor, sink and store; the flow, the late port and the store links', () => {
  const graph = renderTopologyGraph(clicks(), 'mermaid');
  const lines = graph.split('\n');
  assert.equal(lines[0], 'flowchart LR');
  assert.ok(lines.includes('  n0(["source-0<br/>topic clicks"])'), graph);
  assert.ok(lines.includes('  n1["click-ids<br/>dedupe horizon 600000 ms<br/>per input partition"]'), graph);
  assert.ok(lines.includes('  n4[/"sink-4<br/>memory late #quot;clicks#quot;"/]'), 'quotes escaped');
  assert.ok(lines.includes('  s6[("clicks-1m<br/>window store")]'), graph);
  assert.deepEqual(
    lines.filter((line) => /--|-\.-/.test(line)),
    ['  n0 --> n1', '  n1 --> n2', '  n2 --> n3', '  n2 -->|late| n4', '  n1 -.- s5', '  n2 -.- s6'],
  );
});

test('dot: the same graph as a digraph with shapes, the late edge labelled and stores dashed', () => {
  const graph = renderTopologyGraph(clicks(), 'dot');
  const lines = graph.split('\n');
  assert.equal(lines[0], 'digraph topology {');
  assert.equal(lines[lines.length - 1], '}');
  assert.ok(lines.includes('  n0 [label="source-0\\ntopic clicks", shape=ellipse];'), graph);
  assert.ok(lines.includes('  n4 [label="sink-4\\nmemory late \\"clicks\\"", shape=parallelogram];'), graph);
  assert.ok(lines.includes('  n2 -> n4 [label="late"];'), graph);
  assert.ok(lines.includes('  n2 -> s6 [style=dashed, arrowhead=none];'), graph);
  assert.equal(lines.filter((line) => line.includes(' -> ')).length, 6);
});
