/**
 * The windowed aggregation operator: groupBy + tumbling window + aggregate, fused into one node so that
 * a record costs one key computation and one map lookup. Owns its watermark
 * (max event time of the task - outOfOrderness, or advanced by idleness), emits each window once when
 * the watermark reaches end + grace, and applies the late-event policy.
 */
import type { ResultSchema } from '../core/sink.js';
import { jsonBlobCodec, WindowStore } from '../state/window-store.js';
import type { StateDb } from '../state/db.js';
import type { WindowBlobCodec, WindowEntry } from '../state/window-store.js';
import { numericKernelOf } from './aggregators.js';
import type { AnyAggregator, NumericKernel } from './aggregators.js';
import type { NodeRuntimeContext, Push, StoreSpec, TimeListener } from './graph.js';
import { GroupKeyText } from './group-key.js';
import type { WindowResult } from '../core/records.js';
import { windowStartOf } from './time.js';
import type { TumblingWindows } from './time.js';

/**
 * What happens to an event whose window was already emitted:
 * - `drop`: counted in metrics (lateEvents) and dropped;
 * - `dlq`: counted and sent to the DLQ outbox with reason `late-event`;
 * - `side-output`: counted and forwarded to the stream returned by `lateEvents()`;
 * - `re-emit`: counted, added to the window, and the window's updated result is emitted again with
 *   version + 1; the window is kept for `allowedLateness` after closing, later events are dropped.
 */
export type LatePolicy = 'drop' | 'dlq' | 'side-output' | 're-emit';

export interface WindowOptions {
  /** Extra time after the window end (in watermark time) before the window closes. Default 0. */
  grace?: number;
  /** How far behind the max event time the watermark trails. Default 0. */
  outOfOrderness?: number;
  late?: LatePolicy;
  /** With `re-emit`: how long after closing a window still accepts late events. Default 10 windows. */
  allowedLateness?: number;
  /** After this much wall time without records, the watermark advances with wall time. Default: never. */
  idleness?: number;
  /** Name of the node and its window store. */
  name?: string;
}

/**
 * State of one (window, key). With a numeric spec (every aggregator has a NumericKernel) the
 * accumulators are `width` float64s of `slots` from index `at`, and `accumulators` is empty;
 * otherwise the reverse. One shape for both keeps the hot path monomorphic. `slots` is a chunk
 * shared by many entries rather than a Float64Array per entry: at 100k new entries per window, a
 * typed array each was a large share of the objects the garbage collector had to promote.
 */
interface WindowState {
  key: unknown;
  accumulators: unknown[];
  slots: Float64Array;
  at: number;
  /** Emissions so far; 0 while the window is open. */
  version: number;
}

const NO_ACCUMULATORS: unknown[] = [];
/**
 * `key` of a numeric state whose key is its compact key text (GroupKeyText.exact): the key object
 * (and its strings) need not stay in memory for the window's life, the text holds the same data.
 */
const KEY_IN_TEXT = Object.freeze({});
const NO_SLOTS = new Float64Array(0);
/** Entries per shared slot chunk: big enough to amortize, small enough not to pin much memory. */
const CHUNK_ENTRIES = 4096;

export interface WindowAggregateConfig {
  name: string;
  keyOf: (value: unknown) => unknown;
  windows: TumblingWindows;
  options: WindowOptions;
  spec: Record<string, AnyAggregator<unknown>>;
}

/** The window store of one aggregate node, with the canonical key texts its entries are indexed by. */
class GroupWindowStore extends WindowStore<WindowState> {
  constructor(
    db: StateDb,
    name: string,
    codec: WindowBlobCodec<WindowState>,
    readonly keys: GroupKeyText,
  ) {
    super(db, name, codec);
  }
}

/** The key of an entry (rebuilt from its text when the state does not keep it). */
function keyOfEntry(entry: WindowEntry<WindowState>, keys: GroupKeyText): unknown {
  return entry.state.key === KEY_IN_TEXT ? keys.keyOf(entry.keyText) : entry.state.key;
}

