/**
 * `tributary dlq <appId>`: lists the dead letters of an application with their reasons and source
 * positions, and with `--replay` re-publishes the selected ones (their original key, value, headers
 * and timestamp) to their source topic, or to `--to <topic>`, once the cause is fixed.
 */
import { createInterface } from 'node:readline/promises';
import type { Command } from 'commander';
import { pino } from 'pino';
import { dlqTopicOf, kafkaSettingsOf, resolveConfig } from '../runtime/config.js';
import type { StoredDeadLetter } from '../runtime/dead-letters.js';
import { listDeadLetters, replayMessagesOf } from '../runtime/dead-letters.js';
import { TopicNotFoundError } from '../runtime/kafka/client.js';
import { createKafkajsClient } from '../runtime/kafka/kafkajs/client.js';
import { createKafkajsTopicTools } from '../runtime/kafka/kafkajs/topic-tools.js';

interface DlqOptions {
  topic?: string;
  brokers?: string;
  reason?: string;
  sourcePartition?: number;
  limit?: number;
  replay?: boolean;
  to?: string;
  yes?: boolean;
}

function wholeNumber(raw: string): number {
  if (!/^\d+$/.test(raw.trim())) throw new Error(`not a whole number: ${raw}`);
  return Number(raw);
}

export function registerDlqCommand(program: Command): void {
  program
    .command('dlq')
    .argument('<appId>', 'the application whose dead letters to read')
    .description('list dead letters with their reasons and source positions; --replay re-publishes them')
    .option('--topic <topic>', 'the DLQ topic (default: TRIBUTARY_DLQ_TOPIC, else <appId>.dlq)')
    .option('--brokers <list>', 'comma-separated brokers (default: TRIBUTARY_BROKERS, else 127.0.0.1:9092)')
    .option('--reason <reasons>', 'only these reasons, comma-separated (e.g. decode-failed)')
    .option(
      '--source-partition <n>',
      'only dead letters from this partition of their source topic',
      wholeNumber,
    )
    .option('--limit <n>', 'at most n dead letters, oldest first', wholeNumber)
    .option('--replay', 're-publish the selected dead letters to their source topic')
    .option('--to <topic>', 'with --replay: publish to this topic instead')
    .option('--yes', 'with --replay: do not ask for confirmation')
    .action((appId: string, options: DlqOptions) => runDlq(appId, options));
}

async function runDlq(appId: string, options: DlqOptions): Promise<void> {
  if ((options.to !== undefined || options.yes === true) && options.replay !== true) {
    throw new Error('--to and --yes only apply with --replay');
  }
  const resolved = resolveConfig({ appId, handleSignals: false });
  const config = {
    ...resolved,
    // The argument, not TRIBUTARY_APP_ID: the environment may be another app's.
    appId,
    brokers: options.brokers?.split(',').map((broker) => broker.trim()) ?? resolved.brokers,
  };
  const topic = options.topic ?? dlqTopicOf(config);
  // kafkajs' own warnings would bury the answer; real failures surface as the command's error.
  const logger = pino({ level: 'error' }, pino.destination(2));
  const settings = kafkaSettingsOf(config);
  for (const note of await createKafkajsClient(settings, logger).probe()) process.stderr.write(`${note}\n`);

  const tools = createKafkajsTopicTools(settings, logger);
  try {
    const listing = await listDeadLetters(tools, topic, {
      ...(options.reason === undefined ? {} : { reasons: options.reason.split(',').map((r) => r.trim()) }),
      ...(options.sourcePartition === undefined ? {} : { sourcePartition: options.sourcePartition }),
      ...(options.limit === undefined ? {} : { limit: options.limit }),
    }).catch((error: unknown) => {
      if (error instanceof TopicNotFoundError) {
        throw new Error(
          `${error.message}: ${appId} has written no dead letters yet, or its DLQ is another topic (--topic)`,
        );
      }
      throw error;
    });
    const out = (line: string) => process.stdout.write(`${line}\n`);
    if (listing.letters.length > 0) for (const line of formatTable(listing.letters)) out(line);
    out(
      `${listing.letters.length} of ${listing.total} dead letters in ${topic}` +
        (listing.foreign > 0 ? ` (${listing.foreign} other records skipped)` : ''),
    );
    if (options.replay !== true || listing.letters.length === 0) return;

    const messages = replayMessagesOf(listing.letters, options.to);
    const targets = [...new Set(messages.map((message) => message.topic))].join(', ');
    if (options.yes !== true && !(await confirm(`Replay ${messages.length} records to ${targets}?`))) {
      throw new Error('replay not confirmed; nothing published (pass --yes to skip the question)');
    }
    await tools.publish(messages);
    out(`replayed ${messages.length} records to ${targets}`);
  } finally {
    await tools.close();
  }
}

/** Asks on the terminal; without one (a script, CI) there is nobody to ask, so the answer is no. */
async function confirm(question: string): Promise<boolean> {
  if (!process.stdin.isTTY) return false;
  const readline = createInterface({ input: process.stdin, output: process.stderr });
  try {
    return /^y(es)?$/i.test((await readline.question(`${question} [y/N] `)).trim());
  } finally {
    readline.close();
  }
}

const ERROR_WIDTH = 100;

function formatTable(letters: readonly StoredDeadLetter[]): string[] {
  const rows = letters.map(({ dlqPartition, dlqOffset, letter }) => {
    const { record } = letter;
    const message = letter.message.replace(/\s+/g, ' ');
    return [
      `${dlqPartition}/${dlqOffset}`,
      letter.reason,
      `${record.topic}/${record.partition}/${record.offset}`,
      Number.isFinite(record.timestamp) ? new Date(record.timestamp).toISOString() : String(record.timestamp),
      message.length > ERROR_WIDTH ? `${message.slice(0, ERROR_WIDTH - 1)}…` : message,
    ];
  });
  const header = [
    'DLQ PARTITION/OFFSET',
    'REASON',
    'SOURCE TOPIC/PARTITION/OFFSET',
    'SOURCE TIMESTAMP',
    'ERROR',
  ];
  const widths = header.map((title, column) =>
    Math.max(title.length, ...rows.map((row) => row[column]!.length)),
  );
  return [header, ...rows].map((row) =>
    row.map((cell, column) => (column === row.length - 1 ? cell : cell.padEnd(widths[column]!))).join('  '),
  );
}
