/**
 * Looking at state as an operator does, on the real services: the reference metering job runs as a
 * child process; known usage events are produced to two partitions (one id twice); then its admin
 * endpoint shows the open windows in the user's terms (equal to what was produced), a group key is
 * found in both partitions, a dedupe id is seen and another is not, and `tributary inspect` and
 * `tributary lag` print them. Then a second instance joins and a lookup through either one asks the
 * other at the admin URL it advertises in the group.
 */
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { after, before, test } from 'node:test';
import { promisify } from 'node:util';
import { Kafka, Partitioners, logLevel } from 'kafkajs';
import { usageEventSchema } from '../../../examples/metering/usage-event.js';
import type { UsageEvent } from '../../../examples/metering/usage-event.js';
import { avro, queryStore, readStore } from '../../../src/index.js';
import type { WindowEntryView } from '../../../src/index.js';
import type { TestDatabase } from '../../helpers/clickhouse.js';
import { Worker, setUpMeteringRun, sleep } from '../../helpers/metering.js';
import type { MeteringRun } from '../../helpers/metering.js';
import { brokers, registryUrl } from '../../helpers/services.js';

const TOKEN = 'reads-admin-token';
const run$ = promisify(execFile);

let db: TestDatabase;
let run: MeteringRun;

before(async () => {
  ({ db, run } = await setUpMeteringRun('reads', 2));
});

after(async () => {
  await db?.drop();
});

/** The running `tributary` command's output. */
async function tributary(args: string[]): Promise<string> {
  const { stdout } = await run$(process.execPath, ['--import', 'tsx', 'src/cli/main.ts', ...args], {
    env: { ...process.env, TRIBUTARY_ADMIN_TOKEN: TOKEN, TRIBUTARY_BROKERS: brokers.join(',') },
  });
  return stdout;
}

async function eventually<T>(
  what: string,
  attempt: () => Promise<T | undefined>,
  timeoutMs = 60_000,
): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const value = await attempt();
    if (value !== undefined) return value;
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await sleep(250);
  }
}

