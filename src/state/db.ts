/**
 * One LevelDB per partition task. Every store lives in its own sublevel and keeps its working set in
 * memory (a write-back cache); nothing reaches LevelDB until commit(), which writes the dirty entries of
 * all stores and the caller's checkpoint metadata in one atomic batch. A crash therefore leaves the
 * database at the previous checkpoint, consistent with the input positions recorded in it.
 */
import { ClassicLevel } from 'classic-level';
import type { AbstractSublevel } from 'abstract-level';
import { CHECKPOINT_STORE } from '../core/task.js';
import type { StateChange, StoreView } from '../core/task.js';
import { storeLevel, storeLevelName, storeLocalLevels, storeMetaKeys, storeOfLevel } from './store-layout.js';
import type { StoreKind } from './store-layout.js';
import { STORE_MANIFEST_KEY } from './store-manifest.js';
import type { StoreIdentity, StoreManifest } from './store-manifest.js';
export type ValueEncoding = 'utf8' | 'view';

type Db = ClassicLevel<string, string>;
export type TextSublevel = AbstractSublevel<Db, string | Buffer | Uint8Array, string, string>;
export type BinarySublevel = AbstractSublevel<Db, string | Buffer | Uint8Array, string, Uint8Array>;
export type AnySublevel = TextSublevel | BinarySublevel;

/**
 * One store write as a changelog carries it: `value` null is a tombstone. Emitted at commit time for
 * the entries that commit writes (the cache already collapsed repeated writes of one key), which is
 * what a compacted changelog topic needs.
 */
export type ChangeRecord = StateChange;

/**
 * Writes a commit's changes to the changelog before LevelDB is written; resolves with the last
 * changelog offset per store, recorded in the same LevelDB batch. A rejection leaves nothing written.
 */
export type ChangelogGate = (changes: readonly ChangeRecord[]) => Promise<ReadonlyMap<string, bigint>>;

export type ChangeListener = (changes: readonly ChangeRecord[]) => void;

/**
 * Writes to local derived entries (e.g. the dedupe store's id index and filter): in LevelDB only,
 * never changelogged, because a restore rebuilds them from the changelogged entries.
 */
export interface LocalWrites {
  putLocal(level: AnySublevel, key: string, value: string | Uint8Array): void;
  delLocal(level: AnySublevel, key: string): void;
}

/** Collects the writes of one commit. */
export interface WriteBatch extends LocalWrites {
  put(level: TextSublevel, store: string, key: string, value: string): void;
  putBinary(level: BinarySublevel, store: string, key: string, value: Uint8Array): void;
  del(level: AnySublevel, store: string, key: string): void;
}

/** Local writes applied together, outside a commit (cleanups of derived entries). */
export interface LocalBatch extends LocalWrites {
  write(): Promise<void>;
}

/**
 * Derives a store's local entries from replayed changelog records (restore, standby), into the batch
 * that writes them: the folder's derived entries always match its changelogged ones.
 */
export type ChangelogDeriver = (changes: readonly ChangeRecord[], local: LocalWrites) => Promise<void>;

/** What StateDb needs of a store: load its entries on open, hand over dirty entries at commit. */
export interface ManagedStore {
  readonly name: string;
  readonly kind: StoreKind;
  load(): Promise<void>;
  /** Adds this store's dirty entries to the batch; must not forget them until committed() is called. */
  collectWrites(batch: WriteBatch): void;
  /** The batch is durable: forget dirty markers, run cleanups that may lag behind (range deletes). */
  committed(): Promise<void>;
  /**
   * Called by the task right before each commit with its stream time, for housekeeping that belongs
   * in the checkpoint (e.g. the dedupe store's expiry of ids past its horizon).
   */
  beforeCommit?(streamTime: number): void;
  view(): StoreView;
  /** The folder closes: give back what the store holds outside it (its share of the cache budget). */
  release?(): void;
}

const CHECKPOINT_KEY = 'checkpoint';
/** Per store, the last changelog offset this folder reflects (local bookkeeping, never changelogged). */
const CHANGELOG_OFFSETS_KEY = 'changelog-offsets';

export class StateDb {
  private readonly stores = new Map<string, ManagedStore>();
  private readonly listeners = new Set<ChangeListener>();
  private readonly meta: TextSublevel;
  private pendingMeta = new Map<string, string>();
  /** Deletes queued for the next commit (e.g. expired dedupe chunks), as tombstones for the changelog too. */
  private pendingDeletes: Array<{ level: AnySublevel; store: string; key: string }> = [];
  /** The metadata the last commit wrote, to skip a changelog transaction that would change nothing. */
  private lastCheckpointText: string | undefined;
  private changelogOffsets = new Map<string, bigint>();
  /** The next changelog commit carries the whole folder first (seedChangelog). */
  private seedPending = false;

