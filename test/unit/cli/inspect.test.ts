/**
 * `tributary inspect`, `tributary lag` and `tributary describe --format` as a user runs them: the real
 * command (inspect against a real instance's admin endpoint on the in-memory Kafka), and the lag table
 * from a Kafka admin's offsets.
 */
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { test } from 'node:test';
import { promisify } from 'node:util';
import { formatLag, groupLag } from '../../../src/cli/lag.js';
import { FakeKafka } from '../../helpers/fake-kafka.js';
import { T0, adminOf, deadUrl, urlOf, usageHarness } from '../admin/usage-fixtures.js';

const run = promisify(execFile);

async function tributary(args: string[], env: Record<string, string> = {}): Promise<string> {
  const clean = Object.fromEntries(
    Object.entries(process.env).filter(([name]) => !name.startsWith('TRIBUTARY_')),
  );
  const { stdout } = await run(process.execPath, ['--import', 'tsx', 'src/cli/main.ts', ...args], {
    env: { ...clean, ...env },
  });
  return stdout;
}

/** A command expected to fail: its exit code and stderr. */
async function tributaryFailing(args: string[]): Promise<{ code: unknown; stderr: string }> {
  try {
    await tributary(args);
  } catch (error) {
    const failed = error as { code?: unknown; stderr?: unknown };
    return { code: failed.code, stderr: String(failed.stderr) };
  }
  assert.fail(`tributary ${args.join(' ')} succeeded`);
}

/** The cells of the table under a header line (split on runs of 2+ spaces), up to the first other line. */
function tableOf(output: string, headerStart: string): string[][] {
  const lines = output.split('\n');
  const at = lines.findIndex((line) => line.startsWith(headerStart));
  assert.ok(at >= 0, `no table starting with ${headerStart} in:\n${output}`);
  const header = (lines[at] as string).split(/ {2,}/);
  const rows: string[][] = [];
  for (const line of lines.slice(at)) {
    const cells = line.split(/ {2,}/);
    if (cells.length !== header.length) break;
    rows.push(cells);
  }
  return rows;
}

const { instanceWith } = usageHarness();
const iso = (seconds: number) => new Date(T0 + seconds * 1000).toISOString();

test('tributary inspect: tasks and stores, a store page, a group key and dedupe ids, with the token', async () => {
  const instance = await instanceWith('a', 1, [
    [1, 'id-1', 'c1', 5],
    [2, 'id-2', 'c2', 7],
    [3, 'id-3', 'c1', 1],
  ]);
  const admin = await adminOf(instance, { instanceId: 'a', token: 'secret' });
  const url = urlOf(admin);
  const env = { TRIBUTARY_ADMIN_TOKEN: 'secret' };
  try {
    const overview = await tributary(['inspect', url], env);
    const tasks = tableOf(overview, 'TASK  PARTITION  RECORDS');
    assert.deepEqual(tasks[0], [
      'TASK',
      'PARTITION',
      'RECORDS',
      'WATERMARK',
      'PENDING OUTPUTS',
      'PAUSED',
      'POSITIONS',
    ]);
    assert.deepEqual(
      [tasks[1]?.[0], tasks[1]?.[1], tasks[1]?.[2], tasks[1]?.[6]],
      ['0_1', '1', '3', 'events@3'],
    );
    const stores = tableOf(overview, 'PARTITION  STORE');
    assert.deepEqual(stores, [
      ['PARTITION', 'STORE', 'KIND', 'ENTRIES'],
      ['1', 'seen-ids', 'dedupe', '3'],
      ['1', 'usage-1m', 'window', '2'],
      ['1', 'dlq', 'outbox', '0'],
      ['1', 'ids', 'outbox', '0'],
    ]);

    const page = tableOf(await tributary(['inspect', url, 'usage-1m', '--token', 'secret']), 'PARTITION');
    assert.deepEqual(page, [
      ['PARTITION', 'WINDOW START', 'WINDOW END', 'KEY', 'COUNT', 'TOTAL', 'VERSION'],
      ['1', iso(0), iso(60), '{"customer":"c1"}', '2', '6', '0'],
      ['1', iso(0), iso(60), '{"customer":"c2"}', '1', '7', '0'],
    ]);
    const limited = await tributary(['inspect', url, 'usage-1m', '--limit', '1'], env);
    assert.match(limited, /more in partition 1: --partition 1 --after \S+/);

    const lookup = await tributary(['inspect', url, 'usage-1m', '{"customer":"c1"}'], env);
    assert.deepEqual(tableOf(lookup, 'INSTANCE'), [
      ['INSTANCE', 'PARTITION', 'WINDOW START', 'WINDOW END', 'KEY', 'COUNT', 'TOTAL', 'VERSION'],
      ['a', '1', iso(0), iso(60), '{"customer":"c1"}', '2', '6', '0'],
    ]);
    assert.match(lookup, /^searched: a \[1\]$/m);

    const seen = await tributary(['inspect', url, 'seen-ids', 'id-2'], env);
    assert.deepEqual(tableOf(seen, 'INSTANCE')[1]?.slice(0, 3), ['a', '1', 'yes']);
    const unseen = await tributary(['inspect', url, 'seen-ids', 'id-9'], env);
    assert.match(unseen, /^id-9: not seen in seen-ids/m);

    await assert.rejects(tributary(['inspect', url]), /401 unauthorized/);

    // A store that does not exist: the answer lists those that do, for a page and for a key.
    for (const args of [
      ['inspect', url, 'usage-1h', '--token', 'secret'],
      ['inspect', url, 'usage-1h', 'c1', '--token', 'secret'],
    ]) {
      const { code, stderr } = await tributaryFailing(args);
      assert.equal(code, 1);
      assert.match(stderr, /404 no store "usage-1h"; the stores are: dlq, ids, seen-ids, usage-1m\n$/);
    }
  } finally {
    await admin.close();
  }
});

