/**
 * The typed DSL. A TopologyBuilder collects node and store specs; each Stream<T> is a handle on one node
 * whose output values have type T. Calling two operators on the same stream fans out (a DAG, not a
 * chain). build() freezes the specs into a Topology that can open partition tasks.
 */
import type { Serde } from '../serde/types.js';
import type { SinkSpec } from '../core/sink.js';
import { DEDUPE_FORMAT, DedupeStore, dedupeRestoreDeriver } from '../state/dedupe-store.js';
import type { DedupeOptions } from '../state/dedupe-store.js';
import { KEY_VALUE_FORMAT, KeyValueStoreImpl } from '../state/kv-store.js';
import type { KeyValueStore } from '../state/kv-store.js';
import type { AggregateResult, AggregateSpec, AnyAggregator } from './aggregators.js';
import type {
  Cancellable,
  NodeSpec,
  PunctuationCallback,
  PunctuationType,
  RecordMetadata,
  SourceSpec,
} from './graph.js';
import type { StoreSpec } from '../state/store-spec.js';
import type { RawRecord, WindowResult } from '../core/records.js';
import { durationText } from './time.js';
import type { TumblingWindows } from './time.js';
import { SKIP } from './graph.js';
import { checkAccumulatorsAtBuild } from './accumulator-check.js';
import { Topology } from './topology.js';
import { createWindowAggregate, windowResultSchema } from './window-aggregate.js';
import { resolveWindowOptions } from './window-options.js';
import type { ResolvedWindowOptions, WindowOptions } from './window-options.js';
import { windowStoreSpec } from './window-store-spec.js';

export interface StreamOptions<T> {
  /** Event time of a record, epoch ms. Default: the Kafka record timestamp. */
  timestamp?: (value: T, record: RawRecord) => number;
}

/** What a custom processor sees: the current record, its stores, and ways to emit and to schedule. */
export interface ProcessorContext<Out> {
  readonly partition: number;
  /** Metadata of the record being processed (synthetic during punctuation). */
  readonly record: RecordMetadata;
  /** Max event time seen by this task. */
  readonly streamTime: number;
  forward(value: Out): void;
  /** A key-value store declared in the `stores` option of process(). */
  getStore<V>(name: string): KeyValueStore<V>;
  /**
   * Calls `callback` every `intervalMs`: on `event-time` when stream time crosses a multiple of the
   * interval (deterministic, replays identically), on `wall-time` from the task's tick(). The callback
   * may be async (e.g. to go through a store's `entries()`): the task waits for it before the next record.
   */
  schedule(intervalMs: number, type: PunctuationType, callback: PunctuationCallback): Cancellable;
}

/**
 * Handles one value. What it returns, unless `undefined`, is forwarded (after anything it passed to
 * `ctx.forward`); returning the output is what lets `process()` infer the output type.
 */
export interface Processor<In, Returned = never> {
  process(value: In): Returned | undefined | void;
}

/**
 * Called once per partition task; returns the processor (or just its process function).
 * `Forwarded` is the type `ctx.forward` takes, `Returned` the type the process function returns.
 */
export type ProcessorSetup<In, Forwarded, Returned = Forwarded> = (
  ctx: ProcessorContext<Forwarded>,
) => Processor<In, Returned> | ((value: In) => Returned | undefined | void);

/** The values a processor emits: what it forwards and what it returns (`undefined` forwards nothing). */
export type ProcessorOutput<Forwarded, Returned> = Forwarded | Exclude<Returned, undefined | void>;

export interface ProcessOptions<In = unknown> {
  name?: string;
  /** Key-value stores this processor uses (created on first mention, shared by name). */
  stores?: string[];
  /**
   * Per store (one of `stores`), the keys the processor will read for a value. Before each batch the
   * task computes them for the values that will reach the processor and reads those not cached in one
   * LevelDB `getMany`, so `get`/`has` answer from memory. Only where every step between the source and
   * the processor is stateless (filter, map, validate, peek, branch, merge, dedupe); elsewhere, and for
   * a key not named, a read that misses the cache is a synchronous LevelDB read (still exact).
   */
  prefetch?: Readonly<Record<string, (value: In) => string | readonly string[]>>;
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
    const name = this.addNode({
      kind: 'source',
      parents: [],
      detail: `topic ${topic}, serde ${serde.name}`,
      topic,
      create: ({ forward }) => forward,
    });
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

  /** @internal Adds a node and returns its name. */
  addNode(spec: Omit<NodeSpec, 'name' | 'stores'> & { name?: string; stores?: readonly string[] }): string {
    const name = spec.name ?? `${spec.kind}-${this.counter}`;
    this.counter++;
    if (this.nodes.some((node) => node.name === name)) throw new Error(`duplicate node name "${name}"`);
    this.nodes.push({ ...spec, name, stores: spec.stores ?? [] });
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
    return this.append(
      'filter',
      '',
      ({ forward }) =>
        (value) => {
          if (predicate(value as T)) forward(value);
        },
      { lookahead: (value) => (predicate(value as T) ? value : SKIP) },
    );
  }