  private constructor(private readonly db: Db) {
    this.meta = db.sublevel<string, string>('meta', { valueEncoding: 'utf8' });
  }

  static async open(dir: string): Promise<StateDb> {
    const db = new ClassicLevel<string, string>(dir, { keyEncoding: 'utf8', valueEncoding: 'utf8' });
    await db.open();
    const state = new StateDb(db);
    const offsets = await state.meta.get(CHANGELOG_OFFSETS_KEY);
    if (offsets !== undefined)
      for (const [store, offset] of Object.entries(JSON.parse(offsets) as Record<string, string>))
        state.changelogOffsets.set(store, BigInt(offset));
    return state;
  }

  /** Per store, the last changelog offset the folder reflects (empty: never written with a changelog). */
  changelogPositions(): ReadonlyMap<string, bigint> {
    return this.changelogOffsets;
  }

  /** Whether the folder holds anything at all (a checkpoint, or any store entry). */
  async holdsState(): Promise<boolean> {
    const keys = await this.db.keys({ limit: 1 }).all();
    return keys.length > 0;
  }

  /** Deletes every entry of the folder (state discarded before a restore from the changelog). */
  async clearAll(): Promise<void> {
    await this.db.clear();
    this.changelogOffsets = new Map();
  }

  /**
   * Applies replayed changelog records of one store (or of CHECKPOINT_STORE, into the metadata) and
   * the offset they reach, in one batch: a crash mid-restore resumes from there.
   */
  async applyChangelog(
    target: { level: string; binary: boolean } | typeof CHECKPOINT_STORE,
    store: string,
    changes: readonly ChangeRecord[],
    lastOffset: bigint,
    derive?: ChangelogDeriver,
  ): Promise<void> {
    const batch = this.db.batch();
    if (derive) await derive(changes, localWritesOf(batch, this.db));
    const level: AnySublevel =
      target === CHECKPOINT_STORE
        ? this.meta
        : target.binary
          ? this.binaryLevel(target.level)
          : this.textLevel(target.level);
    for (const { key, value } of changes) {
      if (value === null) batch.del(key, { sublevel: level });
      else if (target !== CHECKPOINT_STORE && target.binary)
        batch.put<string, Uint8Array>(key, typeof value === 'string' ? Buffer.from(value) : value, {
          sublevel: level as BinarySublevel,
        });
      else
        batch.put(key, typeof value === 'string' ? value : Buffer.from(value).toString('utf8'), {
          sublevel: level as TextSublevel,
        });
    }
    this.changelogOffsets.set(store, lastOffset);
    batch.put(CHANGELOG_OFFSETS_KEY, offsetsText(this.changelogOffsets), { sublevel: this.meta });
    await batch.write();
  }

  /** A batch of local writes, written on its own (never changelogged). */
  localBatch(): LocalBatch {
    const batch = this.db.batch();
    return { ...localWritesOf(batch, this.db), write: () => batch.write() };
  }

  /** Sends every entry of the folder (stores and metadata) with the next changelog commit. */
  seedChangelog(): void {
    this.seedPending = true;
  }

  /** Every entry of every attached store and of the metadata, as changes (the seed of an empty changelog). */
  private async everything(): Promise<ChangeRecord[]> {
    const changes: ChangeRecord[] = [];
    for (const store of this.stores.values()) {
      const { level, binary } = storeLevel(store);
      const sublevel = binary ? this.binaryLevel(level) : this.textLevel(level);
      for await (const [key, value] of sublevel.iterator()) changes.push({ store: store.name, key, value });
    }
    for await (const [key, value] of this.meta.iterator())
      if (key !== CHANGELOG_OFFSETS_KEY && key !== CHECKPOINT_KEY)
        changes.push({ store: CHECKPOINT_STORE, key, value });
    return changes;
  }

  /** Deletes `keys` of a store with the next commit (tombstones in its changelog). */
  queueDeletes(level: AnySublevel, store: string, keys: readonly string[]): void {
    for (const key of keys) this.pendingDeletes.push({ level, store, key });
  }

  textLevel(name: string): TextSublevel {
    return this.db.sublevel<string, string>(name, { keyEncoding: 'utf8', valueEncoding: 'utf8' });
  }

  binaryLevel(name: string): BinarySublevel {
    return this.db.sublevel<string, Uint8Array>(name, { keyEncoding: 'utf8', valueEncoding: 'view' });
  }

  /** Registers and loads a store; store names are unique per database. */
  async attach<S extends ManagedStore>(store: S): Promise<S> {
    if (this.stores.has(store.name)) throw new Error(`duplicate store name "${store.name}"`);
    this.stores.set(store.name, store);
    await store.load();
    return store;
  }

