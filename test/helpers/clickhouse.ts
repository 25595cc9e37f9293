/**
 * Test helpers for the shared ClickHouse (the local stack or CI's 18.16): a uniquely named database per
 * test file, so reruns and concurrent runs never see each other's tables, and a TCP proxy that a test
 * can close and reopen to simulate an outage without touching the shared server.
 */
import { createClient, type ClickHouseClient } from '@clickhouse/client';
import { randomBytes } from 'node:crypto';
import { createServer, connect, type AddressInfo, type Server, type Socket } from 'node:net';

export const CLICKHOUSE_TEST_URL = process.env.TRIBUTARY_CLICKHOUSE_URL ?? 'http://127.0.0.1:8123';

export interface TestDatabase {
  /** e.g. `tributary_test_sink_1718000000000_a1b2c3`. */
  readonly name: string;
  readonly client: ClickHouseClient;
  /** Rows of a SELECT, parsed from JSONEachRow. */
  query<T>(sql: string): Promise<T[]>;
  command(sql: string): Promise<void>;
  /** Drops the database and closes the client. */
  drop(): Promise<void>;
}

export async function createTestDatabase(label: string): Promise<TestDatabase> {
  const safeLabel = label.replace(/[^a-zA-Z0-9_]/g, '_');
  const name = `tributary_test_${safeLabel}_${Date.now()}_${randomBytes(3).toString('hex')}`;
  const client = createClient({ url: CLICKHOUSE_TEST_URL });
  const command = async (sql: string): Promise<void> => {
    await client.command({ query: sql });
  };
  await command(`CREATE DATABASE ${name}`);
  return {
    name,
    client,
    async query<T>(sql: string): Promise<T[]> {
      const result = await client.query({ query: sql, format: 'JSONEachRow' });
      return result.json<T>();
    },
    command,
    async drop(): Promise<void> {
      try {
        await command(`DROP DATABASE IF EXISTS ${name}`);
      } finally {
        await client.close();
      }
    },
  };
}

export interface TcpProxy {
  readonly port: number;
  /** `http://127.0.0.1:<port>` */
  readonly url: string;
  /** Stops listening and cuts every open connection, like a server going away. */
  stop(): Promise<void>;
  /** Listens again on the same port. */
  start(): Promise<void>;
}

/** A TCP proxy on 127.0.0.1 in front of the ClickHouse HTTP port. */
export async function startTcpProxy(targetUrl: string = CLICKHOUSE_TEST_URL): Promise<TcpProxy> {
  const target = new URL(targetUrl);
  const targetPort = Number(target.port || (target.protocol === 'https:' ? 443 : 80));
  const sockets = new Set<Socket>();
  let server: Server | undefined;
  let port = 0;

  const listen = async (): Promise<void> => {
    const next = createServer((downstream) => {
      const upstream = connect(targetPort, target.hostname);
      for (const socket of [downstream, upstream]) {
        sockets.add(socket);
        socket.on('close', () => sockets.delete(socket));
        socket.on('error', () => {
          downstream.destroy();
          upstream.destroy();
        });
      }
      downstream.pipe(upstream).pipe(downstream);
    });
    await new Promise<void>((resolve, reject) => {
      next.once('error', reject);
      next.listen(port, '127.0.0.1', () => {
        next.off('error', reject);
        resolve();
      });
    });
    port = (next.address() as AddressInfo).port;
    server = next;
  };

  await listen();
  return {
    get port() {
      return port;
    },
    get url() {
      return `http://127.0.0.1:${port}`;
    },
    async stop(): Promise<void> {
      const current = server;
      server = undefined;
      if (current === undefined) return;
      const closed = new Promise<void>((resolve) => current.close(() => resolve()));
      for (const socket of sockets) socket.destroy();
      await closed;
    },
    start: listen,
  };
}
