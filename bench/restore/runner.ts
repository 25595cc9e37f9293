/**
 * One instance of the restore benchmark's topology (bench/restore.ts starts two or three of them in
 * turn): input records each carry a range of ids, flatMapped into one event per id, deduplicated over
 * a 32-day horizon and counted per key in 1-minute windows. The events fall into BENCH_WINDOWS
 * consecutive minutes and the out-of-orderness spans them all, so no window ever closes: the state
 * grows to every id and every key, which is what a restore replays.
 *
 * Environment: BENCH_TOPIC, BENCH_WINDOWS, and the runtime's TRIBUTARY_APP_ID, TRIBUTARY_STATE_DIR,
 * TRIBUTARY_STANDBY_REPLICAS (set by the parent), plus the usual TRIBUTARY_* endpoints. Reports on
 * stdout (protocol.ts); the runtime's restore log lines become messages, its warnings go to stderr.
 * SIGTERM stops the app cleanly.
 */
import { pino } from 'pino';
import {
  count,
  days,
  json,
  memorySink,
  minutes,
  seconds,
  sum,
  tributary,
  tumbling,
} from '../../src/index.js';
import type { Instance } from '../../src/index.js';
import type { IdRange, RestoreEvent, RunnerMessage } from './protocol.js';
import { keyOf } from './protocol.js';

const CHECK_EVERY_MS = 20;

function emit(message: RunnerMessage): void {
  process.stdout.write(`${JSON.stringify(message)}\n`);
}

/** The runtime's log lines: restore progress becomes messages, warnings and errors go to stderr. */
const destination = {
  write(line: string): void {
    let entry: { level?: number; msg?: string; partition?: number; records?: number; seconds?: number };
    try {
      entry = JSON.parse(line) as typeof entry;
    } catch {
      process.stderr.write(line);
      return;
    }
    const partition = entry.partition ?? -1;
    if (entry.msg === 'restoring state from the changelog')
      emit({ type: 'restoring', at: Date.now(), partition, records: entry.records ?? 0 });
    else if (entry.msg === 'state restored from the changelog')
      emit({
        type: 'restored',
        at: Date.now(),
        partition,
        records: entry.records ?? 0,
        seconds: entry.seconds ?? 0,
      });
    else if (entry.msg?.startsWith('changelog transaction failed'))
      emit({
        type: 'commitFailed',
        at: Date.now(),
        error: JSON.stringify((entry as { err?: unknown }).err ?? entry.msg),
      });
    if ((entry.level ?? 0) >= 40) process.stderr.write(line);
  },
};

const env = process.env;
const windows = Number(requiredEnv('BENCH_WINDOWS'));
const app = tributary(
  {
    appId: requiredEnv('TRIBUTARY_APP_ID'),
    stateDir: requiredEnv('TRIBUTARY_STATE_DIR'),
    admin: { enabled: false },
    // This runner owns SIGTERM: it reports after the app stopped.
    handleSignals: false,
  },
  { logger: pino({ level: 'info' }, destination) },
);
app
  .stream(requiredEnv('BENCH_TOPIC'), json<IdRange>(), { timestamp: (range) => range.time })
  .flatMap(function* (range): Generator<RestoreEvent> {
    for (let i = 0; i < range.count; i++) yield { id: `id-${range.from + i}`, key: keyOf(i, range) };
  })
  .dedupe((event) => event.id, { horizon: days(32), name: 'ids' })
  .groupBy((event) => event.key, { key: 'key' })
  // Out-of-orderness beyond the span of the windows: the watermark never closes one.
  .window(tumbling(minutes(1)), { grace: seconds(10), outOfOrderness: minutes(windows + 5), name: 'windows' })
  .aggregate({ count: count(), total: sum((event) => event.key) })
  .to(memorySink('nothing-closes'));

emit({ type: 'starting', at: Date.now() });
await app.start();
emit({ type: 'started', at: Date.now() });
const runtime = app.runtime as Instance;

let processed = -1;
let idsHeld = -1;
let standbys = '';
const opened = new Set<number>();
const checker = setInterval(() => {
  const tasks = runtime.tasks();
  for (const task of tasks) {
    if (opened.has(task.partition)) continue;
    opened.add(task.partition);
    const position = Object.values(task.positions).reduce((n, offset) => n + Number(offset), 0);
    emit({
      type: 'opened',
      at: Date.now(),
      partition: task.partition,
      ids: storeSize(task.partition, 'dedupe'),
      keys: storeSize(task.partition, 'window'),
      position,
    });
  }
  for (const partition of [...opened])
    if (!tasks.some((t) => t.partition === partition)) opened.delete(partition);
  const now = tasks.reduce((n, task) => n + task.metrics.recordsProcessed, 0);
  const ids = tasks.reduce((n, task) => n + storeSize(task.partition, 'dedupe'), 0);
  if (now !== processed || ids !== idsHeld) {
    processed = now;
    idsHeld = ids;
    emit({ type: 'processed', at: Date.now(), records: now, ids });
  }
  const mine = runtime.standbyPartitions().join(',');
  if (mine !== standbys) {
    standbys = mine;
    emit({ type: 'standbys', at: Date.now(), partitions: runtime.standbyPartitions() });
  }
}, CHECK_EVERY_MS);

/** Entries of a task's stores of one kind (dedupe: ids; window: (window, key) entries). */
function storeSize(partition: number, kind: string): number {
  const stores = runtime.task(partition)?.task.stores() ?? [];
  return stores.filter((store) => store.kind === kind).reduce((n, store) => n + store.approximateSize(), 0);
}

process.once('SIGTERM', () => {
  clearInterval(checker);
  void app.stop().then(() => {
    emit({ type: 'stopped', at: Date.now(), maxRssBytes: process.resourceUsage().maxRSS * 1024 });
    process.exit(0);
  });
});

function requiredEnv(name: string): string {
  const value = env[name];
  if (value === undefined || value === '') throw new Error(`${name} is not set`);
  return value;
}
