/**
 * Where a store lives in its task's LevelDB: the sublevel of its entries, the sublevels of the local
 * entries it derives from them, and the meta entries it keeps beside them. Plain functions of a store's
 * kind and name, shared by the stores, StateDb (reset, seeding, listing a folder's stores) and the
 * manifest (store-manifest.ts), so none of them imports another for it.
 */
import type { StoreView } from '../core/task.js';

export type StoreKind = StoreView['kind'];

/** Sublevel prefix of each store kind: a store's entries live in the sublevel `<prefix>:<name>`. */
const LEVEL_PREFIX: Record<StoreKind, string> = {
  'key-value': 'kv',
  window: 'window',
  dedupe: 'dedupe',
  outbox: 'outbox',
};

/** The sublevel holding the entries of a store. */
export function storeLevelName(kind: StoreKind, name: string): string {
  return `${LEVEL_PREFIX[kind]}:${name}`;
}

/** Where a store's entries live and how its values are encoded (only key-value stores hold text). */
export function storeLevel(store: { kind: StoreKind; name: string }): { level: string; binary: boolean } {
  return { level: storeLevelName(store.kind, store.name), binary: store.kind !== 'key-value' };
}

/** The store a sublevel name belongs to, or undefined for a sublevel that is not a store's (`meta`). */
export function storeOfLevel(level: string): { kind: StoreKind; name: string } | undefined {
  const colon = level.indexOf(':');
  if (colon < 0) return undefined;
  const prefix = level.slice(0, colon);
  const kind = (Object.keys(LEVEL_PREFIX) as StoreKind[]).find((k) => LEVEL_PREFIX[k] === prefix);
  return kind === undefined ? undefined : { kind, name: level.slice(colon + 1) };
}

/**
 * Sublevels of local entries a store derives from its own (never changelogged; discarded with it on
 * reset). Their names have no store prefix, so they are never taken for stores.
 */
export function storeLocalLevels(kind: StoreKind, name: string): string[] {
  return kind === 'dedupe' ? [`dedupe-index:${name}`, `dedupe-local:${name}`] : [];
}

/** The meta entries a store keeps beside its sublevel (deleted with it on reset). */
export function storeMetaKeys(kind: StoreKind, name: string): string[] {
  switch (kind) {
    case 'dedupe':
      return [`dedupe-next-chunk:${name}`];
    case 'window':
      return [`window-next-blob:${name}`];
    case 'outbox':
      return [`outbox-next-seq:${name}`, `outbox-acked-through:${name}`];
    case 'key-value':
      // Its committed entry count (so opening needs no scan).
      return [`kv-count:${name}`];
  }
}
