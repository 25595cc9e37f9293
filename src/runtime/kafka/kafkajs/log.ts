/**
 * kafkajs' log entries as lines of the app's pino logger: one shape on the console, whichever library
 * wrote the line. kafkajs is loud about what it handles itself, so its levels go one step down, and a
 * short list of messages known to be benign goes to debug.
 */
import { logLevel as KafkaLogLevel } from 'kafkajs';
import type { LogEntry, logCreator } from 'kafkajs';
import type { Logger } from 'pino';

type PinoLevel = 'error' | 'warn' | 'info' | 'debug';

/** A kafkajs message that is routine, matched on its text and, for broker responses, the error it carries. */
interface BenignMessage {
  message: RegExp;
  error?: RegExp;
}

/**
 * Known-benign kafkajs messages, logged at debug. Each says why it needs no one's attention; a message
 * that stays a real problem (a coordinator that never comes back) ends in an error or crash of its own.
 */
export const BENIGN_KAFKAJS_MESSAGES: readonly BenignMessage[] = [
  // Printed for every idempotent producer with a retry limit. Our transactions abort when the retries
  // run out, and the checkpoint replays from the last commit, so the limit cannot break exactly-once.
  { message: /^Limiting retries for the idempotent producer may invalidate EoS guarantees/ },
  // A heartbeat answered "rebalancing" during every rebalance: kafkajs rejoins the group at once.
  { message: /^Response Heartbeat/, error: /rebalanc/i },
  { message: /^The group is rebalancing, re-joining/ },
  // A group coordinator not elected or still loading its offsets (a fresh group, a broker just
  // started): kafkajs asks again after a back-off; a coordinator that never answers fails the join.
  {
    message: /^Response (FindCoordinator|GroupCoordinator|JoinGroup|SyncGroup|OffsetFetch)/,
    error: /coordinator/i,
  },
  { message: /coordinator/i, error: /(not available|is loading|not the correct coordinator)/i },
  // Any request answered "coordinator loading / moved / not yet available" (InitProducerId of a
  // transactional producer on a fresh broker, a commit after the coordinator moved): retriable errors
  // kafkajs retries itself after finding the coordinator again.
  {
    message: /^Response \w+/,
    error: /(coordinator is loading|not the correct coordinator|coordinator is not available)/i,
  },
  // kafkajs' migration note that v2 changed the default partitioner, printed for a producer created
  // without `createPartitioner`: a note for code upgrading from kafkajs 1, not a problem of this run.
  { message: /^KafkaJS v2\.0\.0 switched default partitioner/ },
  // A task's producer fenced by the partition's new owner, as a rebalance goes: the runtime closes the
  // task and logs it with the partition (instance.ts reopenLost, checkpoint.ts handOver).
  {
    message: /^Response (AddPartitionsToTxn|AddOffsetsToTxn|TxnOffsetCommit|EndTxn|Produce)/,
    error: /old epoch/i,
  },
  { message: /^Producer attempted an operation with an old epoch/ },
  // A transaction step while the previous one is still completing on the broker (a fence, an abort, an
  // end in flight: CONCURRENT_TRANSACTIONS): kafkajs retries; a step that still fails fails the task's
  // commit, which the runtime reports itself.
  {
    message: /^Response (InitProducerId|AddPartitionsToTxn|AddOffsetsToTxn|TxnOffsetCommit|EndTxn)/,
    error: /concurrent operation on the same transaction/i,
  },
  { message: /^Failed to send messages: .*concurrent operation on the same transaction/i },
];

/** kafkajs' level, one step down: it reports as errors what it retries itself (and warns of routine). */
const QUIETER: Record<number, PinoLevel> = {
  [KafkaLogLevel.ERROR]: 'warn',
  [KafkaLogLevel.WARN]: 'info',
  [KafkaLogLevel.INFO]: 'debug',
  [KafkaLogLevel.DEBUG]: 'debug',
};

/** The pino level of a kafkajs entry: debug for a known-benign message, else one step below kafkajs'. */
export function pinoLevelOf(level: number, message: string, error: unknown): PinoLevel {
  const errorText = typeof error === 'string' ? error : error instanceof Error ? error.message : '';
  const benign = BENIGN_KAFKAJS_MESSAGES.some(
    (rule) => rule.message.test(message) && (rule.error === undefined || rule.error.test(errorText)),
  );
  return benign ? 'debug' : (QUIETER[level] ?? 'info');
}

/** A kafkajs logCreator writing through `logger`, tagged `component: kafkajs` and kafkajs' namespace. */
export function kafkajsLogCreator(logger: Logger): logCreator {
  const child = logger.child({ component: 'kafkajs' });
  return () =>
    ({ namespace, level, log }: LogEntry) => {
      // kafkajs' own timestamp and logger name would only repeat pino's `time` and our component.
      const { message, timestamp: _timestamp, logger: _logger, ...extra } = log;
      const name = pinoLevelOf(level, message, extra['error']);
      if (!child.isLevelEnabled(name)) return;
      child[name]({ namespace, ...extra }, message);
    };
}
