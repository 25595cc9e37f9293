/**
 * The pre-pass that keeps the per-record pass free of disk reads: planned once per task from the reads
 * the nodes declare (`NodeSpec.reads`), run once per batch before the records go through the DAG. Each
 * record goes through the lookaheads of the nodes between its source and each reading node, and the
 * reads it will make are named to their stores, which fetch those they cannot answer from memory in
 * one read per batch.
 */
import type { RawRecord } from '../core/records.js';
import type { NodeSpec, StoreRead } from './graph.js';
import { SKIP } from './graph.js';

/**
 * What the pre-pass needs of a store: a dedupe store (ids), a key-value store (keys) or a window store
 * (entries of its spilled windows), read before the batch runs so the per-record pass stays synchronous.
 */
export interface BatchPrefetchStore {
  /** False while everything the store may be asked for is in memory (the pre-pass would save nothing). */
  readonly wantsPrefetch: boolean;
  beginBatch(): void;
  prefetch(): Promise<void>;
}
interface KeyPrefetchStore extends BatchPrefetchStore {
  want(key: string): void;
}
interface WindowPrefetchStore extends BatchPrefetchStore {
  /** The entry of `groupKey` in the windows of `timestamp`. */
  wantGroup(groupKey: unknown, timestamp: number): void;
}

/** One store read a pre-pass names, reached from a source: the lookaheads in between, then the read. */
export interface PrefetchPath {
  readonly topic: string;
  readonly steps: ReadonlyArray<(value: unknown) => unknown>;
  readonly read: StoreRead;
}

/** Per store, the paths along which the pre-pass names its reads. */
export type PrefetchPlan = ReadonlyMap<string, readonly PrefetchPath[]>;

/**
 * Per store, the paths from the sources along which a pre-pass can compute what a batch will read
 * (a dedupe's ids, a process() node's `prefetch` keys, a windowed aggregate's group keys): every node
 * in between is stateless with a lookahead (filter, map, validate, peek, branch, merge, a dedupe). A
 * store missing here has a stateful or many-valued step before its node (a process(), a flatMap, a
 * window): its keys cannot be known before the batch runs, so the store reads a key it does not hold
 * synchronously when the record gets there (exact, bounded memory; slower per such record than one
 * getMany per batch).
 */
export function planPrefetch(nodes: readonly NodeSpec[]): Map<string, PrefetchPath[]> {
  const byName = new Map(nodes.map((node) => [node.name, node]));
  type Route = { topic: string; steps: Array<(value: unknown) => unknown> };
  /** The routes from the sources to the output of `name`, or undefined if one has no lookahead. */
  const routesTo = (name: string): Route[] | undefined => {
    const node = byName.get(name);
    if (node === undefined) return undefined;
    if (node.topic !== undefined && node.parents.length === 0) return [{ topic: node.topic, steps: [] }];
    const lookahead = node.lookahead;
    if (lookahead === undefined) return undefined;
    return routesInto(node)?.map((route) => ({ topic: route.topic, steps: [...route.steps, lookahead] }));
  };
  /** The routes into `node` through all its parents, or undefined if one is not known. */
  const routesInto = (node: NodeSpec): Route[] | undefined => {
    if (node.parents.length === 0) return undefined;
    const routes: Route[] = [];
    for (const parent of node.parents) {
      const above = parent.port === undefined ? routesTo(parent.node) : undefined;
      if (above === undefined) return undefined;
      routes.push(...above);
    }
    return routes;
  };
  const plan = new Map<string, PrefetchPath[]>();
  for (const node of nodes) {
    if (node.reads.length === 0) continue;
    const routes = routesInto(node);
    if (routes === undefined) continue;
    for (const read of node.reads) {
      const list = plan.get(read.store) ?? [];
      list.push(...routes.map((route) => ({ ...route, read })));
      plan.set(read.store, list);
    }
  }
  return plan;
}

