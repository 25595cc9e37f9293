// The in-memory fake passes what kafkajs on a broker passes (test/integration/kafka/conformance.test.ts).
import assert from 'node:assert/strict';
import { FakeGroupConsumer, FakeKafka } from '../../helpers/fake-kafka.js';
import { kafkaClientConformance } from '../../helpers/kafka-conformance.js';

kafkaClientConformance('the in-memory fake', async () => {
  const kafka = new FakeKafka();
  return {
    client: kafka,
    // The test drives the fake's group: one member gets every partition, learns its view, and polls.
    drive(consumer) {
      assert.ok(consumer instanceof FakeGroupConsumer);
      consumer.assignAll();
      void consumer.membership().then((view) => consumer.announce(view));
      let polling = false;
      const timer = setInterval(() => {
        if (polling) return;
        polling = true;
        void consumer.poll().finally(() => (polling = false));
      }, 5);
      return () => clearInterval(timer);
    },
    close: async () => undefined,
  };
});
