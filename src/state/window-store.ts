/**
 * Window store: aggregation state per (window start, group key). Resident in memory, indexed by window
 * start so that closing a window touches only that window's entries; LevelDB keys are
 * `<sortable start>!<key text>` so one window's entries are contiguous on disk too.
 */
import { parseSortableTime, sortableTime } from './codec.js';
import type { ManagedStore, StateDb, TextSublevel, WriteBatch } from './db.js';
import type { StoreView } from '../topology/task.js';

export interface WindowEntry<S> {
  readonly start: number;
  /** Canonical text of the group key (the map key and the LevelDB key suffix). */
  readonly keyText: string;
  state: S;
  /** Set by the store; callers only read them. */
  dirty: boolean;
  persisted: boolean;
  removed: boolean;
}

export interface WindowStateCodec<S> {
  encode(state: S): string;
  decode(text: string): S;
}

export class WindowStore<S> implements ManagedStore {
  readonly kind = 'window' as const;
  private readonly level: TextSublevel;
  private readonly windows = new Map<number, Map<string, WindowEntry<S>>>();
  /** Window starts in ascending order; few distinct values, so a sorted array is cheapest. */
  private starts: number[] = [];
  private dirtyEntries: WindowEntry<S>[] = [];
  private deletedKeys: string[] = [];
  private entryCount = 0;

  constructor(
    db: StateDb,
    readonly name: string,
    private readonly codec: WindowStateCodec<S>,
  ) {
    this.level = db.textLevel(`window:${name}`);
  }

  async load(): Promise<void> {
    for await (const [key, text] of this.level.iterator()) {
      const separator = key.indexOf('!');
      const entry = this.insert(
        parseSortableTime(key.slice(0, separator)),
        key.slice(separator + 1),
        this.codec.decode(text),
      );
      entry.dirty = false;
      entry.persisted = true;
    }
    this.dirtyEntries = [];
  }

  get(start: number, keyText: string): WindowEntry<S> | undefined {
    return this.windows.get(start)?.get(keyText);
  }

  /** Adds a new entry (dirty). The caller checked that none exists. */
  insert(start: number, keyText: string, state: S): WindowEntry<S> {
    let window = this.windows.get(start);
    if (window === undefined) {
      window = new Map();
      this.windows.set(start, window);
      this.addStart(start);
    }
    const entry: WindowEntry<S> = { start, keyText, state, dirty: true, persisted: false, removed: false };
    window.set(keyText, entry);
    this.dirtyEntries.push(entry);
    this.entryCount++;
    return entry;
  }

  markDirty(entry: WindowEntry<S>): void {
    if (!entry.dirty) {
      entry.dirty = true;
      this.dirtyEntries.push(entry);
    }
  }

  /** Earliest window start with entries, or undefined. */
  earliestStart(): number | undefined {
    return this.starts[0];
  }

  /** Window starts in ascending order (a copy, safe to iterate while removing). */
  windowStarts(): number[] {
    return [...this.starts];
  }

  entriesOf(start: number): IterableIterator<WindowEntry<S>> {
    return (this.windows.get(start) ?? new Map<string, WindowEntry<S>>()).values();
  }

  /** Removes every entry of one window; persisted ones become deletes at the next commit. */
  removeWindow(start: number): void {
    const window = this.windows.get(start);
    if (window === undefined) return;
    for (const entry of window.values()) this.forget(entry);
    this.windows.delete(start);
    this.starts = this.starts.filter((s) => s !== start);
  }

  get size(): number {
    return this.entryCount;
  }

  collectWrites(batch: WriteBatch): void {
    // Deletes first: a key removed and re-created within one commit interval must end up present.
    for (const key of this.deletedKeys) batch.del(this.level, this.name, key);
    for (const entry of this.dirtyEntries) {
      if (!entry.removed)
        batch.put(this.level, this.name, this.levelKey(entry), this.codec.encode(entry.state));
    }
  }

  async committed(): Promise<void> {
    for (const entry of this.dirtyEntries) {
      entry.dirty = false;
      if (!entry.removed) entry.persisted = true;
    }
    this.dirtyEntries = [];
    this.deletedKeys = [];
  }

  view(): StoreView {
    return {
      name: this.name,
      kind: this.kind,
      entries: async ({ limit = Infinity, after } = {}) => {
        const rows: Array<{ key: string; value: unknown }> = [];
        for (const start of this.starts) {
          for (const entry of this.entriesOf(start)) {
            const key = this.levelKey(entry);
            if (after === undefined || key > after) rows.push({ key, value: entry.state });
          }
        }
        rows.sort((a, b) => (a.key < b.key ? -1 : a.key > b.key ? 1 : 0));
        return rows.slice(0, limit);
      },
      approximateSize: () => this.entryCount,
    };
  }

  private forget(entry: WindowEntry<S>): void {
    entry.removed = true;
    this.entryCount--;
    if (entry.persisted) this.deletedKeys.push(this.levelKey(entry));
  }

  private levelKey(entry: WindowEntry<S>): string {
    return `${sortableTime(entry.start)}!${entry.keyText}`;
  }

  private addStart(start: number): void {
    let index = this.starts.length;
    while (index > 0 && (this.starts[index - 1] as number) > start) index--;
    this.starts.splice(index, 0, start);
  }
}
