/**
 * Dedupe store: remembers the exact ids seen within a horizon of event time, on disk.
 *
 * A record is a duplicate only when its exact id was remembered within the horizon (a hash collision
 * never drops a record: dropping a real usage event is lost money). The ids live in LevelDB, so the
 * horizon is bounded by disk, not memory:
 *
 * - **Chunks** (the store's sublevel, changelogged): each commit writes the ids first seen since the
 *   previous commit as chunks of exact ids per time bucket (key `<bucket start>!<chunk seq>`, format
 *   in id-chunks.ts), thousands of ids per entry and per changelog record. Expiry is per bucket: once
 *   stream time passes bucket end + horizon, the bucket's chunks are deleted (tombstones for the
 *   changelog). Lookups ignore expired buckets themselves, so results never depend on when that
 *   physical cleanup happens.
 * - **Index** (`dedupe-index:<name>`, local): id → bucket of its last remembering, written in the same
 *   batch as the chunks and derived from them on restore (`restoreDeriver`); never changelogged.
 * - **Filter** (in memory, `id-filter.ts`, about 1.5 bytes per id): says "certainly new" for nearly
 *   every new id, so only possible duplicates cost an index lookup. It is persisted as one local blob
 *   per generation (`dedupe-local:<name>`, keys `g…`) every SNAPSHOT_AFTER_IDS ids (250k); chunks written since
 *   are listed there (`p…`) and re-read at open, so opening costs the blobs plus at most that many ids,
 *   whatever the horizon holds.
 * - **Memory** otherwise holds the ids first seen since the last commit (exact, until they are written)
 *   and the index entries prefetched for the current batch.
 *
 * The per-record check is synchronous: before a batch, the engine names the ids the batch may check
 * (`want`, from the DAG between the source and the dedupe run ahead as a pre-pass) and awaits
 * `prefetch()`, one `getMany` on LevelDB's thread pool for those the filter cannot rule out. An id
 * the filter cannot rule out that was not prefetched (no pre-pass is possible behind a stateful step
 * such as a process(); or a non-deterministic function before the dedupe) is read with a synchronous
 * LevelDB get on the spot: slower for that record, never a wrong answer, and memory stays bounded.
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
import type { StoreView } from '../core/task.js';
import { storeLevelName, storeLocalLevels, storeMetaKeys } from './store-manifest.js';
import { MalformedIdChunkError, decodeIdChunk, encodeIdChunks } from './id-chunks.js';
import { IdFilter } from './id-filter.js';

/** How entries are written (the store manifest compares it): chunks of exact ids per bucket. */
export const DEDUPE_FORMAT = 'dedupe-id-chunks/1';

/** Ids written after the last filter snapshot before the next one is taken (bounds the work of an open). */
const SNAPSHOT_AFTER_IDS = 250_000;
/** Ids of expired chunks whose index entries one commit removes (bounds the work of a commit). */
const CLEANUP_IDS_PER_COMMIT = 250_000;

/** Work bounds (tests set them small to reach the paths that large stores take). */
export interface DedupeTuning {
  snapshotAfterIds?: number;
  cleanupIdsPerCommit?: number;
}
/** A filter generation spans this many buckets (64 buckets per horizon by default: 9 generations live). */
const BUCKETS_PER_GENERATION = 8;
/** A prefetched id that is not in the index. */
const ABSENT = -Infinity;
const EMPTY = new Uint8Array(0);
const COUNTS_KEY = 'counts';
const PENDING_PREFIX = 'p';
const GENERATION_PREFIX = 'g';

