/**
 * A custom node (Kafka Streams' processor API): the user's processor, set up once per task with a
 * context of its record, its key-value stores, forward and schedule. Declares the keys its `prefetch`
 * option names as reads, so the pre-pass fetches them before the batch runs.
 */
import { KEY_VALUE_FORMAT, KeyValueStoreImpl } from '../../state/kv-store.js';
import type { KeyValueStore } from '../../state/kv-store.js';
import type {
  Cancellable,
  PunctuationCallback,
  PunctuationType,
  RecordMetadata,
  StoreRead,
} from '../graph.js';
import type { Operator } from './operator.js';

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

export function processOperator<In, Forwarded, Returned>(
  setup: ProcessorSetup<In, Forwarded, Returned>,
  options: ProcessOptions<In>,
): Operator {
  const storeNames = options.stores ?? [];
  const reads: StoreRead[] = Object.entries(options.prefetch ?? {}).map(([store, keysOf]) => {
    if (!storeNames.includes(store))
      throw new Error(`process(): prefetch names store "${store}", which is not in its stores option`);
    return { kind: 'keys', store, keysOf: keysOf as (value: unknown) => string | readonly string[] };
  });
  return {
    kind: 'process',
    detail: '',
    ...(options.name ? { name: options.name } : {}),
    stores: storeNames.map((name) => ({
      name,
      kind: 'key-value',
      format: KEY_VALUE_FORMAT,
      create: (db, { cache }) => new KeyValueStoreImpl(db, name, { cache }),
    })),
    reads,
    create: ({ forward, task }) => {
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
        const returned = processValue(value as In);
        if (returned !== undefined) forward(returned);
      };
    },
  };
}
