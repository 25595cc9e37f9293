/**
 * What each sink of a topology needs, decided once when the topology is built: the row schema its
 * writer is opened with (the runtime) and the segment codec of its outbox in every task (the engine).
 */
import type { ResultSchema, SinkSpec } from '../core/sink.js';
import type { NodeSpec, SinkPlan } from './graph.js';
import { windowResultCodec } from './result-codec.js';

/** Every sink once, in DAG order; two different sinks with one name are refused. */
export function planSinks(nodes: readonly NodeSpec[]): SinkPlan[] {
  const byName = new Map<
    string,
    {
      spec: SinkSpec<unknown>;
      schemas: Array<ResultSchema | undefined>;
      onlyWindowResults: boolean;
      graces: Set<number | undefined>;
    }
  >();
  const kindOf = new Map(nodes.map((node) => [node.name, node.kind]));
  const schemaOf = new Map(nodes.map((node) => [node.name, node.schema]));
  const graceOf = new Map(nodes.map((node) => [node.name, node.graceMs]));
  for (const node of nodes) {
    if (node.kind !== 'sink' || !node.sink) continue;
    let entry = byName.get(node.sink.name);
    if (entry === undefined) {
      entry = { spec: node.sink, schemas: [], onlyWindowResults: true, graces: new Set() };
      byName.set(node.sink.name, entry);
    } else if (entry.spec !== node.sink) {
      throw new Error(`two different sinks are named "${node.sink.name}"; sink names must be unique`);
    }
    for (const parent of node.parents)
      entry.schemas.push(parent.port === undefined ? schemaOf.get(parent.node) : undefined);
    const parent = node.parents.length === 1 ? node.parents[0] : undefined;
    if (parent === undefined || parent.port !== undefined || kindOf.get(parent.node) !== 'window-aggregate')
      entry.onlyWindowResults = false;
    else entry.graces.add(graceOf.get(parent.node));
  }
  return [...byName.values()].map(({ spec, schemas, onlyWindowResults, graces }) => {
    const first = schemas[0];
    const grace = graces.size === 1 ? [...graces][0] : undefined;
    const uniform =
      first !== undefined && schemas.every((schema) => JSON.stringify(schema) === JSON.stringify(first));
    return {
      spec,
      ...(uniform ? { schema: first } : {}),
      ...(onlyWindowResults ? { outboxCodec: windowResultCodec } : {}),
      ...(onlyWindowResults && grace !== undefined ? { windowGraceMs: grace } : {}),
    };
  });
}
