/**
 * What bench/core.ts and bench/state.ts run: the reference usage event encoded as Avro (Confluent wire
 * format, schema id cached), the metering topology (dedupe over 32 days, then a 1-minute tumbling
 * count/sum per (subject, meter)), and the runtime's drain of the outboxes after a commit.
 */
import {
  avro,
  InMemorySchemaRegistry,
  TopologyBuilder,
  count,
  days,
  memorySink,
  minutes,
  seconds,
  sum,
  tumbling,
} from '../src/index.js';
import type { PartitionTask, RawRecord, Topology } from '../src/index.js';
import { usageEventSchema } from '../examples/metering/usage-event.js';
import type { UsageEvent } from '../examples/metering/usage-event.js';

export const TOPIC = 'usage-events';
/** The dedupe horizon of the metering job. */
export const HORIZON = days(32);
const serdeContext = { topic: TOPIC, role: 'value' as const };
const serde = avro<UsageEvent>({ registry: new InMemorySchemaRegistry(), readerSchema: usageEventSchema() });

/** Registers the schema and caches its id (the one registry round trip, before any measured loop). */
export async function warmSerde(probe: UsageEvent): Promise<void> {
  await serde.deserialize(await serde.serialize(probe, serdeContext), serdeContext);
}

/**
 * The metering topology; `dedupeName` names its dedupe store (default: derived from the topic).
 * `passed`, when given, sees every event the dedupe let through (a peek, which the pre-pass skips):
 * bench/state.ts checks each drop with it; without it the topology is the production one.
 */
export function usageTopology(dedupeName?: string, passed?: (event: UsageEvent) => void): Topology {
  const builder = new TopologyBuilder();
  const deduped = builder
    .stream(TOPIC, serde, { timestamp: (e) => e.time })
    .dedupe((e) => `${e.source}/${e.id}`, { horizon: HORIZON, ...(dedupeName ? { name: dedupeName } : {}) });
  (passed === undefined ? deduped : deduped.peek(passed))
    .groupBy((e) => ({ subject: e.subject, meter: e.meter }))
    .window(tumbling(minutes(1)), { grace: seconds(10), outOfOrderness: seconds(5) })
    .aggregate({ count: count(), total: sum((e) => e.value) })
    .to(memorySink('clickhouse:usage_1m'));
  return builder.build();
}

/** Records `first` .. `first + size - 1` of partition 0, the n-th carrying `eventOf(n)` (what Kafka hands over). */
export function encodeBatch(first: number, size: number, eventOf: (n: number) => UsageEvent): RawRecord[] {
  const records: RawRecord[] = new Array(size);
  for (let i = 0; i < size; i++) {
    const n = first + i;
    const event = eventOf(n);
    const encoded = serde.serialize(event, serdeContext);
    if (!Buffer.isBuffer(encoded)) throw new Error('expected the cached encoder to be synchronous');
    records[i] = {
      topic: TOPIC,
      partition: 0,
      offset: BigInt(n),
      timestamp: event.time,
      key: null,
      value: encoded,
      headers: {},
    };
  }
  return records;
}

/** Commits the task, then delivers and acknowledges every output as the runtime does; returns the rows. */
export async function commitAndDrain(task: PartitionTask): Promise<number> {
  await task.commit();
  let rows = 0;
  for (const outbox of task.outboxes()) {
    for (let batch = await outbox.read(10_000); batch.length > 0; batch = await outbox.read(10_000)) {
      rows += batch.length;
      await outbox.ack((batch[batch.length - 1] as { seq: bigint }).seq);
    }
  }
  return rows;
}
