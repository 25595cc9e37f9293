/** The window store of an aggregate node: its spec, and the store with the key texts of its entries. */
import { WindowStore } from '../state/window-store.js';
import type { StateDb } from '../state/db.js';
import type { WindowBlobCodec, WindowEntryReader, WindowStoreOptions } from '../state/window-store.js';
import type { AnyAggregator, NumericKernel } from './aggregators.js';
import type { StoreSpec } from '../state/store-spec.js';
import type { Windows } from './windows.js';
import { GroupKeyText } from './group-key.js';
import { jsonWindowStateCodec, numericBlobCodec } from './window-state-codec.js';
import { keyOfEntry, numericLayout } from './window-state.js';
import type { WindowState } from './window-state.js';

/** The window store of one aggregate node, with the canonical key texts its entries are indexed by. */
export class GroupWindowStore extends WindowStore<WindowState> {
  constructor(
    db: StateDb,
    name: string,
    codec: WindowBlobCodec<WindowState>,
    readonly keys: GroupKeyText,
    reader: WindowEntryReader<WindowState>,
    /** The operator's windows, to name the windows of a record's time in the pre-pass. */
    private readonly windowing: Windows,
    options: WindowStoreOptions = {},
  ) {
    super(db, name, codec, reader, options);
  }

  /**
   * For the engine's pre-pass: the entries a record of `groupKey` at `timestamp` will touch, one per
   * window of its time (windows.ts: the latest start, then back by the advance). The key
   * text is the lookup's (textOf), which never changes how the operator's keys are written; before
   * this instance learned the keys' shape (after an open, until the first record) an object key's
   * text is not yet the operator's, so it is left to the operator's own read.
   */
  wantGroup(groupKey: unknown, timestamp: number): void {
    if (typeof groupKey !== 'string' && this.keys.fields === undefined) return;
    const keyText = this.keys.textOf(groupKey);
    const { sizeMs, advanceMs } = this.windowing;
    let start = this.windowing.latestStartFor(timestamp);
    do {
      this.wantEntry(start, keyText);
      start -= advanceMs;
    } while (start > timestamp - sizeMs);
  }
}

/**
 * Shows a (window, key) as the user wrote it: the group key, and each aggregate's result by name
 * (what the window's emission would carry now; an open window's results so far).
 */
export function windowEntryReader(
  spec: Record<string, AnyAggregator<unknown>>,
  windowSize: number,
  keys: GroupKeyText,
): WindowEntryReader<WindowState> {
  const names = Object.keys(spec);
  const aggregators = Object.values(spec);
  const layout = numericLayout(spec);
  return {
    windowSize,
    read(entry) {
      const state = entry.state;
      const aggregates: Record<string, unknown> = {};
      names.forEach((name, i) => {
        aggregates[name] = layout
          ? (layout.kernels[i] as NumericKernel).result(state.slots, state.at + (layout.offsets[i] as number))
          : (aggregators[i] as AnyAggregator<unknown>).result(state.accumulators[i]);
      });
      return { key: keyOfEntry(entry, keys), aggregates, version: state.version };
    },
    keyTextsOf(userKey) {
      // `{"customer":"c1"}` is an object key; `c1` (not JSON) and `"c1"` a string key; `42` either.
      const texts = new Set<string>([userKey]);
      let parsed: unknown;
      try {
        parsed = JSON.parse(userKey) as unknown;
      } catch {
        return [...texts]; // not JSON: only a string key
      }
      texts.add(keys.textOf(parsed));
      // The fields in any order: `{"meter":"m","subject":"s"}` finds the key grouped as { subject, meter }.
      const fields = keys.fields;
      if (typeof parsed === 'object' && parsed !== null && !Array.isArray(parsed) && fields !== undefined) {
        const given = parsed as Record<string, unknown>;
        if (Object.keys(given).length === fields.length && fields.every((field) => field in given))
          texts.add(keys.textOf(Object.fromEntries(fields.map((field) => [field, given[field]]))));
      }
      return [...texts];
    },
  };
}

/**
 * The format of a window store in the store manifest: its codec, the kinds of its aggregators in order
 * (the accumulators are stored by position) and the window size (the stored windows' starts). Tumbling
 * windows are tagged by their size alone (`@60000ms`), as before the Windows strategy; another kind
 * must add what tells its windows apart (its advance), so that a folder of one kind is not read as the other.
 */
export function windowStoreFormat(spec: Record<string, AnyAggregator<unknown>>, windowSize: number): string {
  const codec = numericLayout(spec) ? 'window-numeric/2' : 'window-json/1';
  const kinds = Object.values(spec).map((aggregator) => aggregator.kind);
  return `${codec}:${kinds.join(',')}@${windowSize}ms`;
}

/** The spec of the window store named after the node; its codec follows the aggregate spec. */
export function windowStoreSpec(config: {
  name: string;
  spec: Record<string, AnyAggregator<unknown>>;
  windows: Windows;
}): StoreSpec {
  const aggregators = Object.values(config.spec);
  const layout = numericLayout(config.spec);
  return {
    name: config.name,
    kind: 'window',
    format: windowStoreFormat(config.spec, config.windows.sizeMs),
    create: (db, { cache }) => {
      const keys = new GroupKeyText();
      const codec = layout
        ? numericBlobCodec(config.name, layout.width, keys)
        : jsonWindowStateCodec(aggregators, keys);
      return new GroupWindowStore(
        db,
        config.name,
        codec,
        keys,
        windowEntryReader(config.spec, config.windows.sizeMs, keys),
        config.windows,
        { cache },
      );
    },
  };
}
