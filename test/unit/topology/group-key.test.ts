import assert from 'node:assert/strict';
import { test } from 'node:test';
import fc from 'fast-check';
import { GroupKeyText } from '../../../src/topology/group-key.js';

/** Values that stress the compact form: separators, tags, JSON's number quirks, undefined. */
const value = fc.oneof(
  fc.constantFrom('', 'a', 's', 'n1', '\u0000', 'a\u0000b', '\u0001', '{"a":1}', 'z'),
  fc.string({ maxLength: 4 }),
  fc.constantFrom(0, -0, 1, -1.5, 1e21, NaN, Infinity, -Infinity),
  fc.integer(),
  fc.boolean(),
  fc.constant(null),
  fc.constant(undefined),
);
const name = fc.constantFrom('subject', 'meter', 'b', '1', 'a b');
const key = fc.oneof(
  fc.dictionary(name, value, { maxKeys: 3 }),
  // Same names in other orders, extra undefined properties, nested values, plain strings.
  fc.tuple(value, value).map(([subject, meter]) => ({ subject, meter })),
  fc.tuple(value, value).map(([subject, meter]) => ({ meter, subject })),
  fc.tuple(value, value).map(([subject, meter]) => ({ subject, meter, extra: undefined })),
  fc.tuple(value, value).map(([subject, meter]) => ({ subject: { nested: subject }, meter })),
  fc.string({ maxLength: 4 }),
);

test('group key texts are equal exactly when the keys JSON-serialize equally', () => {
  fc.assert(
    fc.property(fc.array(key, { minLength: 1, maxLength: 12 }), (keys) => {
      const texts = new GroupKeyText();
      const byJson = new Map<string, string>();
      const byText = new Map<string, string>();
      for (const k of keys) {
        // String keys are their own text (as before compact texts); compare objects with objects.
        const json = typeof k === 'string' ? `string:${k}` : (JSON.stringify(k) ?? 'null');
        const text = typeof k === 'string' ? `string:${texts.of(k)}` : texts.of(k);
        assert.equal(byJson.get(json) ?? text, text, `same JSON ${json}, different texts`);
        assert.equal(byText.get(text) ?? json, json, `same text, different JSON ${json}`);
        byJson.set(json, text);
        byText.set(text, json);
        if (typeof k !== 'string') {
          assert.equal(texts.ofJson(json), text, 'a key and its JSON text get the same text');
          const fields = texts.fields;
          if (GroupKeyText.isCompact(text, k) && fields !== undefined)
            assert.equal(JSON.stringify(GroupKeyText.parse(text, fields)), json, 'parse inverts the text');
        }
      }
    }),
    { numRuns: 2000 },
  );
});

test('the first flat key fixes the shape; keys of other shapes keep their JSON text', () => {
  const texts = new GroupKeyText();
  assert.equal(texts.of({ subject: 'c-1', meter: 'tokens' }), '\u0001sc-1\u0000stokens');
  assert.deepEqual(texts.fields, ['subject', 'meter']);
  assert.equal(texts.exact, true);
  assert.deepEqual(texts.keyOf('\u0001sc-1\u0000stokens'), { subject: 'c-1', meter: 'tokens' });
  assert.equal(texts.of({ meter: 'tokens', subject: 'c-1' }), '{"meter":"tokens","subject":"c-1"}');
  assert.equal(texts.of({ subject: 'c-1', meter: 'tokens', extra: undefined }), '\u0001sc-1\u0000stokens');
  assert.equal(texts.of({ subject: 'a\u0000b', meter: 'x' }), '{"subject":"a\\u0000b","meter":"x"}');
  assert.equal(texts.of({ subject: NaN, meter: -0 }), texts.of({ subject: null, meter: 0 }));
  assert.equal(texts.of({ subject: 'x', meter: -0 }), '\u0001sx\u0000n0');
  assert.equal(texts.exact, false, 'a -0 key is not given back by keyOf, so the state keeps it');
  assert.equal(texts.of('plain'), 'plain');
  assert.throws(
    () => texts.of({ subject: 1n, meter: 'x' }),
    TypeError,
    'a bigint fails as JSON.stringify does',
  );
});

test('parse rejects texts that do not fit the shape: a field count error first, then an unknown tag', () => {
  assert.deepEqual(GroupKeyText.parse('\u0001sa\u0000n1.5\u0000t\u0000f\u0000z', ['a', 'b', 'c', 'd', 'e']), {
    a: 'a',
    b: 1.5,
    c: true,
    d: false,
    e: null,
  });
  assert.deepEqual(GroupKeyText.parse('\u0001s\u0000n', ['a', 'b']), { a: '', b: 0 });
  assert.throws(() => GroupKeyText.parse('\u0001sa', ['a', 'b']), /has 1 fields, its shape 2/);
  assert.throws(() => GroupKeyText.parse('\u0001sa\u0000n1\u0000t', ['a', 'b']), /has 3 fields, its shape 2/);
  assert.throws(() => GroupKeyText.parse('\u0001x\u0000q', ['a', 'b', 'c']), /has 2 fields, its shape 3/);
  assert.throws(() => GroupKeyText.parse('\u0001', []), /has 1 fields, its shape 0/);
  assert.throws(() => GroupKeyText.parse('\u0001sa\u0000x1', ['a', 'b']), /unknown field tag "x"/);
  assert.throws(() => GroupKeyText.parse('\u0001\u0000n1', ['a', 'b']), /unknown field tag ""/);
});