  map<R>(mapper: (value: T) => R): Stream<R> {
    return this.append(
      'map',
      '',
      ({ forward }) =>
        (value) =>
          forward(mapper(value as T)),
      { lookahead: (value) => mapper(value as T) },
    );
  }

  flatMap<R>(mapper: (value: T) => Iterable<R>): Stream<R> {
    return this.append('flat-map', '', ({ forward }) => (value) => {
      for (const item of mapper(value as T)) forward(item);
    });
  }

  /** Runs a side effect per value and passes it on unchanged. */
  peek(action: (value: T) => void): Stream<T> {
    return this.append(
      'peek',
      '',
      ({ forward }) =>
        (value) => {
          action(value as T);
          forward(value);
        },
      // The pre-pass does not run the action: it would run twice per value.
      { lookahead: (value) => value },
    );
  }

  /**
   * Splits by the first matching predicate; values matching none are dropped. One stream per
   * predicate, as a tuple: `const [small, large] = s.branch(p1, p2)`; a type-guard predicate narrows
   * its stream's type.
   */
  branch<const P extends ReadonlyArray<(value: T) => boolean>>(...predicates: P): BranchStreams<T, P> {
    const streams = predicates.map((predicate, index) => {
      const passes = (value: unknown): boolean => {
        for (let i = 0; i < index; i++)
          if ((predicates[i] as (value: T) => boolean)(value as T)) return false;
        return predicate(value as T);
      };
      return this.append(
        'branch',
        `${index + 1} of ${predicates.length}`,
        ({ forward }) =>
          (value) => {
            if (passes(value)) forward(value);
          },
        { lookahead: (value) => (passes(value) ? value : SKIP) },
      );
    });
    return streams as BranchStreams<T, P>;
  }

  /** One stream of the values of this and the other streams. */
  merge(...others: Array<Stream<T>>): Stream<T> {
    const name = this.builder.addNode({
      kind: 'merge',
      parents: [this, ...others].map((stream) => stream.edge()),
      detail: '',
      create: ({ forward }) => forward,
      lookahead: (value) => value,
    });
    return new Stream<T>(this.builder, name);
  }

  /**
   * Keeps values for which `check` returns true (or undefined); others become dead letters with reason
   * `validation-failed` and the returned string (if any) as message.
   */
  validate(check: (value: T) => boolean | string | undefined | void): Stream<T> {
    return this.append(
      'validate',
      '',
      ({ forward, task }) =>
        (value) => {
          const verdict = check(value as T);
          if (verdict === true || verdict === undefined) forward(value);
          else
            task.deadLetter(
              'validation-failed',
              new Error(typeof verdict === 'string' ? verdict : 'validation failed'),
            );
        },
      {
        lookahead: (value) => {
          const verdict = check(value as T);
          return verdict === true || verdict === undefined ? value : SKIP;
        },
      },
    );
  }

  /** Drops values whose id was already seen within `horizon` of event time (see DedupeStore for exact bounds). */
  dedupe(idOf: (value: T) => string, options: DedupeStreamOptions): Stream<T> {
    const name = options.name ?? this.builder.derivedStoreName([this.nodeName], 'dedupe', 'dedupe()');
    const dedupeOptions: DedupeOptions = {
      horizon: options.horizon,
      ...(options.bucket ? { bucket: options.bucket } : {}),
    };
    this.builder.addStore({
      name,
      kind: 'dedupe',
      format: DEDUPE_FORMAT,
      create: (db, { cache }) => new DedupeStore(db, name, dedupeOptions, cache),
      restoreDeriver: (db) => dedupeRestoreDeriver(db, name, dedupeOptions),
    });
    return this.append(
      'dedupe',
      `horizon ${options.horizon} ms`,
      ({ forward, task }) => {
        const store = task.store<DedupeStore>(name);
        return (value) => {
          if (store.checkAndRemember(idOf(value as T), task.timestamp, task.streamTime))
            task.countDuplicate();
          else forward(value);
        };
      },
      {
        name,
        stores: [name],
        // Passes on what it does not drop: a later dedupe's pre-pass may name more ids, never fewer.
        lookahead: (value) => value,
        dedupeIds: { store: name, idOf: idOf as (value: unknown) => string },
      },
    );
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
    const storeNames = options.stores ?? [];
    for (const storeName of storeNames) {
      this.builder.addStore({
        name: storeName,
        kind: 'key-value',
        format: KEY_VALUE_FORMAT,
        create: (db, { cache }) => new KeyValueStoreImpl(db, storeName, { cache }),
      });
    }
    const keyPrefetch = Object.entries(options.prefetch ?? {}).map(([store, keysOf]) => {
      if (!storeNames.includes(store))
        throw new Error(`process(): prefetch names store "${store}", which is not in its stores option`);
      return { store, keysOf: keysOf as (value: unknown) => string | readonly string[] };
    });
    return this.append(
      'process',
      '',
      ({ forward, task }) => {
        const context: ProcessorContext<Forwarded> = {
          partition: task.partition,
          get record() {
            return task.record;
          },
          get streamTime() {
            return task.streamTime;
          },
          forward: forward as (value: Forwarded) => void,
          getStore: <V>(storeName: string) => {
            if (!storeNames.includes(storeName))
              throw new Error(`processor did not declare store "${storeName}"`);
            return task.store<KeyValueStoreImpl<V>>(storeName);
          },
          schedule: (intervalMs, type, callback) => task.schedule(intervalMs, type, callback),
        };
        const processor = setup(context);
        const processValue = typeof processor === 'function' ? processor : processor.process.bind(processor);
        return (value) => {
          const returned = processValue(value as T);
          if (returned !== undefined) forward(returned);
        };
      },
      {
        ...(options.name ? { name: options.name } : {}),
        stores: storeNames,
        ...(keyPrefetch.length > 0 ? { keyPrefetch } : {}),
      },
    );
  }

