/**
 * State benchmark (not a timed test): one partition whose dedupe store already remembers 20M ids on
 * disk, then the engine at full speed on top of it: Avro decode, dedupe over a 32-day horizon (1% of
 * events resend an id, half of them one of the 20M remembered before the run, which only the disk
 * index knows), a 1-minute tumbling count/sum over 100k keys, commits about every second.
 *
 *   node --import tsx bench/state.ts [events] [remembered ids] [cache MiB]
 *
 * Defaults: 2,000,000 events, 20,000,000 ids, and the default `state.cacheMaxBytes` (256 MiB). The
 * cache sets how many of the newest ids stay in memory; the rest of the memory is the engine's own.
 *
 * Phases: `fill` (a child process, so its memory does not count) writes the ids through the store
 * itself, in its format (chunks per bucket spread over the 30 days before the run, the index and the
 * filter snapshots); `run` opens the task (reopen = open + the first batch processed), measures the
 * engine like bench/core.ts, and checks every event's fate by its id (what the dedupe let through,
 * seen by a peek after it): each new id passed once, each resent one was dropped; no false duplicate
 * and no missed one, each counted on its own. The last line is the summary the README quotes.
 */
import { spawnSync } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
import { mkdtemp, readdir, rm, stat } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { days } from '../src/index.js';
import { CacheBudget, DEFAULT_CACHE_MAX_BYTES } from '../src/core/cache-budget.js';
import { DedupeStore, StateDb } from '../src/state/index.js';
import type { UsageEvent } from '../examples/metering/usage-event.js';
import { HORIZON, commitAndDrain, encodeBatch, usageTopology, warmSerde } from './usage-workload.js';

const T0 = Date.UTC(2024, 0, 1);
const STORE = 'usage-events-dedupe';
const storeDir = (dir: string) => join(dir, 'task-0');
/** The id of the n-th id remembered before the run. */
const oldId = (n: number) => `bench/old-${n}`;

if (process.argv[2] === 'fill') {
  await fill(process.argv[3] as string, Number(process.argv[4]), Number(process.argv[5]));
  process.exit(0);
}

const totalEvents = Number(process.argv[2] ?? 2_000_000);
const rememberedIds = Number(process.argv[3] ?? 20_000_000);
const cacheMaxBytes =
  process.argv[4] === undefined ? DEFAULT_CACHE_MAX_BYTES : Number(process.argv[4]) * 1024 * 1024;
const keysPerMinute = 100_000;
const minutesOfData = 10;
const batchSize = 1_000;
const commitEveryMs = 1_000;
const eventsPerMinute = Math.ceil(totalEvents / minutesOfData);

/** Writes `ids` remembered ids through the dedupe store, spread over the 30 days before T0. */
async function fill(dir: string, ids: number, cacheMaxBytes: number): Promise<void> {
  const db = await StateDb.open(storeDir(dir));
  // The run's cache, so the newest ids it finds in memory at the reopen are what a run leaves there.
  const store = await db.attach(
    new DedupeStore(db, STORE, { horizon: HORIZON }, new CacheBudget(cacheMaxBytes)),
  );
  const span = days(30);
  // Large commits while filling, then the last million ids in commits of 100k, the size of a
  // runtime commit (about a second of input): LevelDB's log at the restart is what a real run leaves.
  const commitEvery = (n: number) => (n > ids - 1_000_000 ? 100_000 : 1_000_000);
  const timeOf = (n: number) => T0 - span + Math.floor((n / ids) * span);
  for (let from = 0; from < ids; from += 10_000) {
    const to = Math.min(ids, from + 10_000);
    // As the engine does per batch: name the ids, prefetch what the filter cannot rule out, check.
    store.beginBatch();
    for (let n = from; n < to; n++) store.want(oldId(n));
    await store.prefetch();
    for (let n = from; n < to; n++) store.checkAndRemember(oldId(n), timeOf(n), timeOf(n));
    if (to % commitEvery(to) === 0) await db.commit({});
  }
  await db.commit({});
  console.log(
    `filter ${(store.filterBytes / ids).toFixed(2)} bytes/id in memory (${Math.round(store.filterBytes / 1024 / 1024)} MB)`,
  );
  await db.close();
}

