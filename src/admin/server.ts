/**
 * The admin HTTP endpoint of one instance: health, Prometheus metrics, tasks and their state stores,
 * and the web console at `/` (console-assets.ts). Listens on loopback unless configured otherwise;
 * with a token, every request must carry `Authorization: Bearer <token>`, except the probes
 * (/health/live, /health/ready) when `probesWithoutToken` is set (Kubernetes httpGet probes cannot
 * send one) and the console's static files, which hold no data (the page sends the token itself).
 */
import { timingSafeEqual } from 'node:crypto';
import Fastify from 'fastify';
import type { FastifyInstance, FastifyReply } from 'fastify';
import type { Instance } from '../runtime/instance.js';
import { CONSOLE_PREFIX, isConsoleAssetPath, loadConsoleAssets } from './console-assets.js';
import { topologyGraph } from './topology-graph.js';
import type { TopologyShape } from './topology-graph.js';
import { StoreQueryError } from '../core/store-reads.js';
import { parseTaskRef } from '../core/task-id.js';
import type { StoreReadOptions } from '../core/store-reads.js';
import { NoSuchStoreError, lookupAcrossPeers, lookupLocally, noSuchStoreMessage } from './store-lookup.js';
import type { PeerProvider } from './store-lookup.js';

export interface AdminOptions {
  host: string;
  port: number;
  token?: string | undefined;
  /** /health/live and /health/ready answer without the token. */
  probesWithoutToken?: boolean;
  /** Text rendering of the topology, served at /topology. */
  describe: () => string;
  /** The topology as data (its `describe()`), drawn by the console from /topology.json. */
  shape?: () => TopologyShape;
  /** Names this instance in key lookups (`config.instanceId`). */
  instanceId?: string;
  /**
   * The group's members and their admin URLs, for key lookups in the `cluster` scope; without it a
   * lookup answers from this instance only.
   */
  peers?: PeerProvider;
  /** How long a key lookup waits for a peer. Default 5000 ms. */
  peerTimeoutMs?: number;
}

function tokenMatches(expected: string, header: string | undefined): boolean {
  const given = Buffer.from(header?.startsWith('Bearer ') ? header.slice(7) : '');
  const wanted = Buffer.from(expected);
  return given.length === wanted.length && timingSafeEqual(given, wanted);
}

const MAX_ENTRIES = 1000;
const DEFAULT_ENTRIES = 100;

/** A time in a query: epoch ms, or an ISO date. */
function queryTime(name: string, raw: string | undefined): number | undefined {
  if (raw === undefined || raw === '') return undefined;
  const ms = /^-?\d+$/.test(raw) ? Number(raw) : Date.parse(raw);
  if (Number.isNaN(ms)) throw new StoreQueryError(`${name}: "${raw}" is neither epoch ms nor an ISO time`);
  return ms;
}

function readOptions(query: {
  limit?: string;
  after?: string;
  from?: string;
  to?: string;
}): StoreReadOptions {
  const limit = query.limit === undefined ? DEFAULT_ENTRIES : Number(query.limit);
  if (!Number.isInteger(limit) || limit < 1)
    throw new StoreQueryError(`limit: "${query.limit}" is not a positive whole number`);
  const from = queryTime('from', query.from);
  const to = queryTime('to', query.to);
  return {
    limit: Math.min(limit, MAX_ENTRIES),
    ...(query.after ? { after: query.after } : {}),
    ...(from === undefined ? {} : { from }),
    ...(to === undefined ? {} : { to }),
  };
}

/** Runs a store query: a query the store cannot answer is a 400, an unknown store a 404. */
async function answering<T>(reply: FastifyReply, query: () => Promise<T>): Promise<T | FastifyReply> {
  try {
    return await query();
  } catch (error) {
    if (error instanceof StoreQueryError) return reply.code(400).send({ error: error.message });
    if (error instanceof NoSuchStoreError) return reply.code(404).send({ error: error.message });
    throw error;
  }
}

const PROBES = new Set(['/health/live', '/health/ready']);

