/**
 * A built topology: the frozen DAG, its describe() views, and openTask() for the runtime and the test
 * driver.
 */
import type { Serde } from '../serde/types.js';
import type { StoreKind } from '../state/store-layout.js';
import { openPartitionTask, openStandbyState } from './engine.js';
import type { NodeSpec, SinkPlan, SourceSpec, TaskPlan } from './graph.js';
import type { StoreSpec } from '../state/store-spec.js';
import { planSinks } from './sink-plan.js';
import { DLQ_OUTBOX } from '../core/task.js';
import type { OpenTaskOptions, PartitionTask, RunnableTopology, StandbyState } from '../core/task.js';

export interface TopologyDescription {
  sources: Array<{ name: string; topic: string }>;
  processors: Array<{ name: string; kind: string; detail: string; stores: string[] }>;
  stores: Array<{ name: string; kind: StoreKind }>;
  sinks: Array<{ name: string; sink: string; kind: string }>;
  edges: Array<{ from: string; to: string; port?: string }>;
  /** Where dead letters go, when the caller said (the App does, from its configuration). */
  dlqTopic?: string;
  /** Likely mistakes, e.g. a stream whose values reach no sink. */
  warnings: string[];
}

export interface DescribeOptions {
  /** The DLQ topic to show (the App passes its configured one). */
  dlqTopic?: string;
}

export class Topology implements RunnableTopology, TaskPlan {
  readonly sourceTopics: readonly string[];
  readonly sinks: readonly SinkPlan[];
  readonly storeNames: readonly string[];

  constructor(
    /** @internal */ readonly nodes: readonly NodeSpec[],
    /** @internal */ readonly storeSpecs: readonly StoreSpec[],
    /** @internal */ readonly sources: readonly SourceSpec[],
  ) {
    if (sources.length === 0) throw new Error('a topology needs at least one stream()');
    this.sourceTopics = sources.map((source) => source.topic);
    this.sinks = planSinks(nodes);
    this.storeNames = [
      ...storeSpecs.map((store) => store.name),
      DLQ_OUTBOX,
      ...this.sinks.map((s) => s.spec.name),
    ];
  }

  openTask(options: OpenTaskOptions): Promise<PartitionTask> {
    return openPartitionTask(this, options);
  }

  openStandby(options: { partition: number; dir: string }): Promise<StandbyState> {
    return openStandbyState(this, options);
  }

  /** The serde of a source topic (the test driver serializes test input with it). */
  sourceSerde(topic: string): Serde<unknown> | undefined {
    return this.sources.find((source) => source.topic === topic)?.serde;
  }

  describe(options: DescribeOptions = {}): TopologyDescription {
    const description: TopologyDescription = {
      sources: [],
      processors: [],
      stores: [],
      sinks: [],
      edges: [],
      ...(options.dlqTopic === undefined ? {} : { dlqTopic: options.dlqTopic }),
      warnings: danglingStreamWarnings(this.nodes),
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
  describeText(options: DescribeOptions = {}): string {
    const description = this.describe(options);
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
    const partitioned = partitionScopeNote(this.nodes);
    if (partitioned !== undefined) lines.push(partitioned);
    lines.push(
      `Dead letters: ${description.dlqTopic === undefined ? "the app's DLQ topic (<appId>.dlq unless configured)" : `topic ${description.dlqTopic}`}` +
        ' (records that fail to decode or validate, late events with late: dlq, and records whose processing throws)',
    );
    lines.push(...description.warnings.map((warning) => `Warning: ${warning}`));
    return lines.join('\n');
  }
}

/**
 * A stream that reaches no sink is almost always a forgotten `.to()`: its values are computed and
 * dropped. One warning per dead end (a node other than a sink with nothing on its main output),
 * naming the path that leads to it from its source.
 */
function danglingStreamWarnings(nodes: readonly NodeSpec[]): string[] {
  const byName = new Map(nodes.map((node) => [node.name, node]));
  const feedsMainOutput = new Set<string>();
  for (const node of nodes) {
    for (const parent of node.parents) if (parent.port === undefined) feedsMainOutput.add(parent.node);
  }
  const warnings: string[] = [];
  for (const node of nodes) {
    if (node.kind === 'sink' || feedsMainOutput.has(node.name)) continue;
    const path: string[] = [];
    for (let at: NodeSpec | undefined = node; at !== undefined; at = byName.get(at.parents[0]?.node ?? '')) {
      path.unshift(at.kind === 'source' ? `${at.name} (topic ${at.topic ?? ''})` : at.name);
      if (path.length > nodes.length) break; // a DAG has no cycles; this only guards the loop
    }
    warnings.push(
      `${node.name} (${node.kind}) reaches no sink: the values of ${path.join(' -> ')} are dropped; ` +
        'end that stream with .to(sink)',
    );
  }
  return warnings;
}

/**
 * What a user must know before trusting a dedupe or an aggregate: a task runs one input partition, so
 * the node sees that partition's records only. Said in describe() because nothing else would tell them
 * until the totals came out wrong.
 */
function partitionScopeNote(nodes: readonly NodeSpec[]): string | undefined {
  const dedupes = nodes.filter((node) => node.kind === 'dedupe').map((node) => node.name);
  const aggregates = nodes.filter((node) => node.kind === 'window-aggregate').map((node) => node.name);
  if (dedupes.length + aggregates.length === 0) return undefined;
  const parts = [
    "Partitions: each task runs one input partition, and its state sees only that partition's records.",
  ];
  if (dedupes.length > 0)
    parts.push(
      `${dedupes.join(', ')} (dedupe): the same id arriving on two partitions (re-sent under another Kafka key) passes twice and is counted twice.`,
    );
  if (aggregates.length > 0)
    parts.push(
      `${aggregates.join(', ')} (aggregate): a group key whose records arrive on several partitions gets one result per partition, to be merged downstream (the ClickHouse sink's <table>_totals view does).`,
    );
  parts.push(
    'Produce with a Kafka key that decides the partition: the dedupe id, or the entity the group key belongs to; re-keying inside tributary (selectKey/repartition) comes with a later release.',
  );
  return parts.join(' ');
}
