/**
 * The group's assigner on the kafkajs wire format (subscriptions and assignments as the broker passes
 * them), the group's view read back from a DescribeGroups answer, and that view as the instance and
 * its admin endpoint show it (`/cluster`).
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { AssignerProtocol } from 'kafkajs';
import type { Cluster, GroupDescription, Logger as KafkajsLogger } from 'kafkajs';
import { startAdminServer } from '../../../src/admin/server.js';
import { sleep } from '../../../src/core/retry.js';
import {
  ASSIGNER_NAME,
  decodeAssignmentData,
  decodeMemberData,
  encodeMemberData,
  membershipOf,
  tributaryAssigner,
} from '../../../src/runtime/kafka/kafkajs/assigner.js';
import type { MemberData } from '../../../src/runtime/kafka/kafkajs/assigner.js';
import type { GroupMembership } from '../../../src/runtime/kafka/client.js';
import { FakeKafka } from '../../helpers/fake-kafka.js';
import {
  idsTopology,
  instanceHarness,
  startInstance,
  switchableSink,
  testConfig,
} from './instance-fixtures.js';

/** Just what the assigner asks of kafkajs' cluster: the partitions of each topic. */
function clusterWith(partitions: Record<string, number>): Cluster {
  return {
    findTopicPartitionMetadata: (topic: string) =>
      Array.from({ length: partitions[topic] ?? 0 }, (_, partitionId) => ({ partitionId })),
  } as unknown as Cluster;
}

function assignerOn(partitions: Record<string, number>, standbyReplicas: number, self: MemberData) {
  return tributaryAssigner({ standbyReplicas, self: () => self })({
    cluster: clusterWith(partitions),
    groupId: 'app',
    logger: {} as KafkajsLogger,
  });
}

/** A member's subscription as its own assigner encodes it at join time. */
function subscription(topics: string[], self: MemberData): Buffer {
  const protocol = assignerOn({}, 0, self).protocol({ topics });
  assert.equal(protocol.name, ASSIGNER_NAME);
  return protocol.metadata;
}

test('member data round-trips; anything else (another assigner, garbage) claims nothing', () => {
  const data = { adminUrl: 'http://10.0.0.5:7400', active: [3, 1], standby: [2] };
  assert.deepEqual(decodeMemberData(encodeMemberData(data)), {
    adminUrl: 'http://10.0.0.5:7400',
    active: [1, 3],
    standby: [2],
  });
  const nothing = { adminUrl: undefined, active: [], standby: [] };
  assert.deepEqual(decodeMemberData(Buffer.alloc(0)), nothing);
  assert.deepEqual(decodeMemberData(Buffer.from('not json')), nothing);
  assert.deepEqual(decodeMemberData(Buffer.from(JSON.stringify({ v: 2, active: [1] }))), nothing);
  assert.deepEqual(decodeAssignmentData(undefined), { standby: [] });
});

test('the leader assigns partition p of every topic to one member; topics with fewer partitions get what exists', async () => {
  const topics = ['clicks', 'views'];
  const partitions = { clicks: 4, views: 2 };
  const leader = assignerOn(partitions, 1, { active: [], standby: [] });
  const assignments = await leader.assign({
    topics,
    members: [
      {
        memberId: 'b-1',
        memberMetadata: subscription(topics, { adminUrl: 'http://b:7400', active: [], standby: [] }),
      },
      {
        memberId: 'a-1',
        memberMetadata: subscription(topics, { adminUrl: 'http://a:7400', active: [], standby: [] }),
      },
    ],
  });
  assert.deepEqual(assignments.map((a) => a.memberId).sort(), ['a-1', 'b-1']);
  const decoded = new Map(
    assignments.map(({ memberId, memberAssignment }) => [
      memberId,
      AssignerProtocol.MemberAssignment.decode(memberAssignment)!,
    ]),
  );
  const ownerOf = new Map<string, string>();
  for (const [memberId, { assignment }] of decoded) {
    for (const [topic, ids] of Object.entries(assignment))
      for (const p of ids) ownerOf.set(`${topic}-${p}`, memberId);
  }
  assert.deepEqual([...ownerOf.keys()].sort(), [
    'clicks-0',
    'clicks-1',
    'clicks-2',
    'clicks-3',
    'views-0',
    'views-1',
  ]);
  assert.equal(ownerOf.get('views-0'), ownerOf.get('clicks-0'), 'partition 0 of both topics on one member');
  assert.equal(ownerOf.get('views-1'), ownerOf.get('clicks-1'), 'partition 1 of both topics on one member');
  // Each member's standbys (user data) are the partitions the other runs.
  for (const [memberId, { userData }] of decoded) {
    const other = [...decoded].find(([id]) => id !== memberId)![1];
    const otherActive = [...new Set(Object.values(other.assignment).flat())].sort((x, y) => x - y);
    assert.deepEqual(decodeAssignmentData(userData).standby, otherActive);
  }
});

