/**
 * Waits for an instance's input topics to exist before it joins its group: an instance deployed
 * before its topics (a new user, a deploy order) waits and says how to create them, instead of
 * exiting or sitting in the group silently without partitions.
 */
import type { Logger } from 'pino';
import type { KafkaAdmin } from './kafka/client.js';

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

/** Resolves true once every topic exists, false if the signal aborted the wait first. */
export async function waitForTopics(
  admin: KafkaAdmin,
  topics: readonly string[],
  options: TopicWaitOptions,
): Promise<boolean> {
  const { logger, signal, onMissing, pollMs = 1_000, logEveryMs = 10_000 } = options;
  let loggedAt: number | undefined;
  while (!signal.aborted) {
    const missing: string[] = [];
    for (const topic of topics) if ((await admin.describeTopic(topic)) === undefined) missing.push(topic);
    onMissing(missing);
    if (missing.length === 0) {
      if (loggedAt !== undefined) logger.info({ topics }, 'input topics exist; starting');
      return true;
    }
    if (loggedAt === undefined || Date.now() - loggedAt >= logEveryMs) {
      loggedAt = Date.now();
      logger.warn({ missing }, missingTopicsMessage(missing));
    }
    await abortableSleep(pollMs, signal);
  }
  return false;
}

/** One line naming the missing topics and how to create them. */
export function missingTopicsMessage(missing: readonly string[]): string {
  const create = missing
    .map((topic) => `kafka-topics.sh --bootstrap-server <broker> --create --topic ${topic} --partitions <n>`)
    .join('; ');
  const names = missing.join(', ');
  return `waiting for input topic${missing.length > 1 ? 's' : ''} ${names} to exist; create ${missing.length > 1 ? 'them' : 'it'}, e.g. ${create}`;
}

function abortableSleep(ms: number, signal: AbortSignal): Promise<void> {
  return new Promise((resolve) => {
    const done = (): void => {
      clearTimeout(timer);
      signal.removeEventListener('abort', done);
      resolve();
    };
    const timer = setTimeout(done, ms);
    signal.addEventListener('abort', done, { once: true });
  });
}
