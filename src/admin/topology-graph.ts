/**
 * The topology as a graph the console draws (`GET /topology.json`): every source, operator, sink,
 * state store and the dead-letter topic as a node, placed in layers from left to right (a node's
 * layer is the longest path to it from a source), and ordered within a layer so that edges cross
 * little (each node sits near the average position of its parents). The console only turns layer
 * and order into coordinates.
 */

/**
 * What the graph is built from: the topology's `describe()` (src/topology/topology.ts,
 * TopologyDescription), restated here because the admin folder does not import the topology.
 */
export interface TopologyShape {
  sources: ReadonlyArray<{ name: string; topic: string }>;
  processors: ReadonlyArray<{ name: string; kind: string; detail: string; stores: readonly string[] }>;
  stores: ReadonlyArray<{ name: string; kind: string }>;
  sinks: ReadonlyArray<{ name: string; sink: string; kind: string }>;
  edges: ReadonlyArray<{ from: string; to: string; port?: string }>;
  dlqTopic?: string;
  warnings: readonly string[];
}

export type GraphNodeKind = 'source' | 'processor' | 'store' | 'sink' | 'dlq';

export interface GraphNode {
  /** Unique across kinds: an operator and its store often share a name. */
  id: string;
  kind: GraphNodeKind;
  name: string;
  /** The operator's kind, the store's kind, the sink's kind; `topic` for sources and the DLQ. */
  type: string;
  /** What it does or where it reads/writes (a topic, a table, the operator's settings). */
  detail: string;
  /** Column, from 0 (the sources). */
  layer: number;
  /** Row within the column, from 0. */
  order: number;
}

export interface GraphEdge {
  from: string;
  to: string;
  /** `flow`: values pass; `store`: the operator reads and writes that store. */
  kind: 'flow' | 'store';
  /** A named output (e.g. `late`), when not the main one. */
  port?: string;
}

export interface TopologyGraph {
  nodes: GraphNode[];
  edges: GraphEdge[];
  /** Number of columns. */
  layers: number;
  warnings: string[];
}

const nodeId = (name: string) => `node:${name}`;
const storeId = (name: string) => `store:${name}`;
const DLQ_ID = 'dlq';

type Unplaced = Omit<GraphNode, 'layer' | 'order'>;

export function topologyGraph(shape: TopologyShape): TopologyGraph {
  const flowNodes: Unplaced[] = [
    ...shape.sources.map((s) => ({
      id: nodeId(s.name),
      kind: 'source' as const,
      name: s.name,
      type: 'topic',
      detail: s.topic,
    })),
    ...shape.processors.map((p) => ({
      id: nodeId(p.name),
      kind: 'processor' as const,
      name: p.name,
      type: p.kind,
      detail: p.detail,
    })),
    ...shape.sinks.map((s) => ({
      id: nodeId(s.name),
      kind: 'sink' as const,
      name: s.name,
      type: s.kind,
      detail: s.sink,
    })),
  ];
  const known = new Set(flowNodes.map((n) => n.id));
  const flowEdges: GraphEdge[] = shape.edges
    .filter((e) => known.has(nodeId(e.from)) && known.has(nodeId(e.to)))
    .map((e) => ({
      from: nodeId(e.from),
      to: nodeId(e.to),
      kind: 'flow' as const,
      ...(e.port === undefined ? {} : { port: e.port }),
    }));

  const layerOf = longestPathLayers(flowNodes, flowEdges);
  const storeEdges: GraphEdge[] = [];
  const storeLayer = new Map<string, number>();
  for (const processor of shape.processors) {
    for (const store of processor.stores) {
      storeEdges.push({ from: nodeId(processor.name), to: storeId(store), kind: 'store' });
      const layer = layerOf.get(nodeId(processor.name)) ?? 0;
      storeLayer.set(store, Math.min(storeLayer.get(store) ?? layer, layer));
    }
  }
  const lastLayer = Math.max(0, ...layerOf.values());

  const placed = orderWithinLayers(flowNodes, flowEdges, layerOf);
  const rowsUsed = new Map<number, number>();
  for (const node of placed)
    rowsUsed.set(node.layer, Math.max(rowsUsed.get(node.layer) ?? 0, node.order + 1));
  const below = (layer: number) => {
    const row = rowsUsed.get(layer) ?? 0;
    rowsUsed.set(layer, row + 1);
    return row;
  };
  // Stores sit under the operator that owns them; the DLQ under the sinks.
  for (const store of shape.stores) {
    const layer = storeLayer.get(store.name) ?? 0;
    placed.push({
      id: storeId(store.name),
      kind: 'store',
      name: store.name,
      type: store.kind,
      detail: '',
      layer,
      order: below(layer),
    });
  }
  placed.push({
    id: DLQ_ID,
    kind: 'dlq',
    name: 'dead letters',
    type: 'topic',
    detail: shape.dlqTopic ?? "the app's DLQ topic",
    layer: lastLayer,
    order: below(lastLayer),
  });

  return {
    nodes: placed,
    edges: [...flowEdges, ...storeEdges],
    layers: lastLayer + 1,
    warnings: [...shape.warnings],
  };
}

/** Layer = length of the longest path from a node without parents (a DAG; a cycle is cut where met). */
function longestPathLayers(nodes: readonly Unplaced[], edges: readonly GraphEdge[]): Map<string, number> {
  const parents = new Map<string, string[]>();
  for (const edge of edges) parents.set(edge.to, [...(parents.get(edge.to) ?? []), edge.from]);
  const layers = new Map<string, number>();
  const visiting = new Set<string>();
  const layerOf = (id: string): number => {
    const known = layers.get(id);
    if (known !== undefined) return known;
    if (visiting.has(id)) return 0;
    visiting.add(id);
    const layer = Math.max(-1, ...(parents.get(id) ?? []).map(layerOf)) + 1;
    visiting.delete(id);
    layers.set(id, layer);
    return layer;
  };
  for (const node of nodes) layerOf(node.id);
  return layers;
}

/** Layer by layer: nodes sorted by the mean row of their parents (ties keep the topology's order). */
function orderWithinLayers(
  nodes: readonly Unplaced[],
  edges: readonly GraphEdge[],
  layerOf: ReadonlyMap<string, number>,
): GraphNode[] {
  const parents = new Map<string, string[]>();
  for (const edge of edges) parents.set(edge.to, [...(parents.get(edge.to) ?? []), edge.from]);
  const rowOf = new Map<string, number>();
  const byLayer = new Map<number, Unplaced[]>();
  for (const node of nodes) {
    const layer = layerOf.get(node.id) ?? 0;
    byLayer.set(layer, [...(byLayer.get(layer) ?? []), node]);
  }
  const placed: GraphNode[] = [];
  for (const layer of [...byLayer.keys()].sort((a, b) => a - b)) {
    const column = byLayer.get(layer) ?? [];
    const weight = (node: Unplaced, index: number) => {
      const rows = (parents.get(node.id) ?? []).flatMap((p) => {
        const row = rowOf.get(p);
        return row === undefined ? [] : [row];
      });
      return rows.length === 0 ? index : rows.reduce((a, b) => a + b, 0) / rows.length;
    };
    const sorted = column
      .map((node, index) => ({ node, index, weight: weight(node, index) }))
      .sort((a, b) => a.weight - b.weight || a.index - b.index);
    sorted.forEach(({ node }, order) => {
      rowOf.set(node.id, order);
      placed.push({ ...node, layer, order });
    });
  }
  return placed;
}
