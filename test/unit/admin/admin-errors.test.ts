/**
 * The admin endpoint's errors as a user meets them: a port already taken fails the start with one
 * line naming the address and the setting, an unknown store's 404 lists the stores there are.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { AdminPortInUseError, startAdminServer } from '../../../src/admin/server.js';
import { AdminRequestError, queryStore, readStore } from '../../../src/index.js';
import { adminOf, urlOf, usageHarness } from './usage-fixtures.js';

const { instanceWith } = usageHarness();

test('an admin port in use fails the start naming the address, admin.port and TRIBUTARY_ADMIN_PORT', async () => {
  const instance = await instanceWith('a', 0, [[1, 'id-1', 'c1', 5]]);
  const first = await adminOf(instance, { instanceId: 'a' });
  const port = Number(new URL(urlOf(first)).port);
  try {
    const clash = startAdminServer(instance, { host: '127.0.0.1', port, describe: () => '' });
    await assert.rejects(clash, (error: unknown) => {
      assert.ok(error instanceof AdminPortInUseError, String(error));
      assert.equal(error.address, `127.0.0.1:${port}`);
      assert.equal(error.message.split('\n').length, 1);
      assert.match(
        error.message,
        new RegExp(`cannot listen on 127\\.0\\.0\\.1:${port}: the address is in use`),
      );
      assert.match(error.message, /admin\.port \(TRIBUTARY_ADMIN_PORT\)/);
      return true;
    });
  } finally {
    await first.close();
  }
});

test("an unknown store's 404 lists the stores that exist, for a page and for a key lookup", async () => {
  const instance = await instanceWith('a', 0, [[1, 'id-1', 'c1', 5]]);
  const admin = await adminOf(instance, { instanceId: 'a' });
  const url = urlOf(admin);
  const expected = 'no store "usage-1h"; the stores are: dlq, ids, seen-ids, usage-1m';
  try {
    for (const request of [readStore(url, 0, 'usage-1h'), queryStore(url, 'usage-1h', { customer: 'c1' })])
      await assert.rejects(request, (error: unknown) => {
        assert.ok(error instanceof AdminRequestError, String(error));
        assert.equal(error.status, 404);
        assert.ok(error.message.endsWith(`: 404 ${expected}`), error.message);
        return true;
      });
  } finally {
    await admin.close();
  }
});