/** How the store view shows a key: as it was before compact key texts (the string, or its JSON). */
function describeKeyWith(keys: GroupKeyText): (entry: WindowEntry<WindowState>) => string {
  return (entry) => {
    const key = keyOfEntry(entry, keys);
    return typeof key === 'string'
      ? key
      : GroupKeyText.isCompact(entry.keyText, key)
        ? (JSON.stringify(key) ?? 'null')
        : entry.keyText;
  };
}

/** The kernels of a spec when every aggregator has one, with each one's first slot. */
function numericLayout(
  spec: Record<string, AnyAggregator<unknown>>,
): { kernels: NumericKernel[]; offsets: number[]; width: number } | undefined {
  const kernels: NumericKernel[] = [];
  const offsets: number[] = [];
  let width = 0;
  for (const aggregator of Object.values(spec)) {
    const kernel = numericKernelOf(aggregator);
    if (kernel === undefined) return undefined;
    kernels.push(kernel);
    offsets.push(width);
    width += kernel.width;
  }
  return { kernels, offsets, width };
}

export function windowResultSchema(spec: Record<string, AnyAggregator<unknown>>): ResultSchema {
  return { valueColumns: Object.entries(spec).flatMap(([name, aggregator]) => aggregator.columns(name)) };
}

const BLOB_MAGIC_V1 = 0x314d554e; // 'NUM1'
const BLOB_MAGIC = 0x324d554e; // 'NUM2'
const HEADER_BYTES_V1 = 16;
const HEADER_BYTES = 24;
/** Key kinds in a blob. */
const STRING_KEY = 0;
const JSON_KEY = 1;
const COMPACT_KEY = 2;

/**
 * Binary blob of numeric window states: a 24-byte header (magic, entry count, slot width, key bytes,
 * shape bytes, 0), then per entry `[version, ...slots]` as float64, then the key texts' UTF-16
 * lengths (uint32), their kinds (uint8: 0 string key, 1 JSON text, 2 compact text, see
 * GroupKeyText), the key texts concatenated as UTF-8, and the JSON array of the compact texts'
 * field names. Encoding costs a typed-array copy per entry and one string join, instead of a JSON
 * document per commit; the in-memory key texts are written as they are (no JSON.stringify per key).
 * Blobs of the earlier layout ('NUM1': 16-byte header, kinds 0 and 1 only, no shape) still load.
 */
