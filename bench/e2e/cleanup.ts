/**
 * Removes what one benchmark run created on the shared stack. Every step is best effort and reports
 * its failure instead of throwing: a failed cleanup must not hide the figures or the real error.
 */
import { createClient } from '@clickhouse/client';
import { Kafka, logLevel } from 'kafkajs';
import type { DeleteGroupsResult } from 'kafkajs';
import { totalsViewName } from '../../src/index.js';

export interface RunResources {
  brokers: string[];
  /** The input topic and the pipelines' DLQ topics; those that were never created are skipped. */
  topics: string[];
  /** App ids whose changelog topics (`<appId>-<store>-changelog`) and reader groups go too. */
  changelogsOf: string[];
  consumerGroups: string[];
  registryUrl: string;
  registrySubject: string;
  /** The rollup tables to drop (with their totals views). */
  clickhouse: { url: string; database: string; tables: string[] };
}

export async function removeRunResources(
  resources: RunResources,
  warn: (line: string) => void,
): Promise<void> {
  await removeKafkaResources(resources, warn);
  await removeRegistrySubject(resources, warn);
  const { url, database, tables } = resources.clickhouse;
  for (const table of tables) await dropRollupTable({ url, database, table }, warn);
}

async function removeKafkaResources(resources: RunResources, warn: (line: string) => void): Promise<void> {
  const kafka = new Kafka({
    clientId: 'bench-e2e-cleanup',
    brokers: resources.brokers,
    logLevel: logLevel.NOTHING,
  });
  const admin = kafka.admin();
  try {
    await admin.connect();
    const existing = new Set(await admin.listTopics());
    const isChangelogOf = (topic: string) =>
      topic.endsWith('-changelog') && resources.changelogsOf.some((appId) => topic.startsWith(`${appId}-`));
    const topics = [
      ...resources.topics.filter((topic) => existing.has(topic)),
      ...[...existing].filter(isChangelogOf),
    ];
    if (topics.length > 0) await admin.deleteTopics({ topics, timeout: 30_000 });
    // Groups outlive their members; without this, every run would leave two behind.
    const groups = new Set((await admin.listGroups()).groups.map((g) => g.groupId));
    const readerGroups = [...groups].filter((g) =>
      resources.changelogsOf.some((appId) => g.startsWith(`${appId}.restore.`)),
    );
    for (const group of [...resources.consumerGroups, ...readerGroups].filter((g) => groups.has(g))) {
      try {
        await admin.deleteGroups([group]);
      } catch (error) {
        // A group without committed offsets (the ceiling's) disappears by itself once its member left.
        if (!isOnlyGroupNotFound(error)) throw error;
      }
    }
  } catch (error) {
    warn(`cleanup: could not remove Kafka topics/groups (${describe(error)})`);
  } finally {
    await admin.disconnect().catch(() => undefined);
  }
}

/** The Confluent API soft-deletes a subject first; the permanent delete then removes it for good. */
async function removeRegistrySubject(resources: RunResources, warn: (line: string) => void): Promise<void> {
  const url = `${resources.registryUrl}/subjects/${encodeURIComponent(resources.registrySubject)}`;
  try {
    for (const target of [url, `${url}?permanent=true`]) {
      const response = await fetch(target, { method: 'DELETE' });
      if (!response.ok && response.status !== 404) throw new Error(`HTTP ${response.status} from ${target}`);
    }
  } catch (error) {
    warn(`cleanup: could not delete schema subject ${resources.registrySubject} (${describe(error)})`);
  }
}

async function dropRollupTable(
  target: { url: string; database: string; table: string },
  warn: (line: string) => void,
): Promise<void> {
  const client = createClient({ url: target.url });
  try {
    await client.command({
      query: `DROP TABLE IF EXISTS \`${target.database}\`.\`${totalsViewName(target.table)}\``,
    });
    await client.command({ query: `DROP TABLE IF EXISTS \`${target.database}\`.\`${target.table}\`` });
  } catch (error) {
    warn(`cleanup: could not drop ${target.database}.${target.table} (${describe(error)})`);
  } finally {
    await client.close();
  }
}

/** kafkajs's KafkaJSDeleteGroupsError, recognised by shape: the class is not a named ESM export. */
function isOnlyGroupNotFound(error: unknown): boolean {
  if (!(error instanceof Error) || error.name !== 'KafkaJSDeleteGroupsError') return false;
  const groups = (error as Error & { groups?: DeleteGroupsResult[] }).groups ?? [];
  return groups.every((group) => group.error === undefined || group.error.type === 'GROUP_ID_NOT_FOUND');
}

function describe(error: unknown): string {
  return error instanceof Error ? error.message : String(error);
}
