/**
 * Store reads and key lookups as an operator makes them over HTTP: two instances (each on its own
 * in-memory Kafka, one holding partition 0, the other partition 1) behind two admin endpoints whose
 * peer providers list both. Decoded pages, a group key found in both partitions through either
 * instance, a dedupe id seen and one not seen, the local scope, an unreachable peer, and queryStore().
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { lookupAcrossPeers } from '../../../src/admin/store-lookup.js';
import type { PeerProvider } from '../../../src/admin/store-lookup.js';
import { AdminRequestError, minutes, queryStore, readStore } from '../../../src/index.js';
import type { KeyLookupResponse, WindowEntryView } from '../../../src/index.js';
import { T0, adminOf, deadUrl, urlOf, usageHarness } from './usage-fixtures.js';

const TOKEN = 'secret';
const { instanceWith } = usageHarness();

test('decoded pages, lookups across two instances, local scope, an unreachable peer, queryStore()', async () => {
  const a = await instanceWith('a', 0, [
    [1, 'id-1', 'c1', 5],
    [2, 'id-2', 'c2', 7],
    [61, 'id-3', 'c1', 1],
  ]);
  const b = await instanceWith('b', 1, [
    [3, 'id-4', 'c1', 10],
    [4, 'id-4', 'c1', 10], // a duplicate: dropped
  ]);
  // The group's members by admin URL, as the membership would list them; each server marks itself.
  let members: string[] = [];
  const peersOf =
    (self: { url: string }): PeerProvider =>
    async () =>
      members.map((adminUrl) => ({ adminUrl, self: adminUrl === self.url }));
  const selfA = { url: '' };
  const selfB = { url: '' };
  const adminA = await adminOf(a, { instanceId: 'a', token: TOKEN, peers: peersOf(selfA) });
  const adminB = await adminOf(b, { instanceId: 'b', token: TOKEN, peers: peersOf(selfB) });
  const urlA = (selfA.url = urlOf(adminA));
  const urlB = (selfB.url = urlOf(adminB));
  members = [urlA, urlB];
  try {
    // A page of decoded window entries of partition 0, in two pages of 2.
    const first = await readStore(urlA, 0, 'usage-1m', { limit: 2 }, { token: TOKEN });
    assert.equal(first.kind, 'window');
    assert.deepEqual(
      (first.entries as WindowEntryView[]).map((e) => [e.windowStart.iso, e.key, e.aggregates]),
      [
        [new Date(T0).toISOString(), { customer: 'c1' }, { count: 1, total: 5 }],
        [new Date(T0).toISOString(), { customer: 'c2' }, { count: 1, total: 7 }],
      ],
    );
    assert.ok(first.next, 'a next page');
    const second = await readStore(urlA, 0, 'usage-1m', { limit: 2, after: first.next }, { token: TOKEN });
    assert.deepEqual(
      (second.entries as WindowEntryView[]).map((e) => [e.windowStart.ms, e.aggregates]),
      [[T0 + 60_000, { count: 1, total: 1 }]],
    );
    assert.equal(second.next, undefined);
    const ranged = await readStore(urlA, 0, 'usage-1m', { from: T0 + 60_000 }, { token: TOKEN });
    assert.equal(ranged.entries.length, 1, 'from bounds the window start');

    // The group key c1 has a share in both partitions: one lookup, through either instance, finds both.
    for (const url of [urlA, urlB]) {
      const found = await queryStore(url, 'usage-1m', { customer: 'c1' }, { token: TOKEN });
      assert.equal(found.found, true);
      assert.deepEqual(found.unreachable, []);
      assert.deepEqual(
        found.results.map((r) => [
          r.instance,
          r.partition,
          r.kind === 'window' ? r.windows.map((w) => w.aggregates) : [],
        ]),
        [
          [
            'a',
            0,
            [
              { count: 1, total: 5 },
              { count: 1, total: 1 },
            ],
          ],
          ['b', 1, [{ count: 1, total: 10 }]],
        ],
      );
      assert.deepEqual(found.searched.map((s) => [s.instance, s.partitions]).sort(), [
        ['a', [0]],
        ['b', [1]],
      ]);
    }

    // scope=local: only this instance's partitions.
    const local = await queryStore(urlB, 'usage-1m', { customer: 'c1' }, { token: TOKEN, scope: 'local' });
    assert.deepEqual(
      local.results.map((r) => r.instance),
      ['b'],
    );

    // Dedupe: an id seen (in b's partition) and one never sent.
    const seen = await queryStore(urlA, 'seen-ids', 'id-4', { token: TOKEN });
    assert.equal(seen.kind, 'dedupe');
    assert.equal(seen.found, true);
    assert.deepEqual(
      seen.results.map((r) => [r.instance, r.partition, r.kind === 'dedupe' && r.seen]),
      [['b', 1, true]],
    );
    const expiresAt = seen.results[0]?.kind === 'dedupe' ? seen.results[0].expiresAt.ms : 0;
    assert.ok(expiresAt > T0 + minutes(60), 'remembered for the horizon');
    const unseen = await queryStore(urlA, 'seen-ids', 'id-never', { token: TOKEN });
    assert.deepEqual([unseen.found, unseen.results], [false, []]);

    // Unknown store: 404; an outbox has no keys: 400; no token: 401.
    await assert.rejects(queryStore(urlA, 'nope', 'x', { token: TOKEN }), (error: unknown) => {
      assert.ok(error instanceof AdminRequestError);
      assert.equal(error.status, 404);
      assert.match(error.message, /no store "nope"/);
      return true;
    });
    await assert.rejects(queryStore(urlA, 'dlq', '0', { token: TOKEN }), /400 .*no keys to look up/);
    await assert.rejects(queryStore(urlA, 'usage-1m', 'c1'), /401/);
    await assert.rejects(
      readStore(urlA, 0, 'usage-1m', { after: '!!' }, { token: TOKEN }),
      /400 .*not a cursor/,
    );
    const keyParam = await fetch(`${urlA}/tasks/0/stores/usage-1m?key=c1`, {
      headers: { authorization: `Bearer ${TOKEN}` },
    });
    assert.equal(keyParam.status, 400, 'a key parameter is not silently ignored');
    assert.match(await keyParam.text(), /look keys up at \/stores\/usage-1m\/keys\/c1/);

    // A member that does not answer is reported, and the answer is partial.
    const dead = await deadUrl();
    members = [...members, dead];
    const partial = await queryStore(urlA, 'usage-1m', { customer: 'c1' }, { token: TOKEN });
    assert.deepEqual(
      partial.results.map((r) => r.instance),
      ['a', 'b'],
    );
    assert.deepEqual(
      partial.unreachable.map((u) => u.adminUrl),
      [dead],
    );
    assert.equal(partial.unreachable[0]?.error, 'connection refused');
  } finally {
    await adminA.close();
    await adminB.close();
  }
});

test('a member that advertises no admin URL, or a membership that cannot be read, makes the answer partial, not silent', async () => {
  const local: KeyLookupResponse = {
    store: 'usage-1m',
    key: 'c1',
    kind: 'window',
    found: false,
    results: [],
    searched: [{ instance: 'a', partitions: [0] }],
    unreachable: [],
  };
  const noUrl = await lookupAcrossPeers(
    local,
    async () => [
      { adminUrl: 'http://ignored.invalid', self: true },
      { adminUrl: undefined, self: false, name: 'member worker-2 (10.0.0.2, partitions 1)' },
    ],
    {},
  );
  assert.deepEqual(noUrl.unreachable, [
    {
      adminUrl: '(member worker-2 (10.0.0.2, partitions 1))',
      error: 'it advertises no admin URL (admin disabled?)',
    },
  ]);
  assert.deepEqual(noUrl.searched, local.searched, 'this instance is not asked again');
  const noMembership = await lookupAcrossPeers(
    local,
    async () => {
      throw new Error('not joined');
    },
    {},
  );
  assert.deepEqual(noMembership.unreachable, [{ adminUrl: '(group membership)', error: 'not joined' }]);
});
