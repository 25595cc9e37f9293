/**
 * The windowed aggregation operator: groupBy + tumbling window + aggregate, fused into one node so that
 * a record costs one key computation and one map lookup. Owns its watermark
 * (max event time of the task - outOfOrderness, or advanced by idleness), emits each window once when
 * the watermark reaches end + grace, and applies the late-event policy.
 */
import type { ResultSchema } from '../sinks/types.js';
import { WindowStore } from '../state/window-store.js';
import type { WindowEntry } from '../state/window-store.js';
import type { AnyAggregator } from './aggregators.js';
import type { NodeRuntimeContext, Push, StoreSpec, TimeListener } from './graph.js';
import type { WindowResult } from './records.js';
import { windowStartOf } from './time.js';
import type { TumblingWindows } from './time.js';

/**
 * What happens to an event whose window was already emitted:
 * - `drop`: counted in metrics (lateEvents) and dropped;
 * - `dlq`: counted and sent to the DLQ outbox with reason `late-event`;
 * - `side-output`: counted and forwarded to the stream returned by `lateEvents()`;
 * - `re-emit`: counted, added to the window, and the window's updated result is emitted again with
 *   version + 1; the window is kept for `allowedLateness` after closing, later events are dropped.
 */
export type LatePolicy = 'drop' | 'dlq' | 'side-output' | 're-emit';

export interface WindowOptions {
  /** Extra time after the window end (in watermark time) before the window closes. Default 0. */
  grace?: number;
  /** How far behind the max event time the watermark trails. Default 0. */
  outOfOrderness?: number;
  late?: LatePolicy;
  /** With `re-emit`: how long after closing a window still accepts late events. Default 10 windows. */
  allowedLateness?: number;
  /** After this much wall time without records, the watermark advances with wall time. Default: never. */
  idleness?: number;
  /** Name of the node and its window store. */
  name?: string;
}

interface WindowState {
  key: unknown;
  accumulators: unknown[];
  /** Emissions so far; 0 while the window is open. */
  version: number;
}

export interface WindowAggregateConfig {
  name: string;
  keyOf: (value: unknown) => unknown;
  windows: TumblingWindows;
  options: WindowOptions;
  spec: Record<string, AnyAggregator<unknown>>;
}

/** Canonical text of a group key: strings as they are, anything else as JSON (property order as built). */
function keyTextOf(key: unknown): string {
  return typeof key === 'string' ? key : JSON.stringify(key);
}

export function windowResultSchema(spec: Record<string, AnyAggregator<unknown>>): ResultSchema {
  return { valueColumns: Object.entries(spec).flatMap(([name, aggregator]) => aggregator.columns(name)) };
}

export function windowStoreSpec(config: WindowAggregateConfig): StoreSpec {
  const aggregators = Object.values(config.spec);
  return {
    name: config.name,
    kind: 'window',
    create: (db) =>
      new WindowStore<WindowState>(db, config.name, {
        encode: (state) => ({
          k: state.key,
          a: state.accumulators.map((acc, i) => aggregators[i]?.toState?.(acc) ?? acc),
          v: state.version,
        }),
        decode: (data) => {
          const raw = data as { k: unknown; a: unknown[]; v: number };
          return {
            key: raw.k,
            accumulators: raw.a.map((acc, i) => {
              const aggregator = aggregators[i];
              return aggregator?.fromState ? aggregator.fromState(acc) : acc;
            }),
            version: raw.v,
          };
        },
      }),
  };
}

