import assert from 'node:assert/strict';
import { test } from 'node:test';
import { BufferedRecordCollector } from '../../../src/core/record-collector.js';
import { FakeKafka } from '../../helpers/fake-kafka.js';
import { recordCollectorTests } from '../../helpers/record-collector-scenario.js';

test('the collector keeps what was sent until a commit carried it, and what was sent meanwhile', () => {
  const collector = new BufferedRecordCollector();
  const record = (value: string) => ({ topic: 't', key: null, value: Buffer.from(value) });
  collector.send(record('a'));
  collector.send(record('b'));
  const carried = collector.pending();
  collector.send(record('c')); // during the transaction
  collector.committed(carried.length);
  assert.deepEqual(
    collector.pending().map((r) => r.value?.toString()),
    ['c'],
  );
  assert.deepEqual(
    carried.map((r) => r.value?.toString()),
    ['a', 'b'],
    'the list a transaction got is not changed',
  );
});

recordCollectorTests('the in-memory fake', () => new FakeKafka());