test('decoded window entries equal what was produced; key lookups, across two instances too; dedupe ids; inspect and lag', async () => {
  const worker = new Worker(run, { TRIBUTARY_ADMIN_TOKEN: TOKEN });
  try {
    const url = await worker.ready();
    // An hour ahead: the windows stay open (and in the store) for the whole test.
    const minute = Math.floor(Date.now() / 60_000) * 60_000 + 3_600_000;
    const event = (id: string, subject: string, value: number, second: number): UsageEvent => ({
      id,
      source: 'reads-test',
      type: 'api.call',
      subject,
      time: minute + second * 1000,
      meter: 'requests',
      value,
      dimensions: {},
    });
    const produced: Array<[partition: number, event: UsageEvent]> = [
      [0, event('e1', 'c1', 3, 1)],
      [0, event('e2', 'c1', 4, 2)],
      [0, event('e3', 'c2', 5, 3)],
      [1, event('e4', 'c1', 10, 4)],
      [1, event('e4', 'c1', 10, 5)], // the same id again: a duplicate
    ];
    const serde = avro<UsageEvent>({ registry: { url: registryUrl }, readerSchema: usageEventSchema() });
    const producer = new Kafka({ clientId: 'reads-test', brokers, logLevel: logLevel.WARN }).producer({
      createPartitioner: Partitioners.DefaultPartitioner,
    });
    await producer.connect();
    try {
      await producer.send({
        topic: run.topic,
        messages: await Promise.all(
          produced.map(async ([partition, usage]) => ({
            partition,
            value: await serde.serialize(usage, { topic: run.topic, role: 'value' }),
          })),
        ),
      });
    } finally {
      await producer.disconnect();
    }

    // Both partitions processed and committed: positions at the ends (3 and 2 records).
    await eventually('both partitions to be processed', async () => {
      const { body } = await worker.admin<{
        tasks: Array<{ partition: number; positions: Record<string, string> }>;
      }>('/tasks', TOKEN);
      const positions = body.tasks
        .map((task) => `${task.partition}@${task.positions[run.topic] ?? '-'}`)
        .sort();
      return positions.join() === '0@3,1@2' ? positions : undefined;
    });

    const window = { start: new Date(minute).toISOString(), end: new Date(minute + 60_000).toISOString() };
    const entriesOf = async (partition: number) =>
      ((await readStore(url, partition, 'usage-1m', {}, { token: TOKEN })).entries as WindowEntryView[]).map(
        (entry) => [entry.windowStart.iso, entry.windowEnd.iso, entry.key, entry.aggregates, entry.version],
      );
    assert.deepEqual(await entriesOf(0), [
      [window.start, window.end, { subject: 'c1', meter: 'requests' }, { count: 2, total: 7, max: 4 }, 0],
      [window.start, window.end, { subject: 'c2', meter: 'requests' }, { count: 1, total: 5, max: 5 }, 0],
    ]);
    assert.deepEqual(await entriesOf(1), [
      [window.start, window.end, { subject: 'c1', meter: 'requests' }, { count: 1, total: 10, max: 10 }, 0],
    ]);

    // The group key's share in each partition, in one lookup (fields in any order).
    const c1 = await queryStore(url, 'usage-1m', { meter: 'requests', subject: 'c1' }, { token: TOKEN });
    assert.equal(c1.found, true);
    assert.deepEqual(
      c1.results.map((result) => [
        result.partition,
        result.kind === 'window' ? result.windows.map((entry) => entry.aggregates.total) : [],
      ]),
      [
        [0, [7]],
        [1, [10]],
      ],
    );
    assert.deepEqual(c1.unreachable, []);

    // Dedupe ids are `<source>/<id>` in the reference job.
    const seen = await queryStore(url, 'dedupe-source-id', 'reads-test/e4', { token: TOKEN });
    assert.deepEqual(
      seen.results.map((result) => [result.partition, result.kind === 'dedupe' && result.seen]),
      [[1, true]],
    );
    const unseen = await queryStore(url, 'dedupe-source-id', 'reads-test/e9', { token: TOKEN });
    assert.equal(unseen.found, false);
    assert.deepEqual(unseen.searched[0]?.partitions, [0, 1]);

    // The CLI: a store's entries and a lookup as tables.
    const table = await tributary(['inspect', url, 'usage-1m']);
    const rows = table.split('\n').map((line) => line.split(/ {2,}/));
    assert.deepEqual(rows[0], [
      'PARTITION',
      'WINDOW START',
      'WINDOW END',
      'KEY',
      'COUNT',
      'TOTAL',
      'MAX',
      'VERSION',
    ]);
    assert.deepEqual(rows.slice(1, 4), [
      ['0', window.start, window.end, '{"subject":"c1","meter":"requests"}', '2', '7', '4', '0'],
      ['0', window.start, window.end, '{"subject":"c2","meter":"requests"}', '1', '5', '5', '0'],
      ['1', window.start, window.end, '{"subject":"c1","meter":"requests"}', '1', '10', '10', '0'],
    ]);
    const lookup = await tributary(['inspect', url, 'dedupe-source-id', 'reads-test/e1']);
    assert.match(lookup, /^\S+\s+0\s+yes\s/m);

    // Lag from Kafka: the group offsets are committed after each checkpoint, so they reach the ends.
    const lag = await eventually('the group offsets to reach the end offsets', async () => {
      const output = await tributary(['lag', run.appId]);
      return /^total lag 0 over 2 partitions$/m.test(output) ? output : undefined;
    });
    assert.deepEqual(
      lag
        .split('\n')
        .slice(0, 3)
        .map((line) => line.split(/ {2,}/)),
      [
        ['TOPIC', 'PARTITION', 'COMMITTED', 'END', 'LAG'],
        [run.topic, '0', '3', '3', '0'],
        [run.topic, '1', '2', '2', '0'],
      ],
    );

    // A second instance joins: each runs one partition, and a lookup through either asks the other at
    // the admin URL it advertises in the group.
    const second = new Worker(run, { TRIBUTARY_ADMIN_TOKEN: TOKEN });
    try {
      const secondUrl = await second.ready();
      await eventually('the two instances to run one partition each', async () => {
        const [a, b] = await Promise.all([
          worker.admin<{ partitions?: number[] }>('/health', TOKEN),
          second.admin<{ partitions?: number[] }>('/health', TOKEN),
        ]);
        return a.body.partitions?.length === 1 && b.body.partitions?.length === 1 ? true : undefined;
      });
      for (const through of [url, secondUrl]) {
        const across = await eventually('both members in the lookup', async () => {
          const answer = await queryStore(
            through,
            'usage-1m',
            { subject: 'c1', meter: 'requests' },
            { token: TOKEN },
          );
          return answer.searched.length === 2 && answer.results.length === 2 ? answer : undefined;
        });
        assert.deepEqual(across.unreachable, []);
        assert.equal(
          new Set(across.results.map((result) => result.instance)).size,
          2,
          'two instances answered',
        );
        assert.deepEqual(
          across.results
            .map((result) => [
              result.partition,
              result.kind === 'window' ? result.windows[0]?.aggregates.total : -1,
            ])
            .sort(),
          [
            [0, 7],
            [1, 10],
          ],
        );
      }
      const local = await queryStore(
        secondUrl,
        'usage-1m',
        { subject: 'c1', meter: 'requests' },
        {
          token: TOKEN,
          scope: 'local',
        },
      );
      assert.equal(local.results.length, 1, 'scope=local: this instance only');
    } finally {
      second.kill('SIGKILL');
    }
  } finally {
    worker.kill('SIGKILL');
  }
});
