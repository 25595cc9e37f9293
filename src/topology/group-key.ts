/**
 * Canonical text of group keys: the map key of a (window, key) entry in the window store.
 *
 * Key identity is JSON identity (two keys are the same group when JSON.stringify gives the same
 * text; string keys are used as they are). JSON.stringify of a `{ subject, meter }` object per
 * record cost about 6% of the core benchmark, and its ~50-character output made every store lookup
 * hash and compare a long string. So object keys of primitives get a compact text instead, built
 * against a shape (property names in order) learned from the first such key:
 *
 *   '\u0001' + field + ('\u0000' + field)*   with field = 's' + string | 'n' + number | 't' | 'f' | 'z' (null)
 *
 * Injective: the shape fixes names and order, a field's tag fixes its type, and a string containing
 * '\u0000' is not given a compact text. Consistent with JSON identity: numbers are written as JSON
 * writes them (String(n) for finite numbers, null for NaN and ±Infinity, so -0 is 0), and every
 * other key goes through its JSON text, parsed back and given the compact text when the parsed
 * object fits the shape, so a key with an undefined property or a toJSON value gets the same text
 * as the flat key with the same JSON. Keys that never fit keep their JSON text, which never starts
 * with '\u0001'. (A string key is its own text, as before: a string key and an object key can only
 * collide if a key function returns both kinds, e.g. the string '{"a":1}' and the object {a: 1}.)
 *
 * The shape is fixed for the life of the instance (one per task's window store), so the text of a
 * key never changes while entries are in memory. Persisted blobs carry the shape they were written
 * with; loading re-derives each text under the current instance's shape.
 */

const SHAPED = '\u0001';
const SEPARATOR = '\u0000';
/** Written by the string flattening in compact(), so the engine cannot drop the conversion. */
let _flattenSink = 0;
const TAG_S = 's'.charCodeAt(0);
const TAG_N = 'n'.charCodeAt(0);
const TAG_T = 't'.charCodeAt(0);
const TAG_F = 'f'.charCodeAt(0);
const TAG_Z = 'z'.charCodeAt(0);

export class GroupKeyText {
  private shape: readonly string[] | undefined;
  /**
   * Whether the last of() built the compact text from the key itself, so keyOf(text) gives back an
   * equal key (same names, order and values, a plain object). False for keys that only reached the
   * compact text through their JSON (NaN, -0, undefined properties, toJSON...).
   */
  exact = false;

  /** Property names of compact texts, once learned. */
  get fields(): readonly string[] | undefined {
    return this.shape;
  }

  /** The map key of `key`. Throws what JSON.stringify throws (a bigint, a cycle). */
  of(key: unknown): string {
    if (typeof key === 'string') {
      this.exact = false;
      return key;
    }
    const text = this.compact(key);
    this.exact = text !== undefined;
    return text ?? this.ofJson(JSON.stringify(key) ?? 'null');
  }

  /**
   * The map key of `key` for a lookup: what of() gives, except that it never learns a shape (a lookup
   * must not change how the store's keys are written). Before a shape exists no entry has a compact text.
   */
  textOf(key: unknown): string {
    if (typeof key === 'string') return key;
    if (this.shape === undefined) return JSON.stringify(key) ?? 'null';
    return this.of(key);
  }

  /** The key of a compact text made by this instance. */
  keyOf(text: string): Record<string, unknown> {
    return GroupKeyText.parse(text, this.shape ?? []);
  }

  /** The map key of a non-string key given as its JSON text. */
  ofJson(json: string): string {
    // Only a JSON object that starts with the shape's first field can parse into a fitting key.
    const first = this.shape?.[0];
    if (first !== undefined && !json.startsWith(`{${JSON.stringify(first)}:`)) return json;
    return this.compact(JSON.parse(json) as unknown) ?? json;
  }

  /** True for a text made by this class's compact form (as opposed to a JSON text or a string key). */
  static isCompact(text: string, key: unknown): boolean {
    return typeof key !== 'string' && text.startsWith(SHAPED);
  }

  /** The key object of a compact text written under `fields` (the inverse of the compact form). */
  static parse(text: string, fields: readonly string[]): Record<string, unknown> {
    // One scan with indexOf and one substring per field (no split array, no part strings): this
    // runs once per emitted row, for keys the state does not keep.
    const key: Record<string, unknown> = {};
    const count = fields.length;
    let at = SHAPED.length;
    for (let i = 0; i < count; i++) {
      let end = text.indexOf(SEPARATOR, at);
      if (end < 0) end = text.length;
      if (end === text.length ? i !== count - 1 : i === count - 1) break;
      const tag = text.charCodeAt(at);
      key[fields[i] as string] =
        tag === TAG_S
          ? text.slice(at + 1, end)
          : tag === TAG_N
            ? Number(text.slice(at + 1, end))
            : tag === TAG_T
              ? true
              : tag === TAG_F
                ? false
                : tag === TAG_Z
                  ? null
                  : badField(text, count, at < end ? text.charAt(at) : '');
      if (end === text.length) return key;
      at = end + 1;
    }
    throw fieldCountError(text, count) ?? new Error('group key text does not fit its shape');
  }

  /** The compact text of a flat object of primitives with the shape's names in order, else undefined. */
  private compact(key: unknown): string | undefined {
    if (typeof key !== 'object' || key === null) return undefined;
    const proto: unknown = Object.getPrototypeOf(key);
    if (proto !== Object.prototype) return undefined;
    const record = key as Record<string, unknown>;
    const shape = this.shape ?? this.learn(record);
    if (shape === undefined) return undefined;
    let text = SHAPED;
    let i = 0;
    // for...in walks own enumerable names in JSON.stringify's order (no inherited ones on a plain
    // object), so matching it name by name also checks the order and that there is nothing more.
    for (const name in record) {
      if (name !== shape[i]) return undefined;
      const field = fieldText(record[name]);
      if (field === undefined) return undefined;
      text = i === 0 ? text + field : text + SEPARATOR + field;
      i++;
    }
    if (i !== shape.length) return undefined;
    // The concatenations above make a rope (cons string); flatten it once here, or every map lookup
    // with it hashes and compares it through the rope.
    _flattenSink ^= Number(text);
    return text;
  }

  private learn(record: Record<string, unknown>): readonly string[] | undefined {
    const names: string[] = [];
    for (const name in record) {
      if (fieldText(record[name]) === undefined) return undefined;
      names.push(name);
    }
    if (names.length === 0) return undefined;
    this.shape = names;
    return names;
  }
}

function fieldText(value: unknown): string | undefined {
  switch (typeof value) {
    case 'string':
      return value.includes(SEPARATOR) ? undefined : 's' + value;
    case 'number':
      // NaN, ±Infinity (JSON null) and -0 (JSON 0) take the JSON path: same text, not exact.
      return Number.isFinite(value) && !Object.is(value, -0) ? 'n' + String(value) : undefined;
    case 'boolean':
      return value ? 't' : 'f';
    case 'object':
      return value === null ? 'z' : undefined;
    default:
      return undefined;
  }
}

/** The error of a text whose field count is not its shape's (as parse reports it), else undefined. */
function fieldCountError(text: string, count: number): Error | undefined {
  const parts = text.slice(SHAPED.length).split(SEPARATOR).length;
  return parts === count ? undefined : new Error(`group key text has ${parts} fields, its shape ${count}`);
}

/** Throws what the field-by-field parse reports: a field count error first, else the unknown tag. */
function badField(text: string, count: number, tag: string): never {
  throw fieldCountError(text, count) ?? new Error(`unknown field tag "${tag}" in a group key text`);
}
