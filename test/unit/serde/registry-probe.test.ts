/** probeSchemaRegistry against tiny local servers: what a wrong registry URL is told at start. */
import assert from 'node:assert/strict';
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { after, describe, it } from 'node:test';
import {
  avro,
  InMemorySchemaRegistry,
  nullable,
  probeSchemaRegistry,
  SchemaRegistryProbeError,
  validated,
} from '../../../src/serde/index.js';

const servers: Server[] = [];
after(() => servers.forEach((server) => (server.closeAllConnections(), server.close())));

/** A server on a free port; returns its root URL (no path). */
async function serve(handler: (request: IncomingMessage, response: ServerResponse) => void): Promise<string> {
  const server = createServer(handler);
  servers.push(server);
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
}

function reply(response: ServerResponse, status: number, body: string, type = 'application/json'): void {
  response.writeHead(status, { 'content-type': type });
  response.end(body);
}

/** Apicurio's layout: the Confluent API under /apis/ccompat/v7, 404 elsewhere. */
const apicurio = (request: IncomingMessage, response: ServerResponse) =>
  request.url === '/apis/ccompat/v7/config'
    ? reply(response, 200, '{"compatibilityLevel":"BACKWARD"}')
    : reply(response, 404, '{"status":404,"name":"NotFoundException"}');

function rejectsWith(pattern: RegExp) {
  return (error: unknown): boolean => {
    assert.ok(error instanceof SchemaRegistryProbeError, String(error));
    assert.match(error.message, pattern);
    assert.doesNotMatch(error.message, /\n/, 'one line');
    return true;
  };
}

describe('probeSchemaRegistry', () => {
  it('accepts the root of a Confluent-compatible API', async () => {
    const root = await serve(apicurio);
    await probeSchemaRegistry({ url: `${root}/apis/ccompat/v7` });
    await probeSchemaRegistry({ url: `${root}/apis/ccompat/v7/` });
  });

  it('on a 404 at the root, suggests the Apicurio path when it answers', async () => {
    const root = await serve(apicurio);
    await assert.rejects(
      probeSchemaRegistry({ url: root }),
      rejectsWith(
        new RegExp(
          `^schema registry at ${root}: GET /config answered HTTP 404, so this is not the root of the ` +
            `Confluent API; ${root}/apis/ccompat/v7 answers it \\(Apicurio Registry\\): use that URL$`,
        ),
      ),
    );
  });

  it('on a 404 everywhere, says it is not a registry API root', async () => {
    const root = await serve((_request, response) =>
      reply(response, 404, 'There is no handle /config', 'text/plain'),
    );
    await assert.rejects(
      probeSchemaRegistry({ url: root }),
      rejectsWith(/answered HTTP 404: not the root of a Confluent-compatible/),
    );
  });

  it('tells something else answering (an HTML page) from a registry', async () => {
    const root = await serve((_request, response) =>
      reply(response, 200, '<html>\n<body>hello</body></html>', 'text/html'),
    );
    await assert.rejects(
      probeSchemaRegistry({ url: root }),
      rejectsWith(/answered HTTP 200 "<html> <body>hello.*not a Confluent-compatible schema registry answer/),
    );
  });

  it('a 401 is a registry; with credentials given, it says they are rejected', async () => {
    const root = await serve((_request, response) => reply(response, 401, '{"error_code":401}'));
    await probeSchemaRegistry({ url: root });
    await assert.rejects(
      probeSchemaRegistry({ url: root, auth: { username: 'u', password: 'p' } }),
      rejectsWith(/HTTP 401: the registry rejects the credentials/),
    );
  });

  it('a 5xx says the registry is failing rather than wrong', async () => {
    const root = await serve((_request, response) => reply(response, 503, '{"message":"down"}'));
    await assert.rejects(
      probeSchemaRegistry({ url: root }),
      rejectsWith(/HTTP 503: the registry is there but failing/),
    );
  });

  it('an answer that never comes is a timeout naming the URL', async () => {
    const root = await serve(() => undefined); // never replies
    await assert.rejects(
      probeSchemaRegistry({ url: root, timeoutMs: 200 }),
      rejectsWith(new RegExp(`^schema registry at ${root}: no answer within 200 ms`)),
    );
  });

  it('is what an avro serde (also wrapped) probes at start; an in-memory registry is not probed', async () => {
    const root = await serve(apicurio);
    const wrong = validated(nullable(avro({ registry: { url: root } })), () => true);
    assert.ok(wrong.probe, 'validated() and nullable() pass the probe on');
    await assert.rejects(wrong.probe(), rejectsWith(/use that URL/));
    for (const fine of [
      avro({ registry: { url: `${root}/apis/ccompat/v7` } }),
      avro({ registry: new InMemorySchemaRegistry() }),
    ]) {
      assert.ok(fine.probe);
      await fine.probe();
    }
  });
});
