/**
 * What `tributary reset <appId>` deletes, and deleting it: like Kafka Streams' application reset
 * tool, it removes what lets an application resume (its group offsets, its changelog topics, its DLQ
 * progress and, when asked, its local state folder), so that the next start processes its input from
 * the beginning with empty state. Input topics and the DLQ topic are the user's data and are kept.
 *
 * Which changelog topics are the app's: they are named `<appId>-<store>-changelog` and app ids may
 * contain `-`, so a topic `app-2-x-changelog` could be store `2-x` of app `app` or store `x` of app
 * `app-2`. The rule (see `changelogTopicsOfApp`): a topic belongs to the LONGEST app id known on the
 * cluster that it starts with (followed by `-` and a non-empty store part). An app id is known when
 * its checkpoint changelog `<id>-checkpoint-changelog` exists (every app with changelogs has one) or a
 * consumer group of that id exists (every app that committed offsets has one); the app being reset is
 * always known. So resetting `app` never deletes `app-2`'s topics, and a topic whose owner is
 * ambiguous is left alone and named, never deleted by guess: a destructive tool errs towards keeping.
 */
import { rm, stat } from 'node:fs/promises';
import { join } from 'node:path';
import { CHECKPOINT_STORE } from '../core/task.js';
import { changelogTopic } from './changelog.js';

const CHANGELOG_SUFFIX = '-changelog';

/** A member of a consumer group, as a reset names it when it refuses. */
export interface GroupMemberSummary {
  memberId: string;
  clientId: string;
  host: string;
}

/** The Kafka calls a reset makes; tools only, never the processing path. */
export interface ResetAdmin {
  /** Every topic of the cluster. */
  listTopics(): Promise<string[]>;
  /** Every consumer group the cluster knows (including those without members that hold offsets). */
  listGroups(): Promise<string[]>;
  /** The current members of each group asked about (none for an empty or unknown group). */
  groupMembers(groupIds: readonly string[]): Promise<Map<string, GroupMemberSummary[]>>;
  deleteTopics(topics: readonly string[]): Promise<void>;
  /** Deletes the groups' offsets and metadata; a group that is already gone is not an error. */
  deleteGroups(groupIds: readonly string[]): Promise<void>;
  close(): Promise<void>;
}

/** The consumer group holding the offsets of the DLQ deliveries (see delivery.ts). */
export function dlqProgressGroup(appId: string): string {
  return `${appId}.dlq-progress`;
}

/** The prefix of the groups an instance's changelog reader joins (one per incarnation; see instance.ts). */
export function restoreGroupPrefix(appId: string): string {
  return `${appId}.restore.`;
}

/** A changelog topic left alone because it looks like another app's. */
export interface ForeignTopic {
  topic: string;
  /** The longer app id the topic is attributed to. */
  owner: string;
}

/** The app's changelog topics among `topics`, and those that match the pattern but belong to a longer app id. */
export function changelogTopicsOfApp(
  appId: string,
  topics: readonly string[],
  groups: readonly string[] = [],
): { topics: string[]; foreign: ForeignTopic[] } {
  const checkpointSuffix = changelogTopic('', CHECKPOINT_STORE).slice(1); // `checkpoint-changelog`
  const known = new Set<string>([appId]);
  for (const topic of topics)
    if (topic.endsWith(`-${checkpointSuffix}`)) known.add(topic.slice(0, -checkpointSuffix.length - 1));
  for (const group of groups) known.add(group);

  const mine: string[] = [];
  const foreign: ForeignTopic[] = [];
  for (const topic of [...topics].sort()) {
    if (!hasStorePart(topic, appId)) continue;
    let owner = appId;
    for (const candidate of known)
      if (candidate.length > owner.length && hasStorePart(topic, candidate)) owner = candidate;
    if (owner === appId) mine.push(topic);
    else foreign.push({ topic, owner });
  }
  return { topics: mine, foreign };
}

/** True when `topic` is `<appId>-<store>-changelog` with a non-empty store part. */
function hasStorePart(topic: string, appId: string): boolean {
  return (
    topic.startsWith(`${appId}-`) &&
    topic.endsWith(CHANGELOG_SUFFIX) &&
    topic.length > appId.length + 1 + CHANGELOG_SUFFIX.length
  );
}

export interface ResetPlan {
  appId: string;
  /** The consumer groups to delete: the app's offsets, its DLQ progress, its changelog readers'. */
  groups: string[];
  /** The app's changelog topics. */
  topics: string[];
  /** Topics matching `<appId>-*-changelog` left alone, attributed to a longer app id. */
  foreign: ForeignTopic[];
  /** `<stateDir>/<appId>` when a state directory was given and that folder exists. */
  stateFolder: string | undefined;
  /** The state folder asked for but absent (nothing to delete there). */
  missingStateFolder: string | undefined;
}

/** What to delete for `appId`, from the cluster's topics and groups (nothing is changed). */
export async function planReset(
  admin: Pick<ResetAdmin, 'listTopics' | 'listGroups'>,
  appId: string,
  stateDir?: string,
): Promise<ResetPlan> {
  const [topics, groups] = await Promise.all([admin.listTopics(), admin.listGroups()]);
  const { topics: mine, foreign } = changelogTopicsOfApp(appId, topics, groups);
  const folder = stateDir === undefined ? undefined : join(stateDir, appId);
  const folderExists = folder !== undefined && (await isDirectory(folder));
  return {
    appId,
    groups: groupsOfApp(appId, groups),
    topics: mine,
    foreign,
    stateFolder: folderExists ? folder : undefined,
    missingStateFolder: folder !== undefined && !folderExists ? folder : undefined,
  };
}

/** The app's own group, its DLQ-progress group and its changelog readers' groups, among `groups`. */
export function groupsOfApp(appId: string, groups: readonly string[]): string[] {
  const restore = restoreGroupPrefix(appId);
  return [...groups]
    .filter((group) => group === appId || group === dlqProgressGroup(appId) || group.startsWith(restore))
    .sort();
}

/** Members of the plan's groups: an instance still running would recreate everything a reset deletes. */
export async function activeMembers(
  admin: Pick<ResetAdmin, 'groupMembers'>,
  plan: ResetPlan,
): Promise<Array<GroupMemberSummary & { group: string }>> {
  if (plan.groups.length === 0) return [];
  const members = await admin.groupMembers(plan.groups);
  return [...members].flatMap(([group, list]) => list.map((member) => ({ group, ...member })));
}

export function planIsEmpty(plan: ResetPlan): boolean {
  return plan.groups.length === 0 && plan.topics.length === 0 && plan.stateFolder === undefined;
}

/** Deletes what the plan lists: the groups first (offsets), then the changelog topics, then the folder. */
export async function executeReset(admin: ResetAdmin, plan: ResetPlan): Promise<void> {
  if (plan.groups.length > 0) await admin.deleteGroups(plan.groups);
  if (plan.topics.length > 0) await admin.deleteTopics(plan.topics);
  if (plan.stateFolder !== undefined) await rm(plan.stateFolder, { recursive: true, force: true });
}

async function isDirectory(path: string): Promise<boolean> {
  try {
    return (await stat(path)).isDirectory();
  } catch {
    return false;
  }
}
