/**
 * The ClickHouse sink: writes window results into a ReplacingMergeTree(version) table so that the
 * rows a crash makes the runtime write again (same rows, same versions) change nothing.
 *
 *   topology.to(clickhouse({ table: 'usage_1m', database: 'metering' }))
 *
 * - open(): creates the database, table and `<table>_totals` view if absent (SQL and its portability
 *   notes: clickhouse-sql.ts), or checks that an existing table has exactly the expected columns.
 *   When the key column types must be inferred from data, that happens on the first write instead.
 * - write(rows): resolves once every row is inserted. Concurrent writes (one per task, typically
 *   issued together after a checkpoint) and writes that arrive while an insert is running are
 *   coalesced: an insert goes out when `batch.maxRows` rows wait or the oldest waiting row is
 *   `batch.maxAgeMs` old. Transient failures are retried with backoff for `retry.maxElapsedMs`; then
 *   write() rejects naming the table and URL and the runtime tries again later.
 * - Read results with the view `<table>_totals` or `finalTotalsQuery()`.
 */
import {
  createClient,
  type ClickHouseClient,
  type ClickHouseClientConfigOptions,
  type ErrorLogParams,
  type Logger as ClientLogger,
  type WarnLogParams,
} from '@clickhouse/client';
import { pino } from 'pino';
import type { WindowResult } from '../core/records.js';
import {
  PermanentSinkError,
  DEFAULT_RETRY_POLICY,
  RetriesExhaustedError,
  retryTransient,
  type RetryPolicy,
} from './clickhouse-retry.js';
import { inferKeyColumns, toInsertRow, type InsertRow } from './clickhouse-rows.js';
import {
  createDatabaseSql,
  createTablesSql,
  createTotalsViewSql,
  databaseExistsSql,
  describeColumnsSql,
  diffColumns,
  qualifiedName,
  storageTable,
  tableColumns,
  tableEngineSql,
  validateLayout,
  type ExistingColumn,
  type QualifiedTable,
  type TableLayout,
  type TotalsMerge,
} from './clickhouse-sql.js';
import type {
  Column,
  ResultSchema,
  SinkLogger,
  SinkOpenContext,
  SinkSpec,
  SinkWriter,
} from '../core/sink.js';

export { finalTotalsQuery, createTableSql, createTotalsViewSql, totalsViewName } from './clickhouse-sql.js';
export type { QualifiedTable, TableLayout, TotalsMerge } from './clickhouse-sql.js';
export type { RetryPolicy as ClickHouseRetryPolicy } from './clickhouse-retry.js';
export { RetriesExhaustedError, PermanentSinkError } from './clickhouse-retry.js';
export { RowShapeError } from './clickhouse-rows.js';

export const DEFAULT_CLICKHOUSE_URL = 'http://127.0.0.1:8123';
export const DEFAULT_BATCH_MAX_ROWS = 10_000;
/** Long enough to coalesce the writes the runtime issues together after a checkpoint, short enough not to matter. */
export const DEFAULT_BATCH_MAX_AGE_MS = 10;

/** The subset of a pino logger the sink uses. */
export type ClickHouseSinkLogger = SinkLogger;

