/**
 * The windowed aggregation operator: groupBy + window + aggregate, fused into one node so that a record
 * costs one key computation and one map lookup per window. groupBy's step (group-by.ts) puts the group
 * key in the record context, the aggregate reads it there; the windows of a record's time come from
 * the Windows strategy (windows.ts), looped over without an array. Emits each window once when its watermark
 * (watermark.ts) reaches end + grace, and applies the late-event policy. Its state, codecs and store
 * live in window-state.ts, window-state-codec.ts and window-store-spec.ts; its options arrive resolved
 * (window-options.ts).
 */
import type { ResultSchema } from '../../core/sink.js';
import type { WindowResult } from '../../core/records.js';
import type { WindowEntry } from '../../state/window-store.js';
import type { AnyAggregator, NumericKernel } from '../aggregators.js';
import type { NodeRuntimeContext, Push, TimeListener } from '../graph.js';
import { Watermark } from '../watermark.js';
import type { ResolvedWindowOptions } from '../window-options.js';
import { checkStateAfterFirstRecord, needsRoundTripCheck } from '../accumulator-check.js';
import { KEY_IN_TEXT, NO_ACCUMULATORS, NO_SLOTS, keyOfEntry, numericLayout } from '../window-state.js';
import type { WindowState } from '../window-state.js';
import type { GroupWindowStore } from '../window-store-spec.js';
import { windowStoreSpec } from '../window-store-spec.js';
import { groupByStep } from './group-by.js';
import { PER_INPUT_PARTITION, functionText } from './operator.js';
import type { Operator } from './operator.js';

/** Entries per shared slot chunk: big enough to amortize, small enough not to pin much memory. */
const CHUNK_ENTRIES = 4096;

export interface WindowAggregateConfig {
  name: string;
  /** groupBy's key function: its step makes it the record's key; the pre-pass names entries with it. */
  keyOf: (value: unknown) => unknown;
  options: ResolvedWindowOptions;
  spec: Record<string, AnyAggregator<unknown>>;
}

export function windowResultSchema(spec: Record<string, AnyAggregator<unknown>>): ResultSchema {
  return { valueColumns: Object.entries(spec).flatMap(([name, aggregator]) => aggregator.columns(name)) };
}

/** The node of `groupBy().window().aggregate()`, its window store, and the entries it reads. */
export function windowAggregateOperator(config: WindowAggregateConfig): Operator {
  const { windows, outOfOrderness, late } = config.options;
  const aggregates = Object.entries(config.spec)
    .map(([field, aggregator]) => `${field}: ${aggregator.kind}`)
    .join(', ');
  return {
    name: config.name,
    kind: 'window-aggregate',
    stores: [windowStoreSpec({ name: config.name, spec: config.spec, windows })],
    detail: `${windows.kind} ${windows.sizeMs} ms, grace ${windows.graceMs} ms, out-of-orderness ${outOfOrderness} ms, late ${late}; group by ${functionText(config.keyOf)}; { ${aggregates} }; ${PER_INPUT_PARTITION}`,
    schema: windowResultSchema(config.spec),
    graceMs: windows.graceMs,
    reads: [{ kind: 'window', store: config.name, keyOf: config.keyOf }],
    // groupBy's step sets the record's key, which the aggregate groups by.
    create: (ctx) => groupByStep(config.keyOf, ctx.task, createWindowAggregate(config, ctx)),
  };
}

