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
 */
import { parseSortableTime, sortableHex, sortableTime } from './codec.js';
import type { BinarySublevel, ManagedStore, StateDb, WriteBatch } from './db.js';
import type { CacheMemory, CacheShare, StoreView } from '../core/task.js';
import { CacheBudget } from '../core/cache-budget.js';
import { KeyFilter } from './key-filter.js';
import {
  BLOBS_END,
  KEY_LOG_MAX_KEYS,
  KEY_LOG_RECORDS,
  SPILL_RECORDS,
  decodeKeyLog,
  decodeSpillRecord,
  encodeKeyLog,
  encodeSpillRecord,
  keyLogRecordKey,
  keyLogStart,
  perKeyRange,
  perKeyRecordKey,
  spillRecordKey,
  spillRecordStart,
} from './window-spill.js';
import { StoreQueryError, decodeCursor, pageOf, storeTime } from '../core/store-reads.js';
import type { StoreLookup, WindowEntryView } from '../core/store-reads.js';
import { storeLevelName, storeMetaKeys } from './store-layout.js';

export interface WindowEntry<S> {
  readonly start: number;
  /** Canonical text of the group key (the map key inside its window). */
  readonly keyText: string;
  state: S;
  /** Set by the store; callers only read them. */
  dirty: boolean;
  removed: boolean;
}

/** Converts a state to JSON-compatible data and back. */
export interface WindowStateCodec<S> {
  encode(state: S): unknown;
  decode(data: unknown): S;
}

/** Packs the entries of one blob into bytes and back (rows in the order given). */
export interface WindowBlobCodec<S> {
  encodeBlob(entries: readonly WindowEntry<S>[]): Uint8Array;
  decodeBlob(bytes: Uint8Array): Array<[keyText: string, state: S]>;
  /** What the store view (admin endpoint, tests) shows for a state; the state itself when absent. */
  describe?(entry: WindowEntry<S>): unknown;
  /** How the store view shows an entry's key; its keyText when absent. */
  describeKey?(entry: WindowEntry<S>): string;
  /**
   * The key of a spilled window's per-key record for a key text: the same for the same group key in
   * every instance (a key text may depend on what the instance saw first). The key text when absent.
   */
  storeKey?(keyText: string): string;
  /** Memory a resident entry costs beyond its encoded bytes (see WINDOW_ENTRY_OVERHEAD_BYTES). */
  readonly entryOverheadBytes?: number;
}

/**
 * Memory a resident window entry costs beyond its encoded bytes (its share of a blob): the Map slot,
 * the entry and state objects, the key string. Measured on Node 20 as the heap growth of 200k entries
 * of one window (numeric layout, count + sum, compact keys of two fields): 230 bytes per entry, of
 * which about 56 are its encoded bytes.
 */
export const WINDOW_ENTRY_OVERHEAD_BYTES = 175;
/**
 * The same for a JSON-layout state (accumulators as objects, the key object kept): measured as for
 * WINDOW_ENTRY_OVERHEAD_BYTES with count + a custom aggregator of a two-field object, 408 bytes per
 * entry, of which about 128 are its encoded JSON. Aggregators whose accumulator is much larger in
 * memory than in JSON add their own (window-state-codec.ts: a quantile sketch).
 */
export const JSON_WINDOW_ENTRY_OVERHEAD_BYTES = 280;
/** Encoded bytes of an entry of a window that has written none yet (a first estimate). */
const DEFAULT_ENCODED_ENTRY_BYTES = 64;
/** A new spilled window's key filter holds at least this many keys (12 bits each). */
const MIN_FILTER_CAPACITY = 256;

/** The capacity of a key filter for a window of `count` entries: room to grow twice as large. */
function filterCapacityFor(count: number): number {
  return Math.max(MIN_FILTER_CAPACITY, 2 * count);
}