export interface ClickHouseSinkOptions {
  table: string;
  /** @default 'default' */
  database?: string;
  /**
   * @default env TRIBUTARY_CLICKHOUSE_URL, else http://127.0.0.1:8123. Credentials in the URL are
   * moved to username/password and never appear in messages.
   */
  url?: string;
  /** @default env TRIBUTARY_CLICKHOUSE_USER, else the client's default user */
  username?: string;
  /** @default env TRIBUTARY_CLICKHOUSE_PASSWORD */
  password?: string;
  /** Passed through to @clickhouse/client (CA certificate, client certificate and key). */
  tls?: ClickHouseClientConfigOptions['tls'];
  /**
   * Key column names and types, in sorting-key order. Without them they are inferred from the first
   * row's key: string -> String, integer -> Int64, other number -> Float64, boolean -> UInt8; a
   * primitive key becomes the column `key`.
   */
  keyColumns?: readonly Column[];
  /** Value columns when no windowed aggregate supplies a ResultSchema; the ResultSchema wins otherwise. */
  valueColumns?: readonly Column[];
  batch?: { maxRows?: number; maxAgeMs?: number };
  retry?: Partial<RetryPolicy>;
  /** Create the database, table and totals view when absent. @default true */
  createTable?: boolean;
  /** How value columns merge across partitions in the totals view, by column name; see clickhouse-sql.ts. */
  totals?: Readonly<Record<string, TotalsMerge>>;
  /**
   * A cluster from the servers' `remote_servers`: the sink creates, ON CLUSTER, a
   * ReplicatedReplacingMergeTree `<table>_local` on every server, the Distributed table `<table>` over
   * them and the `<table>_totals` view over that, and inserts into `<table>` synchronously
   * (`insert_distributed_sync=1`; see clickhouse-sql.ts for the layout).
   *
   * Why through the Distributed table: it routes each row to its shard by a hash of the key and window
   * start, so replays and re-emits of a row always reach the shard holding its earlier versions (where
   * FINAL replaces them), whatever the number of shards; and a synchronous insert returns only once a
   * replica of every shard involved has the rows, so a write() that resolved is durable and replicated
   * from there, as on one server. Within a shard it writes to a live replica, so one replica down does
   * not stop the sink. The server in `url` must be up: it coordinates the insert.
   */
  cluster?: string;
  /** Timeout of one HTTP request. A write may take up to retry.maxElapsedMs plus this. @default 30000 */
  requestTimeoutMs?: number;
  /** @default a pino logger at env TRIBUTARY_LOG_LEVEL (default info) */
  logger?: ClickHouseSinkLogger;
}

/** A table that exists with other columns or another engine than the sink needs. */
export class TableMismatchError extends PermanentSinkError {
  override readonly name: string = 'TableMismatchError';
}

/** Options with every default applied; what a writer works from. */
interface ResolvedOptions {
  target: QualifiedTable;
  /** Scheme, host, port and path only: safe to log. */
  displayUrl: string;
  client: ClickHouseClientConfigOptions;
  keyColumns: readonly Column[] | undefined;
  valueColumns: readonly Column[] | undefined;
  maxRows: number;
  maxAgeMs: number;
  retry: RetryPolicy;
  createTable: boolean;
  totals: Readonly<Record<string, TotalsMerge>>;
  cluster: string | undefined;
  logger: ClickHouseSinkLogger;
  /** Removes the password from text that may end up in logs or errors. */
  redact: (text: string) => string;
}

export function clickhouse<K, V>(options: ClickHouseSinkOptions): SinkSpec<WindowResult<K, V>> {
  const resolved = resolveOptions(options);
  return {
    kind: 'clickhouse',
    name: `clickhouse:${resolved.target.database}.${resolved.target.table}`,
    async open(ctx: SinkOpenContext): Promise<SinkWriter<WindowResult<K, V>>> {
      const logger = options.logger ?? ctx.logger ?? resolved.logger;
      const writer = new ClickHouseSinkWriter<K, V>({ ...resolved, logger }, ctx.schema, ctx.onRetry);
      try {
        await writer.prepare();
      } catch (error) {
        await writer.close().catch(() => undefined);
        throw error;
      }
      return writer;
    },
  };
}

function positiveNumber(
  value: number | undefined,
  fallback: number,
  name: string,
  allowZero = false,
): number {
  const result = value ?? fallback;
  if (!Number.isFinite(result) || result < 0 || (!allowZero && result === 0)) {
    throw new Error(
      `clickhouse sink: ${name} must be a ${allowZero ? 'non-negative' : 'positive'} number, got ${result}`,
    );
  }
  return result;
}