/** Bytes of the files under `path`. */
async function folderBytes(path: string): Promise<number> {
  let bytes = 0;
  for (const entry of await readdir(path, { withFileTypes: true })) {
    const child = join(path, entry.name);
    bytes += entry.isDirectory() ? await folderBytes(child) : (await stat(child)).size;
  }
  return bytes;
}

const dir = await mkdtemp(join(tmpdir(), 'tributary-bench-state-'));
const fillStarted = Date.now();
const filled = spawnSync(
  process.execPath,
  [
    '--import',
    'tsx',
    fileURLToPath(import.meta.url),
    'fill',
    dir,
    String(rememberedIds),
    String(cacheMaxBytes),
  ],
  { stdio: 'inherit' },
);
if (filled.status !== 0) throw new Error(`the fill failed (exit ${filled.status})`);
const filledBytes = await folderBytes(dir);
console.log(
  `filled ${rememberedIds} ids in ${((Date.now() - fillStarted) / 1000).toFixed(1)} s: ` +
    `${Math.round(filledBytes / 1024 / 1024)} MB on disk, ${(filledBytes / rememberedIds).toFixed(1)} bytes/id`,
);

await warmSerde(eventOf(0));

/**
 * What the dedupe let through, by id, to check each drop on its own: per id `evt-<n>` of the run, how
 * often it passed (once, at its first sending; its resend is dropped), and every id remembered before
 * the run that passed (none should: the store knew them all). Counting drops only would let a false
 * drop and a missed duplicate cancel out. The peek runs inside the measured time: one call per
 * event passed, a byte per event.
 */
const passesOfRunId = new Uint8Array(totalEvents);
const rememberedIdsPassed: string[] = [];
function notePassed(event: UsageEvent): void {
  if (event.id.startsWith('evt-')) {
    const n = Number(event.id.slice(4));
    passesOfRunId[n] = Math.min(255, (passesOfRunId[n] ?? 0) + 1);
  } else rememberedIdsPassed.push(event.id);
}
const topology = usageTopology(STORE, notePassed);

/** How many events resend an id (every 100th: half an id of the run, half one remembered before). */
let intendedDuplicates = 0;

function eventOf(n: number): UsageEvent {
  const resend = n % 100 === 99;
  const original = resend && n % 200 === 99 ? n - 50 : n;
  const minute = Math.floor(original / eventsPerMinute);
  const inMinute = original % eventsPerMinute;
  const key = (inMinute * 7919) % keysPerMinute;
  const id = resend && n % 200 !== 99 ? `old-${(n * 7_919) % rememberedIds}` : `evt-${original}`;
  return {
    id,
    source: 'bench',
    type: 'api.call',
    subject: `customer-${key}`,
    time: T0 + minute * 60_000 + Math.floor((inMinute / eventsPerMinute) * 60_000),
    meter: key % 2 === 0 ? 'api_calls' : 'tokens',
    value: (original % 13) + 1,
    dimensions: {},
  };
}

function makeBatch(first: number, size: number) {
  for (let n = first; n < first + size; n++) if (n % 100 === 99) intendedDuplicates++;
  return encodeBatch(first, size, eventOf);
}

const firstBatch = makeBatch(0, batchSize);
const reopenStarted = process.hrtime.bigint();
const task = await topology.openTask({
  partition: 0,
  dir: storeDir(dir),
  cache: new CacheBudget(cacheMaxBytes),
});
const openSeconds = Number(process.hrtime.bigint() - reopenStarted) / 1e9;
await task.process(firstBatch);
const reopenSeconds = Number(process.hrtime.bigint() - reopenStarted) / 1e9;
console.log(
  `reopen: open ${openSeconds.toFixed(2)} s, first batch ${(reopenSeconds - openSeconds).toFixed(2)} s`,
);

let peakRss = process.memoryUsage().rss;
/** The process's own memory, without the table files LevelDB maps (Linux; NaN elsewhere). */
function anonymousRss(): number {
  const status = existsSync('/proc/self/status') ? readFileSync('/proc/self/status', 'utf8') : '';
  return Number(/RssAnon:\s+(\d+)/.exec(status)?.[1] ?? NaN) * 1024;
}
let peakAnon = anonymousRss();
let busyNs = 0n;
let commits = 0;
let lastCommit = Date.now();

