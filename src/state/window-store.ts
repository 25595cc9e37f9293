/**
 * Window store: aggregation state per (window start, group key), resident in memory and indexed by
 * window start, so closing a window touches only that window's entries.
 *
 * On disk a window is a short list of blobs, one per commit that changed it (key
 * `<sortable start>!<blob seq>`, value: the changed entries of that commit). A commit therefore costs
 * one put per touched window instead of one per touched key (LevelDB's per-operation overhead in
 * JavaScript dominates at 100k keys per minute), and removing a window deletes its few blobs in the
 * same atomic batch. Reopening replays a window's blobs in order, later entries overriding earlier
 * ones; a window whose blobs hold many superseded entries is rewritten as a single blob.
 *
 * A blob's bytes come from the store's codec: either a per-state JSON codec (the blob is a JSON array
 * of [key text, state] rows) or a blob codec that packs a whole list of entries itself (the window
 * operator's numeric states, written as raw float64s).
 *
 * Memory is bounded by the store's share of the cache budget (`state.cacheMaxBytes`). While the
 * entries fit, nothing above changes. When at a commit they outgrow the share, the oldest windows
 * **spill** (window-spill.ts): the window's entries are written as one record per key, its blobs
 * deleted in the same batch, and from then on its dirty entries are written per key; after the batch
 * is durable, clean entries are evicted (oldest windows first, in insertion order) down to the share.
 * A key not resident in a spilled window is read back with the batch that touches it (the engine's
 * pre-pass names it: wantEntry, one getMany in prefetch), else with a synchronous `getSync` when the
 * operator asks for it, unless the window's key filter rules it out (a new key costs no read).
 * Closing a spilled window first loads its entries asynchronously (loadWindow, awaited by the engine
 * between records). Opening reads the blobs and, per spilled window, its spill record (count and key
 * filter) and key logs (the keys added since), never a per-key record.
 *
 * The store composes two parts: its resident cache (window-cache.ts: the windows by start, their
 * estimated bytes, the eviction within its cache share) and its on-disk layout (window-disk.ts: blobs,
 * per-key records, spill records, key logs). It keeps the operator's calls, the dirty entries a commit
 * writes, the engine's prefetch protocol and the store view.
 */
import type { ManagedStore, StateDb, WriteBatch } from './db.js';
import type { CacheMemory, StoreView } from '../core/task.js';
import { KEY_LOG_MAX_KEYS } from './window-spill.js';
import { WindowCache } from './window-cache.js';
import type { Spill, Window } from './window-cache.js';
import { WindowDisk } from './window-disk.js';
import { WINDOW_ENTRY_OVERHEAD_BYTES, cleanEntry, jsonBlobCodec } from './window-entry.js';
import type { WindowBlobCodec, WindowEntry, WindowStateCodec } from './window-entry.js';
import { sortableTime } from './codec.js';
import { StoreQueryError, decodeCursor, pageOf, storeTime } from '../core/store-reads.js';
import type { StoreLookup, WindowEntryView } from '../core/store-reads.js';

// The entry and its codecs are part of the store's interface (the window operator implements them).
export {
  JSON_WINDOW_ENTRY_OVERHEAD_BYTES,
  WINDOW_ENTRY_OVERHEAD_BYTES,
  jsonBlobCodec,
} from './window-entry.js';
export type { WindowBlobCodec, WindowEntry, WindowStateCodec } from './window-entry.js';

/**
 * How the store view shows entries in the user's terms: the window operator that owns the store knows
 * its window size, its group keys and its aggregates by name; the store only knows key texts and states.
 */
export interface WindowEntryReader<S> {
  readonly windowSize: number;
  /** The group key as the user's groupBy() returned it, each aggregate's result by name, the version. */
  read(entry: WindowEntry<S>): { key: unknown; aggregates: Record<string, unknown>; version: number };
  /** The key texts a key, as the user writes it, may stand for (a JSON text may also be a plain string key). */
  keyTextsOf(userKey: string): string[];
}

/** A window that spills at the pending commit, with its new spill state. */
interface PendingSpill<S> {
  readonly window: Window<S>;
  readonly spill: Spill;
}

export interface WindowStoreOptions {
  /** The cache memory this store takes a share of (default: a budget of its own, `state.cacheMaxBytes`'s default). */
  cache?: CacheMemory;
}

