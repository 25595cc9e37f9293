/** The HTTP registry client against tiny local servers that misbehave on purpose (no real registry needed). */
import assert from 'node:assert/strict';
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { after, describe, it } from 'node:test';
import {
  createSchemaRegistryClient,
  RetriableError,
  SchemaNotFoundError,
  SchemaRegistryError,
} from '../../../src/serde/index.js';

type Handler = (request: IncomingMessage, body: string, response: ServerResponse) => void;

const servers: Server[] = [];
// closeAllConnections: fetch keeps connections alive, which would hold close() for 5 s.
after(() => servers.forEach((server) => (server.closeAllConnections(), server.close())));

async function serve(
  handler: Handler,
): Promise<{ url: string; requests: Array<{ method: string; url: string; body: string; auth?: string }> }> {
  const requests: Array<{ method: string; url: string; body: string; auth?: string }> = [];
  const server = createServer((request, response) => {
    let body = '';
    request.on('data', (chunk: Buffer) => (body += chunk.toString()));
    request.on('end', () => {
      requests.push({
        method: request.method ?? '',
        url: request.url ?? '',
        body,
        ...(request.headers.authorization ? { auth: request.headers.authorization } : {}),
      });
      handler(request, body, response);
    });
  });
  servers.push(server);
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return { url: `http://127.0.0.1:${(server.address() as AddressInfo).port}/apis/ccompat/v7`, requests };
}

function reply(response: ServerResponse, status: number, body: unknown): void {
  response.writeHead(status, { 'content-type': 'application/vnd.schemaregistry.v1+json' });
  response.end(typeof body === 'string' ? body : JSON.stringify(body));
}

const fastRetry = { attempts: 3, initialDelayMs: 5, maxDelayMs: 20 };

