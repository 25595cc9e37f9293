// Dedupe state far larger than its cache: two instances (a state folder each) run with
// state.cacheMaxBytes of 64 KiB, so each partition's store keeps a few hundred recent ids in memory
// and spills thousands to its LevelDB index and filter. The generator re-sends recent events and
// events sent long before (only the disk tier still knows those) while one instance is restarted
// cleanly and then SIGKILLed and started again on the same folder, which reopens its own LevelDB
// with the spilled ids. The ClickHouse totals (each id counted once) and the DLQ are exact.
import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import { RECENT_ID_OVERHEAD_BYTES } from '../../src/state/dedupe-store.js';
import type { TestDatabase } from '../helpers/clickhouse.js';
import { setUpMeteringRun, sleep } from '../helpers/metering.js';
import type { MeteringRun, Worker } from '../helpers/metering.js';
import {
  assertExact,
  generatorFor,
  killAll,
  machine,
  produce,
  sameMachine,
  spilledDedupeIds,
  spilledWindowEntries,
  waitForOwners,
} from '../helpers/chaos.js';

/** An instance's store cache: at most this many ids' table slots, whatever the id bytes add. */
const CACHE_MAX_BYTES = 64 * 1024;
const CACHE_HOLDS_AT_MOST_IDS = Math.floor(CACHE_MAX_BYTES / RECENT_ID_OVERHEAD_BYTES);
const STORE = 'dedupe-source-id';

let db: TestDatabase;
let run: MeteringRun;

before(async () => {
  ({ db, run } = await setUpMeteringRun('chaos_beyond_cache'));
});

after(async () => {
  await db?.drop();
});

/** Ids each of the worker's partitions remembers now (its dedupe store's size, from the admin endpoint). */
async function rememberedIds(worker: Worker, partitions: readonly number[]): Promise<Map<number, number>> {
  const remembered = new Map<number, number>();
  for (const partition of partitions) {
    const { body } = await worker.admin<{ stores: Array<{ name: string; approximateSize: number }> }>(
      `/tasks/${partition}/stores`,
    );
    const store = body.stores.find((s) => s.name === STORE);
    assert.ok(store, `partition ${partition} has the dedupe store`);
    remembered.set(partition, store.approximateSize);
  }
  return remembered;
}

test('dedupe state far beyond its cache: restart and SIGKILL on the same folder, old and recent duplicates dropped; exact', async (t) => {
  // A killed member stays in the group until its session times out: long enough for its restart to
  // join first, so the restart gets the killed one's partitions back (its own folders).
  const env = {
    TRIBUTARY_STATE_CACHE_MAX_BYTES: String(CACHE_MAX_BYTES),
    TRIBUTARY_KAFKA_SESSION_TIMEOUT_MS: '10000',
  };
  const first = machine(run, env);
  const other = machine(run, env);
  const workers: Worker[] = [first, other];
  // About 60 s of production: ~9,000 ids per partition, 2% duplicates of the last 5,000 events and
  // 2% of events sent before those.
  const generator = generatorFor(run, {
    seed: 1010,
    totalEvents: 72_000,
    rate: 1200,
    duplicateRatio: 0.02,
    oldDuplicateRatio: 0.02,
  });
  try {
    await Promise.all(workers.map((w) => w.ready()));
    await waitForOwners(workers);
    await generator.connect();
    const production = produce(generator);

    await sleep(12_000); // thousands of ids per partition, most of them spilled
    first.kill('SIGTERM');
    assert.equal(await first.exit(40_000), 0, `clean exit on SIGTERM; log:\n${first.tail()}`);
    const restarted = sameMachine(run, first, env);
    workers.push(restarted);
    await restarted.ready();
    await waitForOwners([restarted, other]);

    await sleep(10_000); // the restarted instance runs and spills on its own folders
    const held = (await waitForOwners([restarted, other]))[0]!;
    const remembered = await rememberedIds(restarted, held);
    restarted.kill('SIGKILL');
    assert.equal(await restarted.exit(), null, 'killed by the signal');

    // What the folders it will reopen hold: far more spilled ids than the whole cache could keep.
    const spilled = await spilledDedupeIds(run, restarted, held);
    const context = `remembered ${JSON.stringify([...remembered])}, spilled ${JSON.stringify([...spilled])}`;
    for (const partition of held)
      assert.ok(
        (spilled.get(partition) ?? 0) >= 1000,
        `partition ${partition} spilled thousands of ids: ${context}`,
      );
    const spilledTotal = [...spilled.values()].reduce((sum, n) => sum + n, 0);
    assert.ok(
      spilledTotal > 5 * CACHE_HOLDS_AT_MOST_IDS,
      `spilled ids far exceed the ${CACHE_HOLDS_AT_MOST_IDS} the cache could hold: ${context}`,
    );

    t.diagnostic(`cache holds at most ${CACHE_HOLDS_AT_MOST_IDS} ids; at the kill: ${context}`);
    // The window stores are beyond their share too: their windows spilled to per-key records.
    const windowEntries = await spilledWindowEntries(run, restarted, held);
    t.diagnostic(`window entries written per key (spilled windows): ${JSON.stringify([...windowEntries])}`);
    assert.ok(
      [...windowEntries.values()].some((n) => n > 0),
      `the window stores spilled: ${JSON.stringify([...windowEntries])}`,
    );

    const again = sameMachine(run, restarted, env);
    workers.push(again);
    await again.ready();
    const reopened = (await waitForOwners([again, other]))[0]!;
    assert.ok(
      reopened.some((partition) => (spilled.get(partition) ?? 0) > 0),
      `the restart reopened its own folders with spilled ids (runs ${reopened.join()}, held ${held.join()})`,
    );

    const truth = await production;
    await generator.close();
    assert.ok(
      truth.oldDuplicates > 100 && truth.duplicates > truth.oldDuplicates + 100,
      `the run re-sent old and recent events: ${truth.oldDuplicates} old of ${truth.duplicates} duplicates`,
    );
    t.diagnostic(`duplicates: ${truth.oldDuplicates} old, ${truth.duplicates - truth.oldDuplicates} recent`);
    // Each id is counted once in the truth: exact totals mean every duplicate was dropped, and no
    // event was dropped as one.
    await assertExact(run, truth, workers);

    // The stores remember each unique event's id once, across the moves, the restart and the kill.
    const owners = await waitForOwners([again, other]);
    let rememberedTotal = 0;
    for (const [index, worker] of [again, other].entries())
      for (const count of (await rememberedIds(worker, owners[index]!)).values()) rememberedTotal += count;
    assert.equal(rememberedTotal, truth.unique, 'ids remembered, over all partitions');
  } finally {
    generator.stop();
    await generator.close().catch(() => undefined);
    killAll(workers);
  }
});
