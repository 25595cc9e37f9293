import { createServer, type AddressInfo } from 'node:net';

/**
 * A local port nothing listens on: connections are refused at once, and errors name the address tried
 * (fetch refuses well-known ports such as 9 outright, so a real free port is taken and released).
 */
export async function closedPort(): Promise<number> {
  const server = createServer();
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as AddressInfo;
  await new Promise((resolve) => server.close(resolve));
  return port;
}