function numericBlobCodec(name: string, width: number, keys: GroupKeyText): WindowBlobCodec<WindowState> {
  const stride = width + 1;
  return {
    encodeBlob(entries) {
      const count = entries.length;
      const texts: string[] = new Array(count);
      for (let i = 0; i < count; i++) texts[i] = (entries[i] as WindowEntry<WindowState>).keyText;
      const joined = texts.join('');
      const keyBytes = Buffer.byteLength(joined, 'utf8');
      const shape = JSON.stringify(keys.fields ?? []);
      const shapeBytes = Buffer.byteLength(shape, 'utf8');
      const floatsEnd = HEADER_BYTES + count * stride * 8;
      const lengthsEnd = floatsEnd + count * 4;
      const kindsEnd = lengthsEnd + count;
      const buffer = new ArrayBuffer(kindsEnd + keyBytes + shapeBytes);
      const header = new Uint32Array(buffer, 0, 6);
      header[0] = BLOB_MAGIC;
      header[1] = count;
      header[2] = width;
      header[3] = keyBytes;
      header[4] = shapeBytes;
      const floats = new Float64Array(buffer, HEADER_BYTES, count * stride);
      const lengths = new Uint32Array(buffer, floatsEnd, count);
      const kinds = new Uint8Array(buffer, lengthsEnd, count);
      for (let i = 0; i < count; i++) {
        const state = (entries[i] as WindowEntry<WindowState>).state;
        const text = texts[i] as string;
        const base = i * stride;
        floats[base] = state.version;
        for (let j = 0; j < width; j++) floats[base + 1 + j] = state.slots[state.at + j] as number;
        lengths[i] = text.length;
        kinds[i] =
          typeof state.key === 'string'
            ? STRING_KEY
            : GroupKeyText.isCompact(text, state.key)
              ? COMPACT_KEY
              : JSON_KEY;
      }
      const bytes = Buffer.from(buffer);
      bytes.write(joined, kindsEnd, keyBytes, 'utf8');
      bytes.write(shape, kindsEnd + keyBytes, shapeBytes, 'utf8');
      return new Uint8Array(buffer);
    },
    decodeBlob(bytes) {
      // Copy: LevelDB's buffer may not be 8-byte aligned for a Float64Array view.
      const header = new Uint32Array(6);
      new Uint8Array(header.buffer).set(bytes.subarray(0, Math.min(HEADER_BYTES, bytes.byteLength)));
      const [magic, count = 0, blobWidth, keyBytes = 0, shapeBytes = 0] = header;
      const v1 = magic === BLOB_MAGIC_V1;
      if ((magic !== BLOB_MAGIC && !v1) || blobWidth !== width)
        throw new Error(`window store "${name}": blob does not match the aggregate spec (width ${width})`);
      const headerBytes = v1 ? HEADER_BYTES_V1 : HEADER_BYTES;
      const floatsEnd = headerBytes + count * stride * 8;
      const lengthsEnd = floatsEnd + count * 4;
      const keysStart = lengthsEnd + count;
      const floats = new Float64Array(count * stride);
      new Uint8Array(floats.buffer).set(bytes.subarray(headerBytes, floatsEnd));
      const lengths = new Uint32Array(count);
      new Uint8Array(lengths.buffer).set(bytes.subarray(floatsEnd, lengthsEnd));
      const kinds = bytes.subarray(lengthsEnd, keysStart);
      const text = (from: number, size: number): string =>
        Buffer.from(bytes.buffer, bytes.byteOffset + from, size).toString('utf8');
      const joined = text(keysStart, keyBytes);
      const fields = v1 ? [] : (JSON.parse(text(keysStart + keyBytes, shapeBytes)) as string[]);
      const rows: Array<[string, WindowState]> = new Array(count);
      let at = 0;
      for (let i = 0; i < count; i++) {
        const stored = joined.slice(at, at + (lengths[i] as number));
        at += lengths[i] as number;
        const kind = kinds[i];
        // The text in memory is re-derived under this task's key shape, which may differ from the
        // shape the blob was written with.
        const key: unknown =
          kind === STRING_KEY
            ? stored
            : kind === COMPACT_KEY
              ? GroupKeyText.parse(stored, fields)
              : (JSON.parse(stored) as unknown);
        rows[i] = [
          kind === STRING_KEY ? stored : kind === COMPACT_KEY ? keys.of(key) : keys.ofJson(stored),
          {
            key,
            accumulators: NO_ACCUMULATORS,
            // The decoded array is the entries' shared chunk.
            slots: floats,
            at: i * stride + 1,
            version: floats[i * stride] as number,
          },
        ];
      }
      return rows;
    },
    describe: (entry) => ({
      key: keyOfEntry(entry, keys),
      slots: [...entry.state.slots.subarray(entry.state.at, entry.state.at + width)],
      version: entry.state.version,
    }),
    describeKey: describeKeyWith(keys),
  };
}