/** 64-bit hash of a string in two 32-bit lanes (cyrb53's mixing, keeping all 64 bits); results in hashHigh/hashLow. */
let hashHigh = 0;
let hashLow = 0;
function hashId(id: string): void {
  let h1 = 0xdeadbeef;
  let h2 = 0x41c6ce57;
  for (let i = 0; i < id.length; i++) {
    const ch = id.charCodeAt(i);
    h1 = Math.imul(h1 ^ ch, 2654435761);
    h2 = Math.imul(h2 ^ ch, 1597334677);
  }
  h1 = Math.imul(h1 ^ (h1 >>> 16), 2246822507);
  h1 ^= Math.imul(h2 ^ (h2 >>> 13), 3266489909);
  h2 = Math.imul(h2 ^ (h2 >>> 16), 2246822507);
  h2 ^= Math.imul(h1 ^ (h1 >>> 13), 3266489909);
  hashHigh = h2 >>> 0;
  hashLow = h1 >>> 0;
}

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

/**
 * Forgets the index entries of the ids of an expired or deleted chunk of `bucket`: those whose entry
 * still names that bucket or an older one (an id remembered again since then keeps its newer entry).
 * `pending` holds index writes of the same batch not yet in LevelDB (id → bucket, null: deleted).
 */
async function forgetChunkIds(
  levels: Levels,
  ids: readonly string[],
  bucket: number,
  pending: Map<string, number | null>,
): Promise<void> {
  const unknown = ids.filter((id) => !pending.has(id));
  const stored = unknown.length === 0 ? [] : await levels.index.getMany(unknown);
  unknown.forEach((id, i) => {
    const text = stored[i];
    if (text !== undefined && Number(text) <= bucket) pending.set(id, null);
  });
  for (const id of ids) {
    const current = pending.get(id);
    if (current !== undefined && current !== null && current <= bucket) pending.set(id, null);
  }
}

