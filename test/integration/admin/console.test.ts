// The web console in a real browser: headless Chromium (Debian's `chromium`, driven by
// playwright-core) opens the admin endpoint of the reference job, running in a child process on the
// real services with a token set and events (some malformed) flowing. It checks what an operator
// would: the page asks for the token before showing any data; the graph shows every node of the
// topology; the partition table has a row per partition with numbers and a records/s rate; the group
// lists this instance with its partitions; the sink is listed with its counters; recent dead letters
// appear with their reasons; the store browser pages a store's decoded entries; a key lookup finds a
// key; a task still opening shows its restore progress. A screenshot goes to test-output/console.png
// (TEST_OUTPUT_DIR to change the folder).
import assert from 'node:assert/strict';
import { existsSync, mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, test } from 'node:test';
import { chromium } from 'playwright-core';
import type { Browser, Page } from 'playwright-core';
import { UsageGenerator } from '../../../examples/metering/generator.js';
import type { TestDatabase } from '../../helpers/clickhouse.js';
import { Worker, setUpMeteringRun, sleep } from '../../helpers/metering.js';
import type { MeteringRun } from '../../helpers/metering.js';
import { brokers, registryUrl } from '../../helpers/services.js';

const TOKEN = 'console-test-token';
const PARTITIONS = 3;
const CHROMIUM = process.env.CHROMIUM_PATH ?? '/usr/bin/chromium';
const OUTPUT_DIR = process.env.TEST_OUTPUT_DIR ?? 'test-output';

interface GraphNode {
  id: string;
  kind: string;
  name: string;
}

let db: TestDatabase;
let run: MeteringRun;
let worker: Worker;
let generator: UsageGenerator;
let producing: Promise<unknown>;
let browser: Browser;

before(async () => {
  assert.ok(
    existsSync(CHROMIUM),
    `no Chromium at ${CHROMIUM}: install Debian's package (apt-get install chromium) or set CHROMIUM_PATH`,
  );
  ({ db, run } = await setUpMeteringRun('console', PARTITIONS));
  worker = new Worker(run, { TRIBUTARY_ADMIN_TOKEN: TOKEN });
  await worker.ready();
  // About 100 s of events at 600/s with event time keeping pace with the wall clock (so windows stay
  // open in the store), 80 of them malformed (dead letters); stopped when the test is done.
  generator = new UsageGenerator({
    brokers,
    registryUrl,
    topic: run.topic,
    totalEvents: 60_000,
    rate: 600,
    eventTimeSpanMs: 100_000,
    subjects: 50,
    malformedPerClass: 20,
    lateEvents: 0,
    seed: 7,
  });
  producing = generator.run();
  browser = await chromium.launch({ executablePath: CHROMIUM, args: ['--no-sandbox'] });
});

after(async () => {
  generator?.stop();
  await producing?.catch(() => undefined);
  await generator?.close();
  await browser?.close();
  worker?.kill('SIGTERM');
  await worker?.exit().catch(() => undefined);
  await db?.drop();
});

/** Waits until the page holds `count` or more elements matching `selector`. */
async function waitForCount(page: Page, selector: string, count: number, what: string): Promise<void> {
  try {
    await page
      .locator(selector)
      .nth(count - 1)
      .waitFor({ state: 'attached', timeout: 45_000 });
  } catch (error) {
    const found = await page.locator(selector).count();
    throw new Error(`${what}: ${found} of ${count} "${selector}"; worker log:\n${worker.tail()}`, {
      cause: error,
    });
  }
}

/** Polls `condition` until it holds. */
async function waitUntil(condition: () => Promise<boolean>, what: string, timeoutMs = 30_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!(await condition())) {
    if (Date.now() > deadline)
      throw new Error(`${what}: not within ${timeoutMs} ms; worker log:\n${worker.tail()}`);
    await sleep(250);
  }
}

const cellText = (page: Page, partition: number, field: string) =>
  page.locator(`#partition-table tr[data-partition="${partition}"] td[data-field="${field}"]`).innerText();

