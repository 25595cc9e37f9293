/**
 * Turns WindowResults into JSONEachRow objects for the table described in clickhouse-sql.ts:
 * flattens keys and nested aggregate outputs into columns and encodes each cell the way both
 * ClickHouse 18.16 and 24.x parse it.
 *
 * Encoding choices (checked on 18.16):
 * - DateTime as unix seconds (a JSON number): unlike 'YYYY-MM-DD hh:mm:ss' strings it does not
 *   depend on the server's time zone.
 * - 64-bit integers given as bigint are sent as quoted decimal strings, which ClickHouse accepts for
 *   integer columns, so values beyond 2^53 keep their precision.
 * - Non-finite floats as the quoted strings 'nan', 'inf', '-inf' (JSON has no literal for them and
 *   JSON.stringify would turn them into null).
 * - Arrays (a quantile sketch's bucket values and counts) as JSON arrays of numbers; counts must be
 *   safe integers, values finite.
 */
import type { WindowResult } from '../core/records.js';
import { PermanentSinkError } from './clickhouse-retry.js';
import {
  PARTITION_COLUMN,
  VERSION_COLUMN,
  WINDOW_END_COLUMN,
  WINDOW_START_COLUMN,
  type TableLayout,
} from './clickhouse-sql.js';
import type { Column, ColumnType } from '../core/sink.js';

/** One cell of a JSONEachRow object. */
export type JsonCell = string | number | number[];
export type InsertRow = Record<string, JsonCell>;

/** Column name used when a window result's key is a primitive rather than an object. */
export const PRIMITIVE_KEY_COLUMN = 'key';

/** A row that does not fit the table: retrying cannot help, so the sink fails at once. */
export class RowShapeError extends PermanentSinkError {
  override readonly name: string = 'RowShapeError';
}

function isPlainObject(value: unknown): value is Record<string, unknown> {
  if (typeof value !== 'object' || value === null) return false;
  const prototype: unknown = Object.getPrototypeOf(value);
  return prototype === Object.prototype || prototype === null;
}

/**
 * Flattens nested objects into `parent_child` names, e.g. {count, latency: {p50}} -> count,
 * latency_p50 (the ResultSchema naming rule). A primitive becomes a single entry under `primitiveName`.
 */
export function flattenFields(value: unknown, primitiveName: string): Map<string, unknown> {
  const fields = new Map<string, unknown>();
  const visit = (current: unknown, prefix: string | undefined): void => {
    if (isPlainObject(current)) {
      for (const [name, child] of Object.entries(current)) {
        visit(child, prefix === undefined ? name : `${prefix}_${name}`);
      }
    } else {
      fields.set(prefix ?? primitiveName, current);
    }
  };
  visit(value, undefined);
  return fields;
}

/** The ClickHouse type a key column gets when inferred from a JavaScript value. */
export function inferColumnType(value: unknown): ColumnType | undefined {
  switch (typeof value) {
    case 'string':
      return 'String';
    case 'boolean':
      return 'UInt8';
    case 'bigint':
      return 'Int64';
    case 'number':
      return Number.isInteger(value) ? 'Int64' : 'Float64';
    default:
      return undefined;
  }
}

/**
 * Key columns inferred from one key: string -> String, integer -> Int64, other number -> Float64,
 * boolean -> UInt8. Pass explicit key columns when the first row may mislead (a float key that
 * happens to be whole, say).
 */
export function inferKeyColumns(key: unknown): Column[] {
  return [...flattenFields(key, PRIMITIVE_KEY_COLUMN)].map(([name, value]) => {
    const type = inferColumnType(value);
    if (type === undefined) {
      throw new RowShapeError(
        `cannot infer the ClickHouse type of key field "${name}" from ${describe(value)}; pass keyColumns`,
      );
    }
    return { name, type };
  });
}

/** Maps the flattened fields of a key or value onto the expected columns, rejecting gaps and extras. */
function fieldsForColumns(
  value: unknown,
  columns: readonly Column[],
  role: 'key' | 'value',
): Map<string, unknown> {
  // A primitive key or value feeds the single column there is, whatever its name.
  const onlyColumn = columns.length === 1 ? columns[0] : undefined;
  if (!isPlainObject(value) && onlyColumn !== undefined) return new Map([[onlyColumn.name, value]]);
  const fields = flattenFields(value, role);
  const expected = new Set(columns.map((column) => column.name));
  const missing = columns.filter((column) => !fields.has(column.name)).map((column) => column.name);
  const extra = [...fields.keys()].filter((name) => !expected.has(name));
  if (missing.length > 0 || extra.length > 0) {
    const parts = [
      missing.length > 0 ? `missing ${missing.join(', ')}` : '',
      extra.length > 0 ? `unexpected ${extra.join(', ')}` : '',
    ].filter((part) => part !== '');
    throw new RowShapeError(`${role} does not match the table's ${role} columns: ${parts.join('; ')}`);
  }
  return fields;
}