export class WindowStore<S> implements ManagedStore {
  readonly kind = 'window' as const;
  private readonly codec: WindowBlobCodec<S>;
  /** The resident windows and their eviction. */
  private readonly cache: WindowCache<S>;
  /** The same map as `cache.windows`, held here so the per-record get() reads it without a hop. */
  private readonly windows: Map<number, Window<S>>;
  /** The blobs and records in LevelDB. */
  private readonly disk: WindowDisk<S>;
  private dirtyWindows = new Set<Window<S>>();
  /** Keys deleted by the next commit (blobs, per-key and spill records of removed windows). */
  private deletedKeys: string[] = [];
  /** Entries of all windows, resident or not. */
  private entryCount = 0;
  /** The window of the last get(), valid until removeWindow(). */
  private lastStart = NaN;
  private lastWindow: Window<S> | undefined;
  /** Blob keys written by the pending commit, per window, applied in committed(). */
  private pendingBlobs: Array<{ window: Window<S>; key: string; entries: number; replaces: boolean }> = [];
  /** Windows spilling with the pending commit, applied in committed(). */
  private pendingSpills: Array<PendingSpill<S>> = [];
  /** Spilled windows whose spill record (rewrite: true) or a key log the pending commit writes. */
  private pendingLogs: Array<{ spill: Spill; rewrite: boolean; logKey: string; keys: number }> = [];
  private synchronousReads = 0;
  private prefetchedEntries = 0;
  /** The per-key records the coming batch will read (named by the engine's pre-pass), by record key. */
  private wanted = new Map<string, { window: Window<S>; keyText: string }>();

  constructor(
    db: StateDb,
    readonly name: string,
    codec: WindowStateCodec<S> | WindowBlobCodec<S>,
    private readonly reader?: WindowEntryReader<S>,
    options: WindowStoreOptions = {},
  ) {
    this.codec = 'encodeBlob' in codec ? codec : jsonBlobCodec(codec);
    this.cache = new WindowCache(this.codec.entryOverheadBytes ?? WINDOW_ENTRY_OVERHEAD_BYTES, options.cache);
    this.windows = this.cache.windows;
    this.disk = new WindowDisk(db, name, this.codec);
  }

  /** Loads the blobs, and of each spilled window its spill record and key logs (no per-key record). */
  async load(): Promise<void> {
    this.entryCount += await this.disk.load(this.cache);
    this.cache.report();
  }

  get(start: number, keyText: string): WindowEntry<S> | undefined {
    // Consecutive records nearly always fall in the same window: skip the lookup by start.
    const window = start === this.lastStart ? this.lastWindow : this.windows.get(start);
    if (window === undefined) return undefined;
    this.lastStart = start;
    this.lastWindow = window;
    const entry = window.entries.get(keyText);
    if (entry !== undefined || window.spill === undefined) return entry;
    return this.readEvicted(window, window.spill, keyText);
  }

  // ---- the engine's batch protocol: want() each entry the batch will touch, then await prefetch() ----

  /** Some window spilled and is not resident: a key the batch touches may be on disk only. */
  get wantsPrefetch(): boolean {
    for (const window of this.windows.values()) if (window.spill?.complete === false) return true;
    return false;
  }

  beginBatch(): void {
    this.wanted.clear();
  }

  /** An entry the batch will touch: read ahead unless resident, or ruled out by its window's key filter. */
  wantEntry(start: number, keyText: string): void {
    const window = this.windows.get(start);
    const spill = window?.spill;
    if (window === undefined || spill === undefined || window.entries.has(keyText)) return;
    const recordKey = this.disk.recordKeyMaybeOnDisk(start, spill, keyText);
    if (recordKey !== undefined) this.wanted.set(recordKey, { window, keyText });
  }

