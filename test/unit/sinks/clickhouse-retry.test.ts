import assert from 'node:assert/strict';
import { test } from 'node:test';
import { ClickHouseError } from '@clickhouse/client';
import {
  backoffDelayMs,
  clickHouseErrorCode,
  isTransientClickHouseError,
  PermanentSinkError,
  RetriesExhaustedError,
  retryTransient,
  type RetryPolicy,
} from '../../../src/sinks/clickhouse-retry.js';

const policy: RetryPolicy = { maxElapsedMs: 10_000, initialDelayMs: 100, maxDelayMs: 1_000 };

function networkError(code: string): Error {
  return Object.assign(new Error(`connect ${code} 127.0.0.1:8123`), { code });
}

test('backoff doubles up to the cap, with jitter in the upper half of each step', () => {
  assert.deepEqual(
    [1, 2, 3, 4, 5, 6].map((attempt) => backoffDelayMs(attempt, policy, () => 0)),
    [50, 100, 200, 400, 500, 500],
  );
  assert.deepEqual(
    [1, 2, 3, 4, 5, 6].map((attempt) => backoffDelayMs(attempt, policy, () => 1)),
    [100, 200, 400, 800, 1000, 1000],
  );
});

test('error codes are read from ClickHouseError and from 18.16 messages', () => {
  assert.equal(
    clickHouseErrorCode(new ClickHouseError({ message: 'x', code: '252', type: 'TOO_MANY_PARTS' })),
    252,
  );
  assert.equal(
    clickHouseErrorCode(
      new Error('Code: 27, e.displayText() = DB::Exception: Cannot parse input, e.what() = DB::Exception'),
    ),
    27,
  );
  assert.equal(
    clickHouseErrorCode(new Error('Code: 60. DB::Exception: Table x does not exist. (UNKNOWN_TABLE)')),
    60,
  );
  assert.equal(clickHouseErrorCode(networkError('ECONNREFUSED')), undefined);
});

test('network failures and overload are transient; SQL, auth and sink errors are not', () => {
  assert.equal(isTransientClickHouseError(networkError('ECONNREFUSED')), true);
  assert.equal(isTransientClickHouseError(networkError('ECONNRESET')), true);
  assert.equal(isTransientClickHouseError(new Error('Timeout error.')), true);
  assert.equal(isTransientClickHouseError(new Error('<html>502 Bad Gateway</html>')), true);
  assert.equal(
    isTransientClickHouseError(new Error('Code: 252, e.displayText() = DB::Exception: Too many parts')),
    true,
  );
  assert.equal(
    isTransientClickHouseError(new Error('Code: 62, e.displayText() = DB::Exception: Syntax error')),
    false,
  );
  assert.equal(
    isTransientClickHouseError(
      new ClickHouseError({ message: 'x', code: '516', type: 'AUTHENTICATION_FAILED' }),
    ),
    false,
  );
  assert.equal(isTransientClickHouseError(new PermanentSinkError('bad row')), false);
});

/** A fake clock: sleeping advances it. */
function fakeClock(): { now: () => number; sleep: (ms: number) => Promise<void>; sleeps: number[] } {
  let time = 0;
  const sleeps: number[] = [];
  return {
    now: () => time,
    sleep: async (ms) => {
      sleeps.push(ms);
      time += ms;
    },
    sleeps,
  };
}

test('retryTransient retries transient failures until success', async () => {
  const clock = fakeClock();
  let calls = 0;
  const result = await retryTransient(
    async () => {
      calls++;
      if (calls < 4) throw networkError('ECONNREFUSED');
      return 'done';
    },
    policy,
    () => 'unused',
    { ...clock, random: () => 0 },
  );
  assert.equal(result, 'done');
  assert.equal(calls, 4);
  assert.deepEqual(clock.sleeps, [50, 100, 200]);
});

test('retryTransient gives up at the deadline with the caller-described message', async () => {
  const clock = fakeClock();
  let calls = 0;
  const failing = retryTransient(
    async () => {
      calls++;
      throw networkError('ECONNREFUSED');
    },
    { maxElapsedMs: 1_000, initialDelayMs: 100, maxDelayMs: 400 },
    ({ attempts, elapsedMs }) => `gave up after ${attempts} attempts over ${elapsedMs} ms`,
    { ...clock, random: () => 1 },
  );
  await assert.rejects(failing, (error: unknown) => {
    assert.ok(error instanceof RetriesExhaustedError);
    // Delays 100, 200, 400, then only the remaining 300 so the last attempt lands on the deadline.
    assert.equal(error.message, 'gave up after 5 attempts over 1000 ms');
    assert.match(String((error.lastError as Error).message), /ECONNREFUSED/);
    return true;
  });
  assert.equal(calls, 5);
  assert.deepEqual(clock.sleeps, [100, 200, 400, 300]);
});

test('retryTransient rethrows a permanent failure at once', async () => {
  const clock = fakeClock();
  let calls = 0;
  await assert.rejects(
    retryTransient(
      async () => {
        calls++;
        throw new Error("Code: 60, e.displayText() = DB::Exception: Table db.t doesn't exist");
      },
      policy,
      () => 'unused',
      clock,
    ),
    /Code: 60/,
  );
  assert.equal(calls, 1);
  assert.deepEqual(clock.sleeps, []);
});
