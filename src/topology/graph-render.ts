/**
 * The topology as a graph for documents and tools: Mermaid (renders on GitHub and in most wikis) or
 * Graphviz DOT. Sources, processors and sinks are nodes joined by the record flow (a named port, e.g.
 * `late`, labels its edge); stores are drawn apart, joined to the processors that use them by a dashed
 * line.
 */
import type { TopologyDescription } from './topology.js';

export type GraphFormat = 'mermaid' | 'dot';

export const GRAPH_FORMATS: readonly GraphFormat[] = ['mermaid', 'dot'];

interface GraphNode {
  id: string;
  label: string[];
  shape: 'source' | 'processor' | 'sink' | 'store';
}

function nodesOf(description: TopologyDescription): { nodes: GraphNode[]; ids: Map<string, string> } {
  const nodes: GraphNode[] = [];
  const ids = new Map<string, string>();
  const add = (name: string, label: string[], shape: GraphNode['shape']) => {
    const id = `${shape === 'store' ? 's' : 'n'}${nodes.length}`;
    ids.set(shape === 'store' ? `store:${name}` : name, id);
    nodes.push({ id, label, shape });
  };
  for (const source of description.sources)
    add(source.name, [source.name, `topic ${source.topic}`], 'source');
  // A long detail (a window aggregate's) reads better as its `;`-separated parts, one per line.
  for (const processor of description.processors)
    add(
      processor.name,
      [processor.name, ...`${processor.kind} ${processor.detail}`.trim().split('; ')],
      'processor',
    );
  for (const sink of description.sinks) add(sink.name, [sink.name, `${sink.kind} ${sink.sink}`], 'sink');
  for (const store of description.stores) add(store.name, [store.name, `${store.kind} store`], 'store');
  return { nodes, ids };
}

/** The edges of the record flow, then each processor's store links. */
function edgesOf(description: TopologyDescription, ids: Map<string, string>) {
  const flow = description.edges.flatMap((edge) => {
    const from = ids.get(edge.from);
    const to = ids.get(edge.to);
    return from === undefined || to === undefined ? [] : [{ from, to, port: edge.port }];
  });
  const stores = description.processors.flatMap((processor) =>
    processor.stores.flatMap((store) => {
      const from = ids.get(processor.name);
      const to = ids.get(`store:${store}`);
      return from === undefined || to === undefined ? [] : [{ from, to }];
    }),
  );
  return { flow, stores };
}

/** Mermaid's text inside quotes: `"` and `#` are its escapes, lines are joined with `<br/>`. */
function mermaidText(lines: readonly string[]): string {
  return lines
    .map((line) =>
      line.replace(/#/g, '#35;').replace(/"/g, '#quot;').replace(/</g, '#lt;').replace(/>/g, '#gt;'),
    )
    .join('<br/>');
}

const MERMAID_SHAPES: Record<GraphNode['shape'], [string, string]> = {
  source: ['([', '])'],
  processor: ['[', ']'],
  sink: ['[/', '/]'],
  store: ['[(', ')]'],
};

function mermaid(description: TopologyDescription): string {
  const { nodes, ids } = nodesOf(description);
  const { flow, stores } = edgesOf(description, ids);
  const lines = ['flowchart LR'];
  for (const node of nodes) {
    const [open, close] = MERMAID_SHAPES[node.shape];
    lines.push(`  ${node.id}${open}"${mermaidText(node.label)}"${close}`);
  }
  for (const edge of flow)
    lines.push(
      edge.port === undefined
        ? `  ${edge.from} --> ${edge.to}`
        : `  ${edge.from} -->|${mermaidText([edge.port])}| ${edge.to}`,
    );
  for (const edge of stores) lines.push(`  ${edge.from} -.- ${edge.to}`);
  return lines.join('\n');
}

/** A DOT string literal: backslashes and quotes escaped, lines joined with `\n`. */
function dotText(lines: readonly string[]): string {
  return `"${lines.map((line) => line.replace(/\\/g, '\\\\').replace(/"/g, '\\"')).join('\\n')}"`;
}

const DOT_SHAPES: Record<GraphNode['shape'], string> = {
  source: 'shape=ellipse',
  processor: 'shape=box',
  sink: 'shape=parallelogram',
  store: 'shape=cylinder',
};

function dot(description: TopologyDescription): string {
  const { nodes, ids } = nodesOf(description);
  const { flow, stores } = edgesOf(description, ids);
  const lines = ['digraph topology {', '  rankdir=LR;', '  node [fontname="Helvetica"];'];
  for (const node of nodes)
    lines.push(`  ${node.id} [label=${dotText(node.label)}, ${DOT_SHAPES[node.shape]}];`);
  for (const edge of flow)
    lines.push(
      edge.port === undefined
        ? `  ${edge.from} -> ${edge.to};`
        : `  ${edge.from} -> ${edge.to} [label=${dotText([edge.port])}];`,
    );
  for (const edge of stores) lines.push(`  ${edge.from} -> ${edge.to} [style=dashed, arrowhead=none];`);
  lines.push('}');
  return lines.join('\n');
}

export function renderTopologyGraph(description: TopologyDescription, format: GraphFormat): string {
  return format === 'mermaid' ? mermaid(description) : dot(description);
}
