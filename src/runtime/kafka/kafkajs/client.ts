/**
 * The KafkaClient of client.ts on kafkajs, composed of this folder's parts: consumer.ts (the group),
 * transactions.ts, reader.ts, admin.ts, probe.ts; records.ts converts, log.ts routes kafkajs' logs.
 */
import { Kafka, logLevel as KafkaLogLevel } from 'kafkajs';
import type { KafkaConfig, SASLOptions } from 'kafkajs';
import type { Logger } from 'pino';
import type { KafkaSettings } from '../../config.js';
import type { KafkaClient } from '../client.js';
import { kafkajsAdmin } from './admin.js';
import { KafkajsGroupConsumer } from './consumer.js';
import { kafkajsLogCreator } from './log.js';
import { probeBrokers } from './probe.js';
import { kafkajsPartitionReader } from './reader.js';
import { kafkajsTaskTransactions, kafkajsTransactionalWriter } from './transactions.js';

function saslOf(settings: KafkaSettings): SASLOptions | undefined {
  const { sasl } = settings;
  if (!sasl) return undefined;
  return { mechanism: sasl.mechanism, username: sasl.username, password: sasl.password } as SASLOptions;
}

export function kafkajsConfigOf(settings: KafkaSettings, logger: Logger): KafkaConfig {
  return {
    clientId: settings.clientId,
    brokers: [...settings.brokers],
    ssl: settings.ssl,
    sasl: saslOf(settings),
    connectionTimeout: settings.connectionTimeoutMs,
    logLevel: KafkaLogLevel.WARN,
    logCreator: kafkajsLogCreator(logger),
    retry: { initialRetryTime: 200, retries: 8 },
  };
}

export function createKafkajsClient(settings: KafkaSettings, logger: Logger): KafkaClient {
  const kafkaConfig = kafkajsConfigOf(settings, logger);
  const kafka = new Kafka(kafkaConfig);
  return {
    probe: () => probeBrokers(settings.brokers, kafkaConfig),
    groupConsumer: (groupId, options) =>
      new KafkajsGroupConsumer(kafka, groupId, settings, logger, options ?? { standbyReplicas: 0 }),
    transactionalWriter: (transactionalId) => kafkajsTransactionalWriter(kafka, transactionalId),
    taskTransactions: (transactionalId) => kafkajsTaskTransactions(kafka, transactionalId),
    partitionReader: (groupId) => kafkajsPartitionReader(kafka, groupId),
    admin: async () => {
      const admin = kafka.admin();
      await admin.connect();
      return kafkajsAdmin(admin);
    },
  };
}
