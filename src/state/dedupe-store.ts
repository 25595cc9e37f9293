/**
 * Dedupe store: remembers the exact ids seen within a horizon of event time, on disk.
 *
 * A record is a duplicate only when its exact id was remembered within the horizon (a hash collision
 * never drops a record: dropping a real usage event is lost money). The ids live in LevelDB, so the
 * horizon is bounded by disk, not memory. Two tiers:
 *
 * - **Chunks** (the store's sublevel, changelogged): each commit writes the ids first seen since the
 *   previous commit as chunks of exact ids per time bucket (key `<bucket start>!<chunk seq>`, format
 *   in id-chunks.ts), thousands of ids per entry and per changelog record. Expiry is per bucket: once
 *   stream time passes bucket end + horizon, the bucket's chunks are deleted (tombstones for the
 *   changelog). Lookups ignore expired buckets themselves, so results never depend on when that
 *   physical cleanup happens.
 * - **Recent ids** (memory, exact): the ids of the newest chunks, as many as the store's share of
 *   `state.cacheMaxBytes` holds (a local marker `r<chunk key>` per chunk, re-read at open). A stream
 *   whose horizon fits (bench:core) never touches the tiers below.
 * - **Spilled ids** (disk): when the recent ids outgrow the share, the oldest chunks spill at commit:
 *   their ids get a local index entry `<generation>!<id>` → bucket and go into the in-memory filter
 *   (id-filter.ts, about 1.5 bytes per id), which says "certainly new" for nearly every new id and
 *   names the generations to look in otherwise. A generation (8 buckets) leaves the filter and its
 *   index entries go with one range delete once all its buckets are past the horizon. The filter is
 *   persisted per generation (`g<n>`) every SNAPSHOT_AFTER_IDS spilled ids; chunks spilled since are
 *   marked `p<chunk key>` and re-read at open, so opening costs the blobs, the recent ids and at most
 *   that many more ids, whatever the horizon holds.
 *
 * The per-record check is synchronous: before a batch, the engine names the ids the batch may check
 * (`want`, from the DAG between the source and the dedupe run ahead as a pre-pass) and awaits
 * `prefetch()`, one `getMany` on LevelDB's thread pool for the spilled ids the filter cannot rule out.
 * An id the filter cannot rule out that was not prefetched (no pre-pass is possible behind a stateful
 * step such as a process()) is read with a synchronous LevelDB get on the spot: slower for that
 * record, never a wrong answer.
 */
import { parseSortableTime, sortableHex, sortableTime } from './codec.js';
import type {
  BinarySublevel,
  ChangeRecord,
  ChangelogDeriver,
  LocalWrites,
  ManagedStore,
  StateDb,
  TextSublevel,
  WriteBatch,
} from './db.js';
import type { CacheMemory, CacheShare, StoreView } from '../core/task.js';
import { CacheBudget } from '../core/cache-budget.js';
import { StoreQueryError, decodeCursor, pageOf, storeTime } from '../core/store-reads.js';
import { storeLevelName, storeLocalLevels, storeMetaKeys } from './store-layout.js';
import { MalformedIdChunkError, decodeIdChunk, entryBytesStart, entryEnd, idsInChunk } from './id-chunks.js';
import { IdFilter } from './id-filter.js';
import { hashId, hashIdBytes, idHash } from './id-hash.js';
import { RECENT_ID_SLOT_BYTES, RecentIds, newestWithin } from './recent-ids.js';

/** How entries are written (the store manifest compares it): chunks of exact ids per bucket. */
export const DEDUPE_FORMAT = 'dedupe-id-chunks/1';

/** Spilled ids after the last filter snapshot before the next one is taken (bounds the work of an open). */
const SNAPSHOT_AFTER_IDS = 250_000;
/** Ids per local batch when an open spills what its share no longer holds (bounds the batch's memory). */
const SPILL_AT_OPEN_BATCH_IDS = 250_000;
/** Memory a recent id costs besides its UTF-8 bytes: its table slots and its length byte. */
export const RECENT_ID_OVERHEAD_BYTES = RECENT_ID_SLOT_BYTES + 1;

