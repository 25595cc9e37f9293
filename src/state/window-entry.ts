/**
 * A window store's entries and how they become bytes: the entry the operator reads and changes in
 * place, the codecs of its state (per state as JSON, or a whole blob at once), and what a resident
 * entry costs in memory beyond its bytes. Shared by the resident cache (window-cache.ts), the on-disk
 * layout (window-disk.ts) and the store (window-store.ts).
 */
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
  /**
   * The key of a spilled window's per-key record for a key text: the same for the same group key in
   * every instance (a key text may depend on what the instance saw first). The key text when absent.
   */
  storeKey?(keyText: string): string;
  /** Memory a resident entry costs beyond its encoded bytes (see WINDOW_ENTRY_OVERHEAD_BYTES). */
  readonly entryOverheadBytes?: number;
}

/**
 * Memory a resident window entry costs beyond its encoded bytes (its share of a blob): the Map slot,
 * the entry and state objects, the key string. Measured on Node 20 as the heap growth of 200k entries
 * of one window (numeric layout, count + sum, compact keys of two fields): 230 bytes per entry, of
 * which about 56 are its encoded bytes.
 */
export const WINDOW_ENTRY_OVERHEAD_BYTES = 175;
/**
 * The same for a JSON-layout state (accumulators as objects, the key object kept): measured as for
 * WINDOW_ENTRY_OVERHEAD_BYTES with count + a custom aggregator of a two-field object, 408 bytes per
 * entry, of which about 128 are its encoded JSON. Aggregators whose accumulator is much larger in
 * memory than in JSON add their own (window-state-codec.ts: a quantile sketch).
 */
export const JSON_WINDOW_ENTRY_OVERHEAD_BYTES = 280;
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
    entryOverheadBytes: JSON_WINDOW_ENTRY_OVERHEAD_BYTES,
  };
}

/** An entry as read from disk or newly inserted: not yet changed since its last write. */
export function cleanEntry<S>(start: number, keyText: string, state: S): WindowEntry<S> {
  return { start, keyText, state, dirty: false, removed: false };
}
