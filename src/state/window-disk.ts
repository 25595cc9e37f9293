/**
 * A window store's on-disk layout in its sublevel (keys and record formats: window-spill.ts): blobs
 * of the windows that never spilled, and per spilled window its per-key records, spill record and key
 * logs; the blob and key log sequence in the meta entry `window-next-blob:<name>`. It reads them into
 * the resident cache's windows (window-cache.ts) and writes what a commit changed into its batch; which
 * windows spill and which entries stay resident is the cache's decision, not this file's.
 */
import { parseSortableTime, sortableHex, sortableTime } from './codec.js';
import type { BinarySublevel, StateDb, WriteBatch } from './db.js';
import { KeyFilter } from './key-filter.js';
import { storeLevelName, storeMetaKeys } from './store-layout.js';
import { filterCapacityFor, spillOf } from './window-cache.js';
import type { Spill, Window, WindowCache } from './window-cache.js';
import { cleanEntry } from './window-entry.js';
import type { WindowBlobCodec, WindowEntry } from './window-entry.js';
import {
  BLOBS_END,
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

export class WindowDisk<S> {
  private readonly level: BinarySublevel;
  private readonly metaKey: string;
  /** The next blob and key log sequence, as of the last durable commit. */
  private nextBlob = 0;
  /** The same, as the pending commit leaves it (taken in committed()). */
  private pendingNextBlob = 0;
  /** The sequence while a commit's writes are collected. */
  private writingBlob = 0;

  constructor(
    private readonly db: StateDb,
    readonly name: string,
    private readonly codec: WindowBlobCodec<S>,
  ) {
    this.level = db.binaryLevel(storeLevelName('window', name));
    this.metaKey = storeMetaKeys('window', name)[0] as string;
  }

  /**
   * Reads the blobs, and of each spilled window its spill record and key logs (no per-key record),
   * into `cache`; returns the entries of all windows, resident or not.
   */
  async load(cache: WindowCache<S>): Promise<number> {
    let entryCount = 0;
    const next = await this.db.getMeta(this.metaKey);
    this.nextBlob = next === undefined ? 0 : Number(next);
    this.pendingNextBlob = this.nextBlob;
    for await (const [key, bytes] of this.level.iterator({ lt: BLOBS_END })) {
      const start = parseSortableTime(key.slice(0, key.indexOf('!')));
      const window = cache.windowOf(start);
      const rows = this.codec.decodeBlob(bytes);
      for (const [keyText, state] of rows) {
        const existing = window.entries.get(keyText);
        if (existing) existing.state = state;
        else {
          window.entries.set(keyText, cleanEntry(start, keyText, state));
          entryCount++;
        }
      }
      window.blobKeys.push(key);
      window.blobEntries += rows.length;
      window.encodedBytes += bytes.byteLength;
      window.encodedRows += rows.length;
    }
    for await (const [key, bytes] of this.level.iterator(SPILL_RECORDS)) {
      const window = cache.windowOf(spillRecordStart(key));
      const record = decodeSpillRecord(bytes, this.name);
      window.spill = spillOf(record.count, record.filter, record.count === 0);
      window.encodedBytes = record.bytesPerEntry;
      window.encodedRows = 1;
      entryCount += record.count;
    }
    for await (const [key, bytes] of this.level.iterator(KEY_LOG_RECORDS)) {
      const spill = cache.windows.get(keyLogStart(key))?.spill;
      if (spill === undefined)
        throw new Error(`window store "${this.name}": key log ${key} of no spilled window`);
      const storeKeys = decodeKeyLog(bytes);
      for (const storeKey of storeKeys) spill.filter.add(storeKey);
      spill.count += storeKeys.length;
      spill.logKeys.push(key);
      spill.loggedKeys += storeKeys.length;
      spill.complete = false;
      entryCount += storeKeys.length;
    }
    return entryCount;
  }

  // ---- reads ----

  /**
   * The per-key record that may hold a key not resident in a spilled window; undefined when it cannot
   * be on disk (every entry is resident, or the window's key filter rules the key out).
   */
  recordKeyMaybeOnDisk(start: number, spill: Spill, keyText: string): string | undefined {
    if (spill.complete) return undefined;
    const storeKey = this.storeKeyOf(keyText);
    return spill.filter.mayHave(storeKey) ? perKeyRecordKey(start, storeKey) : undefined;
  }

  /** A per-key record read synchronously (the operator needs it now). */
  readSync(recordKey: string): Uint8Array | undefined {
    return this.level.getSync(recordKey);
  }

  /** Per-key records read with one `getMany` on LevelDB's thread pool. */
  readMany(recordKeys: string[]): Promise<Array<Uint8Array | undefined>> {
    return this.level.getMany(recordKeys);
  }

  /** A per-key record read asynchronously (the store view). */
  read(recordKey: string): Promise<Uint8Array | undefined> {
    return this.level.get(recordKey);
  }

  /** Adds to `entries` the per-key records of a spilled window they lack (a resident entry is newer). */
  async addEntriesOnDisk(start: number, entries: Map<string, WindowEntry<S>>): Promise<void> {
    for await (const bytes of this.level.values(perKeyRange(start))) {
      const [keyText, state] = this.decodeOne(bytes);
      if (!entries.has(keyText)) entries.set(keyText, cleanEntry(start, keyText, state));
    }
  }

  /** The entry of a per-key record. */
  decodeOne(bytes: Uint8Array): [keyText: string, state: S] {
    const rows = this.codec.decodeBlob(bytes);
    if (rows.length !== 1)
      throw new Error(`window store "${this.name}": a per-key record holds ${rows.length} entries`);
    return rows[0] as [string, S];
  }

  /** The key of a spilled window's per-key record for a key text (the codec's, the same in every instance). */
  storeKeyOf(keyText: string): string {
    return this.codec.storeKey ? this.codec.storeKey(keyText) : keyText;
  }

  /** The keys a removed window leaves on disk, deleted by the next commit. */
  keysOfRemoved(window: Window<S>): string[] {
    const keys = [...window.blobKeys];
    const spill = window.spill;
    if (spill !== undefined) {
      for (const entry of window.entries.values())
        keys.push(perKeyRecordKey(window.start, this.storeKeyOf(entry.keyText)));
      keys.push(spillRecordKey(window.start), ...spill.logKeys);
    }
    return keys;
  }

  // ---- a commit's writes: beginWrites, the writes, endWrites; committed() once the batch is durable ----

  beginWrites(): void {
    this.writingBlob = this.nextBlob;
  }

  deleteKeys(batch: WriteBatch, keys: readonly string[]): void {
    for (const key of keys) batch.del(this.level, this.name, key);
  }

  /** Writes a blob of the window (replacing its blobs when `compact`); returns its key. */
  writeBlob(batch: WriteBatch, window: Window<S>, bytes: Uint8Array, compact: boolean): string {
    const key = `${sortableTime(window.start)}!${sortableHex(this.writingBlob++, 8)}`;
    if (compact) for (const old of window.blobKeys) batch.del(this.level, this.name, old);
    batch.putBinary(this.level, this.name, key, bytes);
    return key;
  }

  /**
   * Writes every entry of a window per key, its filter and count, and deletes its blobs; returns the
   * window's spill state, which it takes once the batch is durable.
   */
  writeSpill(batch: WriteBatch, window: Window<S>, bytesPerEntry: number): Spill {
    const count = window.entries.size;
    const spill = spillOf(count, KeyFilter.forCapacity(filterCapacityFor(count)), true);
    for (const entry of window.entries.values()) this.writeEntry(batch, window.start, entry, spill.filter);
    for (const key of window.blobKeys) batch.del(this.level, this.name, key);
    this.writeSpillRecord(batch, window.start, spill, bytesPerEntry);
    return spill;
  }

  /** Writes one entry of a spilled window as its per-key record, its store key into the window's filter. */
  writeEntry(batch: WriteBatch, start: number, entry: WindowEntry<S>, filter: KeyFilter): void {
    const storeKey = this.storeKeyOf(entry.keyText);
    filter.add(storeKey);
    batch.putBinary(this.level, this.name, perKeyRecordKey(start, storeKey), this.codec.encodeBlob([entry]));
  }

  /** Writes a spilled window's spill record (its count, an entry's size, its filter as it is now). */
  writeSpillRecord(batch: WriteBatch, start: number, spill: Spill, bytesPerEntry: number): void {
    batch.putBinary(
      this.level,
      this.name,
      spillRecordKey(start),
      encodeSpillRecord({ count: spill.count, bytesPerEntry, filter: spill.filter }),
    );
  }

  /** Writes a key log of a spilled window: the store keys of `keyTexts`; returns its key. */
  writeKeyLog(batch: WriteBatch, start: number, keyTexts: readonly string[]): string {
    const logKey = keyLogRecordKey(start, sortableHex(this.writingBlob++, 8));
    batch.putBinary(
      this.level,
      this.name,
      logKey,
      encodeKeyLog(keyTexts.map((keyText) => this.storeKeyOf(keyText))),
    );
    return logKey;
  }

  /** The sequence goes into the commit's batch when it moved. */
  endWrites(): void {
    if (this.writingBlob !== this.nextBlob) this.db.putMeta(this.metaKey, String(this.writingBlob));
    this.pendingNextBlob = this.writingBlob;
  }

  committed(): void {
    this.nextBlob = this.pendingNextBlob;
  }

  /**
   * Rebuilds, twice as large, the filter of each spilled window that holds more keys than it was sized
   * for (a fuller filter only answers "maybe" more often); written with the next commit.
   */
  async growFilters(windows: Iterable<Window<S>>): Promise<void> {
    for (const window of windows) {
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
}
