/**
 * `tributary dlq`: bad records produced into a running metering job reach its DLQ; the command, run
 * in a child process as a user would, lists them with reasons and source positions, filters them,
 * and replays the selected ones: the replayed records equal the originals (key, value, headers,
 * timestamp), without the tributary.dlq.* headers.
 */
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { after, before, test } from 'node:test';
import type { Message } from 'kafkajs';
import { registerUsageSchema } from '../../../examples/metering/setup.js';
import type { RawRecord } from '../../../src/core/records.js';
import type { TestDatabase } from '../../helpers/clickhouse.js';
import { Worker, readDlq, setUpMeteringRun, sleep } from '../../helpers/metering.js';
import type { MeteringRun } from '../../helpers/metering.js';
import { brokers, registryUrl } from '../../helpers/services.js';
import { frame, frameWithInvalidUtf8, sampleEvent, usageEventV1 } from '../../unit/serde/fixtures.js';
import { consume, createTopic, kafka, produce } from '../serde/kafka-helpers.js';

let db: TestDatabase;
let run: MeteringRun;
let worker: Worker | undefined;
/** The bad records as produced, by their trace-id header. */
const originals = new Map<string, Message & { partition: number }>();

function cli(...args: string[]): { status: number | null; stdout: string; stderr: string } {
  const result = spawnSync(
    process.execPath,
    ['--import', 'tsx', 'src/cli/main.ts', 'dlq', run.appId, ...args],
    {
      env: { ...process.env, TRIBUTARY_BROKERS: brokers.join(',') },
      encoding: 'utf8',
      timeout: 60_000,
    },
  );
  return { status: result.status, stdout: result.stdout, stderr: result.stderr };
}

/** The table rows (not the header, not the summary line) of a listing. */
const rowsOf = (stdout: string): string[] => stdout.split('\n').filter((line) => /^\d+\/\d+ /.test(line));

before(async () => {
  ({ db, run } = await setUpMeteringRun('dlqcli', 2));
  const schemaId = await registerUsageSchema(registryUrl, run.topic);
  const good = (n: number, partition: number): Message & { partition: number } => ({
    partition,
    key: `customer-${n}`,
    value: frame(schemaId, usageEventV1, sampleEvent(n)),
  });
  const bad: Array<Message & { partition: number }> = [
    {
      partition: 0,
      key: 'k-json',
      value: Buffer.from(JSON.stringify(sampleEvent(10))),
      headers: { 'trace-id': 'bad-json', binary: Buffer.from([0, 255, 1]) },
      timestamp: '1700000000123',
    },
    {
      partition: 0,
      key: 'k-utf8',
      value: frameWithInvalidUtf8(schemaId, usageEventV1, { ...sampleEvent(11), subject: 'pois@@@(' }),
      headers: { 'trace-id': 'bad-utf8' },
      timestamp: '1700000000456',
    },
    {
      partition: 1,
      key: null,
      value: frame(schemaId, usageEventV1, { ...sampleEvent(12), id: '' }),
      headers: { 'trace-id': 'bad-empty-id' },
      timestamp: '1700000000789',
    },
  ];
  for (const message of bad) originals.set(String(message.headers?.['trace-id']), message);
  // Offsets: partition 0 holds good, bad-json (1), good, bad-utf8 (3); partition 1 good, bad-empty-id (1).
  await produce(run.topic, [good(1, 0), bad[0]!, good(2, 0), bad[1]!, good(3, 1), bad[2]!]);
  worker = new Worker(run);
  await worker.ready();
  // readDlq returns at once while the DLQ is still empty: ask until the job has written all three.
  const deadline = Date.now() + 90_000;
  while ((await readDlq(`${run.appId}.dlq`, bad.length, 10_000)).length < bad.length) {
    if (Date.now() > deadline)
      throw new Error(`the DLQ did not get ${bad.length} records; log:\n${worker.tail()}`);
    await sleep(500);
  }
});

after(async () => {
  worker?.kill('SIGKILL');
  await worker?.exit().catch(() => undefined);
  await db?.drop();
});

test('lists every dead letter with its reason, error and source topic/partition/offset', () => {
  const { status, stdout, stderr } = cli();
  assert.equal(status, 0, stderr);
  const rows = rowsOf(stdout);
  assert.equal(rows.length, 3, stdout);
  const row = (source: string) => rows.find((line) => line.includes(` ${run.topic}/${source} `)) ?? '';
  assert.match(row('0/1'), /bad-magic-byte .*2023-11-14T22:13:20\.123Z .*magic byte/);
  assert.match(row('0/3'), /decode-failed .*field "subject" holds invalid UTF-8/);
  assert.match(row('1/1'), /validation-failed .*id is empty/);
  assert.match(stdout, new RegExp(`^3 of 3 dead letters in ${run.appId}\\.dlq$`, 'm'));
});

test('filters by reason, by source partition, and limits', () => {
  const byReason = cli('--reason', 'decode-failed,validation-failed');
  assert.deepEqual(
    rowsOf(byReason.stdout)
      .map((line) => line.split(/\s+/)[1])
      .sort(),
    ['decode-failed', 'validation-failed'],
    byReason.stdout,
  );
  const byPartition = cli('--source-partition', '1');
  assert.equal(rowsOf(byPartition.stdout).length, 1, byPartition.stdout);
  assert.match(rowsOf(byPartition.stdout)[0]!, new RegExp(` ${run.topic}/1/1 `));
  const limited = cli('--limit', '1');
  assert.equal(rowsOf(limited.stdout).length, 1, limited.stdout);
  assert.match(limited.stdout, /^1 of 3 dead letters/m);
});

test('replays the selected dead letters as the original records, after confirmation', async () => {
  const target = await createTopic('dlq-replay');
  const unconfirmed = cli('--replay', '--to', target);
  assert.equal(unconfirmed.status, 1, 'no terminal to confirm on, no --yes: nothing is published');
  assert.match(unconfirmed.stderr, /replay not confirmed; nothing published/);

  const { status, stdout, stderr } = cli('--replay', '--to', target, '--yes');
  assert.equal(status, 0, stderr);
  assert.match(stdout, new RegExp(`^replayed 3 records to ${target}$`, 'm'));

  const replayed = await consume(target, 3);
  const admin = kafka.admin();
  await admin.connect();
  const [end] = await admin.fetchTopicOffsets(target);
  await admin.disconnect();
  assert.equal(end?.high, '3', 'the unconfirmed replay published nothing');
  const byTrace = new Map<string, RawRecord>(
    replayed.map((record) => [String(record.headers['trace-id']), record]),
  );
  assert.deepEqual([...byTrace.keys()].sort(), [...originals.keys()].sort());
  for (const [trace, original] of originals) {
    const record = byTrace.get(trace)!;
    assert.deepEqual(record.key, original.key === null ? null : Buffer.from(original.key as string), trace);
    assert.deepEqual(record.value, original.value, trace);
    assert.equal(record.timestamp, Number(original.timestamp), trace);
    const expectedHeaders = Object.fromEntries(
      Object.entries(original.headers ?? {}).map(([name, value]) => [
        name,
        Buffer.from(value as Buffer | string),
      ]),
    );
    assert.deepEqual(record.headers, expectedHeaders, `${trace}: original headers only, no tributary.dlq.*`);
  }
});