/** Work bounds (tests set them small to reach the paths that large stores take). */
export interface DedupeTuning {
  snapshotAfterIds?: number;
  spillAtOpenBatchIds?: number;
}
/** A filter generation spans this many buckets (64 buckets per horizon by default: 9 generations live). */
const BUCKETS_PER_GENERATION = 8;
/** namedVerdict(): not named for this batch, named and ruled out by the filter, named and possible. */
const NOT_NAMED = -1;
const RULED_OUT = 0;
const MAYBE = 1;
/** A prefetched id that is not in the index. */
const ABSENT = -Infinity;
const EMPTY = new Uint8Array(0);
const COUNTS_KEY = 'counts';
/** Marks a chunk whose ids are recent (in memory, not indexed). */
const RECENT_PREFIX = 'r';
/** Marks a spilled chunk whose ids are not in a filter snapshot yet. */
const PENDING_PREFIX = 'p';
const GENERATION_PREFIX = 'g';

export interface DedupeOptions {
  /** How long (event time) an id is remembered. */
  horizon: number;
  /** Expiry granularity; ids live between `horizon` and `horizon + bucket`. Default: horizon / 64. */
  bucket?: number;
}

function bucketSizeOf(options: DedupeOptions): number {
  return options.bucket ?? Math.max(1, Math.ceil(options.horizon / 64));
}

function bucketOfChunk(key: string, bucketSize: number): number {
  return Math.floor(parseSortableTime(key.slice(0, key.indexOf('!'))) / bucketSize);
}

/** What the index keys of ids spilled into `bucket` start with (their generation). */
function indexPrefix(bucket: number): string {
  return `${generationKey(Math.floor(bucket / BUCKETS_PER_GENERATION))}!`;
}

function generationKey(generation: number): string {
  return sortableHex(generation, 10);
}

/** The index key of an id spilled into `generation`. */
function indexKey(generation: number, id: string): string {
  return `${generationKey(generation)}!${id}`;
}

interface Levels {
  chunks: BinarySublevel;
  index: TextSublevel;
  local: BinarySublevel;
}

function levelsOf(db: StateDb, name: string): Levels {
  const [index, local] = storeLocalLevels('dedupe', name) as [string, string];
  return {
    chunks: db.binaryLevel(storeLevelName('dedupe', name)),
    index: db.textLevel(index),
    local: db.binaryLevel(local),
  };
}

async function readCounts(levels: Levels): Promise<Map<number, number>> {
  const bytes = await levels.local.get(COUNTS_KEY);
  if (bytes === undefined) return new Map();
  const entries = JSON.parse(Buffer.from(bytes).toString('utf8')) as Array<[number, number]>;
  return new Map(entries);
}

function countsBytes(counts: ReadonlyMap<number, number>): Uint8Array {
  return Buffer.from(JSON.stringify([...counts]));
}

/** Writes the index entries of spilled ids of `bucket`. */
function indexIds(levels: Levels, ids: Iterable<string>, bucket: number, local: LocalWrites): void {
  const prefix = indexPrefix(bucket);
  const bucketText = String(bucket);
  for (const id of ids) local.putLocal(levels.index, prefix + id, bucketText);
}

/**
 * The ids of a replayed chunk; none for a chunk of another format (a changelog written by an earlier
 * version, of 64-bit hashes): the store manifest then refuses the store after the restore, and
 * resetting it discards the chunk, so the replay itself must not fail on it.
 */
function idsOfReplayed(bytes: Uint8Array): string[] {
  try {
    return decodeIdChunk(bytes);
  } catch (error) {
    if (error instanceof MalformedIdChunkError) return [];
    throw error;
  }
}

/**
 * Keeps the local entries in step with replayed chunks, in the batch that writes them (restore and
 * standby): a replayed chunk is spilled at once (index entries, and `p` so the open adds its ids to
 * the filter); a tombstone (an expired bucket) drops the chunk's markers. Index entries of an expired
 * bucket are never read as live and go with their generation's range delete.
 */
