/**
 * The one retry loop of the code base: exponential backoff with "equal jitter", bounded by elapsed time
 * and/or attempts, or unbounded while the caller says to go on. Sinks, the registry client, the runtime
 * holding a partition and the task opener all retry through it, so their backoff behaves alike.
 */

export const sleep = (ms: number): Promise<void> => new Promise((resolve) => setTimeout(resolve, ms));

/**
 * Waits for `promise` to settle, but at most `ms`, never rejecting: for closing clients whose
 * disconnect may hang on a request the broker never answers (nothing waits on it but the caller).
 */
export function settleWithin(promise: Promise<unknown>, ms: number): Promise<void> {
  let timer: NodeJS.Timeout | undefined;
  return Promise.race([
    promise.then(
      () => undefined,
      () => undefined,
    ),
    new Promise<void>((resolve) => {
      timer = setTimeout(resolve, ms);
    }),
  ]).finally(() => clearTimeout(timer));
}

export interface RetryPolicy {
  /** Stop retrying once this much time has passed since the first attempt (default: no limit). */
  maxElapsedMs?: number;
  /** Stop after this many attempts, the first included (default: no limit). */
  maxAttempts?: number;
  /** Delay before the second attempt; doubles with every further attempt. */
  initialDelayMs: number;
  /** Upper bound of one delay. */
  maxDelayMs: number;
}

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

export interface RetryOptions {
  /** Whether a failure is worth another attempt; anything else is rethrown at once. */
  isTransient: (error: unknown) => boolean;
  /** The message of the RetriesExhaustedError thrown when the budget runs out. */
  describeFailure?: (info: { attempts: number; elapsedMs: number; lastError: unknown }) => string;
  /** Called before each wait; for logging and metrics. */
  onRetry?: (info: { attempt: number; delayMs: number; error: unknown }) => void | Promise<void>;
  /** Checked after each failure: false rethrows the failure (e.g. the instance is stopping). */
  shouldContinue?: () => boolean;
  /** Injectable for tests. */
  sleep?: (ms: number) => Promise<void>;
  now?: () => number;
  random?: () => number;
}

/**
 * The delay before attempt `attempt + 1`: half the exponential step plus a random share of the other
 * half, so instances that failed together do not retry in lockstep while every delay still grows.
 */
export function backoffDelayMs(
  attempt: number,
  policy: RetryPolicy,
  random: () => number = Math.random,
): number {
  const step = Math.min(policy.maxDelayMs, policy.initialDelayMs * 2 ** Math.max(0, attempt - 1));
  return Math.round(step / 2 + random() * (step / 2));
}

/**
 * Runs `operation` until it succeeds, fails with a non-transient error, or the policy's budget is
 * spent; with `maxElapsedMs` the last attempt happens at the deadline at the latest (plus however long
 * that attempt itself takes).
 */
export async function retry<T>(
  operation: (attempt: number) => Promise<T>,
  policy: RetryPolicy,
  options: RetryOptions,
): Promise<T> {
  const wait = options.sleep ?? sleep;
  const now = options.now ?? Date.now;
  const random = options.random ?? Math.random;
  const maxElapsedMs = policy.maxElapsedMs ?? Infinity;
  const maxAttempts = policy.maxAttempts ?? Infinity;
  const startedAt = now();
  for (let attempt = 1; ; attempt++) {
    try {
      return await operation(attempt);
    } catch (error) {
      if (!options.isTransient(error)) throw error;
      if (options.shouldContinue && !options.shouldContinue()) throw error;
      const elapsedMs = now() - startedAt;
      const remainingMs = maxElapsedMs - elapsedMs;
      if (remainingMs <= 0 || attempt >= maxAttempts) {
        const info = { attempts: attempt, elapsedMs, lastError: error };
        const message =
          options.describeFailure?.(info) ??
          `gave up after ${attempt} attempt${attempt === 1 ? '' : 's'} over ${(elapsedMs / 1000).toFixed(1)} s: ` +
            (error instanceof Error ? error.message : String(error));
        throw new RetriesExhaustedError(message, attempt, elapsedMs, error);
      }
      const delayMs = Math.min(backoffDelayMs(attempt, policy, random), remainingMs);
      await options.onRetry?.({ attempt, delayMs, error });
      await wait(delayMs);
    }
  }
}
