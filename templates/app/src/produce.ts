/**
 * Sends a few page views to the input topic, to see the app at work: `npm run produce -- 1000`.
 */
import { Kafka, logLevel } from 'kafkajs';
import type { PageView } from './page-views.js';

const brokers = (process.env.TRIBUTARY_BROKERS ?? '127.0.0.1:9092').split(',');
const topic = process.env.PAGE_VIEWS_TOPIC ?? 'page-views';
const total = Number(process.argv[2] ?? 100);
const pages = ['/', '/pricing', '/docs', '/blog'];

const kafka = new Kafka({ brokers, logLevel: logLevel.ERROR });
const admin = kafka.admin();
await admin.connect();
// Does nothing when the topic exists; 4 partitions let up to 4 instances share the work.
await admin.createTopics({ topics: [{ topic, numPartitions: 4 }], waitForLeaders: true });
await admin.disconnect();
const producer = kafka.producer();
await producer.connect();
const now = Date.now();
const views: PageView[] = Array.from({ length: total }, (_, i) => ({
  page: pages[i % pages.length] as string,
  user: `user-${i % 17}`,
  time: now - (total - i) * 10,
}));
await producer.send({
  topic,
  messages: views.map((view) => ({ key: view.page, value: JSON.stringify(view) })),
});
await producer.disconnect();
console.log(`sent ${total} page views to ${topic}`);