export function dedupeRestoreDeriver(db: StateDb, name: string, options: DedupeOptions): ChangelogDeriver {
  const levels = levelsOf(db, name);
  const bucketSize = bucketSizeOf(options);
  return async (changes: readonly ChangeRecord[], local: LocalWrites) => {
    const counts = await readCounts(levels);
    const written = new Map<string, number>();
    for (const { key, value } of changes) {
      const bucket = bucketOfChunk(key, bucketSize);
      if (value !== null) {
        const ids = idsOfReplayed(typeof value === 'string' ? Buffer.from(value) : value);
        indexIds(levels, ids, bucket, local);
        counts.set(bucket, (counts.get(bucket) ?? 0) + ids.length);
        written.set(key, ids.length);
        local.putLocal(levels.local, PENDING_PREFIX + key, EMPTY);
      } else {
        let size = written.get(key);
        written.delete(key);
        if (size === undefined) {
          const bytes = await levels.chunks.get(key);
          if (bytes === undefined) continue;
          size = idsOfReplayed(bytes).length;
        }
        local.delLocal(levels.local, PENDING_PREFIX + key);
        local.delLocal(levels.local, RECENT_PREFIX + key);
        const left = (counts.get(bucket) ?? 0) - size;
        if (left > 0) counts.set(bucket, left);
        else counts.delete(bucket);
      }
    }
    local.putLocal(levels.local, COUNTS_KEY, countsBytes(counts));
  };
}

export class DedupeStore implements ManagedStore {
  readonly kind = 'dedupe' as const;
  readonly horizon: number;
  readonly bucketSize: number;
  private readonly levels: Levels;
  private readonly share: CacheShare;
  /** Spilled ids only; a generation's first segment is sized for the ids its buckets hold. */
  private readonly filter = new IdFilter(BUCKETS_PER_GENERATION, (generation) =>
    this.idsOfGeneration(generation),
  );
  /** The recent ids (fresh ones included), exact, in memory. */
  private readonly recent = new RecentIds();
  /** Spilled-id lookups prefetched for the current batch: id → bucket (ABSENT: not in the index). */
  private readonly known = new Map<string, number>();
  /** Index keys of the coming batch's ids the filter cannot rule out, and whose id each is. */
  private candidateKeys: string[] = [];
  private candidateIds: string[] = [];
  /**
   * The ids named for the batch in order, and whether the filter may hold each (1) or rules it out
   * (0): the per-record check meets them in the same order and skips hashing again. The verdict is a
   * property of the id and of the filter, which changes only at commit, so a match anywhere is valid.
   */
  private named: string[] = [];
  private namedMaybe: number[] = [];
  private cursor = 0;
  private readonly generations: number[] = [];
  /** Ids per bucket (what the store view shows), kept in a local entry. */
  private counts = new Map<number, number>();
  /** Spilled chunks not in the filter's persisted blobs (re-read at open) and how many ids they hold. */
  private readonly unsnapshotted = new Set<string>();
  private unsnapshottedIds = 0;
  private droppedGenerations: number[] = [];
  private nextChunk = 0;
  /** Chunks the pending commit writes (nextChunk moves past them once it is durable). */
  private chunksWritten = 0;
  private expiredBefore = -Infinity;
  /** Buckets below this have had their chunks and index entries cleaned up. */
  private cleanedBefore = -Infinity;

  constructor(
    private readonly db: StateDb,
    readonly name: string,
    options: DedupeOptions,
    cache: CacheMemory = new CacheBudget(),
    private readonly tuning: DedupeTuning = {},
  ) {
    if (!(options.horizon > 0)) throw new Error(`dedupe "${name}": horizon must be positive`);
    this.horizon = options.horizon;
    this.bucketSize = bucketSizeOf(options);
    this.levels = levelsOf(db, name);
    this.share = cache.join();
  }

  async load(): Promise<void> {
    const chunkText = await this.db.getMeta(this.chunkMetaKey());
    this.nextChunk = chunkText === undefined ? 0 : Number(chunkText);
    this.counts = await readCounts(this.levels);
    const { chunks, local } = this.levels;
    const blobs = [];
    for await (const [key, bytes] of local.iterator({ gte: GENERATION_PREFIX, lt: GENERATION_PREFIX + '~' }))
      blobs.push({ number: Number(key.slice(GENERATION_PREFIX.length)), bytes });
    this.filter.loadAll(blobs);
    // Spilled chunks written since the last snapshot (few, or all of them after a restore).
    for await (const key of local.keys({ gte: PENDING_PREFIX, lt: PENDING_PREFIX + '~' })) {
      const chunkKey = key.slice(PENDING_PREFIX.length);
      const bytes = await chunks.get(chunkKey);
      if (bytes === undefined) continue;
      const ids = this.indexAndFilter(bytes, bucketOfChunk(chunkKey, this.bucketSize));
      this.unsnapshotted.add(chunkKey);
      this.unsnapshottedIds += ids;
    }
    const recentKeys = (await local.keys({ gte: RECENT_PREFIX, lt: RECENT_PREFIX + '~' }).all()).map((key) =>
      key.slice(RECENT_PREFIX.length),
    );
    const recentBytes = await chunks.getMany(recentKeys);
    const recent = recentKeys.flatMap((key, i) => {
      const bytes = recentBytes[i];
      if (bytes === undefined) return [];
      return [{ key, bucket: bucketOfChunk(key, this.bucketSize), bytes, ids: idsInChunk(bytes) }];
    });
    // The share may be smaller than when these were written (more partitions here now, or a smaller
    // state.cacheMaxBytes): only the newest that fit are loaded, the older go straight to disk.
    const kept = newestWithin(recent, this.share.limitBytes);
    await this.spillAtOpen(recent.slice(0, recent.length - kept));
    this.recent.loadChunks(recent.slice(recent.length - kept));
    this.share.report(this.recent.bytes);
  }