function createWindowAggregate(config: WindowAggregateConfig, ctx: NodeRuntimeContext): Push {
  const { task, forward } = ctx;
  const forwardLate = ctx.forwardTo('late');
  const windows = config.options.windows;
  const { sizeMs: size, advanceMs: advance, graceMs: grace } = windows;
  const policy = config.options.late;
  const retention = policy === 're-emit' ? config.options.allowedLateness : 0;
  const names = Object.keys(config.spec);
  const aggregators = Object.values(config.spec);
  const aggregatorCount = aggregators.length;
  const layout = numericLayout(config.spec);
  const kernels = layout?.kernels ?? [];
  const offsets = layout?.offsets ?? [];
  const width = layout?.width ?? 0;
  const store = task.store<GroupWindowStore>(config.name);
  const keys = store.keys;

  /** Watermark at which closeWindows has work to do (earliest close or expiry). */
  let nextDeadline = Infinity;
  /** Closed windows updated by late events under `re-emit`, emitted after the current record. */
  let reemit: WindowEntry<WindowState>[] = [];

  const emit = (entry: WindowEntry<WindowState>): void => {
    const state = entry.state;
    state.version++;
    store.markDirty(entry);
    const value: Record<string, unknown> = {};
    if (layout)
      for (let i = 0; i < aggregatorCount; i++)
        value[names[i] as string] = (kernels[i] as NumericKernel).result(
          state.slots,
          state.at + (offsets[i] as number),
        );
    else
      for (let i = 0; i < aggregatorCount; i++)
        value[names[i] as string] = (aggregators[i] as AnyAggregator<unknown>).result(state.accumulators[i]);
    const result: WindowResult<unknown, Record<string, unknown>> = {
      windowStart: entry.start,
      windowEnd: entry.start + size,
      key: keyOfEntry(entry, keys),
      value,
      version: state.version,
      partition: task.partition,
    };
    task.countWindowEmitted();
    // The result goes on keyed by its group key, at the window's last millisecond.
    task.withTimestamp(entry.start + size - 1, () => {
      task.key = result.key;
      forward(result);
    });
  };

  const recomputeDeadline = (): void => {
    const watermark = clock.value;
    nextDeadline = Infinity;
    for (const start of store.windowStarts()) {
      const closesAt = start + size + grace;
      const deadline = closesAt <= watermark ? closesAt + retention : closesAt;
      if (deadline < nextDeadline) nextDeadline = deadline;
    }
  };

  /**
   * Windows closed (emitted) since open. A closed window kept for allowed lateness has every entry
   * emitted (a late entry is re-emitted after its record), so a later close skips it instead of
   * reading it back from disk; after a reopen it is looked at once more and emits nothing.
   */
  const closed = new Set<number>();

  /** Emits and removes the due windows, all of whose entries are in memory. */
  const closeResidentWindows = (): void => {
    const watermark = clock.value;
    for (const start of store.windowStarts()) {
      const closesAt = start + size + grace;
      if (closesAt > watermark) break;
      if (!closed.has(start)) {
        for (const entry of store.entriesOf(start)) if (entry.state.version === 0) emit(entry);
        closed.add(start);
      }
      if (closesAt + retention <= watermark) {
        store.removeWindow(start);
        closed.delete(start);
      }
    }
    recomputeDeadline();
  };

  /**
   * Closes the due windows. A spilled one (entries evicted to disk) is read back first, asynchronously:
   * the promise is awaited by the task before the next record, and the windows then close in the same
   * order as if they had stayed in memory.
   */
  const closeWindows = (): Promise<void> | undefined => {
    const watermark = clock.value;
    let loads: Array<Promise<void>> | undefined;
    for (const start of store.windowStarts()) {
      const closesAt = start + size + grace;
      if (closesAt > watermark) break;
      if (!store.isResident(start) && (!closed.has(start) || closesAt + retention <= watermark))
        (loads ??= []).push(store.loadWindow(start));
    }
    if (loads === undefined) {
      closeResidentWindows();
      return undefined;
    }
    return Promise.all(loads).then(closeResidentWindows);
  };

  const listener: TimeListener = {
    afterRecord() {
      if (reemit.length > 0) {
        const updated = reemit;
        reemit = [];
        for (const entry of updated) if (!entry.removed) emit(entry);
      }
      return clock.follow(task.streamTime) >= nextDeadline ? closeWindows() : undefined;
    },
    onIdle(idleFor) {
      return clock.idle(task.streamTime, idleFor) && clock.value >= nextDeadline ? closeWindows() : undefined;
    },
    watermark: () => clock.value,
    checkpoint: () => clock.value,
  };
  // The listener is only called once records or ticks arrive, after `clock` exists.
  const clock = new Watermark(
    config.options.outOfOrderness,
    config.options.idleness,
    task.addTimeListener(config.name, listener),
  );
  recomputeDeadline();

  const addValue = (entry: WindowEntry<WindowState>, value: unknown): void => {
    const state = entry.state;
    if (layout) {
      const slots = state.slots;
      const at = state.at;
      for (let i = 0; i < aggregatorCount; i++)
        (kernels[i] as NumericKernel).add(slots, at + (offsets[i] as number), value);
    } else {
      const accumulators = state.accumulators;
      for (let i = 0; i < aggregatorCount; i++)
        accumulators[i] = (aggregators[i] as AnyAggregator<unknown>).add(accumulators[i], value);
    }
    if (!entry.dirty) store.markDirty(entry);
  };
  /**
   * Adds a value to its entry. For a JSON-state spec, the first call also checks that the entry's
   * state survives its serialization (accumulator-check.ts), then replaces itself with addValue, so
   * later records pay nothing for the check.
   */
  let addTo = addValue;
  if (needsRoundTripCheck(config.spec))
    addTo = (entry, value) => {
      addTo = addValue;
      addValue(entry, value);
      checkStateAfterFirstRecord(config.name, config.spec, entry.state);
    };

  /** The slot chunk new entries take their slots from (fresh chunks are zeroed, as kernels expect). */
  let chunk = NO_SLOTS;
  let chunkUsed = 0;
  const entryFor = (start: number, key: unknown): WindowEntry<WindowState> => {
    const keyText = keys.of(key);
    const existing = store.get(start, keyText);
    if (existing !== undefined) return existing;
    if (layout) {
      if (chunkUsed + width > chunk.length) {
        chunk = new Float64Array(CHUNK_ENTRIES * width);
        chunkUsed = 0;
      }
      const at = chunkUsed;
      chunkUsed += width;
      return store.insert(start, keyText, {
        key: keys.exact ? KEY_IN_TEXT : key,
        accumulators: NO_ACCUMULATORS,
        slots: chunk,
        at,
        version: 0,
      });
    }
    const accumulators = new Array<unknown>(aggregatorCount);
    for (let i = 0; i < aggregatorCount; i++)
      accumulators[i] = (aggregators[i] as AnyAggregator<unknown>).init();
    return store.insert(start, keyText, { key, accumulators, slots: NO_SLOTS, at: 0, version: 0 });
  };

  /** The latest window of the previous record: skips latestStartFor's float modulos for most records. */
  let lastStart = NaN;
  return (value) => {
    const timestamp = task.timestamp;
    // The record's key, as groupBy (group-by.ts) set it in the record context.
    const key = task.key;
    let latest = lastStart;
    if (!(timestamp >= latest && timestamp < latest + advance))
      latest = lastStart = windows.latestStartFor(timestamp);
    const watermark = clock.follow(task.streamTime);
    // The latest window of the record's time closes last: while it is open the record is in time, and
    // goes to each of its windows still open, latest first: a loop that runs once for tumbling windows
    // (the latest window always contains the time; an earlier one while start > timestamp - size).
    if (latest + size + grace > watermark) {
      let start = latest;
      do {
        const closesAt = start + size + grace;
        if (closesAt <= watermark) break;
        addTo(entryFor(start, key), value);
        if (closesAt < nextDeadline) nextDeadline = closesAt;
        start -= advance;
      } while (start > timestamp - size);
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
            `event time ${timestamp} is in window [${latest}, ${latest + size}), closed at watermark ${watermark}`,
          ),
        );
        return;
      case 'side-output':
        forwardLate(value);
        return;
      case 're-emit': {
        let start = latest;
        do {
          const closesAt = start + size + grace;
          if (closesAt + retention <= watermark) return; // beyond allowed lateness: the window is gone
          const entry = entryFor(start, key);
          addTo(entry, value);
          if (closesAt + retention < nextDeadline) nextDeadline = closesAt + retention;
          if (!reemit.includes(entry)) reemit.push(entry);
          start -= advance;
        } while (start > timestamp - size);
        return;
      }
    }
  };
}