test('the console asks for the token, then shows the topology, the partitions, dead letters, store entries and a key lookup', async () => {
  const address = worker.adminAddress!;
  const page = await browser.newPage({ viewport: { width: 1440, height: 900 } });
  const pageErrors: string[] = [];
  page.on('pageerror', (error) => pageErrors.push(error.message));

  // The page loads without the token, but shows no data until it is given.
  await page.goto(address);
  await page.locator('#token-form').waitFor({ state: 'visible' });
  assert.equal(await page.locator('#console').isVisible(), false, 'no data without the token');
  await page.fill('#token-input', 'wrong-token');
  await page.click('#token-form button[type=submit]');
  await page.locator('#token-error', { hasText: 'refused' }).waitFor();
  assert.match(await page.locator('#token-error').innerText(), /refused/);
  await page.fill('#token-input', TOKEN);
  await page.click('#token-form button[type=submit]');
  await page.locator('#console').waitFor({ state: 'visible' });

  // The graph: every node of the topology, sources, operators, stores and the sink among them.
  const { status, body: graph } = await worker.admin<{ nodes: GraphNode[] }>('/topology.json', TOKEN);
  assert.equal(status, 200);
  await waitForCount(page, '#graph g.node', graph.nodes.length, 'graph nodes');
  for (const node of graph.nodes) {
    assert.equal(
      await page.locator(`#graph g[data-node-id="${node.id}"]`).count(),
      1,
      `node ${node.id} drawn`,
    );
  }
  const drawn = async (kind: string) =>
    page.locator(`#graph g[data-kind="${kind}"] .node-name`).allTextContents();
  assert.deepEqual(await drawn('source'), ['source-0']);
  assert.deepEqual(await drawn('store'), ['dedupe-source-id', 'usage-1m']);
  assert.ok((await drawn('processor')).includes('usage-1m'));
  assert.equal((await drawn('sink')).length, 1);
  assert.ok((await page.locator('#graph path.edge').count()) >= graph.nodes.length - 2, 'edges drawn');

  // A row per partition, with numbers, a records/s rate once two refreshes have passed, and a commit.
  await waitForCount(page, '#partition-table tbody tr', PARTITIONS, 'partition rows');
  await waitUntil(async () => {
    for (let partition = 0; partition < PARTITIONS; partition++) {
      if (!/^\d/.test(await cellText(page, partition, 'records-per-second'))) return false;
      if (!(await cellText(page, partition, 'last-commit')).endsWith('ago')) return false;
    }
    return true;
  }, 'a records/s rate and a last commit on every partition');
  for (let partition = 0; partition < PARTITIONS; partition++) {
    assert.match(await cellText(page, partition, 'processed'), /^[\d,]+$/);
    assert.ok(Number((await cellText(page, partition, 'processed')).replaceAll(',', '')) > 0);
    assert.match(await cellText(page, partition, 'lag'), /^[\d,]+$/);
    assert.match(await cellText(page, partition, 'watermark'), /^\d\d:\d\d:\d\d$/);
    assert.match(await cellText(page, partition, 'watermark-delay'), /\d+(\.\d)? (s|min)/);
    assert.match(await cellText(page, partition, 'owner'), /\S/);
  }

  // The group: this instance, the one member, runs every partition.
  const member = page.locator('#cluster-table tbody tr.this-instance');
  await member.waitFor({ state: 'attached' });
  assert.equal(await page.locator('#cluster-table tbody tr').count(), 1);
  assert.equal(
    await member.locator('td[data-field="active"]').innerText(),
    [...Array(PARTITIONS).keys()].join(', '),
  );
  assert.match((await member.locator('a').getAttribute('href')) ?? '', /^http:\/\/127\.0\.0\.1:\d+\/$/);

  // The sink, with its counters (rows come as windows close) and state.
  const sinkRows = page.locator('#sink-table tbody tr');
  await waitForCount(page, '#sink-table tbody tr', 1, 'sink rows');
  assert.equal(await sinkRows.count(), 1);
  assert.match(await sinkRows.locator('td').first().innerText(), /^clickhouse:/);
  assert.match(await sinkRows.locator('td[data-field="rows"]').innerText(), /^[\d,]+$/);
  assert.equal(await sinkRows.locator('td[data-field="state"]').innerText(), 'ok');

  // Malformed events become dead letters, listed with their reasons.
  await waitForCount(page, '#dead-letter-table tbody tr', 1, 'recent dead letters');
  const reasons = await page.locator('#dead-letter-table tbody tr .reason').allInnerTexts();
  assert.ok(
    reasons.every((r) =>
      ['bad-magic-byte', 'unknown-schema-id', 'truncated', 'validation-failed'].includes(r),
    ),
    reasons.join(', '),
  );
  await waitForCount(page, '#partition-table td[data-field="dead-letters"] li', 1, 'dead letters by reason');

  // The store browser: the window store of partition 0, one page of entries.
  await page.selectOption('#browse-partition', '0');
  await page.locator('#browse-store option[value="usage-1m"]').waitFor({ state: 'attached' });
  await page.selectOption('#browse-store', 'usage-1m');
  await page.click('#store-browser button[type=submit]');
  await waitForCount(page, '#store-entries tbody tr', 1, 'window store entries');
  assert.match(await page.locator('#browse-info').innerText(), /usage-1m on partition 0: page 1/);
  // Entries in the user's terms: the group key, the window and the aggregates by name.
  const firstEntry = page.locator('#store-entries tbody tr').first();
  assert.match(
    await firstEntry.locator('td').first().innerText(),
    /^\{"subject":"customer-\d+","meter":"[\w.]+"\}$/,
  );
  assert.match(
    await firstEntry.locator('td').nth(1).innerText(),
    /^windowStart: \d{4}-\d\d-\d\dT\d\d:\d\d:00\.000Z\n(.*\n)*aggregates: \{"count":\d+,"total":\d+,"max":\d+\}/,
  );
  await page.click('#next-page');
  await page.locator('#browse-info', { hasText: 'page 2' }).waitFor();
  await waitForCount(page, '#store-entries tbody tr', 1, 'the second page of entries');

  // A key lookup: a group key of an open window, as the user writes it (the JSON of the key).
  const entries = await worker.admin<{ entries: Array<{ key: unknown }> }>(
    '/tasks/0/stores/usage-1m?limit=1',
    TOKEN,
  );
  const key = entries.body.entries[0]?.key;
  assert.ok(typeof key === 'object' && key !== null, 'partition 0 has an open window, with its group key');
  const typed = JSON.stringify(key);
  await page.selectOption('#lookup-store', 'usage-1m');
  await page.fill('#lookup-key', typed);
  await page.click('#key-lookup button[type=submit]');
  await waitForCount(page, '#lookup-results tbody tr', 1, `lookup of ${typed}`);
  assert.match(
    await page.locator('#lookup-info').innerText(),
    /^\d+ results? for .* in usage-1m; searched \S+ \[0, 1, 2\]$/,
  );
  assert.match(await page.locator('#lookup-results tbody tr td').first().innerText(), /^\d+$/);

  mkdirSync(OUTPUT_DIR, { recursive: true });
  await page.screenshot({ path: join(OUTPUT_DIR, 'console.png'), fullPage: true });

  // Restore progress of a task still opening, as /tasks reports it (here added to the real answer:
  // a restore on the shared broker is over before a browser could look).
  await page.route(/\/tasks$/, async (route) => {
    const response = await route.fetch();
    const body = (await response.json()) as Record<string, unknown>;
    const restore = { restored: 250_000, remaining: 750_000, etaSeconds: 12 };
    await route.fulfill({ response, json: { ...body, opening: [{ partition: 99, restore }] } });
  });
  const restoring = page.locator('#partition-table tr[data-partition="99"]');
  await restoring.waitFor();
  assert.match(
    (await restoring.locator('td[data-field="restore"]').innerText()).trim(),
    /^250,000 \/ 1,000,000, ETA 12\.0 s$/,
  );
  assert.equal(await restoring.locator('progress').getAttribute('value'), '0.25');
  assert.equal(await page.locator('#partition-table tbody tr').count(), PARTITIONS + 1);
  assert.deepEqual(pageErrors, [], 'no script errors on the page');
});
