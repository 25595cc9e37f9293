/**
 * The typed DSL. A TopologyBuilder collects node and store specs; each Stream<T> is a handle on one node
 * whose output values have type T. Calling two operators on the same stream fans out (a DAG, not a
 * chain). build() freezes the specs into a Topology that can open partition tasks.
 */
import type { Serde } from '../serde/types.js';
import type { SinkSpec } from '../core/sink.js';
import type { DedupeOptions } from '../state/dedupe-store.js';
import type { AggregateResult, AggregateSpec, AnyAggregator } from './aggregators.js';
import type { NodeSpec, SourceSpec } from './graph.js';
import type { StoreSpec } from '../state/store-spec.js';
import type { RawRecord, WindowResult } from '../core/records.js';
import { durationText } from './time.js';
import type { TumblingWindows } from './time.js';
import { checkAccumulatorsAtBuild } from './accumulator-check.js';
import { Topology } from './topology.js';
import { resolveWindowOptions } from './window-options.js';
import type { ResolvedWindowOptions, WindowOptions } from './window-options.js';
import type { Operator } from './operators/operator.js';
import { branchOperator } from './operators/branch.js';
import { dedupeOperator } from './operators/dedupe.js';
import { filterOperator } from './operators/filter.js';
import { flatMapOperator } from './operators/flat-map.js';
import { mapOperator } from './operators/map.js';
import { mergeOperator } from './operators/merge.js';
import { peekOperator } from './operators/peek.js';
import { processOperator } from './operators/process.js';
import type { ProcessOptions, ProcessorOutput, ProcessorSetup } from './operators/process.js';
import { sinkOperator } from './operators/sink.js';
import { sourceOperator } from './operators/source.js';
import { validateOperator } from './operators/validate.js';
import { windowAggregateOperator } from './operators/window-aggregate.js';

export type {
  ProcessOptions,
  Processor,
  ProcessorContext,
  ProcessorOutput,
  ProcessorSetup,
} from './operators/process.js';

export interface StreamOptions<T> {
  /** Event time of a record, epoch ms. Default: the Kafka record timestamp. */
  timestamp?: (value: T, record: RawRecord) => number;
}

/** A group key that is one value rather than an object of key columns. */
export type PrimitiveGroupKey = string | number | boolean;

export interface GroupByOptions<N extends string> {
  /** The name of a primitive key in results and sink columns (default: a column named `key`). */
  key: N;
}

export interface DedupeStreamOptions extends DedupeOptions {
  /**
   * Name of the node and its store, which the state folder keeps the seen ids under. Default: the
   * source topic(s) it reads plus `-dedupe` (`usage-events-dedupe`); two dedupe() on the same topic
   * need names. Renaming it later loses its state unless reset explicitly (see resetStores).
   */
  name?: string;
}

/** The stream of a branch() predicate: narrowed by a type guard, else the input type. */
export type BranchStream<T, P> = P extends ((value: T) => value is infer S extends T) ? Stream<S> : Stream<T>;

/** One stream per branch() predicate, in their order (a tuple when the predicates are listed). */
export type BranchStreams<T, P extends ReadonlyArray<(value: T) => boolean>> = {
  -readonly [I in keyof P]: BranchStream<T, P[I]>;
};

export class TopologyBuilder {
  private readonly nodes: NodeSpec[] = [];
  private readonly storeSpecs = new Map<string, StoreSpec>();
  private readonly sources: SourceSpec[] = [];
  private counter = 0;

  /** A stream of the values of `topic`, decoded with `serde`. One source per topic: reuse the stream to fan out. */
  stream<T>(topic: string, serde: Serde<T>, options: StreamOptions<T> = {}): Stream<T> {
    if (this.sources.some((source) => source.topic === topic)) {
      throw new Error(`topic "${topic}" already has a source; reuse its stream to feed several operators`);
    }
    const name = this.addOperator([], sourceOperator(topic, serde.name));
    this.sources.push({
      topic,
      node: name,
      serde: serde as Serde<unknown>,
      timestampOf: options.timestamp as SourceSpec['timestampOf'],
    });
    return new Stream<T>(this, name);
  }

  build(): Topology {
    return new Topology([...this.nodes], [...this.storeSpecs.values()], [...this.sources]);
  }

  /** @internal Adds the node of an operator fed by `parents`, registers its stores, and returns its name. */
  addOperator(parents: NodeSpec['parents'], operator: Operator): string {
    const { stores = [], reads = [], ...node } = operator;
    const name = node.name ?? `${node.kind}-${this.counter}`;
    this.counter++;
    if (this.nodes.some((existing) => existing.name === name))
      throw new Error(`duplicate node name "${name}"`);
    for (const store of stores) this.addStore(store);
    this.nodes.push({ ...node, name, parents, stores: stores.map((store) => store.name), reads });
    return name;
  }

