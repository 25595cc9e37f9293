/**
 * Waits for an instance's input topics to exist before it joins its group: an instance deployed
 * before its topics (a new user, a deploy order) waits and says how to create them, instead of
 * exiting or sitting in the group silently without partitions.
 */
import type { Logger } from 'pino';
import { setTimeout as sleep } from 'node:timers/promises';
import type { KafkaAdmin, TopicDescription } from './kafka/client.js';

export interface TopicWaitOptions {
  logger: Logger;
  /** Ends the wait early (the instance is stopping). */
  signal: AbortSignal;
  /** Called with the topics still missing after each check (empty once they all exist). */
  onMissing: (topics: string[]) => void;
  /** How often the topics are described again. */
  pollMs?: number;
  /** How often the missing topics are logged (the first check logs at once). */
  logEveryMs?: number;
}

/**
 * Resolves with every topic's description once they all exist (the changelog topics are sized from
 * them), or undefined if the signal aborted the wait first.
 */
export async function waitForTopics(
  admin: KafkaAdmin,
  topics: readonly string[],
  options: TopicWaitOptions,
): Promise<Map<string, TopicDescription> | undefined> {
  const { logger, signal, onMissing, pollMs = 1_000, logEveryMs = 10_000 } = options;
  let loggedAt: number | undefined;
  while (!signal.aborted) {
    const described = new Map<string, TopicDescription>();
    const missing: string[] = [];
    for (const topic of topics) {
      const description = await admin.describeTopic(topic);
      if (description === undefined) missing.push(topic);
      else described.set(topic, description);
    }
    onMissing(missing);
    if (missing.length === 0) {
      if (loggedAt !== undefined) logger.info({ topics }, 'input topics exist; starting');
      return described;
    }
    if (loggedAt === undefined || Date.now() - loggedAt >= logEveryMs) {
      loggedAt = Date.now();
      logger.warn({ missing }, missingTopicsMessage(missing));
    }
    // Rejects when the signal aborts: the loop's condition then ends the wait.
    await sleep(pollMs, undefined, { signal }).catch(() => undefined);
  }
  return undefined;
}

/** One line naming the missing topics and how to create them. */
export function missingTopicsMessage(missing: readonly string[]): string {
  const create = missing
    .map((topic) => `kafka-topics.sh --bootstrap-server <broker> --create --topic ${topic} --partitions <n>`)
    .join('; ');
  const names = missing.join(', ');
  return `waiting for input topic${missing.length > 1 ? 's' : ''} ${names} to exist; create ${missing.length > 1 ? 'them' : 'it'}, e.g. ${create}`;
}
