/** The KafkaAdmin of client.ts on kafkajs: topics (created and waited for), group offsets, topic offsets. */
import type { Admin, ITopicConfig } from 'kafkajs';
import kafkajs from 'kafkajs';
import { retry } from '../../../core/retry.js';
import type { RetryPolicy } from '../../../core/retry.js';
import type { KafkaAdmin, TopicDescription } from '../client.js';
import { TopicNotFoundError } from '../client.js';

// kafkajs is CommonJS: this export is not visible to ESM named imports.
const { ConfigResourceTypes } = kafkajs;

/**
 * A topic another instance created a moment ago (instances starting together) is listed before the
 * broker serves its metadata and elects its leaders: wait for them, up to 30 s.
 */
const NEW_TOPIC_WAIT: RetryPolicy = { initialDelayMs: 100, maxDelayMs: 1000, maxElapsedMs: 30_000 };

class TopicNotReadyError extends Error {
  override readonly name = 'TopicNotReadyError';
}

async function metadataWithLeaders(admin: Admin, topic: string) {
  return retry(
    async () => {
      const metadata = await admin.fetchTopicMetadata({ topics: [topic] });
      const partitions = metadata.topics[0]?.partitions ?? [];
      if (partitions.length === 0 || partitions.some((p) => p.leader < 0))
        throw new TopicNotReadyError(`topic ${topic} has no leaders yet`);
      return metadata;
    },
    NEW_TOPIC_WAIT,
    {
      isTransient: (error) =>
        error instanceof TopicNotReadyError || (error as { retriable?: boolean }).retriable === true,
    },
  );
}

/**
 * Creates a topic and waits until the broker serves its metadata with leaders: kafkajs' own wait
 * fails on a topic the broker does not know yet a moment after creating it, and does not wait at all
 * when another instance created it meanwhile (instances starting together).
 */
async function createTopicWaiting(admin: Admin, topic: ITopicConfig): Promise<void> {
  try {
    await admin.createTopics({ topics: [topic], waitForLeaders: true });
  } catch (error) {
    if ((error as { type?: string }).type !== 'UNKNOWN_TOPIC_OR_PARTITION') throw error;
  }
  await metadataWithLeaders(admin, topic.topic);
}

/** The KafkaAdmin of client.ts on a connected kafkajs admin client. */
export function kafkajsAdmin(admin: Admin): KafkaAdmin {
  return {
    async ensureTopic(topic, partitions) {
      const existing = await admin.listTopics();
      if (existing.includes(topic)) return;
      await createTopicWaiting(admin, { topic, numPartitions: partitions });
    },
    async createTopic(
      topic: string,
      partitions: number,
      config: Record<string, string>,
      replicationFactor = -1,
    ): Promise<void> {
      const existing = await admin.listTopics();
      if (existing.includes(topic)) {
        await metadataWithLeaders(admin, topic);
        return;
      }
      await createTopicWaiting(admin, {
        topic,
        numPartitions: partitions,
        replicationFactor,
        configEntries: Object.entries(config).map(([name, value]) => ({ name, value })),
      });
    },
    async describeTopic(topic: string): Promise<TopicDescription | undefined> {
      if (!(await admin.listTopics()).includes(topic)) return undefined;
      const metadata = await metadataWithLeaders(admin, topic);
      const partitions = metadata.topics[0]?.partitions.length ?? 0;
      const configs = await admin.describeConfigs({
        resources: [{ type: ConfigResourceTypes.TOPIC, name: topic, configNames: ['cleanup.policy'] }],
        includeSynonyms: false,
      });
      const policy = configs.resources[0]?.configEntries.find((e) => e.configName === 'cleanup.policy');
      return { partitions, cleanupPolicy: policy?.configValue ?? 'delete' };
    },
    async groupOffsets(groupId, topic) {
      const result = await admin.fetchOffsets({ groupId, topics: [topic] });
      const offsets = new Map<number, bigint>();
      for (const { partition, offset } of result[0]?.partitions ?? []) {
        if (offset !== '-1') offsets.set(partition, BigInt(offset));
      }
      return offsets;
    },
    async groupTopics(groupId) {
      const result = await admin.fetchOffsets({ groupId });
      return result
        .filter(({ partitions }) => partitions.some(({ offset }) => offset !== '-1'))
        .map(({ topic }) => topic)
        .sort();
    },
    async topicOffsets(topic) {
      if (!(await admin.listTopics()).includes(topic)) throw new TopicNotFoundError(topic);
      const offsets = new Map<number, { earliest: bigint; end: bigint }>();
      for (const { partition, low, high } of await admin.fetchTopicOffsets(topic))
        offsets.set(partition, { earliest: BigInt(low), end: BigInt(high) });
      return offsets;
    },
    close: () => admin.disconnect(),
  };
}
