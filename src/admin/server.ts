/**
 * The admin HTTP endpoint of one instance: health, Prometheus metrics, tasks and their state stores.
 * Listens on loopback unless configured otherwise; with a token, every request must carry
 * `Authorization: Bearer <token>`, except the probes (/health/live, /health/ready) when
 * `probesWithoutToken` is set: Kubernetes httpGet probes cannot send one.
 */
import { timingSafeEqual } from 'node:crypto';
import Fastify from 'fastify';
import type { FastifyInstance } from 'fastify';
import type { Instance } from '../runtime/instance.js';

export interface AdminOptions {
  host: string;
  port: number;
  token?: string | undefined;
  /** /health/live and /health/ready answer without the token. */
  probesWithoutToken?: boolean;
  /** Text rendering of the topology, served at /topology. */
  describe: () => string;
}

function tokenMatches(expected: string, header: string | undefined): boolean {
  const given = Buffer.from(header?.startsWith('Bearer ') ? header.slice(7) : '');
  const wanted = Buffer.from(expected);
  return given.length === wanted.length && timingSafeEqual(given, wanted);
}

const MAX_ENTRIES = 1000;

const PROBES = new Set(['/health/live', '/health/ready']);

export async function startAdminServer(instance: Instance, options: AdminOptions): Promise<FastifyInstance> {
  const server = Fastify({ logger: false });

  if (options.token !== undefined) {
    const token = options.token;
    const probesOpen = options.probesWithoutToken === true;
    server.addHook('onRequest', async (request, reply) => {
      if (probesOpen && PROBES.has(request.url.split('?')[0] ?? '')) return;
      if (!tokenMatches(token, request.headers.authorization)) {
        await reply.code(401).header('www-authenticate', 'Bearer').send({ error: 'unauthorized' });
      }
    });
  }

  server.get('/health', async (_request, reply) => {
    const healthy = instance.state === 'running';
    const { ready, reasons } = instance.readiness();
    return reply.code(healthy ? 200 : 503).send({
      state: instance.state,
      sinksHealthy: instance.sinksHealthy,
      ready,
      reasons,
      partitions: instance.tasks().map((t) => t.partition),
    });
  });

  // Liveness: the process answers and the instance has not failed (a failed one exits by itself).
  // Starting, a held partition or a failing sink are not reasons to restart it.
  server.get('/health/live', async (_request, reply) => {
    const live = instance.state !== 'failed';
    return reply.code(live ? 200 : 503).send({ live, state: instance.state });
  });

  // Readiness: 503, with the reasons, while the instance does not do its work.
  server.get('/health/ready', async (_request, reply) => {
    const readiness = instance.readiness();
    return reply.code(readiness.ready ? 200 : 503).send(readiness);
  });

  server.get('/metrics', async (_request, reply) => {
    const { registry } = instance.metrics;
    return reply.header('content-type', registry.contentType).send(await registry.metrics());
  });

  server.get('/topology', async (_request, reply) => reply.type('text/plain').send(options.describe()));

  // `opening`: partitions whose task is being opened, with restore progress while restoring.
  server.get('/tasks', async () => ({
    tasks: instance.tasks(),
    opening: instance.openingTasks(),
    standbys: instance.standbyReplicas(),
  }));

  // The consumer group as of the last rebalance: members, their admin URLs, active and standby partitions.
  server.get('/cluster', async (_request, reply) => {
    const cluster = instance.cluster();
    if (cluster === undefined)
      return reply.code(503).send({ error: 'the group membership is not known yet (joining the group)' });
    return cluster;
  });

  server.get<{ Params: { partition: string } }>('/tasks/:partition/stores', async (request, reply) => {
    const host = instance.task(Number(request.params.partition));
    if (!host)
      return reply.code(404).send({ error: `partition ${request.params.partition} is not assigned here` });
    return {
      stores: host.task
        .stores()
        .map((s) => ({ name: s.name, kind: s.kind, approximateSize: s.approximateSize() })),
    };
  });

  server.get<{
    Params: { partition: string; store: string };
    Querystring: { limit?: string; after?: string };
  }>('/tasks/:partition/stores/:store', async (request, reply) => {
    const host = instance.task(Number(request.params.partition));
    if (!host)
      return reply.code(404).send({ error: `partition ${request.params.partition} is not assigned here` });
    const store = host.task.stores().find((s) => s.name === request.params.store);
    if (!store) return reply.code(404).send({ error: `no store "${request.params.store}"` });
    const limit = Math.min(Number(request.query.limit ?? 100) || 100, MAX_ENTRIES);
    const entries = await host.queue.run(() =>
      store.entries({ limit, ...(request.query.after !== undefined ? { after: request.query.after } : {}) }),
    );
    return { store: store.name, kind: store.kind, entries };
  });

  // Values may hold bigints (offsets); JSON has no bigint, so they travel as strings.
  server.setReplySerializer((payload) =>
    JSON.stringify(payload, (_key, value: unknown) => (typeof value === 'bigint' ? value.toString() : value)),
  );

  await server.listen({ host: options.host, port: options.port });
  return server;
}
