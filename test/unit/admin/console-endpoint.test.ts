// What the web console relies on, on a real Instance over the in-memory Kafka: the page and its
// files load without the token (they hold no data) and every file the page refers to is served; the
// data routes still need the token; /topology.json draws the topology; /tasks tells each partition's
// owner, lag and last commit; /dead-letters/recent lists the dead letters written to the DLQ, newest
// first.
import assert from 'node:assert/strict';
import { request } from 'node:http';
import { test } from 'node:test';
import type { FastifyInstance } from 'fastify';
import { startAdminServer } from '../../../src/admin/server.js';
import type { TopologyGraph } from '../../../src/admin/topology-graph.js';
import type { RecentDeadLetter } from '../../../src/runtime/recent-dead-letters.js';
import type { TaskStatus } from '../../../src/runtime/instance.js';
import { FakeKafka } from '../../helpers/fake-kafka.js';
import {
  INPUT,
  events,
  idsTopology,
  instanceHarness,
  range,
  startInstance,
  switchableSink,
  testConfig,
} from '../runtime/instance-fixtures.js';

const TOKEN = 'console-secret';
const harness = instanceHarness();

async function served() {
  const kafka = new FakeKafka();
  kafka.createTopic(INPUT, 2);
  kafka.produce(INPUT, 0, events(range('a', 0, 5), ['a1', 'a3']));
  kafka.produce(INPUT, 1, events(range('b', 0, 2)));
  const topology = idsTopology(switchableSink());
  const instance = harness.track(
    await startInstance(kafka, topology, testConfig(harness.dir, { instanceId: 'member-1' })),
  );
  const admin = await startAdminServer(instance, {
    host: '127.0.0.1',
    port: 0,
    token: TOKEN,
    describe: () => topology.describeText(),
    shape: () => topology.describe({ dlqTopic: 'app.dlq' }),
  });
  return { kafka, instance, admin };
}

function client(admin: FastifyInstance) {
  const address = admin.server.address();
  assert.ok(address && typeof address !== 'string');
  const base = `http://127.0.0.1:${address.port}`;
  return {
    get: (path: string, token?: string) =>
      fetch(`${base}${path}`, { headers: token === undefined ? {} : { authorization: `Bearer ${token}` } }),
    /** A GET whose path goes out exactly as given (fetch would resolve `..`). */
    raw: (path: string) =>
      new Promise<{ status: number; body: string }>((resolve, reject) => {
        request({ host: '127.0.0.1', port: address.port, path }, (response) => {
          let body = '';
          response.on('data', (chunk: Buffer) => (body += chunk.toString()));
          response.on('end', () => resolve({ status: response.statusCode ?? 0, body }));
        })
          .on('error', reject)
          .end();
      }),
    json: async <T>(path: string): Promise<T> => {
      const response = await fetch(`${base}${path}`, { headers: { authorization: `Bearer ${TOKEN}` } });
      assert.equal(response.status, 200, `${path}: ${response.status}`);
      return (await response.json()) as T;
    },
  };
}

