// The record collector on kafkajs and the real broker (the fake runs the same scenario in
// test/unit/runtime/record-collector.test.ts).
import pino from 'pino';
import { kafkaSettingsOf, resolveConfig } from '../../../src/runtime/config.js';
import { createKafkajsClient } from '../../../src/runtime/kafka/kafkajs/client.js';
import { brokers } from '../../helpers/services.js';
import { recordCollectorTests } from '../../helpers/record-collector-scenario.js';

recordCollectorTests('kafkajs on the broker', () =>
  createKafkajsClient(
    kafkaSettingsOf(resolveConfig({ appId: 'record-collector', brokers, handleSignals: false }, {})),
    pino({ level: 'silent' }),
  ),
);