  /**
   * Spills chunks read at open that the share no longer holds, oldest first, as a commit's spill
   * would, without taking them into the table first. Written in batches of about
   * `SPILL_AT_OPEN_BATCH_IDS` ids: each moves whole chunks (markers and index entries together), so a
   * crash between two leaves every chunk either recent or spilled, and one batch's memory is bounded.
   */
  private async spillAtOpen(
    chunks: ReadonlyArray<{ key: string; bucket: number; bytes: Uint8Array }>,
  ): Promise<void> {
    if (chunks.length === 0) return;
    const batchIds = this.tuning.spillAtOpenBatchIds ?? SPILL_AT_OPEN_BATCH_IDS;
    let batch = this.db.localBatch();
    let ids = 0;
    for (const chunk of chunks) {
      // Nothing has expired yet at open: every chunk is live.
      ids += this.spillChunk(chunk, true, batch);
      if (ids >= batchIds) {
        this.snapshotIfDue(batch);
        await batch.write();
        batch = this.db.localBatch();
        ids = 0;
      }
    }
    this.snapshotIfDue(batch);
    await batch.write();
  }

  // ---- the batch protocol: want() each id the batch may check, then await prefetch() ----

  /** Whether a pre-pass can save lookups: false while no id has spilled to disk. */
  get wantsPrefetch(): boolean {
    return !this.filter.empty;
  }

  /** Starts naming the ids of a new batch (forgets the previous batch's prefetched entries). */
  beginBatch(): void {
    this.forgetBatch();
  }

  /** An id the coming batch may check. */
  want(id: string): void {
    // A fresh or recent id is answered from memory first, so its verdict is never looked at.
    this.named.push(id);
    hashId(id);
    const generations = this.generations;
    if (this.filter.generationsMaybeHolding(idHash.high, idHash.low, generations)) {
      for (const generation of generations) {
        this.candidateKeys.push(indexKey(generation, id));
        this.candidateIds.push(id);
      }
      this.namedMaybe.push(1);
    } else {
      this.namedMaybe.push(0);
    }
  }

  /** Reads the index entries of the wanted ids the filter could not rule out (plus `ids`, if given). */
  async prefetch(ids?: Iterable<string>): Promise<void> {
    if (ids !== undefined) for (const id of ids) this.want(id);
    const keys = this.candidateKeys;
    const owners = this.candidateIds;
    this.candidateKeys = [];
    this.candidateIds = [];
    if (keys.length === 0) return;
    const stored = await this.levels.index.getMany(keys);
    for (let i = 0; i < keys.length; i++) {
      const id = owners[i] as string;
      const text = stored[i];
      const bucket = text === undefined ? ABSENT : Number(text);
      const known = this.known.get(id);
      if (known === undefined || bucket > known) this.known.set(id, bucket);
    }
  }

  /**
   * True when `id` was seen within the horizon (a duplicate); otherwise remembers it under the bucket of
   * `eventTime` and returns false. `streamTime` (max event time of the task) decides what has expired.
   */
  checkAndRemember(id: string, eventTime: number, streamTime: number): boolean {
    const liveFrom = this.liveFromBucket(streamTime);
    // Consumed first, whatever answers below: the next check meets the next named id.
    const verdict = this.namedVerdict(id);
    hashId(id);
    const { high, low } = idHash;
    if (this.recent.lookup(id, high, low, liveFrom) !== ABSENT) return true;
    const spilled = verdict === RULED_OUT ? ABSENT : this.spilledBucket(id);
    if (spilled !== ABSENT && spilled >= liveFrom) return true;
    const bucket = Math.floor(eventTime / this.bucketSize);
    if (bucket < liveFrom) return false; // already beyond the horizon: nothing to remember
    this.recent.insertFresh(id, high, low, bucket);
    return false;
  }