function resolveOptions(options: ClickHouseSinkOptions): ResolvedOptions {
  if (!options.table) throw new Error('clickhouse sink: table is required');
  const target = { database: options.database ?? 'default', table: options.table };
  let url: URL;
  try {
    url = new URL(options.url ?? process.env.TRIBUTARY_CLICKHOUSE_URL ?? DEFAULT_CLICKHOUSE_URL);
  } catch {
    // The text may hold credentials, so it is not repeated.
    throw new Error('clickhouse sink: url is not a valid URL (e.g. http://127.0.0.1:8123)');
  }
  const username =
    options.username ?? process.env.TRIBUTARY_CLICKHOUSE_USER ?? decodeURIComponent(url.username);
  const password =
    options.password ?? process.env.TRIBUTARY_CLICKHOUSE_PASSWORD ?? decodeURIComponent(url.password);
  url.username = '';
  url.password = '';
  const displayUrl = `${url.origin}${url.pathname === '/' ? '' : url.pathname}`;

  const retry: RetryPolicy = {
    maxElapsedMs: positiveNumber(
      options.retry?.maxElapsedMs,
      DEFAULT_RETRY_POLICY.maxElapsedMs,
      'retry.maxElapsedMs',
      true,
    ),
    initialDelayMs: positiveNumber(
      options.retry?.initialDelayMs,
      DEFAULT_RETRY_POLICY.initialDelayMs,
      'retry.initialDelayMs',
    ),
    maxDelayMs: positiveNumber(
      options.retry?.maxDelayMs,
      DEFAULT_RETRY_POLICY.maxDelayMs,
      'retry.maxDelayMs',
    ),
  };
  const maxRows = positiveNumber(options.batch?.maxRows, DEFAULT_BATCH_MAX_ROWS, 'batch.maxRows');
  if (!Number.isInteger(maxRows))
    throw new Error(`clickhouse sink: batch.maxRows must be an integer, got ${maxRows}`);
  if (options.keyColumns !== undefined && options.keyColumns.length === 0) {
    throw new Error('clickhouse sink: keyColumns, when given, needs at least one column');
  }

  const logger =
    options.logger ??
    pino({ name: 'tributary', level: process.env.TRIBUTARY_LOG_LEVEL ?? 'info' }).child({
      component: 'clickhouse-sink',
      table: `${target.database}.${target.table}`,
    });
  // Short passwords would turn redaction into mangling ordinary words; they are not in messages anyway.
  const redact = (text: string): string => (password.length >= 4 ? text.split(password).join('***') : text);

  const client: ClickHouseClientConfigOptions = {
    url: url.toString(),
    request_timeout: positiveNumber(options.requestTimeoutMs, 30_000, 'requestTimeoutMs'),
    application: 'tributary',
  };
  client.log = { LoggerClass: clientLoggerClass(logger, redact) };
  if (username !== '') client.username = username;
  if (password !== '') client.password = password;
  if (options.tls !== undefined) client.tls = options.tls;
  if (options.cluster !== undefined) {
    if (options.cluster === '') throw new Error('clickhouse sink: cluster, when given, must be a name');
    // Inserts into the Distributed table return once the shards have the rows (see `cluster`).
    client.clickhouse_settings = { insert_distributed_sync: 1 };
  }

  return {
    target,
    displayUrl,
    client,
    keyColumns: options.keyColumns,
    valueColumns: options.valueColumns,
    maxRows,
    maxAgeMs: positiveNumber(options.batch?.maxAgeMs, DEFAULT_BATCH_MAX_AGE_MS, 'batch.maxAgeMs', true),
    retry,
    createTable: options.createTable ?? true,
    totals: options.totals ?? {},
    cluster: options.cluster,
    logger,
    redact,
  };
}

/** One write() call waiting for its rows to be inserted. */
interface PendingWrite {
  rows: InsertRow[];
  enqueuedAt: number;
  resolve: () => void;
  reject: (error: unknown) => void;
}

class ClickHouseSinkWriter<K, V> implements SinkWriter<WindowResult<K, V>> {
  private readonly client: ClickHouseClient;
  private readonly valueColumns: readonly Column[] | undefined;
  private layout: TableLayout | undefined;
  /** Set while the table is being checked or created, so concurrent first writes share the work. */
  private preparing: Promise<TableLayout> | undefined;
  private readonly queue: PendingWrite[] = [];
  private queuedRows = 0;
  private inFlight: Promise<void> | undefined;
  private flushTimer: NodeJS.Timeout | undefined;
  private closing = false;
  private drained: (() => void) | undefined;

  constructor(
    private readonly options: ResolvedOptions,
    schema: ResultSchema | undefined,
    private readonly onRetry: ((error: unknown) => void) | undefined,
  ) {
    this.valueColumns = schema?.valueColumns ?? options.valueColumns;
    if (this.valueColumns === undefined) {
      throw new Error(
        `clickhouse sink ${this.tableName}: no value columns; feed it from a windowed aggregate or pass valueColumns`,
      );
    }
    this.client = createClient(options.client);
  }

  private get tableName(): string {
    return `${this.options.target.database}.${this.options.target.table}`;
  }

  /** Checks or creates the table now when the layout is known without data (explicit key columns). */
  async prepare(): Promise<void> {
    if (this.options.keyColumns !== undefined) await this.ensureLayout(undefined);
  }

