// Draws the topology graph of /topology.json in an SVG: the server placed every node in a layer
// (column) and an order (row); here they become boxes, flow edges become arrows from left to right,
// and an operator's store hangs under it on a dashed line.

import { svg } from './dom.js';

const NODE_WIDTH = 190;
const NODE_HEIGHT = 56;
const COLUMN_GAP = 60;
const ROW_GAP = 28;
const MARGIN = 12;
const DETAIL_CHARS = 30;

const KIND_LABELS = {
  source: 'source',
  processor: 'operator',
  store: 'store',
  sink: 'sink',
  dlq: 'dead letters',
};

function position(node) {
  return {
    x: MARGIN + node.layer * (NODE_WIDTH + COLUMN_GAP),
    y: MARGIN + node.order * (NODE_HEIGHT + ROW_GAP),
  };
}

const cut = (text, max) => (text.length > max ? `${text.slice(0, max - 1)}…` : text);

function nodeBox(node) {
  const { x, y } = position(node);
  const subtitle = node.detail ? `${node.type} · ${node.detail}` : node.type;
  return svg(
    'g',
    {
      class: `node node-${node.kind}`,
      'data-node-id': node.id,
      'data-kind': node.kind,
      transform: `translate(${x},${y})`,
    },
    svg('title', {}, `${KIND_LABELS[node.kind] ?? node.kind} ${node.name}\n${subtitle}`),
    svg('rect', { width: NODE_WIDTH, height: NODE_HEIGHT, rx: node.kind === 'store' ? 14 : 6 }),
    svg('text', { x: 10, y: 18, class: 'node-kind' }, KIND_LABELS[node.kind] ?? node.kind),
    svg('text', { x: 10, y: 34, class: 'node-name' }, cut(node.name, 26)),
    svg('text', { x: 10, y: 49, class: 'node-detail' }, cut(subtitle, DETAIL_CHARS)),
  );
}

function edgePath(edge, from, to) {
  const a = position(from);
  const b = position(to);
  if (edge.kind === 'store' && from.layer === to.layer) {
    // Straight down from the operator to its store.
    const x = a.x + NODE_WIDTH / 2;
    return `M ${x} ${a.y + NODE_HEIGHT} L ${x} ${b.y}`;
  }
  const x1 = a.x + NODE_WIDTH;
  const y1 = a.y + NODE_HEIGHT / 2;
  const x2 = b.x;
  const y2 = b.y + NODE_HEIGHT / 2;
  const bend = Math.max(20, (x2 - x1) / 2);
  return `M ${x1} ${y1} C ${x1 + bend} ${y1}, ${x2 - bend} ${y2}, ${x2} ${y2}`;
}

/** Replaces the content of `target` (an <svg>) with the graph. */
export function renderGraph(target, graph) {
  const byId = new Map(graph.nodes.map((node) => [node.id, node]));
  const rows = Math.max(1, ...graph.nodes.map((node) => node.order + 1));
  const width = 2 * MARGIN + graph.layers * NODE_WIDTH + (graph.layers - 1) * COLUMN_GAP;
  const height = 2 * MARGIN + rows * NODE_HEIGHT + (rows - 1) * ROW_GAP;
  target.setAttribute('viewBox', `0 0 ${width} ${height}`);
  target.setAttribute('width', String(width));
  target.setAttribute('height', String(height));

  const marker = svg(
    'marker',
    { id: 'arrow', viewBox: '0 0 10 10', refX: 9, refY: 5, markerWidth: 7, markerHeight: 7, orient: 'auto' },
    svg('path', { d: 'M 0 0 L 10 5 L 0 10 z' }),
  );
  const edges = graph.edges.flatMap((edge) => {
    const from = byId.get(edge.from);
    const to = byId.get(edge.to);
    if (!from || !to) return [];
    const path = svg('path', {
      class: `edge edge-${edge.kind}`,
      d: edgePath(edge, from, to),
      'marker-end': edge.kind === 'flow' ? 'url(#arrow)' : undefined,
    });
    if (!edge.port) return [path];
    const a = position(from);
    return [
      path,
      svg('text', { class: 'edge-port', x: a.x + NODE_WIDTH + 6, y: a.y + NODE_HEIGHT / 2 - 6 }, edge.port),
    ];
  });
  target.replaceChildren(svg('defs', {}, marker), ...edges, ...graph.nodes.map(nodeBox));
}