  /** Whether `id` counts as seen now (no side effects); for tests and inspection. */
  async contains(id: string, streamTime: number): Promise<boolean> {
    return (await this.bucketOf(id, this.liveFromBucket(streamTime))) !== ABSENT;
  }

  /** Drops expired ids from memory and schedules the deletes of their chunks for after the commit. */
  expire(streamTime: number): void {
    const liveFrom = this.liveFromBucket(streamTime);
    if (liveFrom <= this.expiredBefore) return;
    this.expiredBefore = liveFrom;
    for (const bucket of this.counts.keys()) if (bucket < liveFrom) this.counts.delete(bucket);
    this.recent.expire(liveFrom);
    this.droppedGenerations.push(...this.filter.dropBefore(liveFrom));
  }

  /** Expiry rides on every commit, so the checkpoint never carries ids past the horizon. */
  beforeCommit(streamTime: number): void {
    this.expire(streamTime);
  }

  /** Ids remembered within the horizon (as of the last expiry), committed or not. */
  get size(): number {
    let size = this.recent.freshCount;
    for (const count of this.counts.values()) size += count;
    return size;
  }

  /** Bytes of memory held by the filter (the part that grows with the horizon). */
  get filterBytes(): number {
    return this.filter.bytes;
  }

  /** Estimated bytes of memory held by the recent ids (at most the store's cache share after a commit). */
  get recentIdBytes(): number {
    return this.recent.bytes;
  }

  collectWrites(batch: WriteBatch): void {
    const { chunks, local } = this.levels;
    // The filter may change below: what was named or prefetched against it goes.
    this.forgetBatch();
    const fresh = this.recent.freshByBucket();
    let freshIds = 0;
    let chunk = this.nextChunk;
    for (const [bucket, indexes] of fresh) {
      freshIds += indexes.length;
      this.counts.set(bucket, (this.counts.get(bucket) ?? 0) + indexes.length);
      const keyOf = () => `${sortableTime(bucket * this.bucketSize)}!${sortableHex(chunk++, 8)}`;
      for (const { key, bytes } of this.recent.commitFresh(bucket, indexes, keyOf)) {
        batch.putBinary(chunks, this.name, key, bytes);
        batch.putLocal(local, RECENT_PREFIX + key, EMPTY);
      }
    }
    this.recent.clearFresh();
    this.chunksWritten = chunk - this.nextChunk;
    if (this.chunksWritten > 0) this.db.putMeta(this.chunkMetaKey(), String(chunk));
    if (this.recent.bytes > this.share.limitBytes) this.spill(batch);
    this.share.report(this.recent.bytes);
    this.snapshotIfDue(batch);
    for (const number of this.droppedGenerations) batch.delLocal(local, GENERATION_PREFIX + number);
    this.droppedGenerations = [];
    if (freshIds > 0 || this.expiredBefore > this.cleanedBefore)
      batch.putLocal(local, COUNTS_KEY, countsBytes(this.counts));
  }

  async committed(): Promise<void> {
    this.nextChunk += this.chunksWritten;
    this.chunksWritten = 0;
    if (this.expiredBefore > this.cleanedBefore) await this.cleanUpExpired();
  }

  release(): void {
    this.share.leave();
  }

