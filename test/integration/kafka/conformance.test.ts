// kafkajs on the real broker passes the Kafka port's conformance suite (the fake passes the same one:
// test/unit/runtime/kafka-conformance.test.ts).
import pino from 'pino';
import { kafkaSettingsOf, resolveConfig } from '../../../src/runtime/config.js';
import { createKafkajsClient } from '../../../src/runtime/kafka/kafkajs/client.js';
import { kafkaClientConformance } from '../../helpers/kafka-conformance.js';
import { brokers } from '../../helpers/services.js';

kafkaClientConformance('kafkajs on the broker', async () => {
  const config = resolveConfig({ appId: 'conformance', brokers, handleSignals: false }, {});
  return {
    client: createKafkajsClient(kafkaSettingsOf(config), pino({ level: 'silent' })),
    drive: () => () => undefined, // the broker runs the group
    close: async () => undefined,
  };
});
