/**
 * The ClickHouse sink: writes window results into a ReplacingMergeTree(version) table so that the
 * rows a crash makes the runtime write again (same rows, same versions) change nothing.
 *
 *   topology.to(clickhouse({ table: 'usage_1m', database: 'metering' }))
 *
 * - Where ClickHouse is: the `url`/`username`/`password` options, else the App's `clickhouse` settings
 *   (TRIBUTARY_CLICKHOUSE_* variables; see useServiceDefaults), else http://127.0.0.1:8123.
 * - open(): creates the database, table and `<table>_totals` view if absent (SQL and its portability
 *   notes: clickhouse-sql.ts), or checks that an existing table has exactly the expected columns.
 *   When the key column types must be inferred from data, that happens on the first write instead.
 * - write(rows): one INSERT of all the rows, resolved once it succeeded. There is no batching layer
 *   here: the runtime's OutputDelivery already gathers the rows of every task into one write per sink
 *   per delivery round, bounded by `outputs.batchSize`, and awaits it before the next. Transient
 *   failures are retried with backoff for `retry.maxElapsedMs`; then write() rejects naming the table
 *   and URL and the runtime tries again later.
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
import { rejectUnknownKeys } from '../core/unknown-keys.js';
import { DEFAULT_CLICKHOUSE_URL, type ServiceDefaults, type ServiceEndpoint } from '../core/services.js';
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
  tableColumns,
  tableEngineSql,
  storageTable,
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

/** The subset of a pino logger the sink uses. */
export type ClickHouseSinkLogger = SinkLogger;

export interface ClickHouseSinkOptions {
  table: string;
  /** @default 'default' */
  database?: string;
  /**
   * @default the App's `clickhouse.url` (TRIBUTARY_CLICKHOUSE_URL), else http://127.0.0.1:8123.
   * Credentials in the URL are moved to username/password and never appear in messages.
   */
  url?: string;
  /** @default the App's `clickhouse.username` (TRIBUTARY_CLICKHOUSE_USERNAME), else the client's default user */
  username?: string;
  /** @default the App's `clickhouse.password` (TRIBUTARY_CLICKHOUSE_PASSWORD) */
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
  /** @default the App's logger when run by an App, else a pino logger at level info */
  logger?: ClickHouseSinkLogger;
}

/** Every option, so that an unknown one (a misspelling, a removed option) fails instead of vanishing. */
const OPTION_NAMES: Record<keyof ClickHouseSinkOptions, true> = {
  table: true,
  database: true,
  url: true,
  username: true,
  password: true,
  tls: true,
  keyColumns: true,
  valueColumns: true,
  retry: true,
  createTable: true,
  totals: true,
  cluster: true,
  requestTimeoutMs: true,
  logger: true,
};
const RETRY_OPTION_NAMES: Record<keyof RetryPolicy, true> = {
  maxAttempts: true,
  maxElapsedMs: true,
  initialDelayMs: true,
  maxDelayMs: true,
};
const REMOVED_OPTIONS = {
  batch:
    'the runtime already sends one write per sink per delivery round, sized by the outputs.batchSize setting, and each write is one insert',
};

/** A table that exists with other columns or another engine than the sink needs. */
export class TableMismatchError extends PermanentSinkError {
  override readonly name: string = 'TableMismatchError';
}

/** Options with every default applied except where ClickHouse is, which the App may still supply. */
interface ResolvedOptions {
  target: QualifiedTable;
  keyColumns: readonly Column[] | undefined;
  valueColumns: readonly Column[] | undefined;
  retry: RetryPolicy;
  requestTimeoutMs: number;
  createTable: boolean;
  totals: Readonly<Record<string, TotalsMerge>>;
  cluster: string | undefined;
}

/** Where ClickHouse is and how to log in; resolved when the sink opens. */
interface Connection {
  /** Scheme, host, port and path only: safe to log. */
  displayUrl: string;
  client: ClickHouseClientConfigOptions;
  /** Removes the password from text that may end up in logs or errors. */
  redact: (text: string) => string;
}

/** What a writer works from. */
interface WriterOptions extends ResolvedOptions, Connection {
  logger: ClickHouseSinkLogger;
}

