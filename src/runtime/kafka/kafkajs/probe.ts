/** KafkaClient.probe on kafkajs: one quick attempt per broker, and what a failure means in one line. */
import { Kafka, logLevel as KafkaLogLevel } from 'kafkajs';
import type { KafkaConfig } from 'kafkajs';
import { KafkaProbeError } from '../client.js';

/** See KafkaClient.probe. Each broker alone, one attempt, kafkajs logging off (its retries are what we avoid). */
export async function probeBrokers(brokers: readonly string[], base: KafkaConfig): Promise<string[]> {
  const timeoutMs = base.connectionTimeout ?? 3000;
  const probeOne = async (broker: string): Promise<string | undefined> => {
    const kafka = new Kafka({
      ...base,
      brokers: [broker],
      logLevel: KafkaLogLevel.NOTHING,
      retry: { retries: 0 },
      requestTimeout: Math.max(timeoutMs, 3000),
    });
    const admin = kafka.admin({ retry: { retries: 0 } });
    try {
      await admin.connect();
      await admin.describeCluster();
      return undefined;
    } catch (error) {
      return explainProbeFailure(broker, error, timeoutMs);
    } finally {
      await admin.disconnect().catch(() => undefined);
    }
  };
  // In parallel: a cluster that is down costs one timeout, not one per broker.
  const problems = (await Promise.all(brokers.map(probeOne))).filter(
    (problem): problem is string => problem !== undefined,
  );
  // kafkajs does not move on from a seed that refuses its requests (it does from one that is down):
  // a controller address anywhere in the list is fatal, a broker down beside others is a warning.
  const controllers = problems.filter((problem) => problem.includes(KRAFT_CONTROLLER));
  if (controllers.length > 0) throw new KafkaProbeError(controllers.join('; '));
  if (problems.length < brokers.length) return problems;
  throw new KafkaProbeError(
    problems.length === 1 ? problems[0]! : `no Kafka broker answered: ${problems.join('; ')}`,
  );
}

const KRAFT_CONTROLLER = 'answered like a KRaft controller, not a broker';

/** What a failed probe of one broker means, and what to do about it, in one line. */
function explainProbeFailure(broker: string, error: unknown, timeoutMs: number): string {
  const name = error instanceof Error ? error.name : '';
  const cause = error instanceof Error && error.cause instanceof Error ? error.cause.message : '';
  const message = `${error instanceof Error ? error.message : String(error)} ${cause}`;
  const fixBrokers = 'check brokers (TRIBUTARY_BROKERS)';
  if (name === 'KafkaJSServerDoesNotSupportApiKey' || /does not support the requested API/.test(message)) {
    // A KRaft controller listener speaks the Kafka protocol but refuses the client APIs (Metadata).
    return (
      `Kafka at ${broker} ${KRAFT_CONTROLLER} (it refuses client requests): ` +
      'point brokers at the broker listener (usually 9092)'
    );
  }
  if (message.includes('ECONNREFUSED'))
    return `Kafka at ${broker}: connection refused, nothing listens there; ${fixBrokers}`;
  if (message.includes('ENOTFOUND') || message.includes('EAI_AGAIN'))
    return `Kafka at ${broker}: host not found; ${fixBrokers}`;
  if (/timeout/i.test(message))
    return `Kafka at ${broker}: no answer within ${timeoutMs} ms (host down or firewalled?); ${fixBrokers}`;
  return `Kafka at ${broker}: ${message.trim()} (TLS or SASL settings that do not match the listener?); ${fixBrokers}`;
}