async function commitAndDrainAll(): Promise<void> {
  await commitAndDrain(task);
  commits++;
}

for (let first = batchSize; first < totalEvents; first += batchSize) {
  const batch = makeBatch(first, Math.min(batchSize, totalEvents - first));
  const started = process.hrtime.bigint();
  await task.process(batch);
  if (Date.now() - lastCommit >= commitEveryMs) {
    await commitAndDrainAll();
    lastCommit = Date.now();
  }
  busyNs += process.hrtime.bigint() - started;
  if (first % 100_000 === 0) {
    peakRss = Math.max(peakRss, process.memoryUsage().rss);
    peakAnon = Math.max(peakAnon, anonymousRss());
  }
}
const started = process.hrtime.bigint();
await commitAndDrainAll();
busyNs += process.hrtime.bigint() - started;
peakRss = Math.max(peakRss, process.memoryUsage().rss, process.resourceUsage().maxRSS * 1024);

peakAnon = Math.max(peakAnon, anonymousRss());
const metrics = task.metrics();
const remembered =
  (await task
    .stores()
    .find((store) => store.name === STORE)
    ?.approximateSize()) ?? 0;
await task.close();
await rm(dir, { recursive: true, force: true });

/**
 * Every event's fate against what was sent: the n-th event resends an id when n % 100 === 99 (an id
 * of the run, `evt-<n - 50>`, or one remembered before it), so each id `evt-<n>` with n % 100 !== 99
 * was sent once as new and must have passed exactly once; no `evt-<n>` with n % 100 === 99 exists.
 */
const falseDrops: number[] = [];
const missed: string[] = rememberedIdsPassed.map((id) => `${id} (remembered before the run)`);
let passedEvents = rememberedIdsPassed.length;
for (let n = 0; n < totalEvents; n++) {
  const passes = passesOfRunId[n] ?? 0;
  passedEvents += passes;
  const expected = n % 100 === 99 ? 0 : 1;
  if (passes < expected) falseDrops.push(n);
  else if (passes > expected) missed.push(`evt-${n} (passed ${passes} times)`);
}
const falseDuplicates = falseDrops.length;
const missedDuplicates = missed.length;
// The drop counter must agree with the ids: every event either passed or was counted as dropped.
const uncountedDrops = totalEvents - passedEvents - metrics.duplicatesDropped;
const measuredEvents = totalEvents - batchSize;
console.log(
  `events ${totalEvents}, duplicates dropped ${metrics.duplicatesDropped} of ${intendedDuplicates} resent, ` +
    `windows emitted ${metrics.windowsEmitted}, commits ${commits}, engine time ${(Number(busyNs) / 1e9).toFixed(2)} s`,
);
if (missedDuplicates > 0)
  console.log(`MISSED duplicates: ${missedDuplicates}, e.g. ${missed.slice(0, 5).join(', ')}`);
if (falseDuplicates > 0)
  console.log(
    `FALSE duplicates: ${falseDuplicates}, e.g. ${falseDrops
      .slice(0, 5)
      .map((n) => `evt-${n}`)
      .join(', ')}`,
  );
if (uncountedDrops !== 0)
  console.log(
    `the drop counter (${metrics.duplicatesDropped}) disagrees with the ids that passed (${passedEvents} of ${totalEvents})`,
  );
// LevelDB maps its table files: index reads show up in RSS as file-backed pages (page cache the
// kernel may drop); the anonymous part is the process's own memory.
console.log(`peak anonymous RSS ${Math.round(peakAnon / 1024 / 1024)} MB`);
console.log(
  `state: ${Math.round(measuredEvents / (Number(busyNs) / 1e9))} events/s with ${remembered} ids remembered, ` +
    `peak RSS ${Math.round(peakRss / 1024 / 1024)} MB, reopen ${reopenSeconds.toFixed(2)} s, false duplicates ${falseDuplicates}` +
    (cacheMaxBytes === DEFAULT_CACHE_MAX_BYTES
      ? ''
      : ` (state.cacheMaxBytes ${cacheMaxBytes / 1024 / 1024} MiB)`),
);
if (missedDuplicates > 0 || falseDuplicates > 0 || uncountedDrops !== 0) process.exitCode = 1;
