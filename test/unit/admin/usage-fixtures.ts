/**
 * What the store-query tests share: a usage topology (dedupe by id, per-customer one-minute windows of
 * count and total, named stores `seen-ids` and `usage-1m`) run by a real Instance on the in-memory
 * Kafka, holding one partition with the given usages processed and committed, and its admin endpoint.
 */
import assert from 'node:assert/strict';
import { createServer } from 'node:net';
import type { AddressInfo } from 'node:net';
import type { FastifyInstance } from 'fastify';
import { startAdminServer } from '../../../src/admin/server.js';
import type { PeerProvider } from '../../../src/admin/store-lookup.js';
import type { Instance } from '../../../src/runtime/instance.js';
import { TopologyBuilder, count, minutes, sum, tumbling } from '../../../src/topology/index.js';
import { FakeKafka } from '../../helpers/fake-kafka.js';
import { instanceHarness, startInstance, switchableSink, testConfig } from '../runtime/instance-fixtures.js';
import { jsonSerde } from '../topology/helpers.js';

export const T0 = Date.UTC(2026, 0, 1, 10, 0, 0);

interface Usage {
  id: string;
  customer: string;
  amount: number;
}

/** [seconds after T0, id, customer, amount] */
export type UsageRow = [number, string, string, number];

function usageTopology() {
  const builder = new TopologyBuilder();
  builder
    .stream('events', jsonSerde<Usage>())
    .dedupe((usage) => usage.id, { horizon: minutes(60), name: 'seen-ids' })
    .groupBy((usage) => ({ customer: usage.customer }))
    .window(tumbling(minutes(1)), { grace: minutes(60), name: 'usage-1m' })
    .aggregate({ count: count(), total: sum((usage: Usage) => usage.amount) })
    .map((result) => JSON.stringify(result))
    .to(switchableSink());
  return builder.build();
}

/** Registers the node:test hooks that stop the instances and remove their state after each test. */
export function usageHarness() {
  const harness = instanceHarness();

  /** An instance holding one partition of `events`, with `usages` processed and committed. */
  async function instanceWith(instanceId: string, partition: number, usages: readonly UsageRow[]) {
    const kafka = new FakeKafka();
    kafka.createTopic('events', 2);
    kafka.produce(
      'events',
      partition,
      usages.map(([seconds, id, customer, amount]) => ({
        value: JSON.stringify({ id, customer, amount }),
        timestamp: T0 + seconds * 1000,
      })),
    );
    const instance = harness.track(
      await startInstance(kafka, usageTopology(), testConfig(`${harness.dir}/${instanceId}`, { instanceId })),
    );
    const consumer = kafka.consumer('app');
    consumer.assign([partition]);
    await consumer.pollUntilIdle();
    await instance.commitAll('test');
    return instance;
  }

  return { instanceWith };
}

export const urlOf = (server: FastifyInstance): string => {
  const address = server.server.address();
  assert.ok(address && typeof address !== 'string');
  return `http://127.0.0.1:${address.port}`;
};

/** The admin endpoint of `instance` on a free loopback port. */
export function adminOf(
  instance: Instance,
  options: { instanceId: string; token?: string; peers?: PeerProvider },
): Promise<FastifyInstance> {
  return startAdminServer(instance, { host: '127.0.0.1', port: 0, describe: () => '', ...options });
}

/** A loopback URL nothing listens on (connection refused): a port bound and released. */
export async function deadUrl(): Promise<string> {
  const server = createServer();
  await new Promise<void>((done) => server.listen(0, '127.0.0.1', done));
  const { port } = server.address() as AddressInfo;
  await new Promise<void>((done) => server.close(() => done()));
  return `http://127.0.0.1:${port}`;
}