/** Encodes one JavaScript value for a column of the given type. */
export function encodeCell(value: unknown, column: Column): JsonCell {
  const fail = (): never => {
    throw new RowShapeError(`column ${column.name} ${column.type} cannot hold ${describe(value)}`);
  };
  switch (column.type) {
    case 'String':
      return typeof value === 'string' ? value : fail();
    case 'Float64':
      if (typeof value === 'bigint') return Number(value);
      if (typeof value !== 'number') return fail();
      if (Number.isNaN(value)) return 'nan';
      if (value === Infinity) return 'inf';
      if (value === -Infinity) return '-inf';
      return value;
    case 'DateTime': {
      // Project-wide, instants are epoch milliseconds.
      const ms = value instanceof Date ? value.getTime() : value;
      return typeof ms === 'number' && Number.isFinite(ms) && ms >= 0 ? Math.floor(ms / 1000) : fail();
    }
    case 'UInt8':
    case 'UInt32':
    case 'UInt64':
    case 'Int64': {
      const integer =
        typeof value === 'boolean' && column.type === 'UInt8' ? BigInt(value ? 1 : 0) : toBigInt(value);
      if (integer === undefined || !fitsIntegerType(integer, column.type)) return fail();
      // Numbers beyond 2^53 travel as strings so nothing on the way rounds them.
      return integer >= BigInt(Number.MIN_SAFE_INTEGER) && integer <= BigInt(Number.MAX_SAFE_INTEGER)
        ? Number(integer)
        : integer.toString();
    }
    case 'Array(Float64)':
      return Array.isArray(value) && value.every((item) => typeof item === 'number' && Number.isFinite(item))
        ? (value as number[])
        : fail();
    case 'Array(UInt64)':
      return Array.isArray(value) &&
        value.every((item) => Number.isSafeInteger(item) && (item as number) >= 0)
        ? (value as number[])
        : fail();
  }
}

function toBigInt(value: unknown): bigint | undefined {
  if (typeof value === 'bigint') return value;
  if (typeof value === 'number' && Number.isInteger(value)) return BigInt(value);
  return undefined;
}

const INTEGER_RANGES: Record<'UInt8' | 'UInt32' | 'UInt64' | 'Int64', readonly [bigint, bigint]> = {
  UInt8: [0n, 255n],
  UInt32: [0n, 4_294_967_295n],
  UInt64: [0n, 18_446_744_073_709_551_615n],
  Int64: [-9_223_372_036_854_775_808n, 9_223_372_036_854_775_807n],
};

function fitsIntegerType(value: bigint, type: keyof typeof INTEGER_RANGES): boolean {
  const [min, max] = INTEGER_RANGES[type];
  return value >= min && value <= max;
}

/** Window bounds must be whole seconds: the table stores DateTime, and rounding would merge windows. */
function windowBoundSeconds(ms: number, field: string): number {
  if (!Number.isSafeInteger(ms) || ms < 0 || ms % 1000 !== 0) {
    throw new RowShapeError(`${field} ${ms} is not a whole number of seconds since the epoch (DateTime)`);
  }
  return ms / 1000;
}

/** The JSONEachRow object for one window result. */
export function toInsertRow(result: WindowResult<unknown, unknown>, layout: TableLayout): InsertRow {
  try {
    const row: InsertRow = {
      [WINDOW_START_COLUMN]: windowBoundSeconds(result.windowStart, 'windowStart'),
      [WINDOW_END_COLUMN]: windowBoundSeconds(result.windowEnd, 'windowEnd'),
    };
    const keyFields = fieldsForColumns(result.key, layout.keyColumns, 'key');
    for (const column of layout.keyColumns) row[column.name] = encodeCell(keyFields.get(column.name), column);
    const valueFields = fieldsForColumns(result.value, layout.valueColumns, 'value');
    for (const column of layout.valueColumns)
      row[column.name] = encodeCell(valueFields.get(column.name), column);
    row[PARTITION_COLUMN] = encodeCell(result.partition, { name: PARTITION_COLUMN, type: 'UInt32' });
    row[VERSION_COLUMN] = encodeCell(result.version, { name: VERSION_COLUMN, type: 'UInt64' });
    return row;
  } catch (error) {
    if (error instanceof RowShapeError) {
      throw new RowShapeError(
        `${error.message} (window ${result.windowStart}, key ${safeJson(result.key)}, partition ${result.partition})`,
      );
    }
    throw error;
  }
}

function describe(value: unknown): string {
  if (value === undefined) return 'undefined';
  if (typeof value === 'string') return `the string ${JSON.stringify(value)}`;
  return `${typeof value} ${safeJson(value)}`;
}

function safeJson(value: unknown): string {
  try {
    return (
      JSON.stringify(value, (_name, inner: unknown) => (typeof inner === 'bigint' ? `${inner}n` : inner)) ??
      String(value)
    );
  } catch {
    return String(value);
  }
}