/** The blob codec of a per-state JSON codec: a blob is the UTF-8 JSON of `[[keyText, data], ...]`. */
export function jsonBlobCodec<S>(codec: WindowStateCodec<S>): WindowBlobCodec<S> {
  return {
    encodeBlob: (entries) => {
      const rows: Array<[string, unknown]> = new Array(entries.length);
      for (let i = 0; i < entries.length; i++) {
        const entry = entries[i] as WindowEntry<S>;
        rows[i] = [entry.keyText, codec.encode(entry.state)];
      }
      return Buffer.from(JSON.stringify(rows), 'utf8');
    },
    decodeBlob: (bytes) => {
      const text = Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength).toString('utf8');
      return (JSON.parse(text) as Array<[string, unknown]>).map(([keyText, data]) => [
        keyText,
        codec.decode(data),
      ]);
    },
    entryOverheadBytes: JSON_WINDOW_ENTRY_OVERHEAD_BYTES,
  };
}

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

/** An entry as read from disk or newly inserted: not yet changed since its last write. */
function cleanEntry<S>(start: number, keyText: string, state: S): WindowEntry<S> {
  return { start, keyText, state, dirty: false, removed: false };
}

/** A window whose entries (some of them) live as per-key records on disk. */
interface Spill {
  /** The window's entries, resident or on disk, each key once. */
  count: number;
  /** The keys on disk (store keys); a key it rules out is not there. */
  filter: KeyFilter;
  /** The filter was rebuilt: write the spill record with the next commit. */
  filterChanged: boolean;
  /** Key texts inserted since the last commit: the next commit logs their store keys. */
  inserted: string[];
  /** The window's key log records on disk (keys added since its spill record was written). */
  logKeys: string[];
  /** Keys in those records. */
  loggedKeys: number;
  /** Every entry is resident (after loadWindow, until the next eviction): a miss is a new key. */
  complete: boolean;
}

/** The spill state of a window of `count` entries whose keys on disk `filter` holds, nothing pending. */
function spillOf(count: number, filter: KeyFilter, complete: boolean): Spill {
  return { count, filter, filterChanged: false, inserted: [], logKeys: [], loggedKeys: 0, complete };
}

interface Window<S> {
  readonly start: number;
  /** The resident entries (all of them unless the window spilled). */
  readonly entries: Map<string, WindowEntry<S>>;
  /** Keys of this window's blobs in LevelDB (none once it spilled). */
  blobKeys: string[];
  /** Entries written across those blobs, superseded ones included (decides compaction). */
  blobEntries: number;
  dirty: WindowEntry<S>[];
  /** Encoded bytes and rows of the blobs written or loaded: an entry's estimated size. */
  encodedBytes: number;
  encodedRows: number;
  spill: Spill | undefined;
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
  private readonly level: BinarySublevel;
  private readonly codec: WindowBlobCodec<S>;
  private readonly share: CacheShare;
  private readonly entryOverhead: number;
  private readonly windows = new Map<number, Window<S>>();
  /** Window starts in ascending order; few distinct values, so a sorted array is cheapest. */
  private starts: number[] = [];
  private dirtyWindows = new Set<Window<S>>();
  /** Keys deleted by the next commit (blobs, per-key and spill records of removed windows). */
  private deletedKeys: string[] = [];
  /** Entries of all windows, resident or not. */
  private entryCount = 0;
  /** The window of the last get(), valid until removeWindow(). */
  private lastStart = NaN;
  private lastWindow: Window<S> | undefined;
  private nextBlob = 0;
  /** Blob keys written by the pending commit, per window, applied in committed(). */
  private pendingBlobs: Array<{ window: Window<S>; key: string; entries: number; replaces: boolean }> = [];
  /** Windows spilling with the pending commit, applied in committed(). */
  private pendingSpills: Array<PendingSpill<S>> = [];
  /** Spilled windows whose spill record (rewrite: true) or a key log the pending commit writes. */
  private pendingLogs: Array<{ spill: Spill; rewrite: boolean; logKey: string; keys: number }> = [];
  /** The blob and key log sequence once the pending commit is durable. */
  private pendingNextBlob = 0;
  /** Entries to evict once the pending commit is durable, per window (oldest windows first). */
  private pendingEvictions: Array<{ window: Window<S>; count: number }> = [];
  private synchronousReads = 0;
  private evictedEntries = 0;
  private prefetchedEntries = 0;
  /** The per-key records the coming batch will read (named by the engine's pre-pass), by record key. */
  private wanted = new Map<string, { window: Window<S>; keyText: string }>();

