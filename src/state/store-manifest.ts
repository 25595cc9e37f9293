/**
 * Which stores a state folder holds, so that a topology that changed cannot silently lose state.
 *
 * A store's identity is its name, its kind and its format (how its entries are written: a codec and
 * whatever decides how stored bytes are read back, e.g. a window store's aggregator kinds and window
 * size). The manifest of a folder is the identities of its stores, written in the same atomic batch as
 * the first commit after an open (StateDb meta key `store-manifest`); a folder written before
 * manifests existed is read by listing its store sublevels (name and kind, format unknown).
 *
 * On open, the folder's stores are compared with the topology's: a store the folder holds that the
 * topology no longer has, or has with another kind or format, stops the open with a StoreMismatchError
 * naming the store and the ways out (give the operator its old name back, or reset that store
 * explicitly). A store listed in `resetStores` is discarded instead, and only then: a listed store that
 * matches is kept, so leaving a name in the list does no harm. A store new to the topology starts
 * empty. The identity is plain data, so a changelog topic can later carry the same manifest.
 */
import type { StoreKind } from './db.js';

export interface StoreIdentity {
  readonly name: string;
  readonly kind: StoreKind;
  /** How entries are serialized; undefined when unknown (a folder from before manifests). */
  readonly format: string | undefined;
}

export interface StoreManifest {
  readonly version: 1;
  readonly stores: readonly StoreIdentity[];
}

export const STORE_MANIFEST_KEY = 'store-manifest';

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

/** Thrown when a state folder holds stores the topology lost or changed; the message names each and the fix. */
export class StoreMismatchError extends Error {
  constructor(
    readonly stores: readonly string[],
    message: string,
  ) {
    super(message);
    this.name = 'StoreMismatchError';
  }
}

export interface StoreComparison {
  /** Held stores to discard (mismatched and listed in resetStores). */
  readonly reset: readonly StoreIdentity[];
  /** One line per held store that is gone or changed and not listed in resetStores. */
  readonly problems: readonly string[];
  readonly problemStores: readonly string[];
}

/**
 * Compares the stores a folder holds with the topology's. `resetStores` names the held stores the user
 * agreed to discard when they no longer match; a name in it that matches is kept.
 */
export function compareStores(
  held: readonly StoreIdentity[],
  expected: readonly StoreIdentity[],
  resetStores: readonly string[],
): StoreComparison {
  const wanted = new Map(expected.map((store) => [store.name, store]));
  const resettable = new Set(resetStores);
  const reset: StoreIdentity[] = [];
  const problems: string[] = [];
  const problemStores: string[] = [];
  for (const store of held) {
    const now = wanted.get(store.name);
    const problem =
      now === undefined
        ? `${store.kind} store "${store.name}" is in the state folder but not in the topology` +
          similarStores(store, expected)
        : now.kind !== store.kind
          ? `store "${store.name}" was a ${store.kind} store and is now a ${now.kind} store`
          : store.format !== undefined && now.format !== store.format
            ? `${store.kind} store "${store.name}" was written as ${store.format} and the topology now reads ${now.format}`
            : undefined;
    if (problem === undefined) continue;
    if (resettable.has(store.name)) reset.push(store);
    else {
      problems.push(problem);
      problemStores.push(store.name);
    }
  }
  return { reset, problems, problemStores };
}

/** A hint at the stores of the same kind the topology has that the folder does not (a likely rename). */
function similarStores(store: StoreIdentity, expected: readonly StoreIdentity[]): string {
  const candidates = expected.filter((other) => other.kind === store.kind).map((other) => `"${other.name}"`);
  return candidates.length === 0 ? '' : ` (the topology's ${store.kind} stores: ${candidates.join(', ')})`;
}

/** The error for the problems of a comparison, naming every store and both ways out. */
export function storeMismatchError(comparison: StoreComparison, dir: string): StoreMismatchError {
  const names = comparison.problemStores.map((name) => `"${name}"`).join(', ');
  return new StoreMismatchError(
    comparison.problemStores,
    `the state folder ${dir} holds state the topology would lose: ${comparison.problems.join('; ')}. ` +
      'Either give the operator its old store name back (the `name` option of dedupe(), window() or ' +
      'process() stores; a sink keeps its table), or discard that state explicitly with the setting ' +
      `resetStores: [${names}] (TRIBUTARY_RESET_STORES=${comparison.problemStores.join(',')}); ` +
      'a reset store starts empty.',
  );
}
