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
 */
import { parseSortableTime, sortableHex, sortableTime } from './codec.js';
import type { BinarySublevel, ManagedStore, StateDb, WriteBatch } from './db.js';
import type { StoreView } from '../core/task.js';
import { StoreQueryError, decodeCursor, pageOf, storeTime } from '../core/store-reads.js';
import type { StoreLookup, WindowEntryView } from '../core/store-reads.js';
import { storeLevelName, storeMetaKeys } from './store-manifest.js';

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

interface Window<S> {
  readonly start: number;
  readonly entries: Map<string, WindowEntry<S>>;
  /** Keys of this window's blobs in LevelDB. */
  blobKeys: string[];
  /** Entries written across those blobs, superseded ones included (decides compaction). */
  blobEntries: number;
  dirty: WindowEntry<S>[];
}

export class WindowStore<S> implements ManagedStore {
  readonly kind = 'window' as const;
  private readonly level: BinarySublevel;
  private readonly codec: WindowBlobCodec<S>;
  private readonly windows = new Map<number, Window<S>>();
  /** Window starts in ascending order; few distinct values, so a sorted array is cheapest. */
  private starts: number[] = [];
  private dirtyWindows = new Set<Window<S>>();
  private deletedBlobKeys: string[] = [];
  private entryCount = 0;
  /** The window of the last get(), valid until removeWindow(). */
  private lastStart = NaN;
  private lastWindow: Window<S> | undefined;
  private nextBlob = 0;
  /** Blob keys written by the pending commit, per window, applied in committed(). */
  private pendingBlobs: Array<{ window: Window<S>; key: string; entries: number; replaces: boolean }> = [];

  constructor(
    private readonly db: StateDb,
    readonly name: string,
    codec: WindowStateCodec<S> | WindowBlobCodec<S>,
    private readonly reader?: WindowEntryReader<S>,
  ) {
    this.codec = 'encodeBlob' in codec ? codec : jsonBlobCodec(codec);
    this.level = db.binaryLevel(storeLevelName('window', name));
  }

  async load(): Promise<void> {
    const next = await this.db.getMeta(this.metaKey());
    this.nextBlob = next === undefined ? 0 : Number(next);
    for await (const [key, bytes] of this.level.iterator()) {
      const start = parseSortableTime(key.slice(0, key.indexOf('!')));
      const window = this.windowOf(start);
      const rows = this.codec.decodeBlob(bytes);
      for (const [keyText, state] of rows) {
        const existing = window.entries.get(keyText);
        if (existing) existing.state = state;
        else {
          window.entries.set(keyText, { start, keyText, state, dirty: false, removed: false });
          this.entryCount++;
        }
      }
      window.blobKeys.push(key);
      window.blobEntries += rows.length;
    }
  }

  get(start: number, keyText: string): WindowEntry<S> | undefined {
    // Consecutive records nearly always fall in the same window: skip the lookup by start.
    const window = start === this.lastStart ? this.lastWindow : this.windows.get(start);
    if (window === undefined) return undefined;
    this.lastStart = start;
    this.lastWindow = window;
    return window.entries.get(keyText);
  }

  /** Adds a new entry (dirty). The caller checked that none exists. */
  insert(start: number, keyText: string, state: S): WindowEntry<S> {
    const window = this.windowOf(start);
    const entry: WindowEntry<S> = { start, keyText, state, dirty: false, removed: false };
    window.entries.set(keyText, entry);
    this.entryCount++;
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

  entriesOf(start: number): IterableIterator<WindowEntry<S>> {
    return (this.windows.get(start)?.entries ?? new Map<string, WindowEntry<S>>()).values();
  }

  /** Removes every entry of one window; its blobs are deleted by the next commit. */
  removeWindow(start: number): void {
    const window = this.windows.get(start);
    if (window === undefined) return;
    for (const entry of window.entries.values()) entry.removed = true;
    this.entryCount -= window.entries.size;
    this.deletedBlobKeys.push(...window.blobKeys);
    this.dirtyWindows.delete(window);
    this.windows.delete(start);
    if (start === this.lastStart) {
      this.lastStart = NaN;
      this.lastWindow = undefined;
    }
    this.starts = this.starts.filter((s) => s !== start);
  }

  get size(): number {
    return this.entryCount;
  }

  collectWrites(batch: WriteBatch): void {
    for (const key of this.deletedBlobKeys) batch.del(this.level, this.name, key);
    let blob = this.nextBlob;
    for (const window of this.dirtyWindows) {
      // Rewrite the whole window when its blobs would mostly hold superseded entries.
      const compact =
        window.blobKeys.length >= 8 && window.blobEntries + window.dirty.length > 2 * window.entries.size;
      const rows = compact ? [...window.entries.values()] : window.dirty;
      const key = `${sortableTime(window.start)}!${sortableHex(blob++, 8)}`;
      if (compact) for (const old of window.blobKeys) batch.del(this.level, this.name, old);
      batch.putBinary(this.level, this.name, key, this.codec.encodeBlob(rows));
      this.pendingBlobs.push({ window, key, entries: rows.length, replaces: compact });
    }
    if (blob !== this.nextBlob) this.db.putMeta(this.metaKey(), String(blob));
  }

  async committed(): Promise<void> {
    for (const { window, key, entries, replaces } of this.pendingBlobs) {
      if (replaces) {
        window.blobKeys = [];
        window.blobEntries = 0;
      }
      window.blobKeys.push(key);
      window.blobEntries += entries;
      for (const entry of window.dirty) entry.dirty = false;
      window.dirty = [];
      this.nextBlob++;
    }
    this.pendingBlobs = [];
    this.dirtyWindows = new Set();
    this.deletedBlobKeys = [];
  }

  view(): StoreView {
    return {
      name: this.name,
      kind: this.kind,
      entries: async ({ limit = Infinity, after } = {}) => {
        const rows: Array<{ key: string; value: unknown }> = [];
        for (const start of this.starts) {
          for (const entry of this.entriesOf(start)) {
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
        for (const start of this.starts) {
          if (start < from || start >= to || start < afterStart) continue;
          const entries = [...this.entriesOf(start)].filter(
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
        for (const start of this.starts) {
          const entries = this.windows.get(start)?.entries;
          for (const text of texts) {
            const entry = entries?.get(text);
            if (entry !== undefined) windows.push(this.entryView(entry, reader));
          }
        }
        return windows.length > 0 ? { kind: 'window', windows } : undefined;
      },
      approximateSize: () => this.entryCount,
    };
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
      window = { start, entries: new Map(), blobKeys: [], blobEntries: 0, dirty: [] };
      this.windows.set(start, window);
      let index = this.starts.length;
      while (index > 0 && (this.starts[index - 1] as number) > start) index--;
      this.starts.splice(index, 0, start);
    }
    return window;
  }
}
