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
 * A segment's first byte says how the rest is encoded: JSON_SEGMENT (UTF-8 JSON array of the values,
 * bigint and Buffer kept; any value) or a format of the outbox's SegmentCodec, which packs values of a
 * known shape (window results) much faster than JSON and may decline a segment it cannot pack.
 */
import { decodeValue, encodeValue, sortableHex } from './codec.js';
import type { BinarySublevel, ManagedStore, StateDb, WriteBatch } from './db.js';
import type { Outbox, OutboxEntry, StoreView } from '../core/task.js';
import { StoreQueryError, decodeCursor, pageOf } from '../core/store-reads.js';
import { storeLevelName, storeMetaKeys } from './store-manifest.js';

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

/** An outbox's format in the store manifest: JSON segments, plus its codec's packed format if any. */
export function outboxFormat(codec: SegmentCodec<unknown> | undefined): string {
  return codec === undefined ? 'json-segments/1' : `json-segments/1+${codec.format}`;
}

interface Segment {
  key: string;
  lastSeq: bigint;
}

export class OutboxStore<T = unknown> implements Outbox<T>, ManagedStore {
  readonly kind = 'outbox' as const;
  private readonly level: BinarySublevel;
  private nextSeq = 0n;
  private ackedThrough = -1n;
  private ackedThroughDirty = false;
  /** Appended since the last commit: neither durable nor readable yet. */
  private appended: OutboxEntry<T>[] = [];
  /** Committed, not yet acked; `head` is the index of the oldest (avoids shifting a long array). */
  private committedEntries: OutboxEntry<T>[] = [];
  private head = 0;
  /** Segments on disk, oldest first. */
  private segments: Segment[] = [];
  private segmentsToDelete: string[] = [];

  constructor(
    private readonly db: StateDb,
    readonly name: string,
    private readonly codec?: SegmentCodec<T>,
  ) {
    this.level = db.binaryLevel(storeLevelName('outbox', name));
  }

  async load(): Promise<void> {
    const seqText = await this.db.getMeta(this.metaKey('next-seq'));
    this.nextSeq = seqText === undefined ? 0n : BigInt(seqText);
    const ackedText = await this.db.getMeta(this.metaKey('acked-through'));
    this.ackedThrough = ackedText === undefined ? -1n : BigInt(ackedText);
    for await (const [key, bytes] of this.level.iterator()) {
      const firstSeq = BigInt(`0x${key}`);
      const values = this.decodeSegment(bytes);
      values.forEach((value, index) => {
        const seq = firstSeq + BigInt(index);
        if (seq > this.ackedThrough) this.committedEntries.push({ seq, value });
      });
      this.segments.push({ key, lastSeq: firstSeq + BigInt(values.length - 1) });
    }
  }

  append(value: T): void {
    this.appended.push({ seq: this.nextSeq++, value });
  }

  async read(max: number): Promise<OutboxEntry<T>[]> {
    return this.committedEntries.slice(this.head, this.head + max);
  }

  async ack(throughSeq: bigint): Promise<void> {
    while (this.head < this.committedEntries.length) {
      const entry = this.committedEntries[this.head] as OutboxEntry<T>;
      if (entry.seq > throughSeq) break;
      this.head++;
      this.ackedThrough = entry.seq;
      this.ackedThroughDirty = true;
    }
    while (this.segments.length > 0 && (this.segments[0] as Segment).lastSeq <= this.ackedThrough) {
      this.segmentsToDelete.push((this.segments.shift() as Segment).key);
    }
    if (this.head > 1024 && this.head * 2 > this.committedEntries.length) {
      this.committedEntries = this.committedEntries.slice(this.head);
      this.head = 0;
    }
  }

  pending(): number {
    return this.committedEntries.length - this.head;
  }

  collectWrites(batch: WriteBatch): void {
    for (const key of this.segmentsToDelete) batch.del(this.level, this.name, key);
    if (this.appended.length > 0) {
      const first = this.appended[0] as OutboxEntry<T>;
      const values = this.appended.map((entry) => entry.value);
      const bytes = this.codec?.encode(values) ?? encodeJsonSegment(values);
      batch.putBinary(this.level, this.name, sortableHex(first.seq), bytes);
      this.db.putMeta(this.metaKey('next-seq'), this.nextSeq.toString());
    }
    if (this.ackedThroughDirty) this.db.putMeta(this.metaKey('acked-through'), this.ackedThrough.toString());
  }

  async committed(): Promise<void> {
    if (this.appended.length > 0) {
      const first = this.appended[0] as OutboxEntry<T>;
      const last = this.appended[this.appended.length - 1] as OutboxEntry<T>;
      this.segments.push({ key: sortableHex(first.seq), lastSeq: last.seq });
      for (const entry of this.appended) this.committedEntries.push(entry);
    }
    this.appended = [];
    this.segmentsToDelete = [];
    this.ackedThroughDirty = false;
  }

  view(): StoreView {
    return {
      name: this.name,
      kind: this.kind,
      entries: async ({ limit = Infinity, after } = {}) =>
        this.committedEntries
          .slice(this.head)
          .concat(this.appended)
          .map((entry) => ({ key: sortableHex(entry.seq), value: entry.value }))
          .filter((row) => after === undefined || row.key > after)
          .slice(0, limit),
      read: async ({ limit = Infinity, after } = {}) => {
        const from = after === undefined ? undefined : decodeCursor(after);
        if (from !== undefined && (typeof from !== 'string' || !/^\d+$/.test(from)))
          throw new StoreQueryError(`"${after}" is not a cursor of an outbox`);
        const fromSeq = from === undefined ? -1n : BigInt(from);
        const rows = this.committedEntries
          .slice(this.head)
          .map((entry) => ({ entry, committed: true }))
          .concat(this.appended.map((entry) => ({ entry, committed: false })))
          .filter(({ entry }) => entry.seq > fromSeq);
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