export function clickhouse<K, V>(options: ClickHouseSinkOptions): SinkSpec<WindowResult<K, V>> {
  const resolved = resolveOptions(options);
  // An explicit url is checked now, so a typo fails where the sink is declared.
  if (options.url !== undefined) parseUrl(options.url);
  let defaults: ServiceEndpoint | undefined;
  return {
    kind: 'clickhouse',
    name: `clickhouse:${resolved.target.database}.${resolved.target.table}`,
    useServiceDefaults(services: ServiceDefaults): void {
      defaults = services.clickhouse;
    },
    async open(ctx: SinkOpenContext): Promise<SinkWriter<WindowResult<K, V>>> {
      const logger = options.logger ?? ctx.logger ?? defaultLogger(resolved.target);
      const connection = resolveConnection(options, defaults, logger, resolved.requestTimeoutMs);
      const writer = new ClickHouseSinkWriter<K, V>(
        { ...resolved, ...connection, logger },
        ctx.schema,
        ctx.onRetry,
      );
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
  rejectUnknownKeys('clickhouse sink', options, Object.keys(OPTION_NAMES), REMOVED_OPTIONS);
  if (options.retry !== undefined) {
    rejectUnknownKeys('clickhouse sink retry', options.retry, Object.keys(RETRY_OPTION_NAMES));
  }
  if (!options.table) throw new Error('clickhouse sink: table is required');
  const target = { database: options.database ?? 'default', table: options.table };
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
  if (options.retry?.maxAttempts !== undefined) {
    retry.maxAttempts = positiveNumber(options.retry.maxAttempts, 1, 'retry.maxAttempts');
  }
  if (options.cluster === '') throw new Error('clickhouse sink: cluster, when given, must be a name');
  if (options.keyColumns !== undefined && options.keyColumns.length === 0) {
    throw new Error('clickhouse sink: keyColumns, when given, needs at least one column');
  }
  return {
    target,
    keyColumns: options.keyColumns,
    valueColumns: options.valueColumns,
    retry,
    requestTimeoutMs: positiveNumber(options.requestTimeoutMs, 30_000, 'requestTimeoutMs'),
    createTable: options.createTable ?? true,
    totals: options.totals ?? {},
    cluster: options.cluster,
  };
}

function parseUrl(text: string): URL {
  try {
    return new URL(text);
  } catch {
    // The text may hold credentials, so it is not repeated.
    throw new Error('clickhouse sink: url is not a valid URL (e.g. http://127.0.0.1:8123)');
  }
}

/** The sink's own options first, then the App's `clickhouse` settings, then the local default. */
function resolveConnection(
  options: ClickHouseSinkOptions,
  defaults: ServiceEndpoint | undefined,
  logger: ClickHouseSinkLogger,
  requestTimeoutMs: number,
): Connection {
  const url = parseUrl(options.url ?? defaults?.url ?? DEFAULT_CLICKHOUSE_URL);
  const username = options.username ?? defaults?.username ?? decodeURIComponent(url.username);
  const password = options.password ?? defaults?.password ?? decodeURIComponent(url.password);
  url.username = '';
  url.password = '';
  const displayUrl = `${url.origin}${url.pathname === '/' ? '' : url.pathname}`;
  // Short passwords would turn redaction into mangling ordinary words; they are not in messages anyway.
  const redact = (text: string): string => (password.length >= 4 ? text.split(password).join('***') : text);

  const client: ClickHouseClientConfigOptions = {
    url: url.toString(),
    request_timeout: requestTimeoutMs,
    application: 'tributary',
  };
  client.log = { LoggerClass: clientLoggerClass(logger, redact) };
  if (username !== '') client.username = username;
  if (password !== '') client.password = password;
  if (options.tls !== undefined) client.tls = options.tls;
  // Inserts into the Distributed table return once the shards have the rows (see `cluster`).
  if (options.cluster !== undefined) client.clickhouse_settings = { insert_distributed_sync: 1 };
  return { displayUrl, client, redact };
}

/** For a sink opened outside an App (an App passes its own logger). */
function defaultLogger(target: QualifiedTable): ClickHouseSinkLogger {
  return pino({ name: 'tributary', level: 'info' }).child({
    component: 'clickhouse-sink',
    table: `${target.database}.${target.table}`,
  });
}

class ClickHouseSinkWriter<K, V> implements SinkWriter<WindowResult<K, V>> {
  private readonly client: ClickHouseClient;
  private readonly valueColumns: readonly Column[] | undefined;
  private layout: TableLayout | undefined;
  /** Set while the table is being checked or created, so concurrent first writes share the work. */
  private preparing: Promise<TableLayout> | undefined;
  /** Writes not yet settled; close() lets them finish. */
  private readonly inFlight = new Set<Promise<void>>();
  private closing = false;

  constructor(
    private readonly options: WriterOptions,
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
    if (rows.length === 0) return;
    const insert = this.insert(rows);
    this.inFlight.add(insert);
    try {
      await insert;
    } finally {
      this.inFlight.delete(insert);
    }
  }

  async close(): Promise<void> {
    this.closing = true;
    await Promise.allSettled([...this.inFlight]);
    await this.client.close();
  }

  /** All rows in one INSERT; a retry after a partial failure inserts them again, which is harmless. */
  private async insert(rows: readonly WindowResult<K, V>[]): Promise<void> {
    const layout = await this.ensureLayout(rows[0]?.key);
    const values: InsertRow[] = rows.map((row) => toInsertRow(row, layout));
    await this.withRetries(`inserting ${values.length} rows`, () =>
      this.client.insert({ table: qualifiedName(this.options.target), values, format: 'JSONEachRow' }),
    );
    this.options.logger.debug({ rows: values.length }, 'inserted into ClickHouse');
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
