/** Creates what the reference job needs before it runs: the input topic and its registered schema. */
import type { Admin } from 'kafkajs';
import type { Logger } from 'pino';
import { createSchemaRegistryClient } from '../../src/index.js';
import { exampleKafka } from './kafka.js';
import { usageEventSchema } from './usage-event.js';

export async function ensureInputTopic(
  brokers: string[],
  topic: string,
  partitions: number,
  logger?: Logger,
): Promise<void> {
  const kafka = exampleKafka('metering-setup', brokers, logger);
  const admin = kafka.admin();
  await admin.connect();
  try {
    await createTopicIfMissing(admin, topic, partitions);
  } finally {
    await admin.disconnect();
  }
}

/** Creates `topic` unless it exists, and returns once every partition has a leader. */
export async function createTopicIfMissing(admin: Admin, topic: string, partitions: number): Promise<void> {
  if ((await admin.listTopics()).includes(topic)) return;
  // kafkajs' own wait for leaders gives up on "unknown topic" while a broker that just started
  // has not served the new topic's metadata yet: wait for it here instead.
  await admin.createTopics({ topics: [{ topic, numPartitions: partitions }], waitForLeaders: false });
  await waitForLeaders(admin, topic);
}

async function waitForLeaders(admin: Admin, topic: string, timeoutMs = 30_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    try {
      const { topics } = await admin.fetchTopicMetadata({ topics: [topic] });
      const partitions = topics[0]?.partitions ?? [];
      if (partitions.length > 0 && partitions.every((p) => p.leader >= 0)) return;
    } catch (error) {
      if ((error as { retriable?: boolean }).retriable !== true || Date.now() > deadline) throw error;
    }
    if (Date.now() > deadline) throw new Error(`topic ${topic} has no leaders after ${timeoutMs} ms`);
    await new Promise((resolve) => setTimeout(resolve, 200));
  }
}

export async function registerUsageSchema(registryUrl: string, topic: string): Promise<number> {
  const registry = createSchemaRegistryClient({ url: registryUrl });
  return registry.registerSchema(`${topic}-value`, usageEventSchema());
}
