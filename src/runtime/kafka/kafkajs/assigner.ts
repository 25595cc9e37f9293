/**
 * The group's partition assigner on kafkajs (protocol `tributary-sticky`): each member joins with
 * what it runs and its admin URL in its subscription's user data; the leader assigns partition
 * NUMBERS with assignPartitions (assignment.ts: co-partitioned, balanced, sticky, standbys) and
 * puts each member's standbys in its assignment's user data. kafkajs hands a member only its own
 * topic-partitions, so membershipOf reads the whole view back from a DescribeGroups answer.
 */
import { AssignerProtocol } from 'kafkajs';
import type { GroupDescription, MemberAssignment, PartitionAssigner } from 'kafkajs';
import { assignPartitions } from '../assignment.js';
import type { GroupMember, GroupMembership } from '../client.js';

export const ASSIGNER_NAME = 'tributary-sticky';
/** The protocol's version, written in every subscription and assignment. */
export const ASSIGNER_VERSION = 1;

/** What a member says about itself when it joins. */
export interface MemberData {
  adminUrl?: string | undefined;
  /** Partition numbers it runs now. */
  active: readonly number[];
  /** Partition numbers it keeps a standby copy of now. */
  standby: readonly number[];
}

/** User data: JSON with a version, so that a later format can tell this one apart. */
interface MemberDataV1 {
  v: 1;
  adminUrl?: string;
  active: number[];
  standby: number[];
}

interface AssignmentDataV1 {
  v: 1;
  standby: number[];
}

export function encodeMemberData(data: MemberData): Buffer {
  const body: MemberDataV1 = { v: 1, active: [...data.active], standby: [...data.standby] };
  if (data.adminUrl !== undefined) body.adminUrl = data.adminUrl;
  return Buffer.from(JSON.stringify(body));
}

/** Tolerant: a member with other (or no) user data claims nothing and advertises no URL. */
export function decodeMemberData(buffer: Buffer | null | undefined): MemberData {
  const body = parseVersioned(buffer);
  return {
    adminUrl: typeof body?.['adminUrl'] === 'string' ? body['adminUrl'] : undefined,
    active: partitionList(body?.['active']),
    standby: partitionList(body?.['standby']),
  };
}

export function encodeAssignmentData(standby: readonly number[]): Buffer {
  const body: AssignmentDataV1 = { v: 1, standby: [...standby] };
  return Buffer.from(JSON.stringify(body));
}

export function decodeAssignmentData(buffer: Buffer | null | undefined): { standby: number[] } {
  return { standby: partitionList(parseVersioned(buffer)?.['standby']) };
}

function parseVersioned(buffer: Buffer | null | undefined): Record<string, unknown> | undefined {
  if (!buffer || buffer.length === 0) return undefined;
  try {
    const body: unknown = JSON.parse(buffer.toString('utf8'));
    if (typeof body !== 'object' || body === null || (body as { v?: unknown }).v !== 1) return undefined;
    return body as Record<string, unknown>;
  } catch {
    return undefined;
  }
}

function partitionList(value: unknown): number[] {
  if (!Array.isArray(value)) return [];
  const partitions = value.filter((p): p is number => Number.isInteger(p) && (p as number) >= 0);
  return [...new Set(partitions)].sort((a, b) => a - b);
}

export interface AssignerOptions {
  standbyReplicas: number;
  /** This member's current data, asked at every join. */
  self: () => MemberData;
}

/** The kafkajs PartitionAssigner (see the file's comment). */
export function tributaryAssigner(options: AssignerOptions): PartitionAssigner {
  return ({ cluster }) => ({
    name: ASSIGNER_NAME,
    version: ASSIGNER_VERSION,

    async assign({ members, topics }) {
      const existing = new Map(
        topics.map((topic) => [
          topic,
          new Set(cluster.findTopicPartitionMetadata(topic).map((m) => m.partitionId)),
        ]),
      );
      // Topics with fewer partitions than the others: their missing numbers are simply not handed out.
      let partitions = 0;
      for (const ids of existing.values()) for (const id of ids) partitions = Math.max(partitions, id + 1);
      const tasks = assignPartitions({
        members: members.map(({ memberId, memberMetadata }) => ({
          memberId,
          ...decodeMemberData(subscriptionData(memberMetadata)),
        })),
        partitions,
        standbyReplicas: options.standbyReplicas,
      });
      return members.map(({ memberId }) => {
        const mine = tasks.get(memberId) ?? { active: [], standby: [] };
        const assignment: Record<string, number[]> = {};
        for (const [topic, ids] of existing) {
          const assigned = mine.active.filter((p) => ids.has(p));
          if (assigned.length > 0) assignment[topic] = assigned;
        }
        return {
          memberId,
          memberAssignment: AssignerProtocol.MemberAssignment.encode({
            version: ASSIGNER_VERSION,
            assignment,
            userData: encodeAssignmentData(mine.standby),
          }),
        };
      });
    },

    protocol({ topics }) {
      return {
        name: ASSIGNER_NAME,
        metadata: AssignerProtocol.MemberMetadata.encode({
          version: ASSIGNER_VERSION,
          topics,
          userData: encodeMemberData(options.self()),
        }),
      };
    },
  });
}

/**
 * The group's view from a DescribeGroups answer: each member's advertised URL from its subscription,
 * its partitions and standbys from its assignment. Members of a group run by another assigner (a
 * rolling upgrade) show their partitions and no standbys.
 */
export function membershipOf(group: GroupDescription, self: string): GroupMembership {
  const members: GroupMember[] = group.members.map((member) => {
    const metadata = decodeMemberData(subscriptionData(member.memberMetadata));
    const assignment = assignmentOf(member.memberAssignment);
    const active = new Set<number>();
    for (const partitions of Object.values(assignment?.assignment ?? {}))
      for (const p of partitions) active.add(p);
    return {
      memberId: member.memberId,
      clientId: member.clientId,
      host: member.clientHost.replace(/^\//, ''),
      adminUrl: metadata.adminUrl,
      active: [...active].sort((a, b) => a - b),
      standby: decodeAssignmentData(assignment?.userData).standby,
    };
  });
  members.sort((a, b) => (a.memberId < b.memberId ? -1 : a.memberId > b.memberId ? 1 : 0));
  return { groupId: group.groupId, self, members };
}

/** The user data of a subscription; undefined when absent or not decodable. */
function subscriptionData(metadata: Buffer): Buffer | undefined {
  if (metadata.length === 0) return undefined;
  try {
    return AssignerProtocol.MemberMetadata.decode(metadata)?.userData;
  } catch {
    return undefined;
  }
}

function assignmentOf(buffer: Buffer): MemberAssignment | null {
  if (buffer.length === 0) return null;
  try {
    return AssignerProtocol.MemberAssignment.decode(buffer);
  } catch {
    return null;
  }
}