export function createWindowAggregate(config: WindowAggregateConfig, ctx: NodeRuntimeContext): Push {
  const { task, forward } = ctx;
  const forwardLate = ctx.forwardTo('late');
  const size = config.windows.size;
  const grace = config.options.grace ?? 0;
  const outOfOrderness = config.options.outOfOrderness ?? 0;
  const policy: LatePolicy = config.options.late ?? 'drop';
  const retention = policy === 're-emit' ? (config.options.allowedLateness ?? 10 * size) : 0;
  const idleness = config.options.idleness;
  const names = Object.keys(config.spec);
  const aggregators = Object.values(config.spec);
  const aggregatorCount = aggregators.length;
  const store = task.store<WindowStore<WindowState>>(config.name);

  let watermark = -Infinity;
  /** Watermark at which closeWindows has work to do (earliest close or expiry). */
  let nextDeadline = Infinity;
  /** Closed windows updated by late events under `re-emit`, emitted after the current record. */
  let reemit: WindowEntry<WindowState>[] = [];

  const emit = (entry: WindowEntry<WindowState>): void => {
    const state = entry.state;
    state.version++;
    store.markDirty(entry);
    const value: Record<string, unknown> = {};
    for (let i = 0; i < aggregatorCount; i++) {
      value[names[i] as string] = (aggregators[i] as AnyAggregator<unknown>).result(state.accumulators[i]);
    }
    const result: WindowResult<unknown, Record<string, unknown>> = {
      windowStart: entry.start,
      windowEnd: entry.start + size,
      key: state.key,
      value,
      version: state.version,
      partition: task.partition,
    };
    task.countWindowEmitted();
    task.withTimestamp(entry.start + size - 1, () => forward(result));
  };

  const recomputeDeadline = (): void => {
    nextDeadline = Infinity;
    for (const start of store.windowStarts()) {
      const closesAt = start + size + grace;
      const deadline = closesAt <= watermark ? closesAt + retention : closesAt;
      if (deadline < nextDeadline) nextDeadline = deadline;
    }
  };

  const closeWindows = (): void => {
    for (const start of store.windowStarts()) {
      const closesAt = start + size + grace;
      if (closesAt > watermark) break;
      for (const entry of store.entriesOf(start)) if (entry.state.version === 0) emit(entry);
      if (closesAt + retention <= watermark) store.removeWindow(start);
    }
    recomputeDeadline();
  };

  const advanceTo = (candidate: number): void => {
    if (candidate > watermark) watermark = candidate;
    if (watermark >= nextDeadline) closeWindows();
  };

  const listener: TimeListener = {
    afterRecord() {
      if (reemit.length > 0) {
        const updated = reemit;
        reemit = [];
        for (const entry of updated) if (!entry.removed) emit(entry);
      }
      advanceTo(task.streamTime - outOfOrderness);
    },
    onIdle(idleFor) {
      if (idleness !== undefined && idleFor >= idleness)
        advanceTo(task.streamTime - outOfOrderness + (idleFor - idleness));
    },
    watermark: () => watermark,
    checkpoint: () => watermark,
  };
  watermark = task.addTimeListener(config.name, listener) ?? -Infinity;
  recomputeDeadline();

  const addTo = (entry: WindowEntry<WindowState>, value: unknown): void => {
    const accumulators = entry.state.accumulators;
    for (let i = 0; i < aggregatorCount; i++) {
      accumulators[i] = (aggregators[i] as AnyAggregator<unknown>).add(accumulators[i], value);
    }
    store.markDirty(entry);
  };

  const entryFor = (start: number, value: unknown): WindowEntry<WindowState> => {
    const key = config.keyOf(value);
    const keyText = keyTextOf(key);
    const existing = store.get(start, keyText);
    if (existing !== undefined) return existing;
    const accumulators = new Array<unknown>(aggregatorCount);
    for (let i = 0; i < aggregatorCount; i++)
      accumulators[i] = (aggregators[i] as AnyAggregator<unknown>).init();
    return store.insert(start, keyText, { key, accumulators, version: 0 });
  };

  return (value) => {
    const timestamp = task.record.timestamp;
    const start = windowStartOf(timestamp, size);
    const closesAt = start + size + grace;
    const current = task.streamTime - outOfOrderness;
    if (current > watermark) watermark = current;
    if (closesAt > watermark) {
      addTo(entryFor(start, value), value);
      if (closesAt < nextDeadline) nextDeadline = closesAt;
      return;
    }
    task.countLate();
    switch (policy) {
      case 'drop':
        return;
      case 'dlq':
        task.deadLetter(
          'late-event',
          new Error(
            `event time ${timestamp} is in window [${start}, ${start + size}), closed at watermark ${watermark}`,
          ),
        );
        return;
      case 'side-output':
        forwardLate(value);
        return;
      case 're-emit': {
        if (closesAt + retention <= watermark) return; // beyond allowed lateness: the window is gone
        const entry = entryFor(start, value);
        addTo(entry, value);
        if (closesAt + retention < nextDeadline) nextDeadline = closesAt + retention;
        if (!reemit.includes(entry)) reemit.push(entry);
        return;
      }
    }
  };
}
