/**
 * Outbox: a durable queue of outputs inside the task state. Appends are buffered in memory and become
 * durable (and readable) with the next commit, in the same batch as the state and input positions that
 * produced them; so after a crash the outbox holds exactly the outputs of the checkpointed input.
 *
 * On disk, the entries appended during one commit interval form one segment (one LevelDB value keyed
 * by its first sequence): a commit costs one put however many rows it carries, and a segment is deleted
 * once all its entries are acked. The acked-through sequence is checkpointed too, so a partly acked
 * segment is not delivered again from its start.
 *
 * Committed rows wait in memory for delivery as values while delivery keeps up. When it falls behind
 * (a sink down for minutes: up to `outputs.maxPendingPerPartition` rows per partition), what lies
 * past the first `hotRows` pending rows (one delivery round's worth) is kept packed in the segment
 * format (a window result: about 90 bytes, against about 350 bytes of objects for the garbage
 * collector to keep and walk), and decoded when a read or an ack reaches it.
 *
 * A segment's first byte says how the rest is encoded: JSON_SEGMENT (UTF-8 JSON array of the values,
 * bigint and Buffer kept; any value) or a format of the outbox's SegmentCodec, which packs values of a
 * known shape (window results) much faster than JSON and may decline a segment it cannot pack.
 */
import { decodeValue, encodeValue, sortableHex } from './codec.js';
import type { BinarySublevel, ManagedStore, StateDb, WriteBatch } from './db.js';
import type { Outbox, OutboxEntry, StoreView } from '../core/task.js';
import { StoreQueryError, decodeCursor, pageOf } from '../core/store-reads.js';
import { storeLevelName, storeMetaKeys } from './store-layout.js';

const JSON_SEGMENT = 0x01;

/** Packs the values of one segment; its output must start with a format byte other than 0x01. */
export interface SegmentCodec<T> {
  /** Names the packed format in the store manifest (a change is a change of the outbox's format). */
  readonly format: string;
  /** The segment's bytes, or undefined to have it written as JSON. */
  encode(values: readonly T[]): Uint8Array | undefined;
  decode(bytes: Uint8Array): T[];
}

function encodeJsonSegment(values: readonly unknown[]): Uint8Array {
  const text = encodeValue(values);
  const bytes = Buffer.allocUnsafe(Buffer.byteLength(text, 'utf8') + 1);
  bytes[0] = JSON_SEGMENT;
  bytes.write(text, 1, 'utf8');
  return bytes;
}

/**
 * The bytes on a memory of their own: a small Buffer is a view into a shared 8 KB pool, which a
 * packed segment kept for an hour of a sink's outage would hold on to for a few bytes.
 */
function ownBytes(bytes: Uint8Array): Uint8Array {
  return bytes.buffer.byteLength > bytes.byteLength * 2 ? new Uint8Array(bytes) : bytes;
}

/** An outbox's format in the store manifest: JSON segments, plus its codec's packed format if any. */
export function outboxFormat(codec: SegmentCodec<unknown> | undefined): string {
  return codec === undefined ? 'json-segments/1' : `json-segments/1+${codec.format}`;
}

interface Segment {
  key: string;
  lastSeq: bigint;
}

/** A committed segment kept as its bytes until a read or an ack reaches it. */
interface PackedSegment {
  from: bigint;
  count: number;
  bytes: Uint8Array;
}

/** Pending rows kept as values by default: `outputs.batchSize`'s default. */
const HOT_ROWS = 50_000;

export interface OutboxOptions {
  /**
   * Pending rows kept as values while delivery is behind; the rest wait packed. The runtime passes
   * `outputs.batchSize`: a delivery round reads at most that many rows of an outbox, so the rows a
   * round reads (again and again while a sink is down) are values and are never packed again.
   */
  hotRows?: number | undefined;
}

export class OutboxStore<T = unknown> implements Outbox<T>, ManagedStore {
  readonly kind = 'outbox' as const;
  private readonly level: BinarySublevel;
  private nextSeq = 0n;
  private ackedThrough = -1n;
  private ackedThroughDirty = false;
  /**
   * Appended since the last commit: neither durable nor readable yet. Sequences are consecutive, so
   * values are kept bare (the last one's is `nextSeq - 1`): an entry object and a bigint per output,
   * kept until the commit, were a large share of what the garbage collector promoted.
   */
  private appended: T[] = [];
  /**
   * Committed, not yet acked, consecutive from `committedFrom`; `head` is the index of the oldest
   * (avoids shifting a long array).
   */
  private committedValues: T[] = [];
  private committedFrom = 0n;
  private head = 0;
  /** Committed after the values above (the first starts where they end), still packed. */
  private packed: PackedSegment[] = [];
  private packedRows = 0;
  /** The bytes collectWrites wrote for `appended`, kept as the segment's packed form. */
  private appendedBytes: Uint8Array | undefined;
  private readonly hotRows: number;
  /** Segments on disk, oldest first. */
  private segments: Segment[] = [];
  private segmentsToDelete: string[] = [];

