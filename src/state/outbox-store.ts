/**
 * Outbox: a durable queue of outputs inside the task state. Appends are buffered in memory and become
 * durable (and readable) with the next commit, in the same batch as the state and input positions that
 * produced them; so after a crash the outbox holds exactly the outputs of the checkpointed input.
 */
import { decodeValue, encodeValue, sortableHex } from './codec.js';
import type { ManagedStore, StateDb, TextSublevel, WriteBatch } from './db.js';
import type { Outbox, OutboxEntry, StoreView } from '../topology/task.js';

export class OutboxStore<T = unknown> implements Outbox<T>, ManagedStore {
  readonly kind = 'outbox' as const;
  private readonly level: TextSublevel;
  private nextSeq = 0n;
  /** Appended since the last commit: neither durable nor readable yet. */
  private appended: OutboxEntry<T>[] = [];
  /** Committed, not yet acked; `head` is the index of the oldest (avoids shifting a long array). */
  private committedEntries: OutboxEntry<T>[] = [];
  private head = 0;
  private ackedKeys: string[] = [];

  constructor(
    private readonly db: StateDb,
    readonly name: string,
  ) {
    this.level = db.textLevel(`outbox:${name}`);
  }

  async load(): Promise<void> {
    const seqText = await this.db.getMeta(this.seqMetaKey());
    this.nextSeq = seqText === undefined ? 0n : BigInt(seqText);
    for await (const [key, text] of this.level.iterator()) {
      this.committedEntries.push({ seq: BigInt(`0x${key}`), value: decodeValue<T>(text) });
    }
  }

  append(value: T): void {
    this.appended.push({ seq: this.nextSeq++, value });
  }

  /** Entries appended since the last commit (for the test driver's "not yet committed" view). */
  uncommitted(): readonly OutboxEntry<T>[] {
    return this.appended;
  }

  async read(max: number): Promise<OutboxEntry<T>[]> {
    return this.committedEntries.slice(this.head, this.head + max);
  }

  async ack(throughSeq: bigint): Promise<void> {
    while (this.head < this.committedEntries.length) {
      const entry = this.committedEntries[this.head] as OutboxEntry<T>;
      if (entry.seq > throughSeq) break;
      this.ackedKeys.push(sortableHex(entry.seq));
      this.head++;
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
    for (const key of this.ackedKeys) batch.del(this.level, this.name, key);
    for (const entry of this.appended)
      batch.put(this.level, this.name, sortableHex(entry.seq), encodeValue(entry.value));
    if (this.appended.length > 0) this.db.putMeta(this.seqMetaKey(), this.nextSeq.toString());
  }

  async committed(): Promise<void> {
    for (const entry of this.appended) this.committedEntries.push(entry);
    this.appended = [];
    this.ackedKeys = [];
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
      approximateSize: () => this.pending() + this.appended.length,
    };
  }

  private seqMetaKey(): string {
    return `outbox-next-seq:${this.name}`;
  }
}