  /**
   * Reads the wanted records with one `getMany` on LevelDB's thread pool and makes them resident
   * (clean: the next commit's eviction may drop them again), so get() answers from memory.
   */
  async prefetch(): Promise<void> {
    if (this.wanted.size === 0) return;
    const wanted = [...this.wanted];
    this.wanted.clear();
    const stored = await this.disk.readMany(wanted.map(([recordKey]) => recordKey));
    for (let i = 0; i < wanted.length; i++) {
      const bytes = stored[i];
      const { window, keyText } = (wanted[i] as [string, { window: Window<S>; keyText: string }])[1];
      // Gone or changed meanwhile: a removed window, or an entry made resident by another path.
      if (bytes === undefined || this.windows.get(window.start) !== window || window.entries.has(keyText))
        continue;
      const [storedText, state] = this.disk.decodeOne(bytes);
      // Only under the text the operator will look up: another text of the same key would be an
      // alias, a second entry for one key (the operator's get() then reads the record itself).
      if (storedText !== keyText) continue;
      this.makeResident(window, keyText, state);
      this.prefetchedEntries++;
    }
  }

  /** Adds a new entry (dirty). The caller checked that none exists (get() returned undefined). */
  insert(start: number, keyText: string, state: S): WindowEntry<S> {
    const window = this.cache.windowOf(start);
    const entry = cleanEntry(start, keyText, state);
    window.entries.set(keyText, entry);
    this.entryCount++;
    if (window.spill !== undefined) {
      window.spill.count++;
      window.spill.inserted.push(keyText);
    }
    this.markDirty(entry);
    return entry;
  }

  markDirty(entry: WindowEntry<S>): void {
    if (entry.dirty) return;
    const window = this.windows.get(entry.start);
    if (window === undefined) return;
    entry.dirty = true;
    window.dirty.push(entry);
    this.dirtyWindows.add(window);
  }

  /** Window starts in ascending order (a copy, safe to iterate while removing). */
  windowStarts(): number[] {
    return [...this.cache.starts];
  }

  /** The resident entries of a window: all of them when isResident(start). */
  entriesOf(start: number): IterableIterator<WindowEntry<S>> {
    return (this.windows.get(start)?.entries ?? new Map<string, WindowEntry<S>>()).values();
  }

  /** Whether every entry of the window is in memory (entriesOf gives them all; removeWindow may run). */
  isResident(start: number): boolean {
    const spill = this.windows.get(start)?.spill;
    return spill === undefined || spill.complete;
  }

  /** Reads the evicted entries of a spilled window back into memory, until the next commit's eviction. */
  async loadWindow(start: number): Promise<void> {
    const window = this.windows.get(start);
    const spill = window?.spill;
    if (window === undefined || spill === undefined || spill.complete) return;
    await this.disk.addEntriesOnDisk(start, window.entries);
    spill.complete = true;
  }

  /**
   * Removes every entry of one window; its blobs (or per-key records) are deleted by the next commit.
   * A spilled window must be resident first (loadWindow): its records are deleted by key.
   */
  removeWindow(start: number): void {
    const window = this.windows.get(start);
    if (window === undefined) return;
    const spill = window.spill;
    if (spill !== undefined && !spill.complete)
      throw new Error(`window store "${this.name}": window ${start} is removed before it was loaded`);
    for (const entry of window.entries.values()) entry.removed = true;
    this.entryCount -= spill === undefined ? window.entries.size : spill.count;
    this.deletedKeys.push(...this.disk.keysOfRemoved(window));
    this.dirtyWindows.delete(window);
    this.cache.remove(start);
    if (start === this.lastStart) {
      this.lastStart = NaN;
      this.lastWindow = undefined;
    }
  }

  /** Entries of all windows, resident or not. */
  get size(): number {
    return this.entryCount;
  }

  /** Entries in memory. */
  get residentEntries(): number {
    return this.cache.residentEntries;
  }

  /** Estimated bytes of the resident entries and of the spilled windows' key filters. */
  get residentBytes(): number {
    return this.cache.residentBytes;
  }

  /** Entries evicted from memory since open (diagnostics and tests). */
  get evictions(): number {
    return this.cache.evictions;
  }

  /** Entries read ahead by prefetch() since open (diagnostics and tests). */
  get prefetches(): number {
    return this.prefetchedEntries;
  }

  /** LevelDB reads made synchronously, for a key a spilled window's filter could not rule out. */
  get syncReads(): number {
    return this.synchronousReads;
  }

  /** The bytes this store may keep resident: its share of the cache memory. */
  get limitBytes(): number {
    return this.cache.limitBytes;
  }