  constructor(
    private readonly db: StateDb,
    readonly name: string,
    codec: WindowStateCodec<S> | WindowBlobCodec<S>,
    private readonly reader?: WindowEntryReader<S>,
    options: WindowStoreOptions = {},
  ) {
    this.codec = 'encodeBlob' in codec ? codec : jsonBlobCodec(codec);
    this.entryOverhead = this.codec.entryOverheadBytes ?? WINDOW_ENTRY_OVERHEAD_BYTES;
    this.level = db.binaryLevel(storeLevelName('window', name));
    this.share = (options.cache ?? new CacheBudget()).join();
  }

  /** Loads the blobs, and of each spilled window its spill record and key logs (no per-key record). */
  async load(): Promise<void> {
    const next = await this.db.getMeta(this.metaKey());
    this.nextBlob = next === undefined ? 0 : Number(next);
    this.pendingNextBlob = this.nextBlob;
    for await (const [key, bytes] of this.level.iterator({ lt: BLOBS_END })) {
      const start = parseSortableTime(key.slice(0, key.indexOf('!')));
      const window = this.windowOf(start);
      const rows = this.codec.decodeBlob(bytes);
      for (const [keyText, state] of rows) {
        const existing = window.entries.get(keyText);
        if (existing) existing.state = state;
        else {
          window.entries.set(keyText, cleanEntry(start, keyText, state));
          this.entryCount++;
        }
      }
      window.blobKeys.push(key);
      window.blobEntries += rows.length;
      window.encodedBytes += bytes.byteLength;
      window.encodedRows += rows.length;
    }
    for await (const [key, bytes] of this.level.iterator(SPILL_RECORDS)) {
      const window = this.windowOf(spillRecordStart(key));
      const record = decodeSpillRecord(bytes, this.name);
      window.spill = spillOf(record.count, record.filter, record.count === 0);
      window.encodedBytes = record.bytesPerEntry;
      window.encodedRows = 1;
      this.entryCount += record.count;
    }
    for await (const [key, bytes] of this.level.iterator(KEY_LOG_RECORDS)) {
      const spill = this.windows.get(keyLogStart(key))?.spill;
      if (spill === undefined)
        throw new Error(`window store "${this.name}": key log ${key} of no spilled window`);
      const storeKeys = decodeKeyLog(bytes);
      for (const storeKey of storeKeys) spill.filter.add(storeKey);
      spill.count += storeKeys.length;
      spill.logKeys.push(key);
      spill.loggedKeys += storeKeys.length;
      spill.complete = false;
      this.entryCount += storeKeys.length;
    }
    this.share.report(this.residentBytes);
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
    const recordKey = this.recordKeyMaybeOnDisk(start, spill, keyText);
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
    const stored = await this.level.getMany(wanted.map(([recordKey]) => recordKey));
    for (let i = 0; i < wanted.length; i++) {
      const bytes = stored[i];
      const { window, keyText } = (wanted[i] as [string, { window: Window<S>; keyText: string }])[1];
      // Gone or changed meanwhile: a removed window, or an entry made resident by another path.
      if (bytes === undefined || this.windows.get(window.start) !== window || window.entries.has(keyText))
        continue;
      const [storedText, state] = this.decodeOne(bytes);
      // Only under the text the operator will look up: another text of the same key would be an
      // alias, a second entry for one key (the operator's get() then reads the record itself).
      if (storedText !== keyText) continue;
      this.makeResident(window, keyText, state);
      this.prefetchedEntries++;
    }
  }

