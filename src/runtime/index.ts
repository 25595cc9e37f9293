export {
  ConfigError,
  ENV_OVERRIDES,
  configSchema,
  dlqTopicOf,
  environmentTable,
  resolveConfig,
  schemaRegistryUrlFromEnv,
  serviceDefaultsOf,
} from './config.js';
export type { EnvOverride, EnvTableRow, TributaryConfig, TributaryConfigInput } from './config.js';
export { Instance } from './instance.js';
export type { InstanceState, TaskStatus } from './instance.js';
export { RuntimeMetrics } from './metrics.js';
export type * from './kafka/client.js';
export { KafkaProbeError, TopicNotFoundError } from './kafka/client.js';
export { createKafkajsClient } from './kafka/kafkajs/client.js';
export { createKafkajsTopicTools } from './kafka/kafkajs/topic-tools.js';
export { listDeadLetters, replayMessagesOf } from './dead-letters.js';
export type { DeadLetterListing, DeadLetterSelection, StoredDeadLetter } from './dead-letters.js';