test('tributary inspect on a dead URL: one line naming the URL and "connection refused", no stack', async () => {
  const url = await deadUrl();
  for (const args of [
    ['inspect', url],
    ['inspect', url, 'usage-1m', 'c1'],
  ]) {
    const { code, stderr } = await tributaryFailing(args);
    assert.equal(code, 1);
    const lines = stderr.trimEnd().split('\n');
    assert.equal(lines.length, 1, stderr);
    assert.ok(lines[0]?.startsWith(`tributary: ${url}/`), stderr);
    assert.match(lines[0] ?? '', /: connection refused \(is an instance running with its admin endpoint at/);
  }
});

test('tributary lag: committed offset, end offset and lag per partition, and the total', async () => {
  const kafka = new FakeKafka();
  kafka.createTopic('events', 3);
  for (const [partition, records] of [
    [0, 5],
    [1, 3],
    [2, 2],
  ] as const)
    kafka.produce(
      'events',
      partition,
      Array.from({ length: records }, () => ({ value: '{}' })),
    );
  kafka.commitOffsets('billing', [
    { topic: 'events', partition: 0, offset: 5n },
    { topic: 'events', partition: 1, offset: 1n },
  ]);
  const admin = await kafka.admin();
  const rows = await groupLag(admin, 'billing');
  assert.deepEqual(
    rows.map((row) => [row.partition, row.committed, row.end, row.lag]),
    [
      [0, 5n, 5n, 0n],
      [1, 1n, 3n, 2n],
      [2, undefined, 2n, 2n],
    ],
  );
  const lines = formatLag(rows);
  assert.deepEqual(
    lines.slice(0, 4).map((line) => line.split(/ {2,}/)),
    [
      ['TOPIC', 'PARTITION', 'COMMITTED', 'END', 'LAG'],
      ['events', '0', '5', '5', '0'],
      ['events', '1', '1', '3', '2'],
      ['events', '2', '-', '2', '2'],
    ],
  );
  assert.equal(lines[4], 'total lag 4 over 3 partitions');
  await assert.rejects(groupLag(admin, 'nobody'), /consumer group nobody has committed no offsets/);
});

test('tributary describe --format mermaid|dot prints the graph; another format is refused', async () => {
  const app = 'test/unit/cli/fixtures/clicks-app.ts';
  const mermaid = await tributary(['describe', app, '--format', 'mermaid']);
  assert.match(mermaid, /^flowchart LR\n/);
  assert.match(mermaid, /n2 -->\|late\| n4/);
  const dot = await tributary(['describe', app, '--format', 'dot']);
  assert.match(dot, /^digraph topology \{\n[\s\S]*\n\}\n$/);
  assert.match(await tributary(['describe', app]), /^Topology\n/);
  await assert.rejects(
    tributary(['describe', app, '--format', 'svg']),
    /--format svg: use one of text, mermaid, dot/,
  );
});