  constructor(
    private readonly db: StateDb,
    readonly name: string,
    private readonly codec?: SegmentCodec<T>,
    options: OutboxOptions = {},
  ) {
    this.level = db.binaryLevel(storeLevelName('outbox', name));
    this.hotRows = options.hotRows ?? HOT_ROWS;
  }

  async load(): Promise<void> {
    const seqText = await this.db.getMeta(this.metaKey('next-seq'));
    this.nextSeq = seqText === undefined ? 0n : BigInt(seqText);
    const ackedText = await this.db.getMeta(this.metaKey('acked-through'));
    this.ackedThrough = ackedText === undefined ? -1n : BigInt(ackedText);
    for await (const [key, bytes] of this.level.iterator()) {
      const firstSeq = BigInt(`0x${key}`);
      const values = this.decodeSegment(bytes);
      const lastSeq = firstSeq + BigInt(values.length - 1);
      this.segments.push({ key, lastSeq });
      if (lastSeq <= this.ackedThrough) continue;
      const from = firstSeq > this.ackedThrough ? firstSeq : this.ackedThrough + 1n;
      const expected = this.committedFrom + BigInt(this.committedValues.length) + BigInt(this.packedRows);
      if (this.committedValues.length === 0) this.committedFrom = from;
      else if (from !== expected)
        throw new Error(
          `outbox "${this.name}": segment ${key} starts at sequence ${from}, expected ${expected}: ` +
            'the state folder is damaged',
        );
      // Whole segments beyond the first hotRows stay packed (a segment is partly acked only first).
      if (this.committedValues.length >= this.hotRows && from === firstSeq) {
        this.packed.push({ from, count: values.length, bytes: ownBytes(bytes) });
        this.packedRows += values.length;
      } else {
        for (let i = Number(from - firstSeq); i < values.length; i++)
          this.committedValues.push(values[i] as T);
      }
    }
  }

  append(value: T): void {
    this.appended.push(value);
    this.nextSeq++;
  }

  async read(max: number): Promise<OutboxEntry<T>[]> {
    this.unpack(max);
    return this.committedEntries(Math.min(this.committedValues.length, this.head + max));
  }

  /** Decodes packed segments, oldest first, until `rows` pending rows are values (or none is packed). */
  private unpack(rows: number): void {
    while (this.committedValues.length - this.head < rows && this.packed.length > 0) {
      const segment = this.packed.shift() as PackedSegment;
      this.packedRows -= segment.count;
      const values = this.decodeSegment(segment.bytes);
      if (this.head === this.committedValues.length) {
        this.committedValues = values;
        this.committedFrom = segment.from;
        this.head = 0;
      } else {
        for (const value of values) this.committedValues.push(value);
      }
    }
  }

  /**
   * Delivery is behind (rows of an earlier commit are still pending): the values past the first
   * `hotRows` pending ones are packed again, so that a long outage holds bytes whatever the size of
   * its segments (a window close commits 100k rows at once).
   */
  private packExcess(): void {
    const keep = this.head + this.hotRows;
    if (this.committedValues.length <= keep) return;
    const excess = this.committedValues.slice(keep);
    const bytes = this.encodeSegment(excess);
    this.packed.unshift({
      from: this.committedFrom + BigInt(keep),
      count: excess.length,
      bytes: ownBytes(bytes),
    });
    this.packedRows += excess.length;
    this.committedValues.length = keep;
  }

  /** Entries of the committed values not acked yet, from the oldest up to index `end`. */
  private committedEntries(end: number): OutboxEntry<T>[] {
    const entries: OutboxEntry<T>[] = new Array(Math.max(0, end - this.head));
    const from = this.committedFrom + BigInt(this.head);
    for (let i = this.head; i < end; i++)
      entries[i - this.head] = { seq: from + BigInt(i - this.head), value: this.committedValues[i] as T };
    return entries;
  }

  async ack(throughSeq: bigint): Promise<void> {
    const oldest = this.committedFrom + BigInt(this.head);
    // What the ack reaches becomes values first (a round's rows are within the first hotRows, so a
    // delivery's ack decodes nothing).
    if (throughSeq >= oldest)
      this.unpack(throughSeq - oldest < BigInt(this.pending()) ? Number(throughSeq - oldest) + 1 : Infinity);
    if (throughSeq >= oldest && this.head < this.committedValues.length) {
      const through = throughSeq - oldest + 1n;
      const pending = this.committedValues.length - this.head;
      this.head += through < BigInt(pending) ? Number(through) : pending;
      this.ackedThrough = this.committedFrom + BigInt(this.head - 1);
      this.ackedThroughDirty = true;
    }
    while (this.segments.length > 0 && (this.segments[0] as Segment).lastSeq <= this.ackedThrough) {
      this.segmentsToDelete.push((this.segments.shift() as Segment).key);
    }
    if (this.head > 1024 && this.head * 2 > this.committedValues.length) {
      this.committedValues = this.committedValues.slice(this.head);
      this.committedFrom += BigInt(this.head);
      this.head = 0;
    }
  }

