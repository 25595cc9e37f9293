/**
 * `tributary lag <appId>`: per partition of the topics the application's consumer group reads, the
 * committed offset, the end offset and the lag between them, from Kafka (the group is the appId).
 * Committed offsets trail the checkpoints by at most a commit interval (they are committed after each
 * one), so a running application shows a small lag even when it keeps up.
 */
import type { Command } from 'commander';
import { pino } from 'pino';
import { kafkaSettingsOf, resolveConfig } from '../runtime/config.js';
import type { KafkaAdmin } from '../runtime/kafka/client.js';
import { createKafkajsClient } from '../runtime/kafka/kafkajs/client.js';
import { formatTable } from './table.js';

export interface PartitionLag {
  topic: string;
  partition: number;
  /** The group's committed offset (the next record it will read); absent when it committed none. */
  committed?: bigint;
  end: bigint;
  /** Records between the committed offset (or the earliest offset, without a commit) and the end. */
  lag: bigint;
}

/** The lag of `groupId` on `topics`, or on every topic it committed offsets for. */
export async function groupLag(
  admin: KafkaAdmin,
  groupId: string,
  topics?: readonly string[],
): Promise<PartitionLag[]> {
  const consumed = topics !== undefined && topics.length > 0 ? [...topics] : await admin.groupTopics(groupId);
  if (consumed.length === 0)
    throw new Error(
      `consumer group ${groupId} has committed no offsets: is the appId right, and has the application run? ` +
        '(--topic names the topics to measure anyway)',
    );
  const rows: PartitionLag[] = [];
  for (const topic of consumed) {
    const [committed, offsets] = await Promise.all([
      admin.groupOffsets(groupId, topic),
      admin.topicOffsets(topic),
    ]);
    for (const [partition, { earliest, end }] of [...offsets].sort(([a], [b]) => a - b)) {
      const offset = committed.get(partition);
      const from = offset ?? earliest;
      rows.push({
        topic,
        partition,
        ...(offset === undefined ? {} : { committed: offset }),
        end,
        lag: end > from ? end - from : 0n,
      });
    }
  }
  return rows;
}

export function formatLag(rows: readonly PartitionLag[]): string[] {
  const total = rows.reduce((sum, row) => sum + row.lag, 0n);
  const lines = formatTable(
    ['TOPIC', 'PARTITION', 'COMMITTED', 'END', 'LAG'],
    rows.map((row) => [
      row.topic,
      String(row.partition),
      row.committed === undefined ? '-' : row.committed.toString(),
      row.end.toString(),
      row.lag.toString(),
    ]),
  );
  lines.push(`total lag ${total} over ${rows.length} partitions`);
  if (rows.some((row) => row.committed === undefined))
    lines.push('-: no committed offset yet; its lag counts from the earliest offset');
  return lines;
}

export function registerLag(program: Command): void {
  program
    .command('lag')
    .argument('<appId>', 'the application (its consumer group)')
    .description('per-partition committed offset, end offset and lag of the application, from Kafka')
    .option('--brokers <list>', 'comma-separated brokers (default: TRIBUTARY_BROKERS, else 127.0.0.1:9092)')
    .option(
      '--topic <topics>',
      'only these topics, comma-separated (default: every topic the group committed)',
    )
    .action(async (appId: string, options: { brokers?: string; topic?: string }) => {
      const resolved = resolveConfig({ appId, handleSignals: false });
      const config = {
        ...resolved,
        appId,
        brokers: options.brokers?.split(',').map((broker) => broker.trim()) ?? resolved.brokers,
      };
      // kafkajs' own warnings would bury the answer; real failures surface as the command's error.
      const kafka = createKafkajsClient(
        kafkaSettingsOf(config),
        pino({ level: 'error' }, pino.destination(2)),
      );
      for (const note of await kafka.probe()) process.stderr.write(`${note}\n`);
      const admin = await kafka.admin();
      try {
        const topics = options.topic?.split(',').map((topic) => topic.trim());
        for (const line of formatLag(await groupLag(admin, appId, topics))) process.stdout.write(`${line}\n`);
      } finally {
        await admin.close();
      }
    });
}