  /** Adds a new entry (dirty). The caller checked that none exists (get() returned undefined). */
  insert(start: number, keyText: string, state: S): WindowEntry<S> {
    const window = this.windowOf(start);
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
    return [...this.starts];
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
    await this.addEntriesOnDisk(start, window.entries);
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
    this.deletedKeys.push(...window.blobKeys);
    if (spill !== undefined) {
      for (const entry of window.entries.values())
        this.deletedKeys.push(perKeyRecordKey(start, this.storeKeyOf(entry.keyText)));
      this.deletedKeys.push(spillRecordKey(start), ...spill.logKeys);
    }
    this.dirtyWindows.delete(window);
    this.windows.delete(start);
    if (start === this.lastStart) {
      this.lastStart = NaN;
      this.lastWindow = undefined;
    }
    this.starts = this.starts.filter((s) => s !== start);
  }

  /** Entries of all windows, resident or not. */
  get size(): number {
    return this.entryCount;
  }

  /** Entries in memory. */
  get residentEntries(): number {
    let resident = 0;
    for (const window of this.windows.values()) resident += window.entries.size;
    return resident;
  }

  /** Estimated bytes of the resident entries and of the spilled windows' key filters. */
  get residentBytes(): number {
    let bytes = 0;
    for (const window of this.windows.values())
      bytes += window.entries.size * this.entryBytesOf(window) + (window.spill?.filter.bytes ?? 0);
    return bytes;
  }

  /** Entries evicted from memory since open (diagnostics and tests). */
  get evictions(): number {
    return this.evictedEntries;
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
    return this.share.limitBytes;
  }

  collectWrites(batch: WriteBatch): void {
    for (const key of this.deletedKeys) batch.del(this.level, this.name, key);
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
    const spilling = this.planEviction();
    let blob = this.nextBlob;
    for (const { window, rows, bytes, compact } of blobs) {
      if (spilling.has(window)) continue;
      const key = `${sortableTime(window.start)}!${sortableHex(blob++, 8)}`;
      if (compact) for (const old of window.blobKeys) batch.del(this.level, this.name, old);
      batch.putBinary(this.level, this.name, key, bytes);
      this.pendingBlobs.push({ window, key, entries: rows.length, replaces: compact });
    }
    for (const window of spilling) this.writeSpill(batch, window);
    for (const window of this.windows.values()) {
      const spill = window.spill;
      if (spill === undefined) continue;
      for (const entry of window.dirty) this.writeEntry(batch, window.start, entry, spill.filter);
      const inserted = spill.inserted;
      if (spill.filterChanged || spill.loggedKeys + inserted.length > KEY_LOG_MAX_KEYS) {
        // The filter as it is now replaces the spill record and the key logs.
        batch.putBinary(
          this.level,
          this.name,
          spillRecordKey(window.start),
          this.spillRecordOf(window, spill),
        );
        for (const key of spill.logKeys) batch.del(this.level, this.name, key);
        this.pendingLogs.push({ spill, rewrite: true, logKey: '', keys: 0 });
      } else if (inserted.length > 0) {
        // Only the new keys: the filter on disk plus the logs give the filter in memory.
        const logKey = keyLogRecordKey(window.start, sortableHex(blob++, 8));
        batch.putBinary(
          this.level,
          this.name,
          logKey,
          encodeKeyLog(inserted.map((keyText) => this.storeKeyOf(keyText))),
        );
        this.pendingLogs.push({ spill, rewrite: false, logKey, keys: inserted.length });
      }
    }
    if (blob !== this.nextBlob) this.db.putMeta(this.metaKey(), String(blob));
    this.pendingNextBlob = blob;
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
    this.nextBlob = this.pendingNextBlob;
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
    for (const { window, count } of this.pendingEvictions) this.evict(window, count);
    this.pendingBlobs = [];
    this.pendingSpills = [];
    this.pendingLogs = [];
    this.pendingEvictions = [];
    this.dirtyWindows = new Set();
    this.deletedKeys = [];
    await this.growFilters();
    this.share.report(this.residentBytes);
  }