test('the page and every file it loads are served without the token; the data is not', async () => {
  const { admin } = await served();
  const http = client(admin);
  try {
    const page = await http.get('/');
    assert.equal(page.status, 200);
    assert.match(page.headers.get('content-type') ?? '', /^text\/html/);
    const html = await page.text();

    // Every file the page refers to, and every module those import, is served with its type.
    const pending = [...html.matchAll(/(?:src|href)="(\/console\/[^"]+)"/g)].map((m) => m[1]!);
    assert.ok(pending.includes('/console/app.js') && pending.includes('/console/console.css'), html);
    const seen = new Set<string>();
    while (pending.length > 0) {
      const path = pending.pop()!;
      if (seen.has(path)) continue;
      seen.add(path);
      const response = await http.get(path);
      assert.equal(response.status, 200, `${path} is served`);
      const body = await response.text();
      if (path.endsWith('.js')) {
        assert.match(response.headers.get('content-type') ?? '', /^text\/javascript/);
        for (const [, file] of body.matchAll(/from '\.\/([\w-]+\.js)'/g)) pending.push(`/console/${file}`);
      } else assert.match(response.headers.get('content-type') ?? '', /^text\/css/);
    }
    assert.ok(seen.size >= 5, [...seen].join(', '));

    assert.equal((await http.get('/console/missing.js')).status, 404);
    for (const path of ['/tasks', '/topology.json', '/dead-letters/recent']) {
      const response = await http.get(path);
      assert.equal(response.status, 401, `${path} without the token`);
      assert.doesNotMatch(await response.text(), /"partition"|"nodes"|"deadLetters"/);
    }
    // Paths a browser would normalize, sent as they are: the console's prefix opens nothing else.
    for (const path of ['/console/../tasks', '/console/..%2ftasks', '/console/%2e%2e/tasks']) {
      const { status, body } = await http.raw(path);
      assert.equal(status, 404, path);
      assert.doesNotMatch(body, /"partition"/);
    }
    assert.equal((await http.get('/tasks', 'wrong')).status, 401);
    assert.equal((await http.get('/tasks', TOKEN)).status, 200);
  } finally {
    await admin.close();
  }
});

test('/topology.json: the layered graph of the topology', async () => {
  const { admin } = await served();
  try {
    const graph = await client(admin).json<TopologyGraph>('/topology.json');
    assert.deepEqual(
      graph.nodes.map((n) => `${n.kind} ${n.name} @${n.layer}/${n.order}`),
      [
        'source source-0 @0/0',
        'processor validate-1 @1/0',
        'processor map-2 @2/0',
        'sink sink-3 @3/0',
        'dlq dead letters @3/1',
      ],
    );
    assert.equal(graph.layers, 4);
    assert.equal(graph.edges.length, 3);
  } finally {
    await admin.close();
  }
});

test('/tasks: owner, lag and last commit per partition; /dead-letters/recent: the delivered dead letters, newest first', async () => {
  const { kafka, instance, admin } = await served();
  const http = client(admin);
  try {
    const consumer = kafka.consumer('app');
    consumer.assign([0, 1]);
    await consumer.pollUntilIdle();
    const before = await http.json<{ tasks: TaskStatus[]; now: number }>('/tasks');
    assert.deepEqual(
      before.tasks.map((t) => [t.partition, t.instance, t.lag, t.lastCommitAt]),
      [
        [0, 'member-1', 0, undefined],
        [1, 'member-1', 0, undefined],
      ],
    );
    assert.ok(Math.abs(before.now - Date.now()) < 5_000);
    assert.deepEqual((await http.json<{ deadLetters: unknown[] }>('/dead-letters/recent')).deadLetters, []);

    const committedAt = Date.now();
    await instance.commitAll('test');
    await instance.deliverAll();
    const after = await http.json<{ tasks: TaskStatus[] }>('/tasks');
    for (const task of after.tasks) {
      assert.ok(
        task.lastCommitAt !== undefined && task.lastCommitAt >= committedAt - 5,
        JSON.stringify(task),
      );
    }
    assert.deepEqual(after.tasks[0]?.metrics.deadLetters, { 'validation-failed': 2 });

    const recent = await http.json<{ instance: string; deadLetters: RecentDeadLetter[] }>(
      '/dead-letters/recent',
    );
    assert.equal(recent.instance, 'member-1');
    assert.deepEqual(
      recent.deadLetters.map((l) => [l.topic, l.partition, l.offset, l.reason, l.key, l.message]),
      [
        [INPUT, 0, '3', 'validation-failed', 'a3', 'event a3 is marked bad'],
        [INPUT, 0, '1', 'validation-failed', 'a1', 'event a1 is marked bad'],
      ],
    );
    assert.ok(recent.deadLetters.every((l) => l.deliveredAt >= committedAt - 5 && l.valueBytes! > 0));
  } finally {
    await admin.close();
  }
});