function writeIndex(levels: Levels, updates: ReadonlyMap<string, number | null>, local: LocalWrites): void {
  for (const [id, bucket] of updates)
    if (bucket === null) local.delLocal(levels.index, id);
    else local.putLocal(levels.index, id, String(bucket));
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
 * Keeps the local entries (index, chunk list of the filter, counts) in step with replayed chunks, in
 * the batch that writes them (restore and standby): puts index their ids, tombstones forget them.
 */
export function dedupeRestoreDeriver(db: StateDb, name: string, options: DedupeOptions): ChangelogDeriver {
  const levels = levelsOf(db, name);
  const bucketSize = bucketSizeOf(options);
  return async (changes: readonly ChangeRecord[], local: LocalWrites) => {
    const counts = await readCounts(levels);
    const index = new Map<string, number | null>();
    const written = new Map<string, Uint8Array>();
    for (const { key, value } of changes) {
      const bucket = bucketOfChunk(key, bucketSize);
      if (value !== null) {
        const bytes = typeof value === 'string' ? Buffer.from(value) : value;
        const ids = idsOfReplayed(bytes);
        for (const id of ids) index.set(id, bucket);
        counts.set(bucket, (counts.get(bucket) ?? 0) + ids.length);
        written.set(key, bytes);
        local.putLocal(levels.local, PENDING_PREFIX + key, EMPTY);
      } else {
        const bytes = written.get(key) ?? (await levels.chunks.get(key));
        written.delete(key);
        local.delLocal(levels.local, PENDING_PREFIX + key);
        if (bytes === undefined) continue;
        const ids = idsOfReplayed(bytes);
        await forgetChunkIds(levels, ids, bucket, index);
        const left = (counts.get(bucket) ?? 0) - ids.length;
        if (left > 0) counts.set(bucket, left);
        else counts.delete(bucket);
      }
    }
    writeIndex(levels, index, local);
    local.putLocal(levels.local, COUNTS_KEY, countsBytes(counts));
  };
}

export class DedupeStore implements ManagedStore {
  readonly kind = 'dedupe' as const;
  readonly horizon: number;
  readonly bucketSize: number;
  private readonly levels: Levels;
  private readonly filter = new IdFilter(BUCKETS_PER_GENERATION);
  /** Ids first seen since the last commit → their bucket. */
  private fresh = new Map<string, number>();
  /** Index entries prefetched for the current batch (ABSENT: not in the index). */
  private readonly known = new Map<string, number>();
  /** Ids of the coming batch the filter cannot rule out. */
  private candidates: string[] = [];
  /**
   * The ids named for the batch in order, and whether the filter may hold each (1) or rules it out
   * (0): the per-record check meets them in the same order and skips hashing again. The verdict is a
   * property of the id and of the filter, which changes only at commit, so a match anywhere is valid.
   */
  private named: string[] = [];
  private namedMaybe: number[] = [];
  private cursor = 0;
  /** Ids per bucket (what the store view shows), kept in a local entry. */
  private counts = new Map<number, number>();
  /** Chunks not in the filter's persisted blobs (re-read at open) and how many ids they hold. */
  private readonly unsnapshotted = new Set<string>();
  private unsnapshottedIds = 0;
  private droppedGenerations: number[] = [];
  private nextChunk = 0;
  /** Chunks the pending commit writes (nextChunk moves past them once it is durable). */
  private chunksWritten = 0;
  private expiredBefore = -Infinity;
  /** Buckets below this have had every chunk cleaned up (index entries forgotten, deletes queued). */
  private cleanedBefore = -Infinity;

  constructor(
    private readonly db: StateDb,
    readonly name: string,
    options: DedupeOptions,
    private readonly tuning: DedupeTuning = {},
  ) {
    if (!(options.horizon > 0)) throw new Error(`dedupe "${name}": horizon must be positive`);
    this.horizon = options.horizon;
    this.bucketSize = bucketSizeOf(options);
    this.levels = levelsOf(db, name);
  }

  async load(): Promise<void> {
    const chunkText = await this.db.getMeta(this.chunkMetaKey());
    this.nextChunk = chunkText === undefined ? 0 : Number(chunkText);
    this.counts = await readCounts(this.levels);
    for await (const [key, bytes] of this.levels.local.iterator({
      gte: GENERATION_PREFIX,
      lt: GENERATION_PREFIX + '~',
    }))
      this.filter.load(Number(key.slice(GENERATION_PREFIX.length)), bytes);
    // Chunks written since the last snapshot (few, or all of them after a restore).
    for await (const key of this.levels.local.keys({ gte: PENDING_PREFIX, lt: PENDING_PREFIX + '~' })) {
      const chunkKey = key.slice(PENDING_PREFIX.length);
      const bytes = await this.levels.chunks.get(chunkKey);
      if (bytes === undefined) continue;
      const bucket = bucketOfChunk(chunkKey, this.bucketSize);
      const ids = decodeIdChunk(bytes);
      for (const id of ids) {
        hashId(id);
        this.filter.add(hashHigh, hashLow, bucket);
      }
      this.unsnapshotted.add(chunkKey);
      this.unsnapshottedIds += ids.length;
    }
  }

  // ---- the batch protocol: want() each id the batch may check, then await prefetch() ----

  /** Starts naming the ids of a new batch (forgets the previous batch's prefetched entries). */
  beginBatch(): void {
    this.forgetBatch();
  }

  /** An id the coming batch may check. */
  want(id: string): void {
    // An id remembered since the last commit is not in the filter yet (it goes in at commit), but the
    // check finds it in `fresh` before it looks at the verdict, so no lookup of `fresh` here.
    this.named.push(id);
    hashId(id);
    if (this.filter.mightContain(hashHigh, hashLow)) {
      this.candidates.push(id);
      this.namedMaybe.push(1);
    } else {
      this.namedMaybe.push(0);
    }
  }

  /** Reads the index entries of the wanted ids the filter could not rule out (plus `ids`, if given). */
  async prefetch(ids?: Iterable<string>): Promise<void> {
    if (ids !== undefined) for (const id of ids) this.want(id);
    const candidates = this.candidates.filter((id) => !this.known.has(id));
    this.candidates = [];
    if (candidates.length === 0) return;
    const stored = await this.levels.index.getMany(candidates);
    candidates.forEach((id, i) => {
      const text = stored[i];
      this.known.set(id, text === undefined ? ABSENT : Number(text));
    });
  }

  /**
   * True when `id` was seen within the horizon (a duplicate); otherwise remembers it under the bucket of
   * `eventTime` and returns false. `streamTime` (max event time of the task) decides what has expired.
   * An id named for this batch (want/prefetch) is answered from memory, another from a synchronous read.
   */
  checkAndRemember(id: string, eventTime: number, streamTime: number): boolean {
    const liveFrom = this.liveFromBucket(streamTime);
    const seen = this.seenBucket(id);
    if (seen !== ABSENT && seen >= liveFrom) return true;
    const bucket = Math.floor(eventTime / this.bucketSize);
    if (bucket < liveFrom) return false; // already beyond the horizon: nothing to remember
    this.fresh.set(id, bucket);
    return false;
  }

  /** Whether `id` counts as seen now (no side effects); for tests and inspection. */
  async contains(id: string, streamTime: number): Promise<boolean> {
    await this.prefetch([id]);
    const seen = this.seenBucket(id);
    return seen !== ABSENT && seen >= this.liveFromBucket(streamTime);
  }

  /** Drops expired ids from memory and schedules the deletes of their chunks for after the commit. */
  expire(streamTime: number): void {
    const liveFrom = this.liveFromBucket(streamTime);
    if (liveFrom <= this.expiredBefore) return;
    this.expiredBefore = liveFrom;
    for (const [id, bucket] of this.fresh) if (bucket < liveFrom) this.fresh.delete(id);
    for (const bucket of this.counts.keys()) if (bucket < liveFrom) this.counts.delete(bucket);
    this.droppedGenerations.push(...this.filter.dropBefore(liveFrom));
  }

  /** Expiry rides on every commit, so the checkpoint never carries ids past the horizon. */
  beforeCommit(streamTime: number): void {
    this.expire(streamTime);
  }

  /** Ids remembered within the horizon (as of the last expiry), committed or not. */
  get size(): number {
    let size = this.fresh.size;
    for (const count of this.counts.values()) size += count;
    return size;
  }

  /** Bytes of memory held by the filter (the part that grows with the horizon). */
  get filterBytes(): number {
    return this.filter.bytes;
  }

  collectWrites(batch: WriteBatch): void {
    const { chunks, index, local } = this.levels;
    // The filter changes below: what was named or prefetched against it goes.
    this.forgetBatch();
    const byBucket = new Map<number, string[]>();
    let lastBucket = NaN;
    let lastIds: string[] = [];
    let bucketText = '';
    for (const [id, bucket] of this.fresh) {
      if (bucket !== lastBucket) {
        let ids = byBucket.get(bucket);
        if (ids === undefined) byBucket.set(bucket, (ids = []));
        lastBucket = bucket;
        lastIds = ids;
        bucketText = String(bucket);
      }
      lastIds.push(id);
      batch.putLocal(index, id, bucketText);
      hashId(id);
      this.filter.add(hashHigh, hashLow, bucket);
    }
    let chunk = this.nextChunk;
    const written: string[] = [];
    for (const [bucket, ids] of byBucket) {
      this.counts.set(bucket, (this.counts.get(bucket) ?? 0) + ids.length);
      for (const bytes of encodeIdChunks(ids)) {
        const key = `${sortableTime(bucket * this.bucketSize)}!${sortableHex(chunk++, 8)}`;
        batch.putBinary(chunks, this.name, key, bytes);
        written.push(key);
      }
    }
    this.chunksWritten = chunk - this.nextChunk;
    if (this.chunksWritten > 0) this.db.putMeta(this.chunkMetaKey(), String(chunk));
    for (const number of this.droppedGenerations) batch.delLocal(local, GENERATION_PREFIX + number);
    this.droppedGenerations = [];
    this.unsnapshottedIds += this.fresh.size;
    if (this.unsnapshottedIds >= (this.tuning.snapshotAfterIds ?? SNAPSHOT_AFTER_IDS)) {
      // The filter as of this commit replaces the list of chunks an open would re-read.
      for (const number of this.filter.takeDirty()) {
        const bytes = this.filter.serialize(number);
        if (bytes !== undefined) batch.putLocal(local, GENERATION_PREFIX + number, bytes);
      }
      for (const key of this.unsnapshotted) batch.delLocal(local, PENDING_PREFIX + key);
      this.unsnapshotted.clear();
      this.unsnapshottedIds = 0;
    } else {
      for (const key of written) {
        batch.putLocal(local, PENDING_PREFIX + key, EMPTY);
        this.unsnapshotted.add(key);
      }
    }
    if (this.fresh.size > 0 || this.expiredBefore > this.cleanedBefore)
      batch.putLocal(local, COUNTS_KEY, countsBytes(this.counts));
  }

  async committed(): Promise<void> {
    this.nextChunk += this.chunksWritten;
    this.chunksWritten = 0;
    this.fresh = new Map();
    if (this.expiredBefore > this.cleanedBefore) await this.cleanUpExpired();
  }

  view(): StoreView {
    return {
      name: this.name,
      kind: this.kind,
      entries: async ({ limit = Infinity, after } = {}) => {
        const perBucket = new Map(this.counts);
        for (const bucket of this.fresh.values()) perBucket.set(bucket, (perBucket.get(bucket) ?? 0) + 1);
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
      approximateSize: () => this.size,
    };
  }

  private forgetBatch(): void {
    this.known.clear();
    this.candidates = [];
    this.named = [];
    this.namedMaybe = [];
    this.cursor = 0;
  }

  /** The bucket `id` was last remembered in, or -Infinity when it was not (as far as the horizon goes). */
  private seenBucket(id: string): number {
    const fresh = this.fresh.get(id);
    if (fresh !== undefined) return fresh;
    const cursor = this.cursor;
    if (cursor < this.named.length && this.named[cursor] === id) {
      this.cursor = cursor + 1;
      if (this.namedMaybe[cursor] === 0) return ABSENT;
      const known = this.known.get(id);
      if (known !== undefined) return known;
    }
    hashId(id);
    if (!this.filter.mightContain(hashHigh, hashLow)) return ABSENT;
    const known = this.known.get(id);
    if (known !== undefined) return known;
    // Not named ahead: read it now (blocks this record only; the answer is exact all the same).
    const text = this.levels.index.getSync(id);
    return text === undefined ? ABSENT : Number(text);
  }

  /**
   * Removes what expired buckets left behind, a bounded amount per commit: the index entries of their
   * ids (written at once: local, and stale anyway) and, with the next commit, their chunks (tombstones
   * in the changelog). A chunk is deleted only after its index entries, so none is ever left pointing
   * at a chunk that is gone while its bucket would still count.
   */
  private async cleanUpExpired(): Promise<void> {
    const { chunks, local } = this.levels;
    const before = this.expiredBefore;
    const cleanup = this.db.localBatch();
    const done: string[] = [];
    let ids = 0;
    let finished = true;
    for await (const [key, bytes] of chunks.iterator({ lt: sortableTime(before * this.bucketSize) })) {
      if (ids >= (this.tuning.cleanupIdsPerCommit ?? CLEANUP_IDS_PER_COMMIT)) {
        finished = false;
        break;
      }
      const chunkIds = decodeIdChunk(bytes);
      const updates = new Map<string, number | null>();
      await forgetChunkIds(this.levels, chunkIds, before - 1, updates);
      writeIndex(this.levels, updates, cleanup);
      cleanup.delLocal(local, PENDING_PREFIX + key);
      this.unsnapshotted.delete(key);
      done.push(key);
      ids += chunkIds.length;
    }
    await cleanup.write();
    this.db.queueDeletes(chunks, this.name, done);
    if (finished) this.cleanedBefore = before;
  }

  private liveFromBucket(streamTime: number): number {
    return Math.floor((streamTime - this.horizon) / this.bucketSize);
  }

  private chunkMetaKey(): string {
    return storeMetaKeys('dedupe', this.name)[0] as string;
  }
}
