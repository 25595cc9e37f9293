/** The window store of an aggregate node: its spec, and the store with the key texts of its entries. */
import { WindowStore } from '../state/window-store.js';
import type { StateDb } from '../state/db.js';
import type { WindowBlobCodec } from '../state/window-store.js';
import type { AnyAggregator } from './aggregators.js';
import type { StoreSpec } from './graph.js';
import type { TumblingWindows } from './time.js';
import { GroupKeyText } from './group-key.js';
import { jsonWindowStateCodec, numericBlobCodec } from './window-state-codec.js';
import { numericLayout } from './window-state.js';
import type { WindowState } from './window-state.js';

/** The window store of one aggregate node, with the canonical key texts its entries are indexed by. */
export class GroupWindowStore extends WindowStore<WindowState> {
  constructor(
    db: StateDb,
    name: string,
    codec: WindowBlobCodec<WindowState>,
    readonly keys: GroupKeyText,
  ) {
    super(db, name, codec);
  }
}

/**
 * The format of a window store in the store manifest: its codec, the kinds of its aggregators in order
 * (the accumulators are stored by position) and the window size (the stored windows' starts).
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
  windows: TumblingWindows;
}): StoreSpec {
  const aggregators = Object.values(config.spec);
  const layout = numericLayout(config.spec);
  return {
    name: config.name,
    kind: 'window',
    format: windowStoreFormat(config.spec, config.windows.size),
    create: (db) => {
      const keys = new GroupKeyText();
      const codec = layout
        ? numericBlobCodec(config.name, layout.width, keys)
        : jsonWindowStateCodec(aggregators, keys);
      return new GroupWindowStore(db, config.name, codec, keys);
    },
  };
}
