/**
 * A task's state as it opens: the one unit that turns a partition's folder into loaded stores
 * (Kafka Streams' ProcessorStateManager beside its StreamTask). The engine asks it for an opened task
 * state and keeps only the DAG and the hot path.
 *
 * Opening, in this order (ARCHITECTURE.md, "Exactly-once, as built", step 5):
 * 1. the folder is created if new and its LevelDB opened;
 * 2. with a changelog, the folder is brought up to it (restore: per store, what the topics hold
 *    beyond the offsets the folder reflects), before any store loads;
 * 3. the stores the folder holds are compared with the topology's (reconcile, store-manifest.ts):
 *    a store lost or changed refuses the folder, one listed in `resetStores` is discarded;
 * 4. the topology's stores, then the DLQ's and each sink's outbox, are attached (loaded);
 * 5. the checkpoint is read back.
 * A failure at any step closes the folder before the error goes up.
 *
 * A standby opens the same folder without step 3 to 5: it only replays the changelog into it.
 */
import { mkdir } from 'node:fs/promises';
import { CacheBudget } from '../core/cache-budget.js';
import { CHECKPOINT_STORE, DLQ_OUTBOX } from '../core/task.js';
import type { ChangelogRestore, OpenTaskOptions, StandbyState, TaskChangelog } from '../core/task.js';
import { StateDb } from './db.js';
import type { ChangelogDeriver, ManagedStore } from './db.js';
import { OutboxStore, outboxFormat } from './outbox-store.js';
import type { SegmentCodec } from './outbox-store.js';
import { storeLevel } from './store-layout.js';
import { compareStores, storeMismatchError } from './store-manifest.js';
import type { StoreIdentity } from './store-manifest.js';
import type { StoreSpec } from './store-spec.js';

/** What a task's state is made of: the topology's stores and the outbox of each of its sinks. */
export interface TaskStatePlan {
  readonly storeSpecs: readonly StoreSpec[];
  /** One outbox per sink, by the sink's name; the DLQ's outbox (DLQ_OUTBOX) comes on top of these. */
  readonly sinkOutboxes: ReadonlyArray<{ readonly name: string; readonly codec?: SegmentCodec<unknown> }>;
}

/** A task's opened state: every store loaded, and the checkpoint the folder holds (undefined if none). */
export interface TaskState<C> {
  readonly db: StateDb;
  /** The topology's stores by name. */
  readonly stores: Map<string, ManagedStore>;
  /** The DLQ's and each sink's outbox, by name. */
  readonly outboxes: Map<string, OutboxStore>;
  /** What the last commit wrote as its checkpoint (StateDb.commit), as the task wrote it. */
  readonly checkpoint: C | undefined;
}

/** Opens a partition's folder as a task's state (see the file comment for the steps). */
export async function openTaskState<C>(plan: TaskStatePlan, options: OpenTaskOptions): Promise<TaskState<C>> {
  await mkdir(options.dir, { recursive: true });
  const db = await StateDb.open(options.dir);
  try {
    if (options.changelog) await restoreFromChangelog(db, plan, options.changelog);
    await reconcileStores(db, plan, options);
    const stores = new Map<string, ManagedStore>();
    const storeContext = { cache: options.cache ?? new CacheBudget() };
    for (const spec of plan.storeSpecs) stores.set(spec.name, await db.attach(spec.create(db, storeContext)));
    const outboxes = new Map<string, OutboxStore>();
    for (const { name, codec } of [{ name: DLQ_OUTBOX, codec: undefined }, ...plan.sinkOutboxes]) {
      if (outboxes.has(name)) throw new Error(`sink name "${name}" is reserved or used twice`);
      outboxes.set(
        name,
        await db.attach(new OutboxStore(db, name, codec, { hotRows: options.deliveryBatchRows })),
      );
    }
    const checkpoint = await db.readCheckpoint<C>();
    return { db, stores, outboxes, checkpoint };
  } catch (error) {
    await db.close();
    throw error;
  }
}

/** A standby: the partition's folder, fed from its changelog, with no store loaded. */
export async function openStandbyState(
  plan: TaskStatePlan,
  options: { partition: number; dir: string },
): Promise<StandbyState> {
  await mkdir(options.dir, { recursive: true });
  const db = await StateDb.open(options.dir);
  return { target: await restoreTarget(db, plan), close: () => db.close() };
}

/** Every store of a task, as the manifest names them: the topology's stores, the DLQ and sink outboxes. */
function expectedStores(plan: TaskStatePlan): StoreIdentity[] {
  return [
    ...plan.storeSpecs.map(({ name, kind, format }) => ({ name, kind, format })),
    { name: DLQ_OUTBOX, kind: 'outbox', format: outboxFormat(undefined) },
    ...plan.sinkOutboxes.map(({ name, codec }) => ({
      name,
      kind: 'outbox' as const,
      format: outboxFormat(codec),
    })),
  ];
}

/**
 * Brings the folder up to its changelog before any store loads: replays, per store, what the topics
 * hold beyond the offsets the folder reflects (everything, for a new or discarded folder).
 */
async function restoreFromChangelog(
  db: StateDb,
  plan: TaskStatePlan,
  changelog: TaskChangelog,
): Promise<void> {
  await changelog.restore(await restoreTarget(db, plan));
}

/**
 * The folder as a changelog replay writes it: raw entries into each store's sublevel, and the local
 * entries a store derives from them (the dedupe index) in the same batch.
 */
async function restoreTarget(db: StateDb, plan: TaskStatePlan): Promise<ChangelogRestore> {
  const targets = new Map<string, { level: string; binary: boolean }>(
    expectedStores(plan).map((store) => [store.name, storeLevel(store)]),
  );
  const derivers = new Map<string, ChangelogDeriver>();
  for (const spec of plan.storeSpecs)
    if (spec.restoreDeriver) derivers.set(spec.name, spec.restoreDeriver(db));
  return {
    local: db.changelogPositions(),
    localHasState: await db.holdsState(),
    discardLocal: () => db.clearAll(),
    seedChangelog: () => db.seedChangelog(),
    apply: async (store, changes, lastOffset) => {
      const target = store === CHECKPOINT_STORE ? CHECKPOINT_STORE : targets.get(store);
      if (target === undefined) throw new Error(`changelog of unknown store "${store}"`);
      await db.applyChangelog(target, store, changes, lastOffset, derivers.get(store));
    },
  };
}

/**
 * Compares the stores the folder holds with the topology's before any is loaded (store-manifest.ts):
 * refuses a folder whose stores the topology lost or changed, discards those listed in
 * `options.resetStores`, and records the topology's stores as the folder's manifest.
 */
async function reconcileStores(db: StateDb, plan: TaskStatePlan, options: OpenTaskOptions): Promise<void> {
  const expected = expectedStores(plan);
  const held = await db.heldStores();
  // The outbox of a sink the topology no longer has loses nothing when every output in it was
  // delivered: it is discarded without being named in resetStores. One still holding outputs is not.
  const expectedNames = new Set(expected.map((store) => store.name));
  const deliveredOutboxes: string[] = [];
  for (const store of held)
    if (store.kind === 'outbox' && !expectedNames.has(store.name) && (await db.holdsNothing(store)))
      deliveredOutboxes.push(store.name);
  const comparison = compareStores(held, expected, [...(options.resetStores ?? []), ...deliveredOutboxes]);
  if (comparison.problems.length > 0) throw storeMismatchError(comparison, options.dir);
  if (comparison.reset.length > 0) await db.resetStores(comparison.reset, expected);
  else db.recordStores(expected);
}