  collectWrites(batch: WriteBatch): void {
    const disk = this.disk;
    disk.beginWrites();
    disk.deleteKeys(batch, this.deletedKeys);
    // Blobs are encoded first: their sizes are what the eviction plan estimates entries by.
    const blobs: Array<{
      window: Window<S>;
      rows: readonly WindowEntry<S>[];
      bytes: Uint8Array;
      compact: boolean;
    }> = [];
    for (const window of this.dirtyWindows) {
      if (window.spill !== undefined) continue;
      // Rewrite the whole window when its blobs would mostly hold superseded entries.
      const compact =
        window.blobKeys.length >= 8 && window.blobEntries + window.dirty.length > 2 * window.entries.size;
      const rows = compact ? [...window.entries.values()] : window.dirty;
      const bytes = this.codec.encodeBlob(rows);
      window.encodedBytes += bytes.byteLength;
      window.encodedRows += rows.length;
      blobs.push({ window, rows, bytes, compact });
    }
    const spilling = this.cache.planEviction();
    for (const { window, rows, bytes, compact } of blobs) {
      if (spilling.has(window)) continue;
      const key = disk.writeBlob(batch, window, bytes, compact);
      this.pendingBlobs.push({ window, key, entries: rows.length, replaces: compact });
    }
    for (const window of spilling)
      this.pendingSpills.push({
        window,
        spill: disk.writeSpill(batch, window, this.cache.encodedBytesOf(window)),
      });
    for (const window of this.windows.values()) {
      const spill = window.spill;
      if (spill === undefined) continue;
      for (const entry of window.dirty) disk.writeEntry(batch, window.start, entry, spill.filter);
      const inserted = spill.inserted;
      if (spill.filterChanged || spill.loggedKeys + inserted.length > KEY_LOG_MAX_KEYS) {
        // The filter as it is now replaces the spill record and the key logs.
        disk.writeSpillRecord(batch, window.start, spill, this.cache.encodedBytesOf(window));
        disk.deleteKeys(batch, spill.logKeys);
        this.pendingLogs.push({ spill, rewrite: true, logKey: '', keys: 0 });
      } else if (inserted.length > 0) {
        // Only the new keys: the filter on disk plus the logs give the filter in memory.
        const logKey = disk.writeKeyLog(batch, window.start, inserted);
        this.pendingLogs.push({ spill, rewrite: false, logKey, keys: inserted.length });
      }
    }
    disk.endWrites();
  }

  async committed(): Promise<void> {
    for (const { window, key, entries, replaces } of this.pendingBlobs) {
      if (replaces) {
        window.blobKeys = [];
        window.blobEntries = 0;
      }
      window.blobKeys.push(key);
      window.blobEntries += entries;
    }
    this.disk.committed();
    for (const { window, spill } of this.pendingSpills) {
      window.spill = spill;
      window.blobKeys = [];
      window.blobEntries = 0;
    }
    for (const { spill, rewrite, logKey, keys } of this.pendingLogs) {
      spill.inserted = [];
      if (rewrite) {
        spill.filterChanged = false;
        spill.logKeys = [];
        spill.loggedKeys = 0;
      } else {
        spill.logKeys.push(logKey);
        spill.loggedKeys += keys;
      }
    }
    for (const window of this.dirtyWindows) {
      for (const entry of window.dirty) entry.dirty = false;
      window.dirty = [];
    }
    this.cache.applyEvictions();
    this.pendingBlobs = [];
    this.pendingSpills = [];
    this.pendingLogs = [];
    this.dirtyWindows = new Set();
    this.deletedKeys = [];
    await this.disk.growFilters(this.windows.values());
    this.cache.report();
  }

