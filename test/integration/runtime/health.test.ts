// Health that tells the truth, on the real stack with the reference job in a child process:
// /health/ready answers 503 with the reason while ClickHouse or the schema registry is away (each
// reached through a local TCP proxy the test closes, so the shared services keep serving the other
// tests), /health/live answers 200 throughout, both without the admin token; delivered windows are
// observed by the end-to-end latency histogram. A second instance on a taken admin port fails at
// start without joining the group, and an admin bound beyond loopback without a token is warned about.
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { createServer } from 'node:net';
import type { AddressInfo } from 'node:net';
import { after, before, test } from 'node:test';
import { UsageGenerator } from '../../../examples/metering/generator.js';
import { startTcpProxy } from '../../helpers/clickhouse.js';
import type { TcpProxy, TestDatabase } from '../../helpers/clickhouse.js';
import { Worker, setUpMeteringRun, sleep } from '../../helpers/metering.js';
import type { MeteringRun } from '../../helpers/metering.js';
import { brokers, clickhouseUrl, registryUrl } from '../../helpers/services.js';

const TOKEN = 'health-test-token';

interface Readiness {
  ready: boolean;
  state: string;
  reasons: string[];
}

let db: TestDatabase;
let run: MeteringRun;
let clickhouseProxy: TcpProxy;
let registryProxy: TcpProxy;

before(async () => {
  ({ db, run } = await setUpMeteringRun('health', 2));
  clickhouseProxy = await startTcpProxy(clickhouseUrl);
  registryProxy = await startTcpProxy(registryUrl);
});

after(async () => {
  await clickhouseProxy?.stop();
  await registryProxy?.stop();
  await db?.drop();
});

/** Polls /health/ready (without the token) until `accept` holds; returns the last answer. */
async function waitForReadiness(
  worker: Worker,
  accept: (status: number, body: Readiness) => boolean,
  what: string,
  timeoutMs = 60_000,
): Promise<{ status: number; body: Readiness }> {
  const deadline = Date.now() + timeoutMs;
  let last: { status: number; body: Readiness } | undefined;
  while (Date.now() < deadline) {
    last = await worker.admin<Readiness>('/health/ready');
    if (accept(last.status, last.body)) return last;
    await sleep(250);
  }
  throw new Error(
    `${what}: not within ${timeoutMs} ms; last ${JSON.stringify(last)}\nlog:\n${worker.tail()}`,
  );
}

/** A metric summed over its labels, read with the token. */
async function metric(worker: Worker, name: string): Promise<number> {
  const { status, body } = await worker.admin<string>('/metrics', TOKEN);
  assert.equal(status, 200);
  let total = 0;
  for (const line of String(body).split('\n')) {
    if (line.startsWith(`${name}{`) || line.startsWith(`${name} `))
      total += Number(line.slice(line.lastIndexOf(' ') + 1));
  }
  return total;
}

async function assertLive(worker: Worker): Promise<void> {
  const live = await worker.admin<{ live: boolean }>('/health/live');
  assert.equal(live.status, 200, `live: ${JSON.stringify(live.body)}`);
}

