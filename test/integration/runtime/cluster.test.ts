// Two instances of one app on the real broker, each with its own state folder and admin port, with
// one standby replica: /cluster on each lists both members with their advertised admin URLs,
// disjoint active partitions covering them all (partition p of both source topics on one member,
// though the topics have 4 and 2 partitions), and each partition's standby on the other member.
// When one leaves, the other runs everything, keeps what it ran, and has no standby left to hold.
import assert from 'node:assert/strict';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, test } from 'node:test';
import { Kafka, logLevel } from 'kafkajs';
import { memorySink, string, tributary } from '../../../src/index.js';
import type { App } from '../../../src/index.js';
import { sleep } from '../../../src/core/retry.js';
import { brokers, uniqueName } from '../../helpers/services.js';

interface ClusterMember {
  memberId: string;
  clientId: string;
  adminUrl?: string;
  active: number[];
  standby: number[];
  thisInstance: boolean;
}

interface ClusterView {
  groupId: string;
  self: string;
  members: ClusterMember[];
}

const kafka = new Kafka({ clientId: 'tributary-cluster-test', brokers, logLevel: logLevel.NOTHING });
const clicks = uniqueName('cluster_clicks');
const views = uniqueName('cluster_views');
const appId = uniqueName('cluster_app');
const folders: string[] = [];

before(async () => {
  const admin = kafka.admin();
  await admin.connect();
  try {
    await admin.createTopics({
      topics: [
        { topic: clicks, numPartitions: 4 },
        { topic: views, numPartitions: 2 },
      ],
      waitForLeaders: true,
    });
  } finally {
    await admin.disconnect();
  }
});

after(async () => {
  for (const folder of folders) await rm(folder, { recursive: true, force: true });
});

/** The values each instance's sinks received, per source topic. */
const seen = new Map<App, { clicks: string[]; views: string[] }>();

async function startInstance(name: string): Promise<App> {
  const stateDir = await mkdtemp(join(tmpdir(), `tributary-cluster-${name}-`));
  folders.push(stateDir);
  const app = tributary({
    appId,
    instanceId: name,
    brokers,
    stateDir,
    standbyReplicas: 1,
    commitIntervalMs: 200,
    shutdownTimeoutMs: 5000,
    handleSignals: false,
    logLevel: 'warn',
    kafka: { sessionTimeoutMs: 10_000 },
    admin: { port: 0 },
  });
  const clicksSeen = memorySink<string>('clicks-seen');
  const viewsSeen = memorySink<string>('views-seen');
  app.stream(clicks, string()).to(clicksSeen);
  app.stream(views, string()).to(viewsSeen);
  await app.start();
  seen.set(app, { clicks: clicksSeen.rows, views: viewsSeen.rows });
  return app;
}

async function clusterOf(app: App): Promise<{ status: number; body: ClusterView | undefined }> {
  const response = await fetch(`${app.adminAddress}/cluster`);
  return {
    status: response.status,
    body: response.ok ? ((await response.json()) as ClusterView) : undefined,
  };
}

async function partitionsOf(app: App): Promise<number[]> {
  const response = await fetch(`${app.adminAddress}/health`);
  return ((await response.json()) as { partitions: number[] }).partitions;
}

/** Polls until `accept` holds for every app's view (and its open tasks); returns the views. */
async function waitForViews(
  apps: App[],
  accept: (view: ClusterView, tasks: number[], app: App) => boolean,
  what: string,
  timeoutMs = 60_000,
): Promise<ClusterView[]> {
  const deadline = Date.now() + timeoutMs;
  let last: unknown;
  while (Date.now() < deadline) {
    const answers = await Promise.all(
      apps.map(async (app) => ({ app, view: (await clusterOf(app)).body, tasks: await partitionsOf(app) })),
    );
    last = answers.map(({ view, tasks }) => ({ view, tasks }));
    if (answers.every(({ app, view, tasks }) => view !== undefined && accept(view, tasks, app)))
      return answers.map(({ view }) => view!);
    await sleep(250);
  }
  throw new Error(`${what}: not within ${timeoutMs} ms; last ${JSON.stringify(last)}`);
}

const sorted = (values: number[]) => [...values].sort((a, b) => a - b);

