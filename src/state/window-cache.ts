/**
 * A window store's resident cache: its windows by start (the entries in memory, and for a spilled
 * window what the store knows of its entries on disk), the estimated bytes they cost, and the eviction
 * that brings them within the store's share of the cache memory (cache-share.ts).
 *
 * An entry's cost is its window's encoded bytes per entry (from the blobs written or read) plus the
 * codec's overhead per layout; a spilled window's key filter stays resident too. At a commit the
 * eviction is planned, oldest windows first (planEviction: the windows with nothing on disk yet must
 * spill in that commit's batch), and applied once the batch is durable (applyEvictions): a dirty entry
 * is never dropped. What lies on disk, and how, is window-disk.ts's.
 */
import type { CacheMemory } from '../core/task.js';
import { CacheShareAccount } from './cache-share.js';
import { KeyFilter } from './key-filter.js';
import type { WindowEntry } from './window-entry.js';

/** Encoded bytes of an entry of a window that has written none yet (a first estimate). */
const DEFAULT_ENCODED_ENTRY_BYTES = 64;
/** A new spilled window's key filter holds at least this many keys (12 bits each). */
const MIN_FILTER_CAPACITY = 256;

/** The capacity of a key filter for a window of `count` entries: room to grow twice as large. */
export function filterCapacityFor(count: number): number {
  return Math.max(MIN_FILTER_CAPACITY, 2 * count);
}

/** A window whose entries (some of them) live as per-key records on disk. */
export interface Spill {
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
export function spillOf(count: number, filter: KeyFilter, complete: boolean): Spill {
  return { count, filter, filterChanged: false, inserted: [], logKeys: [], loggedKeys: 0, complete };
}

export interface Window<S> {
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

export class WindowCache<S> {
  /** Every window by start, resident or spilled. */
  readonly windows = new Map<number, Window<S>>();
  /** Window starts in ascending order; few distinct values, so a sorted array is cheapest. */
  private sortedStarts: number[] = [];
  private readonly share: CacheShareAccount;
  /** Entries to evict once the pending commit is durable, per window (oldest windows first). */
  private pendingEvictions: Array<{ window: Window<S>; count: number }> = [];
  private evictedEntries = 0;

  /** `entryOverhead`: what a resident entry costs beyond its encoded bytes (the codec's layout). */
  constructor(
    private readonly entryOverhead: number,
    cache: CacheMemory | undefined,
  ) {
    this.share = new CacheShareAccount(cache);
  }

  /** Window starts in ascending order (replaced, not changed, when a window goes: safe to iterate). */
  get starts(): readonly number[] {
    return this.sortedStarts;
  }

  /** The window of `start`, created empty if there is none. */
  windowOf(start: number): Window<S> {
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
      let index = this.sortedStarts.length;
      while (index > 0 && (this.sortedStarts[index - 1] as number) > start) index--;
      this.sortedStarts.splice(index, 0, start);
    }
    return window;
  }

  /** Forgets a window (removed from the store). */
  remove(start: number): void {
    this.windows.delete(start);
    this.sortedStarts = this.sortedStarts.filter((s) => s !== start);
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

  /** The bytes the store may keep resident: its share of the cache memory. */
  get limitBytes(): number {
    return this.share.limitBytes;
  }

  /** Entries evicted from memory since open (diagnostics and tests). */
  get evictions(): number {
    return this.evictedEntries;
  }

  /** Estimated encoded bytes of one entry of the window. */
  encodedBytesOf(window: Window<S>): number {
    return window.encodedRows > 0 ? window.encodedBytes / window.encodedRows : DEFAULT_ENCODED_ENTRY_BYTES;
  }

  /**
   * Plans the eviction that brings the resident entries within the share once this commit is
   * durable, oldest windows first; returns the windows that must spill first (their entries written
   * per key in this commit's batch) because they have none on disk yet.
   */
  planEviction(): Set<Window<S>> {
    const spilling = new Set<Window<S>>();
    let excess = this.share.excessOf(this.residentBytes);
    if (excess <= 0) return spilling;
    for (const start of this.sortedStarts) {
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

  /** The planned eviction, once the commit's batch is durable (the windows it spilled hold their spill). */
  applyEvictions(): void {
    for (const { window, count } of this.pendingEvictions) this.evict(window, count);
    this.pendingEvictions = [];
  }

  /** Tells the share what the store keeps resident now (after an open or a commit). */
  report(): void {
    this.share.report(this.residentBytes);
  }

  /** Gives the share back (the folder closes). */
  release(): void {
    this.share.leave();
  }

  /** Estimated memory of one resident entry of the window. */
  private entryBytesOf(window: Window<S>): number {
    return this.entryOverhead + this.encodedBytesOf(window);
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
}