  async write(rows: readonly WindowResult<K, V>[]): Promise<void> {
    if (this.closing) throw new Error(`clickhouse sink ${this.tableName}: write() after close()`);
    const first = rows[0];
    if (first === undefined) return;
    const layout = await this.ensureLayout(first.key);
    const insertRows = rows.map((row) => toInsertRow(row, layout));
    return new Promise<void>((resolve, reject) => {
      this.queue.push({ rows: insertRows, enqueuedAt: Date.now(), resolve, reject });
      this.queuedRows += insertRows.length;
      this.pump();
    });
  }

  async close(): Promise<void> {
    this.closing = true;
    if (this.queue.length > 0 || this.inFlight !== undefined) {
      await new Promise<void>((resolve) => {
        this.drained = resolve;
        this.pump();
      });
    }
    await this.client.close();
  }

  private ensureLayout(sampleKey: unknown): Promise<TableLayout> {
    if (this.layout !== undefined) return Promise.resolve(this.layout);
    if (this.preparing === undefined) {
      const layout: TableLayout = {
        keyColumns: this.options.keyColumns ?? inferKeyColumns(sampleKey),
        valueColumns: this.valueColumns ?? [],
      };
      validateLayout(layout);
      this.preparing = this.withRetries('preparing table', () => this.ensureTable(layout)).then(
        () => {
          this.layout = layout;
          return layout;
        },
        (error: unknown) => {
          // Let the next write try again: the runtime retries after a failed write.
          this.preparing = undefined;
          throw error;
        },
      );
    }
    return this.preparing;
  }

  private async ensureTable(layout: TableLayout): Promise<void> {
    const { target, createTable, totals, cluster } = this.options;
    if (createTable && target.database !== 'default') {
      const existing = await this.queryRows<{ name: string }>(databaseExistsSql(target.database));
      if (existing.length === 0) {
        await this.client.command({ query: createDatabaseSql(target.database, { cluster }) });
      }
    }
    let columns = await this.existingColumns();
    if (columns.length === 0) {
      if (!createTable) {
        throw new TableMismatchError(
          `clickhouse sink: table ${this.tableName} does not exist at ${this.options.displayUrl} and createTable is false`,
        );
      }
      for (const query of createTablesSql(target, layout, { cluster })) await this.client.command({ query });
      this.options.logger.info({ table: this.tableName }, 'created ClickHouse table');
      // Read back rather than trust our DDL: another instance may have created the table first.
      columns = await this.existingColumns();
    }
    const differences = diffColumns(tableColumns(layout), columns);
    if (differences.length > 0) {
      throw new TableMismatchError(
        `clickhouse sink: table ${this.tableName} at ${this.options.displayUrl} exists with other columns ` +
          `than the sink writes: ${differences.join('; ')}. Drop or rename the table, or change the sink.`,
      );
    }
    const storage = storageTable(target, { cluster });
    const [engine] = await this.queryRows<{ engine: string }>(tableEngineSql(storage));
    if (engine === undefined || !engine.engine.endsWith('ReplacingMergeTree')) {
      throw new TableMismatchError(
        `clickhouse sink: table ${storage.database}.${storage.table} uses engine ${engine?.engine ?? 'unknown'}, not ` +
          `ReplacingMergeTree: replayed rows would be counted twice`,
      );
    }
    if (createTable) {
      await this.client.command({ query: createTotalsViewSql(target, layout, { totals, cluster }) });
    }
  }

  private async existingColumns(): Promise<ExistingColumn[]> {
    const rows = await this.queryRows<{ name: string; type: string; default_kind: string }>(
      describeColumnsSql(this.options.target),
    );
    return rows.map((row) => ({ name: row.name, type: row.type, defaultKind: row.default_kind }));
  }

  private async queryRows<T>(query: string): Promise<T[]> {
    const result = await this.client.query({ query, format: 'JSONEachRow' });
    return result.json<T>();
  }