export function windowStoreSpec(config: WindowAggregateConfig): StoreSpec {
  const aggregators = Object.values(config.spec);
  const layout = numericLayout(config.spec);
  return {
    name: config.name,
    kind: 'window',
    create: (db) => {
      const keys = new GroupKeyText();
      if (layout)
        return new GroupWindowStore(db, config.name, numericBlobCodec(config.name, layout.width, keys), keys);
      const json = jsonBlobCodec<WindowState>({
        encode: (state) => ({
          k: state.key,
          a: state.accumulators.map((acc, i) => aggregators[i]?.toState?.(acc) ?? acc),
          v: state.version,
        }),
        decode: (data) => {
          const raw = data as { k: unknown; a: unknown[]; v: number };
          return {
            key: raw.k,
            accumulators: raw.a.map((acc, i) => {
              const aggregator = aggregators[i];
              return aggregator?.fromState ? aggregator.fromState(acc) : acc;
            }),
            slots: NO_SLOTS,
            at: 0,
            version: raw.v,
          };
        },
      });
      return new GroupWindowStore(
        db,
        config.name,
        {
          encodeBlob: json.encodeBlob,
          // Each state holds its key: the text in memory is re-derived under this task's key shape.
          decodeBlob: (bytes) => json.decodeBlob(bytes).map(([, state]) => [keys.of(state.key), state]),
          describeKey: describeKeyWith(keys),
        },
        keys,
      );
    },
  };
}

