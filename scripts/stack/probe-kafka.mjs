// Readiness probe for the stack script: a real metadata request to the broker(s) given as argv[2].
import { Kafka, logLevel } from 'kafkajs';

const brokers = (process.argv[2] ?? '127.0.0.1:9092').split(',');
const kafka = new Kafka({
  clientId: 'tributary-stack-probe',
  brokers,
  logLevel: logLevel.NOTHING,
  retry: { retries: 0 },
  connectionTimeout: 2000,
});
const admin = kafka.admin();
try {
  await admin.connect();
  await admin.fetchTopicMetadata({ topics: [] });
  await admin.disconnect();
  process.exit(0);
} catch {
  process.exit(1);
}
