/**
 * Reading a store in the user's terms, for the admin endpoint, the CLI and `queryStore()`: a page of
 * decoded entries (window starts and ends, group keys and aggregates by name; key-value pairs; dedupe
 * buckets; outbox entries) and a point lookup of one key as the user writes it. The shapes here are
 * what the admin endpoint answers, as JSON.
 */

/** A time as both an ISO string (to read) and epoch ms (to compute with). */
export interface StoreTime {
  iso: string;
  ms: number;
}

export function storeTime(ms: number): StoreTime {
  return { iso: Number.isFinite(ms) ? new Date(ms).toISOString() : String(ms), ms };
}

/** One (window, group key) of a window store: open windows show their aggregates so far. */
export interface WindowEntryView {
  windowStart: StoreTime;
  windowEnd: StoreTime;
  /** The group key as the user's groupBy() returned it. */
  key: unknown;
  /** Each aggregate's result by its name in aggregate({...}), as the sink would receive it. */
  aggregates: Record<string, unknown>;
  /** 0 while the window is open; the number of emissions after. */
  version: number;
}

export interface KeyValueEntryView {
  key: string;
  value: unknown;
}

/** A dedupe store lists its time buckets and how many ids each holds (millions of ids, not a list of them). */
export interface DedupeBucketView {
  bucketStart: StoreTime;
  bucketEnd: StoreTime;
  ids: number;
  /** The stream time (event time) at which these ids are forgotten: bucket end + horizon. */
  expiresAt: StoreTime;
}

export interface OutboxEntryView {
  seq: string;
  /** False while the entry waits for the next commit; committed entries wait for delivery. */
  committed: boolean;
  value: unknown;
}

export type StoreEntryView = WindowEntryView | KeyValueEntryView | DedupeBucketView | OutboxEntryView;

export interface StoreReadOptions {
  /** At most this many entries. */
  limit?: number;
  /** The `next` cursor of the previous page. */
  after?: string;
  /** Window stores: windows starting at or after this time (epoch ms). */
  from?: number;
  /** Window stores: windows starting before this time (epoch ms). */
  to?: number;
}

export interface StorePage {
  entries: StoreEntryView[];
  /** Pass as `after` for the next page; absent on the last page. */
  next?: string;
}

/** A remembered dedupe id: the bucket it was remembered under and when it is forgotten (stream time). */
export interface DedupeLookup {
  seen: true;
  bucketStart: StoreTime;
  expiresAt: StoreTime;
}

/**
 * What one partition's store holds for a key: a window store every window of that group key, a
 * key-value store its value, a dedupe store that the id was seen. Undefined: nothing here (for a
 * dedupe store: not seen, or forgotten).
 */
export type StoreLookup =
  | { kind: 'window'; windows: WindowEntryView[] }
  | { kind: 'key-value'; value: unknown }
  | ({ kind: 'dedupe' } & DedupeLookup);

/** A read or lookup the store cannot answer as asked (a malformed cursor, a store without keys). */
export class StoreQueryError extends Error {
  override readonly name = 'StoreQueryError';
}

/** An opaque cursor: base64url of the JSON of the position it stands for. */
export function encodeCursor(position: unknown): string {
  return Buffer.from(JSON.stringify(position), 'utf8').toString('base64url');
}

export function decodeCursor(cursor: string): unknown {
  try {
    return JSON.parse(Buffer.from(cursor, 'base64url').toString('utf8')) as unknown;
  } catch {
    throw new StoreQueryError(`"${cursor}" is not a cursor this store returned as next`);
  }
}

/** The page of `limit` rows taken from rows sorted after the cursor; `positionOf` gives each row's cursor. */
export function pageOf<R>(
  rows: readonly R[],
  limit: number,
  positionOf: (row: R) => unknown,
  view: (row: R) => StoreEntryView,
): StorePage {
  const page = rows.slice(0, limit);
  const last = page[page.length - 1];
  return {
    entries: page.map(view),
    ...(rows.length > limit && last !== undefined ? { next: encodeCursor(positionOf(last)) } : {}),
  };
}