export function createWindowAggregate(config: WindowAggregateConfig, ctx: NodeRuntimeContext): Push {
  const { task, forward } = ctx;
  const forwardLate = ctx.forwardTo('late');
  const size = config.windows.size;
  const grace = config.options.grace ?? 0;
  const outOfOrderness = config.options.outOfOrderness ?? 0;
  const policy: LatePolicy = config.options.late ?? 'drop';
  const retention = policy === 're-emit' ? (config.options.allowedLateness ?? 10 * size) : 0;
  const idleness = config.options.idleness;
  const names = Object.keys(config.spec);
  const aggregators = Object.values(config.spec);
  const aggregatorCount = aggregators.length;
  const layout = numericLayout(config.spec);
  const kernels = layout?.kernels ?? [];
  const offsets = layout?.offsets ?? [];
  const width = layout?.width ?? 0;
  const store = task.store<GroupWindowStore>(config.name);
  const keys = store.keys;

  let watermark = -Infinity;
  /** Watermark at which closeWindows has work to do (earliest close or expiry). */
  let nextDeadline = Infinity;
  /** Closed windows updated by late events under `re-emit`, emitted after the current record. */
  let reemit: WindowEntry<WindowState>[] = [];

  const emit = (entry: WindowEntry<WindowState>): void => {
    const state = entry.state;
    state.version++;
    store.markDirty(entry);
    const value: Record<string, unknown> = {};
    if (layout)
      for (let i = 0; i < aggregatorCount; i++)
        value[names[i] as string] = (kernels[i] as NumericKernel).result(
          state.slots,
          state.at + (offsets[i] as number),
        );
    else
      for (let i = 0; i < aggregatorCount; i++)
        value[names[i] as string] = (aggregators[i] as AnyAggregator<unknown>).result(state.accumulators[i]);
    const result: WindowResult<unknown, Record<string, unknown>> = {
      windowStart: entry.start,
      windowEnd: entry.start + size,
      key: keyOfEntry(entry, keys),
      value,
      version: state.version,
      partition: task.partition,
    };
    task.countWindowEmitted();
    task.withTimestamp(entry.start + size - 1, () => forward(result));
  };

  const recomputeDeadline = (): void => {
    nextDeadline = Infinity;
    for (const start of store.windowStarts()) {
      const closesAt = start + size + grace;
      const deadline = closesAt <= watermark ? closesAt + retention : closesAt;
      if (deadline < nextDeadline) nextDeadline = deadline;
    }
  };

  const closeWindows = (): void => {
    for (const start of store.windowStarts()) {
      const closesAt = start + size + grace;
      if (closesAt > watermark) break;
      for (const entry of store.entriesOf(start)) if (entry.state.version === 0) emit(entry);
      if (closesAt + retention <= watermark) store.removeWindow(start);
    }
    recomputeDeadline();
  };

  const advanceTo = (candidate: number): void => {
    if (candidate > watermark) watermark = candidate;
    if (watermark >= nextDeadline) closeWindows();
  };

  const listener: TimeListener = {
    afterRecord() {
      if (reemit.length > 0) {
        const updated = reemit;
        reemit = [];
        for (const entry of updated) if (!entry.removed) emit(entry);
      }
      advanceTo(task.streamTime - outOfOrderness);
    },
    onIdle(idleFor) {
      if (idleness !== undefined && idleFor >= idleness)
        advanceTo(task.streamTime - outOfOrderness + (idleFor - idleness));
    },
    watermark: () => watermark,
    checkpoint: () => watermark,
  };
  watermark = task.addTimeListener(config.name, listener) ?? -Infinity;
  recomputeDeadline();

  const addTo = (entry: WindowEntry<WindowState>, value: unknown): void => {
    const state = entry.state;
    if (layout) {
      const slots = state.slots;
      const at = state.at;
      for (let i = 0; i < aggregatorCount; i++)
        (kernels[i] as NumericKernel).add(slots, at + (offsets[i] as number), value);
    } else {
      const accumulators = state.accumulators;
      for (let i = 0; i < aggregatorCount; i++)
        accumulators[i] = (aggregators[i] as AnyAggregator<unknown>).add(accumulators[i], value);
    }
    if (!entry.dirty) store.markDirty(entry);
  };

  /** The slot chunk new entries take their slots from (fresh chunks are zeroed, as kernels expect). */
  let chunk = NO_SLOTS;
  let chunkUsed = 0;
  const entryFor = (start: number, value: unknown): WindowEntry<WindowState> => {
    const key = config.keyOf(value);
    const keyText = keys.of(key);
    const existing = store.get(start, keyText);
    if (existing !== undefined) return existing;
    if (layout) {
      if (chunkUsed + width > chunk.length) {
        chunk = new Float64Array(CHUNK_ENTRIES * width);
        chunkUsed = 0;
      }
      const at = chunkUsed;
      chunkUsed += width;
      return store.insert(start, keyText, {
        key: keys.exact ? KEY_IN_TEXT : key,
        accumulators: NO_ACCUMULATORS,
        slots: chunk,
        at,
        version: 0,
      });
    }
    const accumulators = new Array<unknown>(aggregatorCount);
    for (let i = 0; i < aggregatorCount; i++)
      accumulators[i] = (aggregators[i] as AnyAggregator<unknown>).init();
    return store.insert(start, keyText, { key, accumulators, slots: NO_SLOTS, at: 0, version: 0 });
  };

  /** The window of the previous record: skips windowStartOf's two float modulos for most records. */
  let lastStart = NaN;
  return (value) => {
    const timestamp = task.timestamp;
    let start = lastStart;
    if (!(timestamp >= start && timestamp < start + size)) start = lastStart = windowStartOf(timestamp, size);
    const closesAt = start + size + grace;
    const current = task.streamTime - outOfOrderness;
    if (current > watermark) watermark = current;
    if (closesAt > watermark) {
      addTo(entryFor(start, value), value);
      if (closesAt < nextDeadline) nextDeadline = closesAt;
      return;
    }
    task.countLate();
    switch (policy) {
      case 'drop':
        return;
      case 'dlq':
        task.deadLetter(
          'late-event',
          new Error(
            `event time ${timestamp} is in window [${start}, ${start + size}), closed at watermark ${watermark}`,
          ),
        );
        return;
      case 'side-output':
        forwardLate(value);
        return;
      case 're-emit': {
        if (closesAt + retention <= watermark) return; // beyond allowed lateness: the window is gone
        const entry = entryFor(start, value);
        addTo(entry, value);
        if (closesAt + retention < nextDeadline) nextDeadline = closesAt + retention;
        if (!reemit.includes(entry)) reemit.push(entry);
        return;
      }
    }
  };
}