  /** @internal Registers a store; the same name twice must mean the same kind. */
  addStore(spec: StoreSpec): void {
    const existing = this.storeSpecs.get(spec.name);
    if (existing === undefined) this.storeSpecs.set(spec.name, spec);
    else if (existing.kind !== spec.kind)
      throw new Error(`store "${spec.name}" is used as ${existing.kind} and ${spec.kind}`);
  }

  /**
   * @internal The store name of a stateful operator the user did not name: the source topics it reads
   * (sorted, joined by `_`) and `suffix`. Stable under evolution: adding, removing or reordering other
   * steps does not change it (a counter over nodes would, and the state would silently be lost). Two
   * unnamed operators that would share a name must be named.
   */
  derivedStoreName(parentNodes: readonly string[], suffix: string, operator: string): string {
    const topics = new Set<string>();
    const pending = [...parentNodes];
    const byName = new Map(this.nodes.map((node) => [node.name, node]));
    for (let name = pending.pop(); name !== undefined; name = pending.pop()) {
      const node = byName.get(name);
      if (node?.topic !== undefined) topics.add(node.topic);
      for (const parent of node?.parents ?? []) pending.push(parent.node);
    }
    const name = `${[...topics].sort().join('_')}-${suffix}`;
    if (this.storeSpecs.has(name) || byName.has(name))
      throw new Error(
        `two ${operator} steps reading ${[...topics].join(', ')} would share the store name "${name}": ` +
          'give each its own name (the `name` option)',
      );
    return name;
  }
}

export class Stream<T> {
  constructor(
    protected readonly builder: TopologyBuilder,
    /** Name of the node whose output this stream is. */
    readonly nodeName: string,
    protected readonly port?: string,
  ) {}

  filter<S extends T>(predicate: (value: T) => value is S): Stream<S>;
  filter(predicate: (value: T) => boolean): Stream<T>;
  filter(predicate: (value: T) => boolean): Stream<T> {
    return this.append(filterOperator(predicate));
  }

  map<R>(mapper: (value: T) => R): Stream<R> {
    return this.append(mapOperator(mapper));
  }

  flatMap<R>(mapper: (value: T) => Iterable<R>): Stream<R> {
    return this.append(flatMapOperator(mapper));
  }

  /** Runs a side effect per value and passes it on unchanged. */
  peek(action: (value: T) => void): Stream<T> {
    return this.append(peekOperator(action));
  }

  /**
   * Splits by the first matching predicate; values matching none are dropped. One stream per
   * predicate, as a tuple: `const [small, large] = s.branch(p1, p2)`; a type-guard predicate narrows
   * its stream's type.
   */
  branch<const P extends ReadonlyArray<(value: T) => boolean>>(...predicates: P): BranchStreams<T, P> {
    const streams = predicates.map((_, index) => this.append(branchOperator(predicates, index)));
    return streams as BranchStreams<T, P>;
  }

  /** One stream of the values of this and the other streams. */
  merge(...others: Array<Stream<T>>): Stream<T> {
    const parents = [this, ...others].map((stream) => stream.edge());
    return new Stream<T>(this.builder, this.builder.addOperator(parents, mergeOperator()));
  }

  /**
   * Keeps values for which `check` returns true (or undefined); others become dead letters with reason
   * `validation-failed` and the returned string (if any) as message.
   */
  validate(check: (value: T) => boolean | string | undefined | void): Stream<T> {
    return this.append(validateOperator(check));
  }

  /** Drops values whose id was already seen within `horizon` of event time (see DedupeStore for exact bounds). */
  dedupe(idOf: (value: T) => string, options: DedupeStreamOptions): Stream<T> {
    const name = options.name ?? this.builder.derivedStoreName([this.nodeName], 'dedupe', 'dedupe()');
    const dedupeOptions: DedupeOptions = {
      horizon: options.horizon,
      ...(options.bucket ? { bucket: options.bucket } : {}),
    };
    return this.append(dedupeOperator(name, idOf, dedupeOptions));
  }

