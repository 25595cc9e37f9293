/**
 * The registry goes away for 10 s and comes back. Decoding a record with an unseen schema id throws
 * RetriableError (never DeserializationError) while it is away, records with cached ids keep
 * decoding, and afterwards everything decodes: nothing lost, nothing dead-lettered.
 * "Away" is a local TCP proxy in front of the shared registry that the test closes and reopens, so
 * the real registry keeps serving the other tests.
 */
import assert from 'node:assert/strict';
import { connect, createServer, type AddressInfo, type Server, type Socket } from 'node:net';
import { test } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import {
  avro,
  createSchemaRegistryClient,
  DeserializationError,
  RetriableError,
} from '../../../src/serde/index.js';
import type { UsageEvent } from '../../../examples/metering/usage-event.js';
import { registryUrl, uniqueName } from '../../helpers/services.js';
import { sampleEvent, usageEventV1, usageEventV2, type UsageEventV2 } from '../../unit/serde/fixtures.js';
import { consume, createTopic, produce } from './kafka-helpers.js';

const OUTAGE_MS = 10_000;

/** Forwards TCP connections to `target`; close() drops every connection and refuses new ones until open(). */
class TcpProxy {
  private server: Server | undefined;
  private readonly sockets = new Set<Socket>();
  port = 0;

  constructor(private readonly target: { host: string; port: number }) {}

  async open(): Promise<void> {
    const server = createServer((client) => {
      const upstream = connect(this.target.port, this.target.host);
      for (const socket of [client, upstream]) {
        this.sockets.add(socket);
        socket.on('close', () => this.sockets.delete(socket));
        socket.on('error', () => {
          client.destroy();
          upstream.destroy();
        });
      }
      client.pipe(upstream).pipe(client);
    });
    await new Promise<void>((resolve) => server.listen(this.port, '127.0.0.1', resolve));
    this.port = (server.address() as AddressInfo).port;
    this.server = server;
  }

  async close(): Promise<void> {
    const server = this.server;
    this.server = undefined;
    for (const socket of this.sockets) socket.destroy();
    if (server !== undefined) await new Promise<void>((resolve) => server.close(() => resolve()));
  }
}

test('registry down for 10 s, then back: RetriableError meanwhile, no record lost or dead-lettered', async () => {
  const topic = await createTopic('serde-outage');
  const ctx = { topic, role: 'value' as const };
  const direct = createSchemaRegistryClient({ url: registryUrl });
  const v1 = avro<UsageEvent>({ registry: direct, readerSchema: usageEventV1 });
  const v2 = avro<UsageEventV2>({ registry: direct, readerSchema: usageEventV2 });
  // Ten v1 records, then v2 records whose schema id the consumer will first meet during the outage.
  const messages = [];
  for (let n = 1; n <= 20; n++) {
    const value =
      n <= 10
        ? await v1.serialize(sampleEvent(n), ctx)
        : await v2.serialize({ ...sampleEvent(n), unit: 'ms' }, ctx);
    messages.push({ key: `k${n}`, value });
  }
  await produce(topic, messages);
  const records = await consume(topic, messages.length);

  const upstream = new URL(registryUrl);
  const proxy = new TcpProxy({ host: upstream.hostname, port: Number(upstream.port || 80) });
  await proxy.open();
  const proxiedUrl = new URL(registryUrl);
  proxiedUrl.port = String(proxy.port);
  const serde = avro<UsageEventV2>({
    registry: {
      url: proxiedUrl.toString(),
      requestTimeoutMs: 1000,
      retry: { attempts: 2, initialDelayMs: 50 },
    },
    readerSchema: usageEventV2,
  });

  try {
    // Warm the cache with the v1 id, then cut the registry off.
    assert.equal((await serde.deserialize(records[0]!.value, ctx)).id, 'evt-1');
    await proxy.close();
    const outageEnds = Date.now() + OUTAGE_MS;
    const reopened = sleep(OUTAGE_MS).then(() => proxy.open());

    // Process the rest the way the runtime does: a RetriableError holds the record and retries it.
    const decoded: UsageEventV2[] = [];
    const deadLetters: unknown[] = [];
    let retriableErrors = 0;
    let decodedDuringOutage = 0;
    for (const record of records.slice(1)) {
      for (;;) {
        try {
          decoded.push(await serde.deserialize(record.value, ctx));
          if (Date.now() < outageEnds) decodedDuringOutage++;
          break;
        } catch (error) {
          if (error instanceof DeserializationError) {
            deadLetters.push(error);
            break;
          }
          assert.ok(error instanceof RetriableError, `unexpected ${String(error)}`);
          assert.ok(error.message.includes(String(proxy.port)), 'the error names the registry URL');
          retriableErrors++;
          await sleep(250);
        }
      }
    }
    await reopened;

    assert.deepEqual(deadLetters, [], 'nothing dead-lettered');
    assert.equal(decoded.length, records.length - 1, 'nothing lost');
    assert.deepEqual(
      decoded.map((event) => event.unit),
      [...Array<null>(9).fill(null), ...Array<string>(10).fill('ms')],
    );
    assert.equal(decodedDuringOutage, 9, 'records with a cached schema id decode while the registry is away');
    assert.ok(retriableErrors >= 10, `retried through the outage (${retriableErrors} RetriableErrors)`);
  } finally {
    await proxy.close();
  }
});

test('a registry on a port where nothing listens is a RetriableError, not a dead letter', async () => {
  const probe = createServer();
  await new Promise<void>((resolve) => probe.listen(0, '127.0.0.1', resolve));
  const unusedPort = (probe.address() as AddressInfo).port;
  await new Promise<void>((resolve) => probe.close(() => resolve()));

  const registry = createSchemaRegistryClient({ url: registryUrl });
  const id = await registry.registerSchema(`${uniqueName('serde-unused-port')}-value`, usageEventV1);
  const framed = await avro<UsageEvent>({ registry, schemaId: id }).serialize(sampleEvent(1), { topic: 'x' });
  const serde = avro<UsageEvent>({
    registry: { url: `http://127.0.0.1:${unusedPort}`, retry: { attempts: 1 } },
  });
  await assert.rejects(
    Promise.resolve().then(() => serde.deserialize(framed, { topic: 'x' })),
    (error: unknown) => error instanceof RetriableError && !(error instanceof DeserializationError),
  );
});