/** A prefetch path with its store resolved, as the pre-pass runs it. */
interface Prefetcher {
  readonly steps: ReadonlyArray<(value: unknown) => unknown>;
  readonly store: BatchPrefetchStore;
  /** Whether `name` needs the record's event time (a window's); computed only then. */
  readonly timed: boolean;
  /** Names to the store what it will read for a value that reached the node. */
  readonly name: (value: unknown, timestamp: number) => void;
}

function prefetcherOf(path: PrefetchPath, store: BatchPrefetchStore): Prefetcher {
  const { steps, read } = path;
  if (read.kind === 'window') {
    const windows = store as WindowPrefetchStore;
    return { steps, store, timed: true, name: (value, time) => windows.wantGroup(read.keyOf(value), time) };
  }
  const keyed = store as KeyPrefetchStore;
  return {
    steps,
    store,
    timed: false,
    name: (value) => {
      const keys = read.keysOf(value);
      if (typeof keys === 'string') keyed.want(keys);
      else for (const key of keys) keyed.want(key);
    },
  };
}

/** What the pre-pass needs of the task about a batch's records. */
export interface PrePassInput {
  readonly records: readonly RawRecord[];
  /** The decoded values, index for index. */
  readonly values: readonly unknown[];
  /** Whether a value failed to decode (it reaches no node, so it names nothing). */
  readonly failed: (value: unknown) => boolean;
  /** The event time of a record of `topic` (computed only for a store that needs it). */
  readonly timestampOf: (topic: string) => ((value: unknown, raw: RawRecord) => number) | undefined;
}

/** A task's pre-pass: its prefetch plan with the stores resolved, per source topic. */
export class PrePass {
  private readonly byTopic = new Map<string, Prefetcher[]>();
  private readonly stores: BatchPrefetchStore[] = [];

  constructor(plan: PrefetchPlan, storeOf: (name: string) => BatchPrefetchStore) {
    for (const [name, paths] of plan) {
      const store = storeOf(name);
      this.stores.push(store);
      for (const path of paths) {
        const list = this.byTopic.get(path.topic) ?? [];
        list.push(prefetcherOf(path, store));
        this.byTopic.set(path.topic, list);
      }
    }
  }

  /**
   * Runs each record through the lookaheads between its source and each reading node to name what the
   * batch will read, then awaits the stores' prefetch (a dedupe store reads the ids its filter cannot
   * rule out, a key-value store the keys it does not cache, a window store its spilled entries). User
   * functions run here without side effects that matter (peek's action does not run); one that throws
   * names nothing, and the real pass turns the throw into a dead letter as before.
   */
  async run({ records, values, failed, timestampOf }: PrePassInput): Promise<void> {
    // Only the stores that may have to read disk (spilled ids, keys or windows) get a pre-pass.
    const reading = this.stores.filter((store) => store.wantsPrefetch);
    if (reading.length === 0) return;
    for (const store of reading) store.beginBatch();
    let topic: string | undefined;
    let list: readonly Prefetcher[] = [];
    let timeOf: ((value: unknown, raw: RawRecord) => number) | undefined;
    for (let i = 0; i < records.length; i++) {
      const value = values[i];
      if (failed(value)) continue;
      const raw = records[i] as RawRecord;
      if (raw.topic !== topic) {
        topic = raw.topic;
        list = (this.byTopic.get(topic) ?? []).filter((prefetcher) => reading.includes(prefetcher.store));
        timeOf = timestampOf(topic);
      }
      let timestamp = NaN;
      for (const prefetcher of list) {
        try {
          let passed = value;
          for (const step of prefetcher.steps) {
            passed = step(passed);
            if (passed === SKIP) break;
          }
          if (passed === SKIP) continue;
          if (prefetcher.timed && Number.isNaN(timestamp))
            timestamp = timeOf ? timeOf(value, raw) : raw.timestamp;
          prefetcher.name(passed, timestamp);
        } catch {
          // Named by nobody: the real pass meets the same throw (or reads synchronously).
        }
      }
    }
    await Promise.all(reading.map((store) => store.prefetch()));
  }
}