  view(): StoreView {
    return {
      name: this.name,
      kind: this.kind,
      entries: async ({ limit = Infinity, after } = {}) => {
        const rows: Array<{ key: string; value: unknown }> = [];
        for (const start of [...this.cache.starts]) {
          for (const entry of await this.allEntriesOf(start)) {
            const key = `${sortableTime(start)}!${this.codec.describeKey ? this.codec.describeKey(entry) : entry.keyText}`;
            if (after === undefined || key > after)
              rows.push({ key, value: this.codec.describe ? this.codec.describe(entry) : entry.state });
          }
        }
        rows.sort((a, b) => (a.key < b.key ? -1 : a.key > b.key ? 1 : 0));
        return rows.slice(0, limit);
      },
      // By window start, then key text; `from`/`to` bound the window starts.
      read: async ({ limit = Infinity, after, from = -Infinity, to = Infinity } = {}) => {
        const reader = this.requireReader();
        const position = after === undefined ? undefined : decodeCursor(after);
        if (
          position !== undefined &&
          !(Array.isArray(position) && typeof position[0] === 'number' && typeof position[1] === 'string')
        )
          throw new StoreQueryError(`"${after}" is not a cursor of a window store`);
        const [afterStart, afterKey] = (position ?? [-Infinity, '']) as [number, string];
        const rows: WindowEntry<S>[] = [];
        for (const start of [...this.cache.starts]) {
          if (start < from || start >= to || start < afterStart) continue;
          const entries = (await this.allEntriesOf(start)).filter(
            (entry) => start > afterStart || entry.keyText > afterKey,
          );
          entries.sort((a, b) => (a.keyText < b.keyText ? -1 : a.keyText > b.keyText ? 1 : 0));
          for (const entry of entries) rows.push(entry);
          // One row past the page tells that there is a next one.
          if (rows.length > limit) break;
        }
        return pageOf(
          rows,
          limit,
          (entry) => [entry.start, entry.keyText],
          (entry) => this.entryView(entry, reader),
        );
      },
      lookup: async (userKey): Promise<StoreLookup | undefined> => {
        const reader = this.requireReader();
        const texts = reader.keyTextsOf(userKey);
        const windows: WindowEntryView[] = [];
        for (const start of [...this.cache.starts]) {
          for (const text of texts) {
            const entry = await this.lookupEntry(start, text);
            if (entry !== undefined) windows.push(this.entryView(entry, reader));
          }
        }
        return windows.length > 0 ? { kind: 'window', windows } : undefined;
      },
      approximateSize: () => this.entryCount,
    };
  }

  release(): void {
    this.cache.release();
  }

  // ---- internals ----

  /** A key of a spilled window that is not resident: ruled out by the filter, or read synchronously. */
  private readEvicted(window: Window<S>, spill: Spill, keyText: string): WindowEntry<S> | undefined {
    const recordKey = this.disk.recordKeyMaybeOnDisk(window.start, spill, keyText);
    if (recordKey === undefined) return undefined;
    this.synchronousReads++;
    const bytes = this.disk.readSync(recordKey);
    if (bytes === undefined) return undefined;
    const [, state] = this.disk.decodeOne(bytes);
    return this.makeResident(window, keyText, state);
  }

  /** Makes an entry read from disk resident (clean: the next commit's eviction may drop it again). */
  private makeResident(window: Window<S>, keyText: string, state: S): WindowEntry<S> {
    const entry = cleanEntry(window.start, keyText, state);
    window.entries.set(keyText, entry);
    return entry;
  }

  /** Every entry of a window, resident or on disk (for the store view: evicted ones stay on disk). */
  private async allEntriesOf(start: number): Promise<WindowEntry<S>[]> {
    const window = this.windows.get(start);
    if (window === undefined) return [];
    const entries = new Map(window.entries);
    if (window.spill !== undefined && !window.spill.complete)
      await this.disk.addEntriesOnDisk(start, entries);
    return [...entries.values()];
  }

  /** One entry of a window for the store view, resident or on disk, without making it resident. */
  private async lookupEntry(start: number, keyText: string): Promise<WindowEntry<S> | undefined> {
    const window = this.windows.get(start);
    if (window === undefined) return undefined;
    const resident = window.entries.get(keyText);
    const spill = window.spill;
    if (resident !== undefined || spill === undefined) return resident;
    const recordKey = this.disk.recordKeyMaybeOnDisk(start, spill, keyText);
    if (recordKey === undefined) return undefined;
    const bytes = await this.disk.read(recordKey);
    if (bytes === undefined) return undefined;
    const [, state] = this.disk.decodeOne(bytes);
    return cleanEntry(start, keyText, state);
  }

  private requireReader(): WindowEntryReader<S> {
    if (this.reader === undefined)
      throw new StoreQueryError(`window store "${this.name}" has no reader for its entries`);
    return this.reader;
  }

  private entryView(entry: WindowEntry<S>, reader: WindowEntryReader<S>): WindowEntryView {
    const { key, aggregates, version } = reader.read(entry);
    return {
      windowStart: storeTime(entry.start),
      windowEnd: storeTime(entry.start + reader.windowSize),
      key,
      aggregates,
      version,
    };
  }
}
