/**
 * The example's own kafkajs clients (setup, generator) log through the runtime's kafkajs bridge, so a
 * demo prints one log shape and the retriable answers kafkajs handles itself stay at debug.
 */
import { Kafka, logLevel } from 'kafkajs';
import type { Logger } from 'pino';
import { kafkajsLogCreator } from '../../src/runtime/kafka/kafkajs/log.js';
import { createDefaultLogger } from '../../src/runtime/logger.js';

/** Warnings and errors only, on stderr in the App's default format, when the caller gives no logger. */
function defaultExampleLogger(): Logger {
  return createDefaultLogger({ level: process.env.TRIBUTARY_LOG_LEVEL ?? 'warn' }, 'auto');
}

export function exampleKafka(clientId: string, brokers: string[], logger?: Logger): Kafka {
  return new Kafka({
    clientId,
    brokers,
    logLevel: logLevel.WARN,
    logCreator: kafkajsLogCreator((logger ?? defaultExampleLogger()).child({ client: clientId })),
  });
}
