import assert from 'node:assert/strict';
import { test } from 'node:test';
import type { WindowEntry } from '../../../src/state/window-store.js';
import { GroupKeyText } from '../../../src/topology/group-key.js';
import { numericBlobCodec } from '../../../src/topology/window-state-codec.js';
import { KEY_IN_TEXT, NO_ACCUMULATORS } from '../../../src/topology/window-state.js';
import type { WindowState } from '../../../src/topology/window-state.js';

/**
 * A 'NUM2' blob of three entries of width 2 (a compact, a string and a JSON key), as the window
 * operator wrote it before its codec moved to its own file. State folders hold such blobs: the
 * bytes must not change.
 */
const NUM2_BLOB =
  '4e554d3203000000020000001400000013000000000000000000000000000000000000000000f03f0000000000000440' +
  '000000000000f03f00000000000000809c7500883ce4377e00000000000008400000000000001c400000000000000ac0' +
  '07000000050000000700000002000101737331006e33616c7068615b312c22c3a9225d5b227375626a656374222c226d' +
  '65746572225d';

const COMPACT_TEXT = '\u0001ss1\u0000n3';

function entriesOfTheGoldenBlob(keys: GroupKeyText): WindowEntry<WindowState>[] {
  const slots = new Float64Array([0, 0, 1, 2.5, -0, 1e300, 7, -3.25, 0]);
  const entry = (key: unknown, at: number, version: number): WindowEntry<WindowState> => {
    const keyText = keys.of(key);
    return {
      start: 60_000,
      keyText,
      state: { key: keys.exact ? KEY_IN_TEXT : key, accumulators: NO_ACCUMULATORS, slots, at, version },
      dirty: true,
      removed: false,
    };
  };
  return [entry({ subject: 's1', meter: 3 }, 2, 0), entry('alpha', 4, 1), entry([1, 'é'], 6, 3)];
}

/** What a decoded row holds: its key text, key, version and the float64s of its slots. */
function readable(rows: Array<[string, WindowState]>, width: number) {
  return rows.map(([keyText, state]) => ({
    keyText,
    key: state.key,
    version: state.version,
    slots: [...state.slots.subarray(state.at, state.at + width)],
  }));
}

test("numeric window states encode to the same 'NUM2' bytes as before", () => {
  const keys = new GroupKeyText();
  const bytes = numericBlobCodec('golden', 2, keys).encodeBlob(entriesOfTheGoldenBlob(keys));
  assert.equal(Buffer.from(bytes).toString('hex'), NUM2_BLOB);
});

test("a 'NUM2' blob decodes to its keys, versions and exact float64s (-0 included)", () => {
  const keys = new GroupKeyText();
  const rows = numericBlobCodec('golden', 2, keys).decodeBlob(Buffer.from(NUM2_BLOB, 'hex'));
  assert.deepEqual(readable(rows, 2), [
    { keyText: COMPACT_TEXT, key: { subject: 's1', meter: 3 }, version: 0, slots: [1, 2.5] },
    { keyText: 'alpha', key: 'alpha', version: 1, slots: [-0, 1e300] },
    { keyText: '[1,"é"]', key: [1, 'é'], version: 3, slots: [7, -3.25] },
  ]);
});

test("a blob of the earlier 'NUM1' layout (16-byte header, no shape, JSON object keys) still loads", () => {
  const json = '{"subject":"s1","meter":3}';
  const texts = ['alpha', json];
  const joined = Buffer.from(texts.join(''), 'utf8');
  const header = Buffer.alloc(16);
  header.writeUInt32LE(0x314d554e, 0); // 'NUM1'
  header.writeUInt32LE(2, 4); // entries
  header.writeUInt32LE(1, 8); // width
  header.writeUInt32LE(joined.length, 12);
  const floats = Buffer.alloc(2 * 2 * 8);
  [2, 10, 1, 20].forEach((value, i) => floats.writeDoubleLE(value, i * 8)); // [version, slot] per entry
  const lengths = Buffer.alloc(2 * 4);
  texts.forEach((text, i) => lengths.writeUInt32LE(text.length, i * 4));
  const kinds = Buffer.from([0, 1]); // a string key, a JSON text
  const blob = Buffer.concat([header, floats, lengths, kinds, joined]);

  const keys = new GroupKeyText();
  keys.of({ subject: 'x', meter: 0 }); // this task's key shape: the JSON key gets its compact text
  const rows = numericBlobCodec('legacy', 1, keys).decodeBlob(blob);
  assert.deepEqual(readable(rows, 1), [
    { keyText: 'alpha', key: 'alpha', version: 2, slots: [10] },
    { keyText: COMPACT_TEXT, key: { subject: 's1', meter: 3 }, version: 1, slots: [20] },
  ]);
});

test('a blob written for another aggregate spec (other width) is refused, naming the store', () => {
  const codec = numericBlobCodec('per-minute', 3, new GroupKeyText());
  assert.throws(() => codec.decodeBlob(Buffer.from(NUM2_BLOB, 'hex')), {
    message: 'window store "per-minute": blob does not match the aggregate spec (width 3)',
  });
});
