/**
 * `tributary reset`: which topics and groups are an app's (the rule in runtime/app-reset.ts), and a
 * reset against an in-memory cluster: what it deletes, what it keeps, and that it refuses to delete
 * while an instance is a member of the app's group.
 */
import assert from 'node:assert/strict';
import { mkdir, mkdtemp, rm, stat, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import type { GroupMemberSummary, ResetAdmin } from '../../../src/runtime/app-reset.js';
import {
  activeMembers,
  changelogTopicsOfApp,
  executeReset,
  groupsOfApp,
  planIsEmpty,
  planReset,
} from '../../../src/runtime/app-reset.js';
import { changelogTopic } from '../../../src/runtime/changelog.js';

test("selects exactly the app's changelog topics: prefix and suffix, never its input or DLQ", () => {
  const topics = [
    'app-checkpoint-changelog',
    'app-usage-events-dedupe-changelog',
    'app-usage-1m-changelog',
    'usage-events',
    'app.dlq',
    'app-changelog', // no store part: not a changelog tributary creates
    'other-app-usage-1m-changelog',
    'app-usage-1m-changelog-archive',
  ];
  assert.deepEqual(changelogTopicsOfApp('app', topics), {
    topics: ['app-checkpoint-changelog', 'app-usage-1m-changelog', 'app-usage-events-dedupe-changelog'],
    foreign: [],
  });
});

test('an app id that is a prefix of another (app vs app-2) does not take the other app`s topics', () => {
  const topics = [
    changelogTopic('app', 'checkpoint'),
    changelogTopic('app', 'usage-1m'),
    changelogTopic('app-2', 'checkpoint'),
    changelogTopic('app-2', 'usage-1m'),
    changelogTopic('app-2', 'x'),
  ];
  const ofApp = changelogTopicsOfApp('app', topics);
  assert.deepEqual(ofApp.topics, ['app-checkpoint-changelog', 'app-usage-1m-changelog']);
  assert.deepEqual(
    ofApp.foreign.map(({ topic, owner }) => `${topic} → ${owner}`),
    ['app-2-checkpoint-changelog → app-2', 'app-2-usage-1m-changelog → app-2', 'app-2-x-changelog → app-2'],
  );
  // And the longer id takes its own, whichever the shorter app holds.
  assert.deepEqual(changelogTopicsOfApp('app-2', topics).topics, [
    'app-2-checkpoint-changelog',
    'app-2-usage-1m-changelog',
    'app-2-x-changelog',
  ]);
});

test('another app is known by its consumer group too, so its topics stay even without a checkpoint changelog', () => {
  const topics = ['app-checkpoint-changelog', 'app-2-x-changelog'];
  assert.deepEqual(changelogTopicsOfApp('app', topics, ['app', 'app-2']), {
    topics: ['app-checkpoint-changelog'],
    foreign: [{ topic: 'app-2-x-changelog', owner: 'app-2' }],
  });
  // Without any sign of an app `app-2`, `2-x` is a store of `app`.
  assert.deepEqual(changelogTopicsOfApp('app', topics, ['app']).topics, [
    'app-2-x-changelog',
    'app-checkpoint-changelog',
  ]);
});

test('groups: the app`s own, its DLQ progress and its changelog readers`, not another app`s', () => {
  const groups = [
    'app',
    'app.dlq-progress',
    'app.restore.5f0c',
    'app-2',
    'app-2.dlq-progress',
    'app-2.restore.77aa',
    'application',
  ];
  assert.deepEqual(groupsOfApp('app', groups), ['app', 'app.dlq-progress', 'app.restore.5f0c']);
});

/** An in-memory cluster: topics, groups with their members; deletions recorded. */
function fakeCluster(topics: string[], groups: Record<string, GroupMemberSummary[]>) {
  const state = { topics: new Set(topics), groups: new Map(Object.entries(groups)) };
  const admin: ResetAdmin = {
    listTopics: async () => [...state.topics],
    listGroups: async () => [...state.groups.keys()],
    groupMembers: async (ids) => new Map(ids.map((id) => [id, state.groups.get(id) ?? []])),
    deleteTopics: async (list) => list.forEach((topic) => state.topics.delete(topic)),
    deleteGroups: async (list) => {
      for (const id of list) {
        if ((state.groups.get(id) ?? []).length > 0) throw new Error(`group ${id} is not empty`);
        state.groups.delete(id);
      }
    },
    close: async () => undefined,
  };
  return { admin, state };
}

test('a reset deletes the groups, the changelogs and the state folder of the app, and nothing else', async () => {
  const stateDir = await mkdtemp(join(tmpdir(), 'tributary-reset-'));
  try {
    await mkdir(join(stateDir, 'app', 'task-0'), { recursive: true });
    await writeFile(join(stateDir, 'app', 'task-0', 'CURRENT'), 'x');
    await mkdir(join(stateDir, 'app-2', 'task-0'), { recursive: true });
    const { admin, state } = fakeCluster(
      [
        'usage-events',
        'app.dlq',
        'app-checkpoint-changelog',
        'app-usage-1m-changelog',
        'app-2-checkpoint-changelog',
        'app-2-usage-1m-changelog',
      ],
      { app: [], 'app.dlq-progress': [], 'app.restore.1': [], 'app-2': [], 'app-2.dlq-progress': [] },
    );
    const plan = await planReset(admin, 'app', stateDir);
    assert.deepEqual(await activeMembers(admin, plan), []);
    assert.equal(plan.stateFolder, join(stateDir, 'app'));
    await executeReset(admin, plan);
    assert.deepEqual(
      [...state.topics].sort(),
      ['app-2-checkpoint-changelog', 'app-2-usage-1m-changelog', 'app.dlq', 'usage-events'],
      'input, DLQ and the other app`s changelogs are kept',
    );
    assert.deepEqual([...state.groups.keys()].sort(), ['app-2', 'app-2.dlq-progress']);
    await assert.rejects(stat(join(stateDir, 'app')), { code: 'ENOENT' });
    assert.ok((await stat(join(stateDir, 'app-2'))).isDirectory(), 'the other app`s folder is kept');
    assert.ok(planIsEmpty(await planReset(admin, 'app', stateDir)), 'a second reset finds nothing');
  } finally {
    await rm(stateDir, { recursive: true, force: true });
  }
});

test('members in the app`s group are found and named before anything is deleted', async () => {
  const member = { memberId: 'm-1', clientId: 'app-host-a', host: '/10.0.0.7' };
  const { admin } = fakeCluster(['app-checkpoint-changelog'], {
    app: [member],
    'app.restore.9': [{ ...member, memberId: 'm-2' }],
    'app.dlq-progress': [],
  });
  const plan = await planReset(admin, 'app');
  assert.deepEqual(
    (await activeMembers(admin, plan)).map(({ group, memberId }) => `${group}/${memberId}`).sort(),
    ['app.restore.9/m-2', 'app/m-1'],
  );
});

test('without --state-dir no folder is planned; a missing folder is reported as missing', async () => {
  const { admin } = fakeCluster([], {});
  const without = await planReset(admin, 'app');
  assert.equal(without.stateFolder, undefined);
  assert.equal(without.missingStateFolder, undefined);
  assert.ok(planIsEmpty(without));
  const missing = await planReset(admin, 'app', join(tmpdir(), 'tributary-reset-does-not-exist'));
  assert.equal(missing.missingStateFolder, join(tmpdir(), 'tributary-reset-does-not-exist', 'app'));
  assert.ok(planIsEmpty(missing));
});