test('/cluster: both members with their URLs, disjoint partitions covering all, standbys on the other member; one leaves', async () => {
  const a = await startInstance('a');
  let b: App | undefined;
  try {
    b = await startInstance('b');
    const both = [a, b];
    const [viewOfA, viewOfB] = await waitForViews(
      both,
      (view, tasks) =>
        view.members.length === 2 &&
        sorted(view.members.find((m) => m.thisInstance)?.active ?? []).join() === sorted(tasks).join(),
      'both instances see a group of two, their open tasks matching their partitions',
    );
    assert.ok(viewOfA && viewOfB);
    assert.deepEqual(
      viewOfA.members,
      viewOfB.members.map((m) => ({ ...m, thisInstance: !m.thisInstance })),
    );
    assert.notEqual(viewOfA.self, viewOfB.self);

    for (const [app, view] of [
      [a, viewOfA],
      [b, viewOfB],
    ] as const) {
      const me = view.members.find((m) => m.thisInstance);
      assert.ok(me, 'one member is this instance');
      assert.equal(me.memberId, view.self);
      assert.equal(me.adminUrl, app.advertisedAdminUrl, 'the URL it advertises');
      assert.match(me.adminUrl ?? '', /^http:\/\/127\.0\.0\.1:\d+$/);
      assert.equal(me.adminUrl, app.adminAddress, 'loopback: the advertised URL is the bound address');
      assert.deepEqual(sorted(me.active), sorted(await partitionsOf(app)), 'its tasks are its partitions');
      assert.deepEqual(app.runtime?.standbyPartitions(), sorted(me.standby));
    }
    const [first, second] = viewOfA.members as [ClusterMember, ClusterMember];
    assert.equal(first.active.length, 2, 'balanced');
    assert.equal(second.active.length, 2, 'balanced');
    assert.deepEqual(sorted([...first.active, ...second.active]), [0, 1, 2, 3], 'disjoint, covering all');
    assert.deepEqual(
      sorted(first.standby),
      sorted(second.active),
      "each partition's standby is on the other",
    );
    assert.deepEqual(sorted(second.standby), sorted(first.active));

    // Partition p of both topics is processed by the member that runs p (the 2-partition topic too).
    const producer = kafka.producer();
    await producer.connect();
    try {
      await producer.send({
        topic: clicks,
        messages: [0, 1, 2, 3].map((partition) => ({ partition, value: `p${partition}` })),
      });
      await producer.send({
        topic: views,
        messages: [0, 1].map((partition) => ({ partition, value: `p${partition}` })),
      });
    } finally {
      await producer.disconnect();
    }
    const expected = (view: ClusterView, partitions: number) =>
      sorted(view.members.find((m) => m.thisInstance)!.active.filter((p) => p < partitions))
        .map((p) => `p${p}`)
        .join();
    const deadline = Date.now() + 30_000;
    const got = () =>
      both.map((app) => ({
        clicks: [...seen.get(app)!.clicks].sort(),
        views: [...seen.get(app)!.views].sort(),
      }));
    while (got().reduce((n, s) => n + s.clicks.length + s.views.length, 0) < 6 && Date.now() < deadline)
      await sleep(100);
    for (const [index, view] of [viewOfA, viewOfB].entries()) {
      const { clicks: clicksGot, views: viewsGot } = got()[index]!;
      assert.equal(clicksGot.join(), expected(view, 4), `${clicks}: the partitions of instance ${index}`);
      assert.equal(
        viewsGot.join(),
        expected(view, 2),
        `${views}: the same partition numbers, where they exist`,
      );
    }

    const ranByA = viewOfA.members.find((m) => m.thisInstance)!.active;
    await b.stop();
    b = undefined;
    const [alone] = await waitForViews(
      [a],
      (view, tasks) => view.members.length === 1 && sorted(tasks).join() === '0,1,2,3',
      'the remaining instance runs everything',
    );
    const me = alone!.members[0]!;
    assert.deepEqual(sorted(me.active), [0, 1, 2, 3]);
    assert.deepEqual(me.standby, [], 'no other member to hold a standby of');
    assert.ok(
      ranByA.every((p) => me.active.includes(p)),
      'it kept the partitions it ran',
    );
  } finally {
    await b?.stop();
    await a.stop();
  }
});