  /** Appends every value to the outbox of `sink`, which the runtime drains into the sink. */
  to(sink: SinkSpec<T>): void {
    this.builder.addNode({
      kind: 'sink',
      parents: [this.edge()],
      detail: `${sink.kind} ${sink.name}`,
      sink: sink as SinkSpec<unknown>,
      create:
        ({ task }) =>
        (value) =>
          task.appendToOutbox(sink.name, value),
    });
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
  private append<R>(
    kind: string,
    detail: string,
    create: NodeSpec['create'],
    extra: Partial<Pick<NodeSpec, 'name' | 'stores' | 'lookahead' | 'dedupeIds' | 'keyPrefetch'>> = {},
  ): Stream<R> {
    const name = this.builder.addNode({ kind, parents: [this.edge()], detail, create, ...extra });
    return new Stream<R>(this.builder, name);
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
    return new WindowedStream<T, K>(this.builder, this.parent, this.keyOf, windows, resolved);
  }
}

export class WindowedStream<T, K> {
  constructor(
    private readonly builder: TopologyBuilder,
    private readonly parent: Stream<T>,
    private readonly keyOf: (value: T) => K,
    private readonly windows: TumblingWindows,
    private readonly options: ResolvedWindowOptions,
  ) {}

  /** One result per (window, key), its value typed by the spec: `{ count: count() }` gives `{ count: number }`. */
  aggregate<S extends AggregateSpec<T>>(spec: S): AggregatedStream<T, K, AggregateResult<S>> {
    if (Object.keys(spec).length === 0) throw new Error('aggregate() needs at least one aggregator');
    const name =
      this.options.name ??
      this.builder.derivedStoreName(
        [this.parent.nodeName],
        // The fields tell two aggregates of one topic and window size apart; a changed field list
        // changes the store's format anyway.
        `${durationText(this.windows.size)}-${Object.keys(spec).join('-')}`.replace(/[^A-Za-z0-9._-]/g, '_'),
        `window(tumbling(${durationText(this.windows.size)})).aggregate()`,
      );
    checkAccumulatorsAtBuild(name, spec as Record<string, AnyAggregator<unknown>>);
    const config = {
      name,
      keyOf: this.keyOf as (value: unknown) => unknown,
      windows: this.windows,
      options: this.options,
      spec: spec as Record<string, AnyAggregator<unknown>>,
    };
    this.builder.addStore(windowStoreSpec(config));
    const aggregates = Object.entries(spec)
      .map(([field, aggregator]) => `${field}: ${aggregator.kind}`)
      .join(', ');
    const lateness = this.options.late;
    this.builder.addNode({
      name,
      kind: 'window-aggregate',
      parents: [this.parent.edge()],
      stores: [name],
      detail: `tumbling ${this.windows.size} ms, grace ${this.options.grace} ms, out-of-orderness ${this.options.outOfOrderness} ms, late ${lateness}; group by ${functionText(this.keyOf)}; { ${aggregates} }`,
      schema: windowResultSchema(config.spec),
      graceMs: this.options.grace,
      windowKeys: { store: name, keyOf: config.keyOf },
      create: (ctx) => createWindowAggregate(config, ctx),
    });
    return new AggregatedStream<T, K, AggregateResult<S>>(this.builder, name, lateness);
  }
}

/** A function as describe() shows it: its source on one line, shortened (`(e) => e.subject`). */
function functionText(fn: (...args: never[]) => unknown): string {
  const text = fn.toString().replace(/\s+/g, ' ').trim();
  return text.length > 80 ? `${text.slice(0, 79)}…` : text;
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
