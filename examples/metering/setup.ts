/** Creates what the reference job needs before it runs: the input topic and its registered schema. */
import { Kafka, logLevel } from 'kafkajs';
import { createSchemaRegistryClient } from '../../src/index.js';
import { usageEventSchema } from './usage-event.js';

export async function ensureInputTopic(brokers: string[], topic: string, partitions: number): Promise<void> {
  const kafka = new Kafka({ clientId: 'metering-setup', brokers, logLevel: logLevel.WARN });
  const admin = kafka.admin();
  await admin.connect();
  try {
    const existing = await admin.listTopics();
    if (!existing.includes(topic)) {
      await admin.createTopics({ topics: [{ topic, numPartitions: partitions }], waitForLeaders: true });
    }
  } finally {
    await admin.disconnect();
  }
}

export async function registerUsageSchema(registryUrl: string, topic: string): Promise<number> {
  const registry = createSchemaRegistryClient({ url: registryUrl });
  return registry.registerSchema(`${topic}-value`, usageEventSchema());
}
