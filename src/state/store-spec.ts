/**
 * A store as a topology declares it: its identity (name, kind, format: what the store manifest
 * compares) and how to make it over a task's StateDb. The topology's builder produces these; the task
 * state (state/task-state.ts) opens them.
 */
import type { CacheMemory } from '../core/task.js';
import type { ChangelogDeriver, ManagedStore, StateDb } from './db.js';
import type { StoreKind } from './store-layout.js';

/** What a store gets besides its folder. */
export interface StoreContext {
  /** The instance's cache memory (state.cacheMaxBytes), shared by the stores of its tasks. */
  readonly cache: CacheMemory;
}

export interface StoreSpec {
  /** Stable: given by the user or derived from what the user wrote, never from the node's position. */
  readonly name: string;
  readonly kind: StoreKind;
  /** How its entries are serialized (store-manifest.ts): a state folder written otherwise is refused. */
  readonly format: string;
  create(db: StateDb, context: StoreContext): ManagedStore;
  /** Keeps the store's local derived entries in step with replayed changelog records (restore, standby). */
  readonly restoreDeriver?: (db: StateDb) => ChangelogDeriver;
}