  view(): StoreView {
    return {
      name: this.name,
      kind: this.kind,
      entries: async ({ limit = Infinity, after } = {}) => {
        const rows: Array<{ key: string; value: unknown }> = [];
        for (const start of [...this.starts]) {
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
        for (const start of [...this.starts]) {
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
        for (const start of [...this.starts]) {
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
    this.share.leave();
  }

  // ---- internals ----

  /** A key of a spilled window that is not resident: ruled out by the filter, or read synchronously. */
  private readEvicted(window: Window<S>, spill: Spill, keyText: string): WindowEntry<S> | undefined {
    const recordKey = this.recordKeyMaybeOnDisk(window.start, spill, keyText);
    if (recordKey === undefined) return undefined;
    this.synchronousReads++;
    const bytes = this.level.getSync(recordKey);
    if (bytes === undefined) return undefined;
    const [, state] = this.decodeOne(bytes);
    return this.makeResident(window, keyText, state);
  }

  /** Makes an entry read from disk resident (clean: the next commit's eviction may drop it again). */
  private makeResident(window: Window<S>, keyText: string, state: S): WindowEntry<S> {
    const entry = cleanEntry(window.start, keyText, state);
    window.entries.set(keyText, entry);
    return entry;
  }

  /**
   * Plans the eviction that brings the resident entries within the share once this commit is
   * durable, oldest windows first; returns the windows that must spill first (their entries written
   * per key in this commit's batch) because they have none on disk yet.
   */
  private planEviction(): Set<Window<S>> {
    const spilling = new Set<Window<S>>();
    let excess = this.residentBytes - this.share.limitBytes;
    if (excess <= 0) return spilling;
    for (const start of this.starts) {
      const window = this.windows.get(start) as Window<S>;
      const resident = window.entries.size;
      if (resident === 0) continue;
      if (window.spill === undefined) {
        spilling.add(window);
        // Its key filter stays resident once it spills.
        excess += KeyFilter.bytesFor(filterCapacityFor(resident));
      }
      const perEntry = this.entryBytesOf(window);
      const count = Math.min(resident, Math.ceil(excess / perEntry));
      this.pendingEvictions.push({ window, count });
      excess -= count * perEntry;
      if (excess <= 0) break;
    }
    return spilling;
  }

  /** Writes every entry of a window per key, its filter and count, and deletes its blobs. */
  private writeSpill(batch: WriteBatch, window: Window<S>): void {
    const count = window.entries.size;
    const spill = spillOf(count, KeyFilter.forCapacity(filterCapacityFor(count)), true);
    for (const entry of window.entries.values()) this.writeEntry(batch, window.start, entry, spill.filter);
    for (const key of window.blobKeys) batch.del(this.level, this.name, key);
    batch.putBinary(this.level, this.name, spillRecordKey(window.start), this.spillRecordOf(window, spill));
    this.pendingSpills.push({ window, spill });
  }

  private writeEntry(batch: WriteBatch, start: number, entry: WindowEntry<S>, filter: KeyFilter): void {
    const storeKey = this.storeKeyOf(entry.keyText);
    filter.add(storeKey);
    batch.putBinary(this.level, this.name, perKeyRecordKey(start, storeKey), this.codec.encodeBlob([entry]));
  }

  private spillRecordOf(window: Window<S>, spill: Spill): Uint8Array {
    return encodeSpillRecord({
      count: spill.count,
      bytesPerEntry: this.encodedBytesOf(window),
      filter: spill.filter,
    });
  }

  /** Drops up to `count` clean entries of a spilled window, first inserted (or read back) first. */
  private evict(window: Window<S>, count: number): void {
    const spill = window.spill;
    if (spill === undefined || !this.windows.has(window.start)) return;
    let left = count;
    for (const [keyText, entry] of window.entries) {
      if (left <= 0) break;
      if (entry.dirty) continue;
      window.entries.delete(keyText);
      left--;
      this.evictedEntries++;
      spill.complete = false;
    }
  }

  /**
   * Rebuilds, twice as large, the filter of each spilled window that holds more keys than it was sized
   * for (a fuller filter only answers "maybe" more often); written with the next commit.
   */
  private async growFilters(): Promise<void> {
    for (const window of this.windows.values()) {
      const spill = window.spill;
      if (spill === undefined || spill.count <= spill.filter.capacity) continue;
      const filter = KeyFilter.forCapacity(2 * spill.count);
      const range = perKeyRange(window.start);
      const prefixLength = range.gt.length;
      for await (const key of this.level.keys(range)) filter.add(key.slice(prefixLength));
      spill.filter = filter;
      spill.filterChanged = true;
    }
  }

  /** Every entry of a window, resident or on disk (for the store view: evicted ones stay on disk). */
  private async allEntriesOf(start: number): Promise<WindowEntry<S>[]> {
    const window = this.windows.get(start);
    if (window === undefined) return [];
    const entries = new Map(window.entries);
    if (window.spill !== undefined && !window.spill.complete) await this.addEntriesOnDisk(start, entries);
    return [...entries.values()];
  }

  /** Adds to `entries` the per-key records of a spilled window they lack (a resident entry is newer). */
  private async addEntriesOnDisk(start: number, entries: Map<string, WindowEntry<S>>): Promise<void> {
    for await (const bytes of this.level.values(perKeyRange(start))) {
      const [keyText, state] = this.decodeOne(bytes);
      if (!entries.has(keyText)) entries.set(keyText, cleanEntry(start, keyText, state));
    }
  }

  /** One entry of a window for the store view, resident or on disk, without making it resident. */
  private async lookupEntry(start: number, keyText: string): Promise<WindowEntry<S> | undefined> {
    const window = this.windows.get(start);
    if (window === undefined) return undefined;
    const resident = window.entries.get(keyText);
    const spill = window.spill;
    if (resident !== undefined || spill === undefined) return resident;
    const recordKey = this.recordKeyMaybeOnDisk(start, spill, keyText);
    if (recordKey === undefined) return undefined;
    const bytes = await this.level.get(recordKey);
    if (bytes === undefined) return undefined;
    const [, state] = this.decodeOne(bytes);
    return cleanEntry(start, keyText, state);
  }

  /**
   * The per-key record that may hold a key not resident in a spilled window; undefined when it cannot
   * be on disk (every entry is resident, or the window's key filter rules the key out).
   */
  private recordKeyMaybeOnDisk(start: number, spill: Spill, keyText: string): string | undefined {
    if (spill.complete) return undefined;
    const storeKey = this.storeKeyOf(keyText);
    return spill.filter.mayHave(storeKey) ? perKeyRecordKey(start, storeKey) : undefined;
  }

  private decodeOne(bytes: Uint8Array): [keyText: string, state: S] {
    const rows = this.codec.decodeBlob(bytes);
    if (rows.length !== 1)
      throw new Error(`window store "${this.name}": a per-key record holds ${rows.length} entries`);
    return rows[0] as [string, S];
  }

  private storeKeyOf(keyText: string): string {
    return this.codec.storeKey ? this.codec.storeKey(keyText) : keyText;
  }

  private encodedBytesOf(window: Window<S>): number {
    return window.encodedRows > 0 ? window.encodedBytes / window.encodedRows : DEFAULT_ENCODED_ENTRY_BYTES;
  }

  /** Estimated memory of one resident entry of the window. */
  private entryBytesOf(window: Window<S>): number {
    return this.entryOverhead + this.encodedBytesOf(window);
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

  private metaKey(): string {
    return storeMetaKeys('window', this.name)[0] as string;
  }

  private windowOf(start: number): Window<S> {
    let window = this.windows.get(start);
    if (window === undefined) {
      window = {
        start,
        entries: new Map(),
        blobKeys: [],
        blobEntries: 0,
        dirty: [],
        encodedBytes: 0,
        encodedRows: 0,
        spill: undefined,
      };
      this.windows.set(start, window);
      let index = this.starts.length;
      while (index > 0 && (this.starts[index - 1] as number) > start) index--;
      this.starts.splice(index, 0, start);
    }
    return window;
  }
}