  /** Starts an insert when one is due and none is running; otherwise arms the age timer. */
  private pump(): void {
    if (this.inFlight !== undefined) return;
    const oldest = this.queue[0];
    if (oldest === undefined) {
      this.drained?.();
      this.drained = undefined;
      return;
    }
    const waitMs = this.options.maxAgeMs - (Date.now() - oldest.enqueuedAt);
    const due = this.closing || this.queuedRows >= this.options.maxRows || waitMs <= 0;
    if (!due) {
      this.flushTimer ??= setTimeout(() => {
        this.flushTimer = undefined;
        this.pump();
      }, waitMs);
      return;
    }
    if (this.flushTimer !== undefined) {
      clearTimeout(this.flushTimer);
      this.flushTimer = undefined;
    }
    const batch = this.takeBatch();
    this.inFlight = this.insertBatch(batch).finally(() => {
      this.inFlight = undefined;
      this.pump();
    });
  }

  /** Whole writes, oldest first, up to maxRows rows (at least one write, however large). */
  private takeBatch(): PendingWrite[] {
    const batch: PendingWrite[] = [];
    let rows = 0;
    while (this.queue.length > 0) {
      const next = this.queue[0];
      if (next === undefined || (batch.length > 0 && rows + next.rows.length > this.options.maxRows)) break;
      batch.push(next);
      rows += next.rows.length;
      this.queue.shift();
    }
    this.queuedRows -= rows;
    return batch;
  }

  /** Inserts the rows of a batch in chunks of at most maxRows; settles every write of the batch. */
  private async insertBatch(batch: readonly PendingWrite[]): Promise<void> {
    const rows = batch.flatMap((write) => write.rows);
    try {
      for (let start = 0; start < rows.length; start += this.options.maxRows) {
        const chunk = rows.slice(start, start + this.options.maxRows);
        await this.withRetries(`inserting ${chunk.length} rows`, () =>
          this.client.insert({
            table: qualifiedName(this.options.target),
            values: chunk,
            format: 'JSONEachRow',
          }),
        );
      }
      this.options.logger.debug({ rows: rows.length, writes: batch.length }, 'inserted into ClickHouse');
      batch.forEach((write) => write.resolve());
    } catch (error) {
      // A partly inserted batch is fine: the runtime writes all of it again, and replays are harmless.
      batch.forEach((write) => write.reject(error));
    }
  }

  private async withRetries<T>(what: string, operation: () => Promise<T>): Promise<T> {
    const { logger, displayUrl, retry, redact } = this.options;
    try {
      return await retryTransient(
        operation,
        retry,
        ({ attempts, elapsedMs, lastError }) =>
          redact(
            `clickhouse sink: ${what} for table ${this.tableName} at ${displayUrl} failed after ${attempts} ` +
              `attempts over ${(elapsedMs / 1000).toFixed(1)} s: ${errorMessage(lastError)}`,
          ),
        {
          onRetry: ({ attempt, delayMs, error }) => {
            this.onRetry?.(error);
            logger.warn(
              {
                table: this.tableName,
                url: displayUrl,
                attempt,
                delayMs,
                error: redact(errorMessage(error)),
              },
              `ClickHouse unavailable while ${what}; retrying`,
            );
          },
        },
      );
    } catch (error) {
      if (error instanceof PermanentSinkError) throw error;
      if (error instanceof RetriesExhaustedError) throw error;
      // A permanent error from the server (bad SQL, authentication, ...): name where it happened.
      throw new PermanentSinkError(
        redact(
          `clickhouse sink: ${what} for table ${this.tableName} at ${displayUrl} failed: ${errorMessage(error)}`,
        ),
        { cause: error },
      );
    }
  }
}

/**
 * Routes the client's own log lines into the sink's logger. The client logs every failed request as an
 * error; the sink already reports failures with more context (retrying, giving up), so those go to
 * debug. The client's level stays at its default (WARN), so its debug lines, which may carry request
 * details, are never produced.
 */
function clientLoggerClass(
  logger: ClickHouseSinkLogger,
  redact: (text: string) => string,
): new () => ClientLogger {
  return class SinkClientLogger implements ClientLogger {
    trace(): void {}
    debug(): void {}
    info(): void {}
    warn({ module, message, err }: WarnLogParams): void {
      logger.warn(
        { module, error: err === undefined ? undefined : redact(errorMessage(err)) },
        redact(message),
      );
    }
    error({ module, message, err }: ErrorLogParams): void {
      logger.debug({ module, error: redact(errorMessage(err)) }, redact(message));
    }
  };
}

function errorMessage(error: unknown): string {
  if (error instanceof Error) {
    const code = (error as { code?: unknown }).code;
    const text = error.message.trim() || error.name;
    return typeof code === 'string' && !text.includes(code) ? `${text} (${code})` : text;
  }
  return String(error);
}
