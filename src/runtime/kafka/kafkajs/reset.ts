/** The ResetAdmin of app-reset.ts on a kafkajs admin client (same connection settings as the app's). */
import type { DeleteGroupsResult } from 'kafkajs';
import { Kafka } from 'kafkajs';
import type { Logger } from 'pino';
import type { GroupMemberSummary, ResetAdmin } from '../../app-reset.js';
import type { KafkaSettings } from '../../config.js';
import { kafkajsConfigOf } from './client.js';

/** How long the broker may take to delete the topics before the call fails. */
const DELETE_TOPICS_TIMEOUT_MS = 30_000;

export async function createKafkajsResetAdmin(settings: KafkaSettings, logger: Logger): Promise<ResetAdmin> {
  const admin = new Kafka(kafkajsConfigOf(settings, logger)).admin();
  await admin.connect();
  return {
    listTopics: () => admin.listTopics(),
    async listGroups() {
      return (await admin.listGroups()).groups.map((group) => group.groupId);
    },
    async groupMembers(groupIds) {
      const members = new Map<string, GroupMemberSummary[]>();
      if (groupIds.length === 0) return members;
      for (const group of (await admin.describeGroups([...groupIds])).groups)
        members.set(
          group.groupId,
          group.members.map(({ memberId, clientId, clientHost }) => ({
            memberId,
            clientId,
            host: clientHost,
          })),
        );
      return members;
    },
    async deleteTopics(topics) {
      if (topics.length > 0)
        await admin.deleteTopics({ topics: [...topics], timeout: DELETE_TOPICS_TIMEOUT_MS });
    },
    async deleteGroups(groupIds) {
      if (groupIds.length === 0) return;
      try {
        await admin.deleteGroups([...groupIds]);
      } catch (error) {
        // A group without offsets may vanish by itself between listing and deleting: that is the goal.
        if (onlyGroupsNotFound(error)) return;
        const failed = failedGroups(error);
        if (failed.length === 0) throw error;
        throw new Error(
          `could not delete ${failed.map(({ groupId, error: e }) => `group ${groupId} (${e?.type ?? 'unknown error'})`).join(', ')}` +
            (failed.some(({ error: e }) => e?.type === 'NON_EMPTY_GROUP')
              ? ': a member joined it meanwhile'
              : ''),
          { cause: error },
        );
      }
    },
    close: () => admin.disconnect(),
  };
}

/** The groups a KafkaJSDeleteGroupsError (recognised by shape: the class is not a named ESM export) reports. */
function groupResults(error: unknown): DeleteGroupsResult[] {
  if (!(error instanceof Error) || error.name !== 'KafkaJSDeleteGroupsError') return [];
  return (error as Error & { groups?: DeleteGroupsResult[] }).groups ?? [];
}

function failedGroups(error: unknown): DeleteGroupsResult[] {
  return groupResults(error).filter((group) => group.error !== undefined);
}

function onlyGroupsNotFound(error: unknown): boolean {
  const failed = failedGroups(error);
  return (
    groupResults(error).length > 0 && failed.every((group) => group.error?.type === 'GROUP_ID_NOT_FOUND')
  );
}