test('the leader keeps what members report they run (sticky across rebalances)', async () => {
  const topics = ['events'];
  const leader = assignerOn({ events: 4 }, 0, { active: [], standby: [] });
  const assignments = await leader.assign({
    topics,
    members: [
      { memberId: 'a', memberMetadata: subscription(topics, { active: [2, 3], standby: [] }) },
      { memberId: 'b', memberMetadata: subscription(topics, { active: [0, 1], standby: [] }) },
    ],
  });
  const of = (id: string) =>
    AssignerProtocol.MemberAssignment.decode(assignments.find((a) => a.memberId === id)!.memberAssignment)!
      .assignment;
  assert.deepEqual(of('a'), { events: [2, 3] });
  assert.deepEqual(of('b'), { events: [0, 1] });
});

test("the group's view from DescribeGroups: URLs from subscriptions, partitions and standbys from assignments", () => {
  const assignment = (active: Record<string, number[]>, standby: number[]) =>
    AssignerProtocol.MemberAssignment.encode({
      version: 1,
      assignment: active,
      userData: Buffer.from(JSON.stringify({ v: 1, standby })),
    });
  const group: GroupDescription = {
    groupId: 'app',
    protocol: ASSIGNER_NAME,
    protocolType: 'consumer',
    state: 'Stable',
    members: [
      {
        memberId: 'm-2',
        clientId: 'app-two',
        clientHost: '/10.0.0.2',
        memberMetadata: subscription(['events'], { adminUrl: 'http://two:7400', active: [], standby: [] }),
        memberAssignment: assignment({ events: [1, 3] }, [0, 2]),
      },
      {
        memberId: 'm-1',
        clientId: 'app-one',
        clientHost: '/10.0.0.1',
        // A member of an older release: round-robin subscription without user data.
        memberMetadata: AssignerProtocol.MemberMetadata.encode({
          version: 0,
          topics: ['events'],
          userData: Buffer.alloc(0),
        }),
        memberAssignment: AssignerProtocol.MemberAssignment.encode({
          version: 0,
          assignment: { events: [2, 0] },
          userData: Buffer.alloc(0),
        }),
      },
    ],
  };
  assert.deepEqual(membershipOf(group, 'm-2'), {
    groupId: 'app',
    self: 'm-2',
    members: [
      {
        memberId: 'm-1',
        clientId: 'app-one',
        host: '10.0.0.1',
        adminUrl: undefined,
        active: [0, 2],
        standby: [],
      },
      {
        memberId: 'm-2',
        clientId: 'app-two',
        host: '10.0.0.2',
        adminUrl: 'http://two:7400',
        active: [1, 3],
        standby: [0, 2],
      },
    ],
  });
});

const harness = instanceHarness();

test('the instance joins with its standby count and admin URL, and shows the group and its standbys at /cluster', async () => {
  const kafka = new FakeKafka();
  const config = testConfig(harness.dir, { standbyReplicas: 1 });
  const instance = harness.track(await startInstance(kafka, idsTopology(switchableSink()), config));
  const consumer = kafka.consumer('app');
  // startInstance starts without an admin URL; the App passes the advertised one.
  assert.deepEqual(consumer.options, { standbyReplicas: 1, adminUrl: undefined });

  const admin = await startAdminServer(instance, { host: '127.0.0.1', port: 0, describe: () => '' });
  const address = admin.server.address();
  assert.ok(address && typeof address !== 'string');
  const cluster = () => fetch(`http://127.0.0.1:${address.port}/cluster`);
  try {
    assert.equal((await cluster()).status, 503, 'not known before the first rebalance');
    assert.equal(instance.cluster(), undefined);

    consumer.assign([1]);
    const view: GroupMembership = {
      groupId: 'app',
      self: 'me',
      members: [
        {
          memberId: 'me',
          clientId: 'c1',
          host: '10.0.0.1',
          adminUrl: 'http://a:7400',
          active: [1],
          standby: [0],
        },
        {
          memberId: 'other',
          clientId: 'c2',
          host: '10.0.0.2',
          adminUrl: 'http://b:7400',
          active: [0],
          standby: [1],
        },
      ],
    };
    consumer.announce(view);
    assert.deepEqual(instance.standbyPartitions(), [0]);
    for (let waited = 0; instance.readiness().openingPartitions.length > 0 && waited < 5000; waited += 20)
      await sleep(20);
    assert.deepEqual(
      instance.tasks().map((t) => t.partition),
      [1],
      'a standby partition opens no task here',
    );

    const response = await cluster();
    assert.equal(response.status, 200);
    const body = (await response.json()) as {
      groupId: string;
      self: string;
      members: Array<{
        memberId: string;
        adminUrl: string;
        active: number[];
        standby: number[];
        thisInstance: boolean;
      }>;
    };
    assert.equal(body.groupId, 'app');
    assert.equal(body.self, 'me');
    assert.deepEqual(
      body.members.map((m) => [m.memberId, m.adminUrl, m.active, m.standby, m.thisInstance]),
      [
        ['me', 'http://a:7400', [1], [0], true],
        ['other', 'http://b:7400', [0], [1], false],
      ],
    );
  } finally {
    await admin.close();
  }
});