export async function startAdminServer(instance: Instance, options: AdminOptions): Promise<FastifyInstance> {
  const server = Fastify({ logger: false });
  const consoleAssets = await loadConsoleAssets();

  if (options.token !== undefined) {
    const token = options.token;
    const probesOpen = options.probesWithoutToken === true;
    server.addHook('onRequest', async (request, reply) => {
      const path = request.url.split('?')[0] ?? '';
      if (probesOpen && PROBES.has(path)) return;
      if (request.method === 'GET' && isConsoleAssetPath(path)) return;
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

  server.get('/topology.json', async (_request, reply) => {
    if (!options.shape)
      return reply.code(404).send({ error: 'this endpoint was started without a topology' });
    return topologyGraph(options.shape());
  });

  // The web console: its page and files (no data in them; the page fetches the routes here).
  const sendAsset = async (name: string, reply: FastifyReply) => {
    const asset = consoleAssets.get(name);
    if (!asset)
      return reply.code(404).send({
        error: `no console file "${name}" (the console is in src/admin/console/; npm run build copies it)`,
      });
    return reply
      .header('content-type', asset.contentType)
      .header('cache-control', 'no-cache')
      .send(asset.body);
  };
  server.get('/', async (_request, reply) => sendAsset('index.html', reply));
  server.get('/index.html', async (_request, reply) => sendAsset('index.html', reply));
  server.get<{ Params: { file: string } }>(`${CONSOLE_PREFIX}:file`, async (request, reply) =>
    sendAsset(request.params.file, reply),
  );

  server.get('/dead-letters/recent', async () => ({
    instance: instance.instanceId,
    now: Date.now(),
    deadLetters: instance.recentDeadLetters(),
  }));

  // `opening`: tasks being opened, with restore progress while restoring; `standbys`: the partitions
  // of the standby replicas kept here, `standbyTasks` their ids.
  server.get('/tasks', async () => ({
    tasks: instance.tasks(),
    opening: instance.openingTasks(),
    standbys: instance.standbyReplicas(),
    standbyTasks: instance.standbyTasks().map(String),
    // The server's clock, against which the console shows watermark delay and commit age.
    now: Date.now(),
  }));

  // The consumer group as of the last rebalance: members, their admin URLs, active and standby partitions.
  server.get('/cluster', async (_request, reply) => {
    const cluster = instance.cluster();
    if (cluster === undefined)
      return reply.code(503).send({ error: 'the group membership is not known yet (joining the group)' });
    return cluster;
  });

  // A task is named by its id (`0_3`) or, as before task ids, by its partition (`3`).
  server.get<{ Params: { task: string } }>('/tasks/:task/stores', async (request, reply) => {
    const host = runningTask(instance, request.params.task);
    if (!host) return reply.code(404).send({ error: notHere(request.params.task) });
    return {
      stores: host.task
        .stores()
        .map((s) => ({ name: s.name, kind: s.kind, approximateSize: s.approximateSize() })),
    };
  });

  // A page of decoded entries: `limit`, `after` (the previous page's `next`), `from`/`to` (window start).
  server.get<{
    Params: { task: string; store: string };
    Querystring: { limit?: string; after?: string; from?: string; to?: string; key?: string };
  }>('/tasks/:task/stores/:store', async (request, reply) => {
    if (request.query.key !== undefined)
      return reply.code(400).send({
        error: `look keys up at /stores/${encodeURIComponent(request.params.store)}/keys/${encodeURIComponent(request.query.key)} (every partition holding the key answers)`,
      });
    const host = runningTask(instance, request.params.task);
    if (!host) return reply.code(404).send({ error: notHere(request.params.task) });
    const stores = host.task.stores();
    const store = stores.find((s) => s.name === request.params.store);
    if (!store)
      return reply.code(404).send({
        error: noSuchStoreMessage(
          request.params.store,
          stores.map((s) => s.name),
        ),
      });
    return answering(reply, async () => {
      const read = readOptions(request.query);
      const page = await host.queue.run(() => store.read(read));
      return {
        store: store.name,
        kind: store.kind,
        task: host.id.toString(),
        partition: host.partition,
        ...page,
      };
    });
  });

  // A key as the user writes it, from every partition holding it: here (`scope=local`) or in the group.
  server.get<{
    Params: { store: string; key: string };
    Querystring: { scope?: string };
  }>('/stores/:store/keys/:key', async (request, reply) => {
    const scope = request.query.scope ?? 'cluster';
    if (scope !== 'cluster' && scope !== 'local')
      return reply.code(400).send({ error: `scope: "${scope}" is neither cluster nor local` });
    const { store, key } = request.params;
    return answering(reply, async () => {
      const local = await lookupLocally(instance, options.instanceId ?? 'local', store, key);
      if (scope === 'local') return local;
      return lookupAcrossPeers(local, options.peers, {
        token: options.token,
        ...(options.peerTimeoutMs === undefined ? {} : { timeoutMs: options.peerTimeoutMs }),
      });
    });
  });

  // Values may hold bigints (offsets); JSON has no bigint, so they travel as strings.
  server.setReplySerializer((payload) =>
    JSON.stringify(payload, (_key, value: unknown) => (typeof value === 'bigint' ? value.toString() : value)),
  );

  try {
    await server.listen({ host: options.host, port: options.port });
  } catch (error) {
    await server.close().catch(() => undefined);
    throw listenError(error, options.host, options.port);
  }
  return server;
}

/** The admin port could not be bound because something else listens on it. */
export class AdminPortInUseError extends Error {
  override readonly name = 'AdminPortInUseError';
  constructor(
    readonly address: string,
    options?: ErrorOptions,
  ) {
    super(
      `the admin endpoint cannot listen on ${address}: the address is in use (another instance or program ` +
        'listens there); set admin.port (TRIBUTARY_ADMIN_PORT) to a free port, or 0 for any free one',
      options,
    );
  }
}

/** A port clash as one line naming the address and the setting; any other listen error as it is. */
function listenError(error: unknown, host: string, port: number): unknown {
  if ((error as { code?: unknown } | null)?.code !== 'EADDRINUSE') return error;
  const address = host.includes(':') ? `[${host}]:${port}` : `${host}:${port}`;
  return new AdminPortInUseError(address, { cause: error });
}

/** The running task a route names (`0_3`, or a bare partition `3`); undefined when not running here. */
function runningTask(instance: Instance, ref: string) {
  const id = parseTaskRef(ref);
  return id === undefined ? undefined : instance.task(id);
}

function notHere(ref: string): string {
  return parseTaskRef(ref) === undefined
    ? `"${ref}" is not a task id (e.g. 0_3) or a partition number`
    : `task ${ref} is not running here`;
}
