/**
 * The client's ceiling: a bare kafkajs consumer that reads the benchmark topic from the beginning in a
 * fresh group and only counts records (no decoding, no state, no commits). It uses the same fetch
 * settings as the runtime's consumer, so the pipeline/ceiling ratio measures what tributary costs on
 * top of fetching, not a difference in fetch tuning.
 *
 * Environment: BENCH_TOPIC, BENCH_GROUP_ID, BENCH_EXPECTED_RECORDS (stops after that many records).
 * Reports on stdout (see protocol.ts).
 */
import { Kafka, logLevel } from 'kafkajs';
import { resolveConfig } from '../../src/index.js';
import { emit, usageOfThisProcess } from './protocol.js';

const topic = requiredEnv('BENCH_TOPIC');
const groupId = requiredEnv('BENCH_GROUP_ID');
const expected = Number(requiredEnv('BENCH_EXPECTED_RECORDS'));

// The runtime's defaults (and any TRIBUTARY_* overrides the pipeline child will also see).
const runtime = resolveConfig({ appId: groupId });
const kafka = new Kafka({
  clientId: `${groupId}-ceiling`,
  brokers: runtime.brokers,
  connectionTimeout: runtime.kafka.connectionTimeoutMs,
  logLevel: logLevel.WARN,
});
const consumer = kafka.consumer({
  groupId,
  sessionTimeout: runtime.kafka.sessionTimeoutMs,
  maxBytesPerPartition: runtime.kafka.maxBytesPerPartition,
  maxWaitTimeInMs: runtime.kafka.maxWaitTimeMs,
  allowAutoTopicCreation: false,
  readUncommitted: false,
});

let records = 0;
let batches = 0;
let firstBatchAt: number | undefined;
let lastRecordAt: number | undefined;
let cpuAtLastRecord = 0;
let allRead: () => void = () => {};
const done = new Promise<void>((resolve) => (allRead = resolve));

await consumer.connect();
await consumer.subscribe({ topics: [topic], fromBeginning: true });
const runAt = Date.now();
emit({ type: 'running', at: runAt, cpuMs: usageOfThisProcess().cpuMs });
await consumer.run({
  autoCommit: false,
  // Same concurrency as the runtime: one partition's batch at a time.
  partitionsConsumedConcurrently: 1,
  eachBatch: async ({ batch }) => {
    if (batch.messages.length === 0) return;
    firstBatchAt ??= Date.now();
    batches++;
    records += batch.messages.length;
    if (records >= expected && lastRecordAt === undefined) {
      lastRecordAt = Date.now();
      cpuAtLastRecord = usageOfThisProcess().cpuMs;
      allRead();
    }
  },
});
await done;
emit({
  type: 'done',
  records,
  runAt,
  firstBatchAt: firstBatchAt ?? runAt,
  lastRecordAt: lastRecordAt ?? Date.now(),
  batches,
  cpuMs: cpuAtLastRecord,
  usage: usageOfThisProcess(),
});
await consumer.disconnect();
process.exit(0);

function requiredEnv(name: string): string {
  const value = process.env[name];
  if (value === undefined || value === '') throw new Error(`${name} is not set`);
  return value;
}