  pending(): number {
    return this.committedValues.length - this.head + this.packedRows;
  }

  /** The sequence of the first value appended since the last commit. */
  private get appendedFrom(): bigint {
    return this.nextSeq - BigInt(this.appended.length);
  }

  collectWrites(batch: WriteBatch): void {
    for (const key of this.segmentsToDelete) batch.del(this.level, this.name, key);
    if (this.appended.length > 0) {
      const bytes = this.encodeSegment(this.appended);
      batch.putBinary(this.level, this.name, sortableHex(this.appendedFrom), bytes);
      this.appendedBytes = bytes;
      this.db.putMeta(this.metaKey('next-seq'), this.nextSeq.toString());
    }
    if (this.ackedThroughDirty) this.db.putMeta(this.metaKey('acked-through'), this.ackedThrough.toString());
  }

  async committed(): Promise<void> {
    const hot = this.committedValues.length - this.head;
    const behind = hot > 0 || this.packed.length > 0;
    if (this.appended.length > 0) {
      const from = this.appendedFrom;
      this.segments.push({ key: sortableHex(from), lastSeq: this.nextSeq - 1n });
      if (!behind) {
        // All delivered (the usual case): the appended values become the committed ones as they are.
        this.committedValues = this.appended;
        this.committedFrom = from;
        this.head = 0;
      } else if (this.packed.length === 0 && hot + this.appended.length <= this.hotRows) {
        for (const value of this.appended) this.committedValues.push(value);
      } else {
        // Delivery is behind: this segment waits as the bytes just written.
        this.packed.push({
          from,
          count: this.appended.length,
          bytes: ownBytes(this.appendedBytes as Uint8Array),
        });
        this.packedRows += this.appended.length;
      }
    }
    if (behind) this.packExcess();
    this.appended = [];
    this.appendedBytes = undefined;
    this.segmentsToDelete = [];
    this.ackedThroughDirty = false;
  }

  /** The entries not acked yet, committed ones first (the admin view; not a hot path). */
  private entriesForView(): Array<{ entry: OutboxEntry<T>; committed: boolean }> {
    const rows = this.committedEntries(this.committedValues.length).map((entry) => ({
      entry,
      committed: true,
    }));
    for (const segment of this.packed)
      this.decodeSegment(segment.bytes).forEach((value, i) =>
        rows.push({ entry: { seq: segment.from + BigInt(i), value }, committed: true }),
      );
    const from = this.appendedFrom;
    this.appended.forEach((value, i) =>
      rows.push({ entry: { seq: from + BigInt(i), value }, committed: false }),
    );
    return rows;
  }

  view(): StoreView {
    return {
      name: this.name,
      kind: this.kind,
      entries: async ({ limit = Infinity, after } = {}) =>
        this.entriesForView()
          .map(({ entry }) => ({ key: sortableHex(entry.seq), value: entry.value }))
          .filter((row) => after === undefined || row.key > after)
          .slice(0, limit),
      read: async ({ limit = Infinity, after } = {}) => {
        const from = after === undefined ? undefined : decodeCursor(after);
        if (from !== undefined && (typeof from !== 'string' || !/^\d+$/.test(from)))
          throw new StoreQueryError(`"${after}" is not a cursor of an outbox`);
        const fromSeq = from === undefined ? -1n : BigInt(from);
        const rows = this.entriesForView().filter(({ entry }) => entry.seq > fromSeq);
        return pageOf(
          rows,
          limit,
          ({ entry }) => entry.seq.toString(),
          ({ entry, committed }) => ({ seq: entry.seq.toString(), committed, value: entry.value }),
        );
      },
      lookup: async () => {
        throw new StoreQueryError(`"${this.name}" is an outbox: it has no keys to look up, read its entries`);
      },
      approximateSize: () => this.pending() + this.appended.length,
    };
  }

  /** A segment's bytes: the codec's packed format, or JSON when there is no codec or it declines. */
  private encodeSegment(values: readonly T[]): Uint8Array {
    return this.codec?.encode(values) ?? encodeJsonSegment(values);
  }

  private decodeSegment(bytes: Uint8Array): T[] {
    if (bytes[0] === JSON_SEGMENT)
      return decodeValue<T[]>(
        Buffer.from(bytes.buffer, bytes.byteOffset + 1, bytes.byteLength - 1).toString('utf8'),
      );
    if (this.codec === undefined)
      throw new Error(
        `outbox "${this.name}": segment format ${bytes[0]} needs a codec this outbox does not have`,
      );
    return this.codec.decode(bytes);
  }

  private metaKey(what: 'next-seq' | 'acked-through'): string {
    const [nextSeq, ackedThrough] = storeMetaKeys('outbox', this.name) as [string, string];
    return what === 'next-seq' ? nextSeq : ackedThrough;
  }
}