describe('HTTP schema registry client', () => {
  it('fetches a schema by id, sending basic auth', async () => {
    const { url, requests } = await serve((_request, _body, response) =>
      reply(response, 200, { schema: '"string"' }),
    );
    const client = createSchemaRegistryClient({ url: `${url}/`, auth: { username: 'u', password: 'p' } });
    assert.deepEqual(await client.getSchemaById(7), { id: 7, schema: '"string"', schemaType: 'AVRO' });
    assert.equal(requests[0]?.url, '/apis/ccompat/v7/schemas/ids/7');
    assert.equal(requests[0]?.auth, `Basic ${Buffer.from('u:p').toString('base64')}`);
  });

  it('reports the registry "schema not found" code as SchemaNotFoundError, a bare 404 as a registry error', async () => {
    const { url } = await serve((request, _body, response) =>
      request.url?.endsWith('/7')
        ? reply(response, 404, { error_code: 40403, message: 'Schema 7 not found.' })
        : reply(response, 404, '<html>nope</html>'),
    );
    const client = createSchemaRegistryClient({ url, retry: fastRetry });
    await assert.rejects(
      client.getSchemaById(7),
      (error: unknown) => error instanceof SchemaNotFoundError && error.schemaId === 7,
    );
    await assert.rejects(client.getSchemaById(8), (error: unknown) => {
      assert.ok(error instanceof SchemaRegistryError && !(error instanceof SchemaNotFoundError));
      assert.equal(error.status, 404);
      assert.ok(error.message.includes(url), 'names the URL');
      return true;
    });
  });

  it('retries 5xx with backoff, then throws RetriableError naming the URL', async () => {
    let calls = 0;
    const { url } = await serve((_request, _body, response) => {
      calls++;
      reply(response, 503, 'warming up');
    });
    const client = createSchemaRegistryClient({ url, retry: fastRetry });
    await assert.rejects(client.getSchemaById(1), (error: unknown) => {
      assert.ok(error instanceof RetriableError);
      assert.ok(error.message.includes(url));
      assert.match(error.message, /HTTP 503/);
      return true;
    });
    assert.equal(calls, 3);
  });

  it('recovers when a retry succeeds', async () => {
    let calls = 0;
    const { url } = await serve((_request, _body, response) =>
      ++calls < 3 ? reply(response, 500, {}) : reply(response, 200, { schema: '"int"' }),
    );
    const client = createSchemaRegistryClient({ url, retry: fastRetry });
    assert.equal((await client.getSchemaById(1)).schema, '"int"');
  });

  it('treats a refused connection and a hung registry as RetriableError', async () => {
    const { url: hungUrl } = await serve(() => {
      /* never answers */
    });
    const hung = createSchemaRegistryClient({
      url: hungUrl,
      requestTimeoutMs: 100,
      retry: { attempts: 2, initialDelayMs: 5 },
    });
    await assert.rejects(
      hung.getSchemaById(1),
      (error: unknown) => error instanceof RetriableError && /no answer within 100 ms/.test(error.message),
    );

    const closed = createServer();
    await new Promise<void>((resolve) => closed.listen(0, '127.0.0.1', resolve));
    const port = (closed.address() as AddressInfo).port;
    await new Promise<void>((resolve) => closed.close(() => resolve()));
    const refused = createSchemaRegistryClient({ url: `http://127.0.0.1:${port}`, retry: fastRetry });
    await assert.rejects(refused.getSchemaById(1), (error: unknown) => {
      assert.ok(error instanceof RetriableError);
      assert.match(error.message, /ECONNREFUSED/);
      assert.match(error.message, new RegExp(`127\\.0\\.0\\.1:${port}`));
      return true;
    });
  });

  it('speaks the subject endpoints: lookup, register, latest, compatibility', async () => {
    const { url, requests } = await serve((request, body, response) => {
      const path = request.url ?? '';
      if (path.startsWith('/apis/ccompat/v7/compatibility/subjects/new-subject'))
        return reply(response, 404, { error_code: 40401 });
      if (path.startsWith('/apis/ccompat/v7/compatibility/'))
        return reply(response, 200, { is_compatible: false, messages: ['field b has no default'] });
      if (path.endsWith('/versions/latest'))
        return reply(response, 200, { subject: 's', version: 3, id: 12, schema: '"int"' });
      if (path.endsWith('/versions')) return reply(response, 200, { id: 13 });
      if (path.endsWith('/missing')) return reply(response, 404, { error_code: 40401 });
      return reply(response, 200, {
        subject: 's',
        version: 2,
        id: 11,
        schema: JSON.parse(body).schema as string,
      });
    });
    const client = createSchemaRegistryClient({ url });
    assert.deepEqual(await client.lookupSchema('a/b', '"int"'), {
      subject: 'a/b',
      version: 2,
      id: 11,
      schema: '"int"',
    });
    assert.equal(requests[0]?.url, '/apis/ccompat/v7/subjects/a%2Fb');
    assert.equal(await client.lookupSchema('missing', '"int"'), undefined);
    assert.equal(await client.registerSchema('s', '"int"'), 13);
    assert.deepEqual(JSON.parse(requests[2]?.body ?? ''), { schema: '"int"' });
    assert.equal((await client.getLatestVersion('s'))?.version, 3);
    assert.deepEqual(await client.checkCompatibility('s', '"int"'), {
      compatible: false,
      messages: ['field b has no default'],
    });
    assert.deepEqual(await client.checkCompatibility('new-subject', '"int"'), {
      compatible: true,
      messages: [],
    });
  });

  it('turns an incompatible registration (409) into a SchemaRegistryError with the registry message', async () => {
    const { url } = await serve((_request, _body, response) =>
      reply(response, 409, { error_code: 409, message: 'Incompatible artifact: x [AVRO]' }),
    );
    await assert.rejects(
      createSchemaRegistryClient({ url }).registerSchema('x', '"int"'),
      (error: unknown) => {
        assert.ok(error instanceof SchemaRegistryError);
        assert.equal(error.status, 409);
        assert.match(error.message, /Incompatible artifact/);
        return true;
      },
    );
  });
});
