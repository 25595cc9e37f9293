/**
 * Bounded retries for ClickHouse calls: exponential backoff with jitter, for a limited total time.
 * While the sink retries, the runtime keeps the input partitions paused, so giving up is cheap: the
 * runtime calls write() again later with the same rows. Retrying an insert whose response was lost
 * is safe because the table is ReplacingMergeTree(version) and the rows carry their versions.
 */
import { PermanentSinkError } from '../core/sink.js';

export interface RetryPolicy {
  /** Stop retrying once this much time has passed since the first attempt. */
  maxElapsedMs: number;
  /** Delay before the second attempt; doubles with every further attempt. */
  initialDelayMs: number;
  /** Upper bound of one delay. */
  maxDelayMs: number;
}

export const DEFAULT_RETRY_POLICY: RetryPolicy = {
  maxElapsedMs: 30_000,
  initialDelayMs: 100,
  maxDelayMs: 5_000,
};

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

/** Raised when the retry budget ran out; `lastError` is the final failure. */
export class RetriesExhaustedError extends Error {
  override readonly name = 'RetriesExhaustedError';
  constructor(
    message: string,
    readonly attempts: number,
    readonly elapsedMs: number,
    readonly lastError: unknown,
  ) {
    super(message, { cause: lastError });
  }
}

export interface RetryHooks {
  isTransient?: (error: unknown) => boolean;
  /** Called before each wait; for logging. */
  onRetry?: (info: { attempt: number; delayMs: number; error: unknown }) => void;
  /** Injectable for tests. */
  sleep?: (ms: number) => Promise<void>;
  now?: () => number;
  random?: () => number;
}

/**
 * The delay before attempt `attempt + 1`: "equal jitter", i.e. half the exponential step plus a random
 * share of the other half, so instances that failed together do not retry in lockstep while every
 * delay still grows.
 */
export function backoffDelayMs(
  attempt: number,
  policy: RetryPolicy,
  random: () => number = Math.random,
): number {
  const step = Math.min(policy.maxDelayMs, policy.initialDelayMs * 2 ** Math.max(0, attempt - 1));
  return Math.round(step / 2 + random() * (step / 2));
}

const defaultSleep = (ms: number): Promise<void> => new Promise((resolve) => setTimeout(resolve, ms));

/**
 * Runs `operation` until it succeeds, fails permanently, or `policy.maxElapsedMs` has passed; the last
 * attempt happens at the deadline at the latest (plus however long that attempt itself takes).
 */
export async function retryTransient<T>(
  operation: (attempt: number) => Promise<T>,
  policy: RetryPolicy,
  describeFailure: (info: { attempts: number; elapsedMs: number; lastError: unknown }) => string,
  hooks: RetryHooks = {},
): Promise<T> {
  const isTransient = hooks.isTransient ?? isTransientClickHouseError;
  const sleep = hooks.sleep ?? defaultSleep;
  const now = hooks.now ?? Date.now;
  const random = hooks.random ?? Math.random;
  const startedAt = now();
  for (let attempt = 1; ; attempt++) {
    try {
      return await operation(attempt);
    } catch (error) {
      if (!isTransient(error)) throw error;
      const elapsedMs = now() - startedAt;
      const remainingMs = policy.maxElapsedMs - elapsedMs;
      if (remainingMs <= 0) {
        const info = { attempts: attempt, elapsedMs, lastError: error };
        throw new RetriesExhaustedError(describeFailure(info), attempt, elapsedMs, error);
      }
      const delayMs = Math.min(backoffDelayMs(attempt, policy, random), remainingMs);
      hooks.onRetry?.({ attempt, delayMs, error });
      await sleep(delayMs);
    }
  }
}