  view(): StoreView {
    return {
      name: this.name,
      kind: this.kind,
      entries: async ({ limit = Infinity, after } = {}) => {
        const perBucket = new Map(this.counts);
        for (const [bucket, fresh] of this.recent.freshByBucket())
          perBucket.set(bucket, (perBucket.get(bucket) ?? 0) + fresh.length);
        return [...perBucket.entries()]
          .filter(([bucket]) => bucket >= this.expiredBefore)
          .sort((a, b) => a[0] - b[0])
          .map(([bucket, ids]) => ({
            key: sortableTime(bucket * this.bucketSize),
            value: { bucketStart: bucket * this.bucketSize, ids },
          }))
          .filter((row) => after === undefined || row.key > after)
          .slice(0, limit);
      },
      read: async ({ limit = Infinity, after } = {}) => {
        const from = after === undefined ? undefined : decodeCursor(after);
        if (from !== undefined && typeof from !== 'number')
          throw new StoreQueryError(`"${after}" is not a cursor of a dedupe store`);
        const perBucket = new Map(this.counts);
        for (const [bucket, fresh] of this.recent.freshByBucket())
          perBucket.set(bucket, (perBucket.get(bucket) ?? 0) + fresh.length);
        const rows = [...perBucket.entries()]
          .filter(([bucket]) => bucket >= this.expiredBefore && (from === undefined || bucket > from))
          .sort((a, b) => a[0] - b[0]);
        return pageOf(
          rows,
          limit,
          ([bucket]) => bucket,
          ([bucket, ids]) => ({
            bucketStart: storeTime(bucket * this.bucketSize),
            bucketEnd: storeTime((bucket + 1) * this.bucketSize),
            ids,
            expiresAt: storeTime(this.expiryOf(bucket)),
          }),
        );
      },
      lookup: async (id) => {
        // Expiry as of the last commit: the bucket of a remembered id is live from there on.
        const bucket = await this.bucketOf(id, this.expiredBefore);
        if (bucket === ABSENT) return undefined;
        return {
          kind: 'dedupe',
          seen: true,
          bucketStart: storeTime(bucket * this.bucketSize),
          expiresAt: storeTime(this.expiryOf(bucket)),
        };
      },
      approximateSize: () => this.size,
    };
  }

  /**
   * The live bucket of `id` (memory, then disk), or -Infinity; for lookups from outside the batch
   * protocol (the admin endpoint, tests): it shares no per-batch state with the processing.
   */
  private async bucketOf(id: string, liveFrom: number): Promise<number> {
    hashId(id);
    const { high, low } = idHash;
    const recent = this.recent.lookup(id, high, low, liveFrom);
    if (recent !== ABSENT) return recent;
    const generations: number[] = [];
    if (!this.filter.generationsMaybeHolding(high, low, generations)) return ABSENT;
    const stored = await this.levels.index.getMany(generations.map((generation) => indexKey(generation, id)));
    let seen = ABSENT;
    for (const text of stored) if (text !== undefined) seen = Math.max(seen, Number(text));
    return seen >= liveFrom ? seen : ABSENT;
  }

  /** Ids remembered in the buckets of filter generation `generation` (committed, in memory or spilled). */
  private idsOfGeneration(generation: number): number {
    let ids = 0;
    for (const [bucket, count] of this.counts)
      if (Math.floor(bucket / BUCKETS_PER_GENERATION) === generation) ids += count;
    return ids;
  }

  /** The stream time from which a bucket's ids no longer count (see liveFromBucket). */
  private expiryOf(bucket: number): number {
    return (bucket + 1) * this.bucketSize + this.horizon;
  }

  /**
   * Moves the oldest recent chunks to disk until the rest fits the share: index entries and filter
   * for their ids, the chunk's marker from recent to pending (or a filter snapshot instead).
   */
  private spill(batch: LocalWrites): void {
    while (this.recent.bytes > this.share.limitBytes) {
      const spilled = this.recent.spillOldest();
      if (spilled === undefined) break;
      this.spillChunk(spilled.chunk, spilled.live, batch);
    }
    this.recent.shrinkIfOversized();
  }

  /**
   * Moves a chunk out of the recent tier: a live one's ids get index entries and join the filter, and
   * its marker turns from recent to spilled-since-the-snapshot. Returns how many ids it indexed.
   */
  private spillChunk(
    chunk: { key: string; bucket: number; bytes: Uint8Array },
    live: boolean,
    batch: LocalWrites,
  ): number {
    const { local } = this.levels;
    const ids = live ? this.indexAndFilter(chunk.bytes, chunk.bucket, batch) : 0;
    batch.delLocal(local, RECENT_PREFIX + chunk.key);
    batch.putLocal(local, PENDING_PREFIX + chunk.key, EMPTY);
    this.unsnapshotted.add(chunk.key);
    this.unsnapshottedIds += ids;
    return ids;
  }

