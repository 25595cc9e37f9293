/**
 * A built topology: the frozen DAG, its describe() views, and openTask() for the runtime and the test
 * driver.
 */
import type { Serde } from '../serde/types.js';
import type { StoreKind } from '../state/db.js';
import { openPartitionTask } from './engine.js';
import type { NodeSpec, SinkPlan, SourceSpec, StoreSpec, TaskPlan } from './graph.js';
import { planSinks } from './sink-plan.js';
import type { OpenTaskOptions, PartitionTask, RunnableTopology } from '../core/task.js';

export interface TopologyDescription {
  sources: Array<{ name: string; topic: string }>;
  processors: Array<{ name: string; kind: string; detail: string; stores: string[] }>;
  stores: Array<{ name: string; kind: StoreKind }>;
  sinks: Array<{ name: string; sink: string; kind: string }>;
  edges: Array<{ from: string; to: string; port?: string }>;
}

export class Topology implements RunnableTopology, TaskPlan {
  readonly sourceTopics: readonly string[];
  readonly sinks: readonly SinkPlan[];

  constructor(
    /** @internal */ readonly nodes: readonly NodeSpec[],
    /** @internal */ readonly storeSpecs: readonly StoreSpec[],
    /** @internal */ readonly sources: readonly SourceSpec[],
  ) {
    if (sources.length === 0) throw new Error('a topology needs at least one stream()');
    this.sourceTopics = sources.map((source) => source.topic);
    this.sinks = planSinks(nodes);
  }

  openTask(options: OpenTaskOptions): Promise<PartitionTask> {
    return openPartitionTask(this, options);
  }

  /** The serde of a source topic (the test driver serializes test input with it). */
  sourceSerde(topic: string): Serde<unknown> | undefined {
    return this.sources.find((source) => source.topic === topic)?.serde;
  }

  describe(): TopologyDescription {
    const description: TopologyDescription = {
      sources: [],
      processors: [],
      stores: [],
      sinks: [],
      edges: [],
    };
    for (const node of this.nodes) {
      if (node.kind === 'source') description.sources.push({ name: node.name, topic: node.topic ?? '' });
      else if (node.kind === 'sink' && node.sink)
        description.sinks.push({ name: node.name, sink: node.sink.name, kind: node.sink.kind });
      else
        description.processors.push({
          name: node.name,
          kind: node.kind,
          detail: node.detail,
          stores: [...node.stores],
        });
      for (const parent of node.parents) {
        description.edges.push(
          parent.port === undefined
            ? { from: parent.node, to: node.name }
            : { from: parent.node, to: node.name, port: parent.port },
        );
      }
    }
    description.stores = this.storeSpecs.map((store) => ({ name: store.name, kind: store.kind }));
    return description;
  }

  /** A text rendering of describe(), one line per node with its successors, in the spirit of Kafka Streams. */
  describeText(): string {
    const description = this.describe();
    const successors = (name: string): string =>
      description.edges
        .filter((edge) => edge.from === name)
        .map((edge) => (edge.port ? `${edge.to} (${edge.port})` : edge.to))
        .join(', ') || 'none';
    const predecessors = (name: string): string =>
      description.edges
        .filter((edge) => edge.to === name)
        .map((edge) => edge.from)
        .join(', ');
    const lines = ['Topology'];
    for (const node of this.nodes) {
      if (node.kind === 'source') {
        lines.push(`  Source: ${node.name} (${node.detail})`, `    --> ${successors(node.name)}`);
      } else if (node.kind === 'sink') {
        lines.push(`  Sink: ${node.name} (${node.detail})`, `    <-- ${predecessors(node.name)}`);
      } else {
        const stores = node.stores.length > 0 ? ` stores: [${node.stores.join(', ')}]` : '';
        const detail = node.detail ? ` ${node.detail}` : '';
        lines.push(
          `  Processor: ${node.name} (${node.kind}${detail})${stores}`,
          `    --> ${successors(node.name)}`,
          `    <-- ${predecessors(node.name)}`,
        );
      }
    }
    if (description.stores.length > 0) {
      lines.push('Stores', ...description.stores.map((store) => `  ${store.name} (${store.kind})`));
    }
    return lines.join('\n');
  }
}