  allStores(): ManagedStore[] {
    return [...this.stores.values()];
  }

  /** Subscribes to change records (tests and tools; the changelog goes through commit()); returns an unsubscribe function. */
  onChange(listener: ChangeListener): () => void {
    this.listeners.add(listener);
    return () => this.listeners.delete(listener);
  }

  /** Small metadata entries a store wants written with the next commit (e.g. an outbox's next sequence). */
  putMeta(key: string, value: string): void {
    this.pendingMeta.set(key, value);
  }

  async getMeta(key: string): Promise<string | undefined> {
    return this.meta.get(key);
  }

  /**
   * The stores this folder holds: from its manifest, or, in a folder written before manifests, from
   * the store sublevels that have entries (format unknown). One seek per sublevel, not a full scan.
   */
  async heldStores(): Promise<StoreIdentity[]> {
    const text = await this.meta.get(STORE_MANIFEST_KEY);
    if (text !== undefined) return [...(JSON.parse(text) as StoreManifest).stores];
    const held: StoreIdentity[] = [];
    const keys = this.db.keys({ gt: '!' });
    try {
      for (let key = await keys.next(); key !== undefined; key = await keys.next()) {
        const end = key.indexOf('!', 1);
        if (!key.startsWith('!') || end < 0) break;
        const level = key.slice(1, end);
        const store = storeOfLevel(level);
        if (store !== undefined) held.push({ ...store, format: undefined });
        // '"' follows '!': the first key after every key of this sublevel.
        keys.seek(`!${level}"`);
      }
    } finally {
      await keys.close();
    }
    return held;
  }

  /** Writes the manifest of `stores` with the next commit. */
  recordStores(stores: readonly StoreIdentity[]): void {
    this.putMeta(STORE_MANIFEST_KEY, JSON.stringify({ version: 1, stores } satisfies StoreManifest));
  }

  /** Whether a store holds no entries (an outbox whose every output was delivered and acked). */
  async holdsNothing(store: StoreIdentity): Promise<boolean> {
    const keys = await this.textLevel(storeLevelName(store.kind, store.name)).keys({ limit: 1 }).all();
    return keys.length === 0;
  }

  /**
   * Discards `reset` (every entry and its meta entries) and records `manifest` in one atomic batch, so
   * a crash leaves either the old state or the reset one. Call before attaching stores.
   */
  async resetStores(reset: readonly StoreIdentity[], manifest: readonly StoreIdentity[]): Promise<void> {
    const batch = this.db.batch();
    for (const store of reset) {
      const level = this.textLevel(storeLevelName(store.kind, store.name));
      for await (const key of level.keys()) {
        batch.del(key, { sublevel: level });
        // The store's changelog forgets it too, with the next commit (deleting a deleted key is harmless).
        this.pendingDeletes.push({ level, store: store.name, key });
      }
      // Derived local entries go too (no tombstones: they were never changelogged).
      for (const name of storeLocalLevels(store.kind, store.name)) {
        const local = this.textLevel(name);
        for await (const key of local.keys()) batch.del(key, { sublevel: local });
      }
      for (const key of storeMetaKeys(store.kind, store.name)) {
        batch.del(key, { sublevel: this.meta });
        this.pendingDeletes.push({ level: this.meta, store: CHECKPOINT_STORE, key });
      }
    }
    batch.put(STORE_MANIFEST_KEY, JSON.stringify({ version: 1, stores: manifest } satisfies StoreManifest), {
      sublevel: this.meta,
    });
    await batch.write();
  }

  async readCheckpoint<M>(): Promise<M | undefined> {
    const text = await this.meta.get(CHECKPOINT_KEY);
    return text === undefined ? undefined : (JSON.parse(text) as M);
  }