  /**
   * Groups by the key `keyOf` returns. An object key's properties become the key columns of the
   * results (ClickHouse columns of the same names); a primitive key is one column named `key`, or
   * the name given: `groupBy((e) => e.subject, { key: 'subject' })` gives results keyed `{ subject }`.
   */
  groupBy<K extends PrimitiveGroupKey, N extends string>(
    keyOf: (value: T) => K,
    options: GroupByOptions<N>,
  ): GroupedStream<T, { [Name in N]: K }>;
  groupBy<K>(keyOf: (value: T) => K): GroupedStream<T, K>;
  groupBy(keyOf: (value: T) => unknown, options?: GroupByOptions<string>): GroupedStream<T, unknown> {
    const name = options?.key;
    if (name === undefined) return new GroupedStream(this.builder, this, keyOf);
    if (name === '') throw new Error('groupBy(): the key name must not be empty');
    // The named key is an object of one property, so it reaches the results and the sink's columns
    // under that name like any object key.
    return new GroupedStream(this.builder, this, (value: T) => ({ [name]: keyOf(value) }));
  }

  /**
   * A custom node (Kafka Streams' processor API). The output type is inferred from what the process
   * function returns (`(e) => ({ ...e, tag })`), or from the type of `ctx.forward`: give it as
   * `process<Out>(...)` or annotate `ctx: ProcessorContext<Out>`. Without either, `ctx.forward` takes
   * nothing (`never`), rather than letting an `unknown` stream reach the next step.
   */
  process<Forwarded = never, Returned = Forwarded>(
    setup: ProcessorSetup<T, Forwarded, Returned>,
    options: ProcessOptions<T> = {},
  ): Stream<ProcessorOutput<Forwarded, Returned>> {
    return this.append(processOperator(setup, options));
  }

  /** Appends every value to the outbox of `sink`, which the runtime drains into the sink. */
  to(sink: SinkSpec<T>): void {
    this.builder.addOperator([this.edge()], sinkOperator(sink));
  }

  /** @internal */
  edge(): { node: string; port?: string } {
    return this.port === undefined ? { node: this.nodeName } : { node: this.nodeName, port: this.port };
  }

  /**
   * Adds a node fed by this stream. Not named `then`: a `then` method would make every stream a
   * thenable, so `await stream` (or returning a stream from an async function) would call it, add a
   * bogus node and never settle.
   */
  private append<R>(operator: Operator): Stream<R> {
    return new Stream<R>(this.builder, this.builder.addOperator([this.edge()], operator));
  }
}

export class GroupedStream<T, K> {
  constructor(
    private readonly builder: TopologyBuilder,
    private readonly parent: Stream<T>,
    private readonly keyOf: (value: T) => K,
  ) {}

  /** Throws at once, naming the option, if an option is invalid (e.g. a negative or non-finite duration). */
  window(windows: TumblingWindows, options: WindowOptions = {}): WindowedStream<T, K> {
    const resolved = resolveWindowOptions(windows, options);
    return new WindowedStream<T, K>(this.builder, this.parent, this.keyOf, resolved);
  }
}

export class WindowedStream<T, K> {
  constructor(
    private readonly builder: TopologyBuilder,
    private readonly parent: Stream<T>,
    private readonly keyOf: (value: T) => K,
    private readonly options: ResolvedWindowOptions,
  ) {}

  /** One result per (window, key), its value typed by the spec: `{ count: count() }` gives `{ count: number }`. */
  aggregate<S extends AggregateSpec<T>>(spec: S): AggregatedStream<T, K, AggregateResult<S>> {
    if (Object.keys(spec).length === 0) throw new Error('aggregate() needs at least one aggregator');
    const size = durationText(this.options.windows.sizeMs);
    const name =
      this.options.name ??
      this.builder.derivedStoreName(
        [this.parent.nodeName],
        // The fields tell two aggregates of one topic and window size apart; a changed field list
        // changes the store's format anyway.
        `${size}-${Object.keys(spec).join('-')}`.replace(/[^A-Za-z0-9._-]/g, '_'),
        `window(${this.options.windows.kind}(${size})).aggregate()`,
      );
    checkAccumulatorsAtBuild(name, spec as Record<string, AnyAggregator<unknown>>);
    const config = {
      name,
      keyOf: this.keyOf as (value: unknown) => unknown,
      options: this.options,
      spec: spec as Record<string, AnyAggregator<unknown>>,
    };
    this.builder.addOperator([this.parent.edge()], windowAggregateOperator(config));
    return new AggregatedStream<T, K, AggregateResult<S>>(this.builder, name, this.options.late);
  }
}

export class AggregatedStream<T, K, V> extends Stream<WindowResult<K, V>> {
  constructor(
    builder: TopologyBuilder,
    nodeName: string,
    private readonly latePolicy: string,
  ) {
    super(builder, nodeName);
  }

  /** The late input events (window option `late: 'side-output'`). */
  lateEvents(): Stream<T> {
    if (this.latePolicy !== 'side-output') {
      throw new Error(
        `lateEvents() needs the window option late: 'side-output' (it is '${this.latePolicy}')`,
      );
    }
    return new Stream<T>(this.builder, this.nodeName, 'late');
  }
}
