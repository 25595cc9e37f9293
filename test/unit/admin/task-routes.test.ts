/**
 * The admin's task routes name a task by its id (`0_1`) or, as before task ids, by its bare partition
 * (`1`): both answer the same; anything else, or a task not running here, is a 404 saying which.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { adminOf, urlOf, usageHarness } from './usage-fixtures.js';

const TOKEN = 'secret';
const { instanceWith } = usageHarness();

test('/tasks shows task ids; /tasks/:task takes 0_1 or 1 alike, and refuses what names no task here', async () => {
  const instance = await instanceWith('a', 1, [[1, 'id-1', 'c1', 5]]);
  const admin = await adminOf(instance, { instanceId: 'a', token: TOKEN });
  const url = urlOf(admin);
  const get = async (path: string) => {
    const response = await fetch(`${url}${path}`, { headers: { authorization: `Bearer ${TOKEN}` } });
    return { status: response.status, body: (await response.json()) as Record<string, unknown> };
  };
  try {
    const tasks = await get('/tasks');
    assert.deepEqual(
      (tasks.body['tasks'] as Array<{ id: string; partition: number }>).map((t) => [t.id, t.partition]),
      [['0_1', 1]],
    );
    const byId = await get('/tasks/0_1/stores');
    const byPartition = await get('/tasks/1/stores');
    assert.equal(byId.status, 200);
    assert.deepEqual(byId.body, byPartition.body);
    assert.ok((byId.body['stores'] as unknown[]).length > 0);

    const page = await get('/tasks/0_1/stores/usage-1m');
    assert.deepEqual([page.status, page.body['task'], page.body['partition']], [200, '0_1', 1]);
    assert.deepEqual(await get('/tasks/1/stores/usage-1m'), page);

    assert.deepEqual(await get('/tasks/0_0/stores'), {
      status: 404,
      body: { error: 'task 0_0 is not running here' },
    });
    assert.deepEqual(await get('/tasks/p1/stores'), {
      status: 404,
      body: { error: '"p1" is not a task id (e.g. 0_3) or a partition number' },
    });
  } finally {
    await admin.close();
  }
});