  /**
   * Writes all dirty store entries plus `checkpoint` in one atomic batch. With a changelog gate, the
   * changes (store entries and metadata) go to the changelog first and the batch records the offsets
   * the gate returns; when nothing changed at all, neither is written. A commit whose only writes are
   * local (derived entries, e.g. a dedupe store spilling its recent ids because its cache share shrank
   * while its partition was idle) sends no transaction but still writes its batch: the stores moved
   * their memory on in collectWrites as if the batch were written, and committed() follows either way.
   */
  async commit(checkpoint: unknown, changelog?: ChangelogGate): Promise<void> {
    const batch = this.db.batch();
    const changes: ChangeRecord[] | undefined = this.listeners.size > 0 || changelog ? [] : undefined;
    const local = localWritesOf(batch, this.db);
    let localWrites = 0;
    const collector: WriteBatch = {
      putLocal(level, key, value) {
        localWrites++;
        local.putLocal(level, key, value);
      },
      delLocal(level, key) {
        localWrites++;
        local.delLocal(level, key);
      },
      put(level, store, key, value) {
        batch.put(key, value, { sublevel: level });
        changes?.push({ store, key, value });
      },
      putBinary(level, store, key, value) {
        batch.put<string, Uint8Array>(key, value, { sublevel: level });
        changes?.push({ store, key, value });
      },
      del(level, store, key) {
        batch.del(key, { sublevel: level });
        changes?.push({ store, key, value: null });
      },
    };
    // The seed goes first: the commit's own changes, later in the same transaction, overwrite it.
    if (changelog && this.seedPending) changes?.push(...(await this.everything()));
    for (const { level, store, key } of this.pendingDeletes) collector.del(level, store, key);
    for (const store of this.stores.values()) store.collectWrites(collector);
    const checkpointText = JSON.stringify(checkpoint);
    for (const [key, value] of this.pendingMeta) {
      batch.put(key, value, { sublevel: this.meta });
      changes?.push({ store: CHECKPOINT_STORE, key, value });
    }
    // Nothing for the changelog (an idle partition): no transaction, and no batch unless it holds local writes.
    const unchanged = changes?.length === 0 && checkpointText === this.lastCheckpointText;
    const transaction = changelog !== undefined && !unchanged;
    if (transaction) {
      changes?.push({ store: CHECKPOINT_STORE, key: CHECKPOINT_KEY, value: checkpointText });
      for (const [store, offset] of await changelog(changes ?? [])) this.changelogOffsets.set(store, offset);
      batch.put(CHANGELOG_OFFSETS_KEY, offsetsText(this.changelogOffsets), { sublevel: this.meta });
    }
    if (transaction || changelog === undefined || localWrites > 0) {
      batch.put(CHECKPOINT_KEY, checkpointText, { sublevel: this.meta });
      await batch.write();
    } else {
      // An unwritten batch stays attached to the database (and its native batch alive) until closed:
      // one per idle commit would pile up for as long as the partition is idle.
      await batch.close();
    }
    this.lastCheckpointText = checkpointText;
    if (transaction) this.seedPending = false;
    this.pendingMeta = new Map();
    this.pendingDeletes = [];
    for (const store of this.stores.values()) await store.committed();
    const storeChanges = changes?.filter((change) => change.store !== CHECKPOINT_STORE);
    if (storeChanges && storeChanges.length > 0)
      for (const listener of this.listeners) listener(storeChanges);
  }

  async close(): Promise<void> {
    for (const store of this.stores.values()) store.release?.();
    await this.db.close();
  }
}

type RawBatch = ReturnType<Db['batch']>;

/** What an abstract-level implementation adds to a chained batch: the put behind the public one's checks. */
interface ImplementationPut {
  _put(key: string, value: string): void;
}

function localWritesOf(batch: RawBatch, db: Db): LocalWrites {
  // Text goes in with the sublevel's prefix on the root (utf8 both): the same entry, at a fraction of
  // the cost of the `sublevel` option, which matters at one index entry per spilled dedupe id. After
  // the first, such entries skip abstract-level's public put (option copies, encodings, hooks,
  // events: more than half of an entry's cost in bench:state's commits) for the implementation's.
  // That is the entry the public put would hand down (utf8 on utf8, no prefix of its own), as long
  // as no prewrite hook or write listener would change or watch it (checked here, and the state
  // folder adds none), and the public put of the first keeps the batch's length above zero, so
  // write() never skips the batch as empty.
  // `noop` is abstract-level's own flag for a hook with no function added (not in its types); gone
  // in some later version, it reads undefined and every entry takes the public put.
  const noPrewriteHook = (db.hooks.prewrite as unknown as { noop?: boolean }).noop === true;
  const direct =
    noPrewriteHook && db.listenerCount('write') === 0 ? (batch as unknown as ImplementationPut) : undefined;
  let counted = false;
  return {
    putLocal(level, key, value) {
      if (typeof value !== 'string') {
        batch.put<string, Uint8Array>(key, value, { sublevel: level as BinarySublevel });
      } else if (direct !== undefined && counted) {
        direct._put(level.prefix + key, value);
      } else {
        batch.put(level.prefix + key, value);
        counted = true;
      }
    },
    delLocal(level, key) {
      batch.del(key, { sublevel: level });
    },
  };
}

function offsetsText(offsets: ReadonlyMap<string, bigint>): string {
  return JSON.stringify(
    Object.fromEntries([...offsets].map(([store, offset]) => [store, offset.toString()])),
  );
}
