import assert from 'node:assert/strict';
import { test } from 'node:test';
import { logLevel } from 'kafkajs';
import { pino } from 'pino';
import { kafkajsLogCreator, pinoLevelOf } from '../../../src/runtime/kafka/kafkajs/log.js';

/** A pino logger at `level` whose lines are parsed into `lines`. */
function capturingLogger(level: string) {
  const lines: Array<Record<string, unknown>> = [];
  const logger = pino(
    { level, base: { app: 'test-app' } },
    { write: (line: string) => lines.push(JSON.parse(line) as Record<string, unknown>) },
  );
  return { logger, lines };
}

test('kafkajs levels go one step down: its errors are warnings, its warnings info', () => {
  assert.equal(
    pinoLevelOf(logLevel.ERROR, 'Response Metadata(key: 3, version: 6)', 'Connection refused'),
    'warn',
  );
  assert.equal(pinoLevelOf(logLevel.WARN, 'Consumer group received unsubscribed topics', undefined), 'info');
  assert.equal(pinoLevelOf(logLevel.INFO, 'Starting', undefined), 'debug');
});

test('known-benign kafkajs messages are debug lines, not warnings', () => {
  assert.equal(
    pinoLevelOf(
      logLevel.WARN,
      'Limiting retries for the idempotent producer may invalidate EoS guarantees',
      undefined,
    ),
    'debug',
  );
  assert.equal(
    pinoLevelOf(
      logLevel.ERROR,
      'Response Heartbeat(key: 12, version: 3)',
      'The group is rebalancing, so a rejoin is needed',
    ),
    'debug',
  );
  assert.equal(pinoLevelOf(logLevel.ERROR, 'The group is rebalancing, re-joining', undefined), 'debug');
  // A transaction step racing the previous one's completion on the broker: kafkajs retries it.
  const concurrent =
    'The producer attempted to update a transaction while another concurrent operation on the same transaction was ongoing';
  assert.equal(
    pinoLevelOf(logLevel.ERROR, 'Response AddPartitionsToTxn(key: 24, version: 1)', concurrent),
    'debug',
  );
  assert.equal(pinoLevelOf(logLevel.ERROR, `Failed to send messages: ${concurrent}`, undefined), 'debug');
  assert.equal(
    pinoLevelOf(logLevel.ERROR, 'Failed to send messages: Broker: Message size too large', undefined),
    'warn',
    'another send failure still shows',
  );
  assert.equal(
    pinoLevelOf(
      logLevel.ERROR,
      'Response FindCoordinator(key: 10, version: 2)',
      'The coordinator is not available',
    ),
    'debug',
  );
  assert.equal(
    pinoLevelOf(
      logLevel.ERROR,
      'Response JoinGroup(key: 11, version: 5)',
      "The coordinator is loading and hence can't process requests",
    ),
    'debug',
  );
  // The same request failing for another reason is still shown.
  assert.equal(
    pinoLevelOf(
      logLevel.ERROR,
      'Response Heartbeat(key: 12, version: 3)',
      'The coordinator is not aware of this member',
    ),
    'warn',
  );
});

test('retriable coordinator answers and the partitioner notice are debug; a real error still shows', () => {
  // A transactional producer on a fresh broker: kafkajs finds the coordinator again and retries.
  assert.equal(
    pinoLevelOf(
      logLevel.ERROR,
      'Response InitProducerId(key: 22, version: 1)',
      "The coordinator is loading and hence can't process requests",
    ),
    'debug',
  );
  assert.equal(
    pinoLevelOf(
      logLevel.ERROR,
      'Response TxnOffsetCommit(key: 28, version: 0)',
      'This is not the correct coordinator',
    ),
    'debug',
  );
  assert.equal(
    pinoLevelOf(
      logLevel.WARN,
      'KafkaJS v2.0.0 switched default partitioner. To retain the same partitioning behavior as in previous versions, create the producer with the option "createPartitioner: Partitioners.LegacyPartitioner".',
      undefined,
    ),
    'debug',
  );
  assert.equal(
    pinoLevelOf(
      logLevel.ERROR,
      'Response InitProducerId(key: 22, version: 1)',
      'Not authorized to access transactional id',
    ),
    'warn',
    'the same request refused for another reason is not hidden',
  );
  const { logger, lines } = capturingLogger('info');
  const log = kafkajsLogCreator(logger)(logLevel.WARN);
  const entry = (message: string, error: string) =>
    log({
      namespace: 'Connection',
      level: logLevel.ERROR,
      label: 'ERROR',
      log: { timestamp: '', logger: 'kafkajs', message, error },
    });
  entry(
    'Response InitProducerId(key: 22, version: 1)',
    "The coordinator is loading and hence can't process requests",
  );
  entry(
    'Response Produce(key: 0, version: 7)',
    'The request included a message larger than the max message size',
  );
  assert.deepEqual(
    lines.map((line) => line['error']),
    ['The request included a message larger than the max message size'],
  );
});

test("kafkajs lines come out in the app logger's shape, tagged component kafkajs", () => {
  const { logger, lines } = capturingLogger('info');
  const log = kafkajsLogCreator(logger)(logLevel.WARN);
  log({
    namespace: 'Connection',
    level: logLevel.ERROR,
    label: 'ERROR',
    log: {
      timestamp: '2026-11-29T16:00:00.000Z',
      logger: 'kafkajs',
      message: 'Response Metadata(key: 3, version: 6)',
      broker: '127.0.0.1:9092',
      error: 'Connection refused',
    },
  });
  log({
    namespace: 'Producer',
    level: logLevel.WARN,
    label: 'WARN',
    log: {
      timestamp: '2026-11-29T16:00:00.000Z',
      logger: 'kafkajs',
      message: 'Limiting retries for the idempotent producer may invalidate EoS guarantees',
    },
  });
  assert.equal(lines.length, 1, 'the benign warning is below the info level');
  const [line] = lines;
  assert.equal(line?.['level'], 40);
  assert.equal(line?.['msg'], 'Response Metadata(key: 3, version: 6)');
  assert.equal(line?.['component'], 'kafkajs');
  assert.equal(line?.['namespace'], 'Connection');
  assert.equal(line?.['error'], 'Connection refused');
  assert.equal(line?.['app'], 'test-app');
  assert.equal(typeof line?.['time'], 'number');
  assert.equal(line?.['timestamp'], undefined, "kafkajs' own timestamp is not repeated");
  assert.equal(line?.['logger'], undefined);
});
