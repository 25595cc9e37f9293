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
import type { StoreKind } from './store-layout.js';

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
