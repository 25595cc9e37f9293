/**
 * Bounded retries for ClickHouse calls: exponential backoff with jitter, for a limited total time.
 * While the sink retries, the runtime keeps the input partitions paused, so giving up is cheap: the
 * runtime calls write() again later with the same rows. Retrying an insert whose response was lost
 * is safe because the table is ReplacingMergeTree(version) and the rows carry their versions.
 */
import { retry } from '../core/retry.js';
import type { RetryOptions, RetryPolicy } from '../core/retry.js';
import { PermanentSinkError } from '../core/sink.js';

export { RetriesExhaustedError, backoffDelayMs } from '../core/retry.js';
export type { RetryPolicy } from '../core/retry.js';

export const DEFAULT_RETRY_POLICY = {
  maxElapsedMs: 30_000,
  initialDelayMs: 100,
  maxDelayMs: 5_000,
} satisfies RetryPolicy;

/** ClickHouse error codes worth retrying: overload, timeouts, network trouble, read-only replicas. */
const TRANSIENT_CLICKHOUSE_CODES: ReadonlySet<number> = new Set([
  3, // UNEXPECTED_END_OF_FILE
  159, // TIMEOUT_EXCEEDED
  160, // TOO_SLOW
  202, // TOO_MANY_SIMULTANEOUS_QUERIES
  203, // NO_FREE_CONNECTION
  209, // SOCKET_TIMEOUT
  210, // NETWORK_ERROR
  236, // ABORTED
  241, // MEMORY_LIMIT_EXCEEDED
  242, // TABLE_IS_READ_ONLY
  252, // TOO_MANY_PARTS
  279, // ALL_CONNECTION_TRIES_FAILED
  285, // TOO_FEW_LIVE_REPLICAS
  319, // UNKNOWN_STATUS_OF_INSERT
  394, // QUERY_WAS_CANCELLED
  425, // SYSTEM_ERROR
  439, // CANNOT_SCHEDULE_TASK
  999, // KEEPER_EXCEPTION
  1000, // POCO_EXCEPTION
]);

/**
 * The ClickHouse error code of an error the server sent, else undefined. @clickhouse/client parses
 * 24.x messages into ClickHouseError (string `code`), but 18.16 messages ("Code: 27, e.displayText()
 * = ...") do not match its pattern and arrive as plain Errors, so the message is read as well.
 */
export function clickHouseErrorCode(error: unknown): number | undefined {
  if (!(error instanceof Error)) return undefined;
  const code: unknown = (error as { code?: unknown }).code;
  if (typeof code === 'string' && /^\d+$/.test(code)) return Number(code);
  const match = /^Code: (\d+)[.,]/.exec(error.message.trimStart());
  return match?.[1] === undefined ? undefined : Number(match[1]);
}

/**
 * Transient: the server reported an error from the list above, or no server error at all (refused or
 * reset connections, timeouts, proxy 5xx pages). Anything else the server reports (bad SQL, unknown
 * table, authentication) fails at once.
 */
export function isTransientClickHouseError(error: unknown): boolean {
  if (error instanceof PermanentSinkError) return false;
  const code = clickHouseErrorCode(error);
  return code === undefined || TRANSIENT_CLICKHOUSE_CODES.has(code);
}

/** An error raised by the sink itself that no retry can fix (a bad row, a mismatching table). */
export { PermanentSinkError };

/** ClickHouse calls retry transient failures with the shared backoff, for a bounded time. */
export function retryTransient<T>(
  operation: (attempt: number) => Promise<T>,
  policy: RetryPolicy,
  describeFailure: NonNullable<RetryOptions['describeFailure']>,
  hooks: Omit<RetryOptions, 'isTransient' | 'describeFailure'> & {
    isTransient?: RetryOptions['isTransient'];
  } = {},
): Promise<T> {
  return retry(operation, policy, {
    ...hooks,
    isTransient: hooks.isTransient ?? isTransientClickHouseError,
    describeFailure,
  });
}
