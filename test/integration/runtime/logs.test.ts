// What an operator sees in the log of a clean run: the reference worker, its stderr a file (no TTY),
// starts, processes, rebalances as a second instance joins and leaves, and stops. Every line must be
// pino's JSON (kafkajs' lines included, through the app logger), and nothing may be a warning or an
// error, since nothing went wrong. Its /metrics carries Node's process metrics under their standard names.
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { after, before, test } from 'node:test';
import { UsageGenerator } from '../../../examples/metering/generator.js';
import type { TestDatabase } from '../../helpers/clickhouse.js';
import { Worker, setUpMeteringRun, sleep } from '../../helpers/metering.js';
import type { MeteringRun } from '../../helpers/metering.js';
import { brokers, registryUrl } from '../../helpers/services.js';

let db: TestDatabase;
let run: MeteringRun;

before(async () => {
  ({ db, run } = await setUpMeteringRun('logs', 4));
});

after(async () => {
  await db?.drop();
});

/** Waits until `worker` owns exactly `count` partitions. */
async function waitForPartitions(worker: Worker, count: number, timeoutMs = 60_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  let last: number[] = [];
  while (Date.now() < deadline) {
    last = (await worker.admin<{ partitions?: number[] }>('/health')).body.partitions ?? [];
    if (last.length === count) return;
    await sleep(250);
  }
  throw new Error(`worker owns ${JSON.stringify(last)}, not ${count} partitions; log:\n${worker.tail()}`);
}

/** The lines of a log file that are not pino's JSON, and those at warn (40) or above. */
function problemsIn(logFile: string): { notPino: string[]; warnings: string[] } {
  const notPino: string[] = [];
  const warnings: string[] = [];
  for (const line of readFileSync(logFile, 'utf8').split('\n')) {
    if (line.trim() === '') continue;
    let entry: Record<string, unknown>;
    try {
      entry = JSON.parse(line) as Record<string, unknown>;
    } catch {
      notPino.push(line);
      continue;
    }
    // pino: a numeric level, epoch-ms time, msg; kafkajs' own shape has a string level and `logger`.
    const pinoShaped =
      typeof entry['level'] === 'number' &&
      typeof entry['time'] === 'number' &&
      typeof entry['msg'] === 'string' &&
      !('logger' in entry);
    if (!pinoShaped) notPino.push(line);
    else if ((entry['level'] as number) >= 40) warnings.push(line);
  }
  return { notPino, warnings };
}

test('a clean start and a rebalance each way log pino JSON only, with no warning; bad input gets its lines', async () => {
  const a = new Worker(run);
  let b: Worker | undefined;
  const generator = new UsageGenerator({
    brokers,
    registryUrl,
    topic: run.topic,
    totalEvents: 4000,
    rate: 1000,
    subjects: 50,
    eventTimeSpanMs: 60_000,
    // A clean run: bad input and late events are what the second half of the test adds.
    malformedPerClass: 0,
    lateEvents: 0,
    seed: 6,
  });
  let bad: UsageGenerator | undefined;
  try {
    await a.ready();
    await waitForPartitions(a, 4);
    await generator.connect();
    const production = generator.run();
    production.catch(() => undefined); // awaited below; this only keeps an early failure from going unhandled

    b = new Worker(run); // joins: the first rebalance
    await b.ready();
    await waitForPartitions(b, 2);
    await waitForPartitions(a, 2);
    await production;
    await generator.close();
    await sleep(3000); // a few commits and deliveries

    b.kill('SIGTERM'); // leaves cleanly: the second rebalance
    assert.equal(await b.exit(40_000), 0, `B stops cleanly; log:\n${b.tail()}`);
    await waitForPartitions(a, 4);

    const metrics = String((await a.admin<string>('/metrics')).body);
    assert.match(
      metrics,
      new RegExp(`^process_cpu_user_seconds_total\\{[^}]*app="${run.appId}"[^}]*\\} `, 'm'),
    );
    assert.match(metrics, /^nodejs_heap_size_total_bytes\{[^}]*\} \d/m);
    assert.ok((await a.metric('tributary_records_processed_total')) > 0, 'the worker processed the events');

    for (const worker of [a, b]) {
      const { notPino, warnings } = problemsIn(worker.logFile);
      assert.deepEqual(notPino, [], `every line of ${worker.logFile} is pino's JSON`);
      assert.deepEqual(warnings, [], `no warning or error in ${worker.logFile}`);
    }

    // Bad input is handled without stopping, and said so: one line per reason and partition, with
    // the count and an example offset.
    bad = new UsageGenerator({
      brokers,
      registryUrl,
      topic: run.topic,
      totalEvents: 500,
      rate: 1000,
      subjects: 5,
      eventTimeSpanMs: 60_000,
      malformedPerClass: 2,
      seed: 7,
    });
    await bad.connect();
    await bad.run();
    await bad.close();
    const reasons = ['bad-magic-byte', 'unknown-schema-id', 'truncated', 'validation-failed'];
    const deadline = Date.now() + 30_000;
    let dropLines: Array<Record<string, unknown>> = [];
    while (Date.now() < deadline) {
      dropLines = readFileSync(a.logFile, 'utf8')
        .split('\n')
        .filter((line) => line.includes('"component":"drops"'))
        .map((line) => JSON.parse(line) as Record<string, unknown>);
      if (reasons.every((reason) => dropLines.some((line) => line['reason'] === reason))) break;
      await sleep(500);
    }
    for (const reason of reasons) {
      const lines = dropLines.filter((line) => line['reason'] === reason);
      assert.ok(lines.length > 0, `a line for ${reason}; log:\n${a.tail()}`);
      for (const line of lines) {
        assert.equal(line['level'], 40);
        assert.ok((line['count'] as number) >= 1);
        assert.match(String(line['exampleOffset']), /^\d+$/);
      }
    }

    a.kill('SIGTERM');
    assert.equal(await a.exit(40_000), 0, `A stops cleanly; log:\n${a.tail()}`);
    assert.deepEqual(problemsIn(a.logFile).notPino, [], 'every line is still pino JSON');
  } finally {
    generator.stop();
    await generator.close().catch(() => undefined);
    await bad?.close().catch(() => undefined);
    a.kill('SIGKILL');
    b?.kill('SIGKILL');
  }
});