  /**
   * Persists the filter once enough spilled ids are not in its snapshot: after spills, and after an
   * open that re-read many (a restore writes every restored chunk as spilled, unsnapshotted), so a
   * later open reads the blobs instead of those chunks again.
   */
  private snapshotIfDue(batch: LocalWrites): void {
    const { local } = this.levels;
    if (this.unsnapshottedIds >= (this.tuning.snapshotAfterIds ?? SNAPSHOT_AFTER_IDS)) {
      // The filter as of this commit replaces the list of chunks an open would re-read.
      for (const number of this.filter.takeDirty()) {
        const bytes = this.filter.serialize(number);
        if (bytes !== undefined) batch.putLocal(local, GENERATION_PREFIX + number, bytes);
      }
      for (const key of this.unsnapshotted) batch.delLocal(local, PENDING_PREFIX + key);
      this.unsnapshotted.clear();
      this.unsnapshottedIds = 0;
    }
  }

  /**
   * Adds the ids of a chunk (its encoded bytes) to the filter, and with `batch` writes their index
   * entries too; one pass, ASCII ids hashed from their bytes. Returns how many ids it holds.
   */
  private indexAndFilter(bytes: Uint8Array, bucket: number, batch?: LocalWrites): number {
    const buffer = Buffer.isBuffer(bytes)
      ? bytes
      : Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength);
    const prefix = indexPrefix(bucket);
    const bucketText = String(bucket);
    const index = this.levels.index;
    let ids = 0;
    for (let at = 0; at < buffer.length; ids++) {
      const start = entryBytesStart(buffer, at);
      at = entryEnd(buffer, at);
      hashIdBytes(buffer, start, at);
      this.filter.add(idHash.high, idHash.low, bucket);
      batch?.putLocal(index, prefix + buffer.toString('utf8', start, at), bucketText);
    }
    return ids;
  }

  private forgetBatch(): void {
    this.known.clear();
    this.candidateKeys = [];
    this.candidateIds = [];
    this.named = [];
    this.namedMaybe = [];
    this.cursor = 0;
  }

  /**
   * The pre-pass's filter verdict for `id` when it is the next id named for this batch (the checks
   * meet the named ids in the same order), moving past it; NOT_NAMED otherwise.
   */
  private namedVerdict(id: string): number {
    const cursor = this.cursor;
    if (cursor >= this.named.length || this.named[cursor] !== id) return NOT_NAMED;
    this.cursor = cursor + 1;
    return this.namedMaybe[cursor] === 0 ? RULED_OUT : MAYBE;
  }

  /**
   * The bucket `id` was last spilled to disk in, or -Infinity when it was not (its hash is in idHash).
   * An id named for this batch is answered from the prefetched entries, another from a synchronous read.
   */
  private spilledBucket(id: string): number {
    if (this.filter.empty) return ABSENT;
    const known = this.known.get(id);
    if (known !== undefined) return known;
    const generations = this.generations;
    if (!this.filter.generationsMaybeHolding(idHash.high, idHash.low, generations)) return ABSENT;
    // Not named ahead: read it now (blocks this record only; the answer is exact all the same).
    let seen = ABSENT;
    for (const generation of generations) {
      const text = this.levels.index.getSync(indexKey(generation, id));
      if (text !== undefined) seen = Math.max(seen, Number(text));
    }
    return seen;
  }

  /**
   * Removes what expired buckets left behind: their chunks with the next commit (tombstones in the
   * changelog) and their markers now; the index entries of whole expired generations with one range
   * delete (local, and never read again: the filter no longer names those generations).
   */
  private async cleanUpExpired(): Promise<void> {
    const { chunks, index, local } = this.levels;
    const before = this.expiredBefore;
    const cleanup = this.db.localBatch();
    const done: string[] = [];
    for await (const key of chunks.keys({ lt: sortableTime(before * this.bucketSize) })) {
      cleanup.delLocal(local, PENDING_PREFIX + key);
      cleanup.delLocal(local, RECENT_PREFIX + key);
      if (this.unsnapshotted.delete(key)) this.unsnapshottedIds = Math.max(0, this.unsnapshottedIds - 1);
      done.push(key);
    }
    await cleanup.write();
    this.db.queueDeletes(chunks, this.name, done);
    const liveGeneration = Math.floor(before / BUCKETS_PER_GENERATION);
    await index.clear({ lt: generationKey(liveGeneration) });
    this.cleanedBefore = before;
  }

  private liveFromBucket(streamTime: number): number {
    return Math.floor((streamTime - this.horizon) / this.bucketSize);
  }

  private chunkMetaKey(): string {
    return storeMetaKeys('dedupe', this.name)[0] as string;
  }
}