test('ready tells why not: 503 "sink failing" with ClickHouse away, 503 "held" with the registry away, live 200 throughout; delivered windows have a latency', async () => {
  const worker = new Worker(run, {
    TRIBUTARY_SCHEMA_REGISTRY_URL: `${registryProxy.url}${new URL(registryUrl).pathname}`,
    TRIBUTARY_CLICKHOUSE_URL: clickhouseProxy.url,
    TRIBUTARY_ADMIN_TOKEN: TOKEN,
  });
  const common = {
    brokers,
    registryUrl,
    topic: run.topic,
    rate: 4000,
    subjects: 20,
    malformedPerClass: 0,
    lateEvents: 0,
  };
  const generators: UsageGenerator[] = [];
  const produce = async (options: Partial<ConstructorParameters<typeof UsageGenerator>[0]>) => {
    const generator = new UsageGenerator({
      ...common,
      totalEvents: 4_000,
      eventTimeSpanMs: 2 * 60_000,
      ...options,
    });
    generators.push(generator);
    await generator.run();
    await generator.close();
    return generator;
  };
  try {
    await worker.ready();
    await waitForReadiness(worker, (status) => status === 200, 'ready after start');
    assert.equal((await worker.admin('/tasks')).status, 401, 'the probes are open, the rest needs the token');

    // ClickHouse up: windows are delivered and their end-to-end latency observed.
    const first = await produce({ seed: 41 });
    const deadline = Date.now() + 60_000;
    while ((await metric(worker, 'tributary_window_delivery_latency_seconds_count')) === 0) {
      assert.ok(Date.now() < deadline, `no latency observed; log:\n${worker.tail()}`);
      await sleep(500);
    }
    assert.ok((await metric(worker, 'tributary_window_delivery_latency_seconds_sum')) > 0);

    // ClickHouse away: the next windows cannot be written.
    await clickhouseProxy.stop();
    const second = await produce({ seed: 42, eventTimeStart: first.eventTimeEnd });
    const sinkDown = await waitForReadiness(
      worker,
      (status, body) => status === 503 && body.reasons.some((r) => r.startsWith('sink failing:')),
      'ready 503 "sink failing" while ClickHouse is away',
    );
    assert.equal(sinkDown.body.ready, false);
    await assertLive(worker);
    await clickhouseProxy.start();
    await waitForReadiness(worker, (status) => status === 200, 'ready again once ClickHouse is back');

    // The registry away while a schema id the job has not seen arrives: the partitions are held.
    await registryProxy.stop();
    await produce({
      seed: 43,
      eventTimeStart: second.eventTimeEnd,
      writerSchema: readFileSync('test/unit/serde/fixtures/usage-event.v2.avsc', 'utf8'),
    });
    const held = await waitForReadiness(
      worker,
      (status, body) => status === 503 && body.reasons.some((r) => /^partition \d+ held: /.test(r)),
      'ready 503 "held" while the registry is away',
    );
    assert.match(held.body.reasons.join('\n'), /dependency unavailable/);
    await assertLive(worker);
    await registryProxy.start();
    await waitForReadiness(worker, (status) => status === 200, 'ready again once the registry is back');
    assert.ok(worker.alive, 'the job waited out both outages');
  } finally {
    await clickhouseProxy.start().catch(() => undefined);
    await registryProxy.start().catch(() => undefined);
    for (const generator of generators) {
      generator.stop();
      await generator.close().catch(() => undefined);
    }
    worker.kill('SIGKILL');
    await worker.exit().catch(() => undefined);
  }
});

async function freePort(): Promise<number> {
  const server = createServer();
  await new Promise<void>((resolve) => server.listen(0, '0.0.0.0', resolve));
  const { port } = server.address() as AddressInfo;
  await new Promise<void>((resolve) => server.close(() => resolve()));
  return port;
}

test('a second instance on a taken admin port fails at start without joining the group; an open admin without a token is warned about', async () => {
  const env = { TRIBUTARY_ADMIN_HOST: '0.0.0.0', TRIBUTARY_ADMIN_PORT: String(await freePort()) };
  const first = new Worker(run, env);
  let second: Worker | undefined;
  try {
    await first.ready();
    assert.match(
      readFileSync(first.logFile, 'utf8'),
      /"level":40[^\n]*listens beyond loopback without a token/,
      'a warning names the open admin endpoint',
    );

    // Started once the first holds the port.
    second = new Worker(run, env);
    const code = await second.exit(60_000);
    const log = readFileSync(second.logFile, 'utf8');
    assert.equal(code, 1, `the second instance exits non-zero; log:\n${log}`);
    assert.match(log, /EADDRINUSE/);
    assert.doesNotMatch(log, /partitions assigned/, 'it never joined the group');
    assert.ok(first.alive, 'the first instance keeps running');
  } finally {
    second?.kill('SIGKILL');
    first.kill('SIGKILL');
    await first.exit().catch(() => undefined);
  }
});
