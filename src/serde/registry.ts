/**
 * A narrow client for the Confluent Schema Registry REST API (Confluent's cp-schema-registry, and
 * Apicurio's `/apis/ccompat/v7`). Only the calls tributary needs, each with a typed result, and
 * errors sorted into the three kinds callers act on differently:
 *  - SchemaNotFoundError: the registry answered "no such schema id" (the record is bad: DLQ);
 *  - SchemaRegistryError: any other definite answer (4xx: bad schema, incompatible, unauthorized);
 *  - RetriableError: the registry could not answer (connection refused, timeout, 5xx, 429),
 *    after a few quick retries with backoff: the caller holds its partition and tries again.
 *
 * Why fetch and not @kafkajs/confluent-schema-registry's HTTP layer: that layer reports a refused
 * connection as HTTP status 400 (indistinguishable from a real "bad request"), has no request
 * timeout (a hung registry would hang decoding forever), and its register() refuses subjects whose
 * compatibility config differs from the one it passes, which trips over Apicurio. The error
 * classification above is the whole point of this module, so it owns its HTTP calls.
 */
import { retry, RetriesExhaustedError } from '../core/retry.js';
import { DEFAULT_SCHEMA_REGISTRY_URL } from '../core/services.js';
import { rejectUnknownKeys } from '../core/unknown-keys.js';
import { RetriableError } from './types.js';

export interface SchemaRegistryAuth {
  username: string;
  password: string;
}

export interface RetryPolicy {
  /** Total attempts per call, first included. */
  attempts: number;
  /** Delay before the second attempt; doubles each time, with jitter, up to maxDelayMs. */
  initialDelayMs: number;
  maxDelayMs: number;
}

export interface SchemaRegistryConfig {
  /**
   * Base URL, e.g. `http://127.0.0.1:8081` (Confluent) or `http://127.0.0.1:8081/apis/ccompat/v7`
   * (Apicurio, the default). In an App, avro() serdes default to its `schemaRegistry` settings.
   */
  url?: string;
  auth?: SchemaRegistryAuth;
  /** Per HTTP request. Default 5 s. */
  requestTimeoutMs?: number;
  /**
   * Retries inside one call. Kept short by default (3 attempts, about 0.3 s of backoff): a decode
   * that needs the registry blocks its partition, and the runtime already retries RetriableError
   * with its own, longer backoff.
   */
  retry?: Partial<RetryPolicy>;
}

/** Every config key, so that an unknown one (a misspelling) fails instead of vanishing. */
const CONFIG_NAMES: Record<keyof SchemaRegistryConfig, true> = {
  url: true,
  auth: true,
  requestTimeoutMs: true,
  retry: true,
};
const RETRY_NAMES: Record<keyof RetryPolicy, true> = {
  attempts: true,
  initialDelayMs: true,
  maxDelayMs: true,
};

/** Throws on a key SchemaRegistryConfig does not have (a misspelling would otherwise vanish). */
export function checkRegistryConfig(config: SchemaRegistryConfig): void {
  rejectUnknownKeys('schema registry client', config, Object.keys(CONFIG_NAMES));
  if (config.auth !== undefined) {
    rejectUnknownKeys('schema registry client auth', config.auth, ['username', 'password']);
  }
  if (config.retry !== undefined) {
    rejectUnknownKeys('schema registry client retry', config.retry, Object.keys(RETRY_NAMES));
  }
}

export type SchemaType = 'AVRO' | 'JSON' | 'PROTOBUF';

export interface SchemaById {
  id: number;
  /** Schema text as the registry returns it (Apicurio: compact form). */
  schema: string;
  schemaType: SchemaType;
}

export interface SubjectVersion {
  subject: string;
  version: number;
  id: number;
  schema: string;
}

export interface CompatibilityResult {
  compatible: boolean;
  /** Why not, when the registry says (Confluent and Apicurio do with `verbose=true`). */
  messages: string[];
}

/** What tributary needs from a schema registry. Implemented over HTTP and in memory (tests, test driver). */
export interface SchemaRegistryClient {
  /** Where it points; used in error messages. */
  readonly url: string;
  /** Throws SchemaNotFoundError when the registry has no such id. */
  getSchemaById(id: number): Promise<SchemaById>;
  /** The version of `subject` holding exactly this schema, or undefined when not registered there. */
  lookupSchema(subject: string, schema: string): Promise<SubjectVersion | undefined>;
  /** Registers (idempotently) and returns the global schema id. Incompatible: SchemaRegistryError (409). */
  registerSchema(subject: string, schema: string): Promise<number>;
  /** Undefined when the subject does not exist. */
  getLatestVersion(subject: string): Promise<SubjectVersion | undefined>;
  /** Against the latest version under the subject's compatibility rule; a new subject is compatible. */
  checkCompatibility(subject: string, schema: string): Promise<CompatibilityResult>;
}

/** The registry has no schema with this id (Confluent error code 40403). */
export class SchemaNotFoundError extends Error {
  override readonly name = 'SchemaNotFoundError';
  constructor(
    readonly schemaId: number,
    readonly registryUrl: string,
  ) {
    super(`schema id ${schemaId} not found in the schema registry at ${registryUrl}`);
  }
}

/** A definite, non-retriable answer from the registry (4xx other than "not found" where that is handled). */
export class SchemaRegistryError extends Error {
  override readonly name = 'SchemaRegistryError';
  constructor(
    message: string,
    /** HTTP status. */
    readonly status: number,
    /** Confluent error code from the body (e.g. 40401 subject not found, 409 incompatible, 42201 invalid schema). */
    readonly errorCode: number | undefined,
  ) {
    super(message);
  }
}

const CONTENT_TYPE = 'application/vnd.schemaregistry.v1+json';
const DEFAULT_RETRY: RetryPolicy = { attempts: 3, initialDelayMs: 100, maxDelayMs: 2_000 };
const DEFAULT_REQUEST_TIMEOUT_MS = 5_000;

/** Confluent error codes that mean "not there" rather than "you asked wrong". */
const SUBJECT_NOT_FOUND = 40401;
const VERSION_NOT_FOUND = 40402;
const SCHEMA_NOT_FOUND = 40403;

interface RegistryResponse {
  status: number;
  body: unknown;
}

/** Transport failures and 5xx/429 answers: worth retrying, not the caller's fault. */
class TransientRegistryFailure extends Error {}

export function createSchemaRegistryClient(config: SchemaRegistryConfig = {}): SchemaRegistryClient {
  return new HttpSchemaRegistryClient(config);
}

export function isSchemaRegistryClient(value: unknown): value is SchemaRegistryClient {
  return (
    typeof value === 'object' &&
    value !== null &&
    typeof (value as Partial<SchemaRegistryClient>).getSchemaById === 'function' &&
    typeof (value as Partial<SchemaRegistryClient>).registerSchema === 'function'
  );
}

export class HttpSchemaRegistryClient implements SchemaRegistryClient {
  readonly url: string;
  private readonly authorization: string | undefined;
  private readonly requestTimeoutMs: number;
  private readonly retry: RetryPolicy;

  constructor(config: SchemaRegistryConfig = {}) {
    checkRegistryConfig(config);
    this.url = (config.url ?? DEFAULT_SCHEMA_REGISTRY_URL).replace(/\/+$/, '');
    this.authorization =
      config.auth === undefined
        ? undefined
        : `Basic ${Buffer.from(`${config.auth.username}:${config.auth.password}`).toString('base64')}`;
    this.requestTimeoutMs = config.requestTimeoutMs ?? DEFAULT_REQUEST_TIMEOUT_MS;
    this.retry = { ...DEFAULT_RETRY, ...config.retry };
  }

  async getSchemaById(id: number): Promise<SchemaById> {
    const response = await this.request('GET', `/schemas/ids/${id}`);
    // Only the registry's own "schema not found" code counts: a bare 404 (wrong base URL, a proxy)
    // must not turn every record into a dead letter. It becomes a SchemaRegistryError instead.
    if (response.status === 404 && errorCodeOf(response.body) === SCHEMA_NOT_FOUND) {
      throw new SchemaNotFoundError(id, this.url);
    }
    const body = this.expectOk(response, `GET /schemas/ids/${id}`);
    return { id, schema: stringField(body, 'schema'), schemaType: schemaTypeOf(body) };
  }

  async lookupSchema(subject: string, schema: string): Promise<SubjectVersion | undefined> {
    const path = `/subjects/${encodeURIComponent(subject)}`;
    const response = await this.request('POST', path, { schema });
    if (response.status === 404) return undefined; // subject or schema not registered
    const body = this.expectOk(response, `POST ${path}`);
    return {
      subject,
      version: numberField(body, 'version'),
      id: numberField(body, 'id'),
      schema: stringField(body, 'schema'),
    };
  }

  async registerSchema(subject: string, schema: string): Promise<number> {
    const path = `/subjects/${encodeURIComponent(subject)}/versions`;
    const response = await this.request('POST', path, { schema });
    return numberField(this.expectOk(response, `POST ${path}`), 'id');
  }

  async getLatestVersion(subject: string): Promise<SubjectVersion | undefined> {
    const path = `/subjects/${encodeURIComponent(subject)}/versions/latest`;
    const response = await this.request('GET', path);
    if (response.status === 404) return undefined;
    const body = this.expectOk(response, `GET ${path}`);
    return {
      subject,
      version: numberField(body, 'version'),
      id: numberField(body, 'id'),
      schema: stringField(body, 'schema'),
    };
  }

  async checkCompatibility(subject: string, schema: string): Promise<CompatibilityResult> {
    const path = `/compatibility/subjects/${encodeURIComponent(subject)}/versions/latest?verbose=true`;
    const response = await this.request('POST', path, { schema });
    if (response.status === 404) {
      const code = errorCodeOf(response.body);
      // Nothing registered yet: anything is compatible with nothing.
      if (code === undefined || code === SUBJECT_NOT_FOUND || code === VERSION_NOT_FOUND) {
        return { compatible: true, messages: [] };
      }
    }
    const body = this.expectOk(response, `POST ${path}`);
    const compatible = (body as { is_compatible?: unknown }).is_compatible;
    if (typeof compatible !== 'boolean') {
      throw new SchemaRegistryError(
        `schema registry at ${this.url}: POST ${path} answered without "is_compatible"`,
        response.status,
        undefined,
      );
    }
    const messages = (body as { messages?: unknown }).messages;
    return {
      compatible,
      messages: Array.isArray(messages) ? messages.map((message) => String(message)) : [],
    };
  }

  /** Sends one request, retrying transient failures; throws RetriableError when they persist. */
  private async request(method: 'GET' | 'POST', path: string, body?: unknown): Promise<RegistryResponse> {
    const { attempts, initialDelayMs, maxDelayMs } = this.retry;
    try {
      // The shared loop's jitter keeps many partitions from hammering a recovering registry in lockstep.
      return await retry(
        () => this.send(method, path, body),
        { maxAttempts: attempts, initialDelayMs, maxDelayMs },
        { isTransient: (error) => error instanceof TransientRegistryFailure },
      );
    } catch (error) {
      if (!(error instanceof RetriesExhaustedError)) throw error;
      const lastFailure = error.lastError;
      const reason = lastFailure instanceof Error ? lastFailure.message : String(lastFailure);
      throw new RetriableError(
        `schema registry at ${this.url} is unreachable: ${method} ${path}: ${reason} ` +
          `(${attempts} attempt${attempts === 1 ? '' : 's'})`,
        { cause: lastFailure },
      );
    }
  }

  private async send(method: 'GET' | 'POST', path: string, body?: unknown): Promise<RegistryResponse> {
    const headers: Record<string, string> = { accept: `${CONTENT_TYPE}, application/json` };
    if (body !== undefined) headers['content-type'] = CONTENT_TYPE;
    if (this.authorization !== undefined) headers['authorization'] = this.authorization;
    let response: Response;
    try {
      response = await fetch(`${this.url}${path}`, {
        method,
        headers,
        body: body === undefined ? undefined : JSON.stringify(body),
        signal: AbortSignal.timeout(this.requestTimeoutMs),
      });
    } catch (error) {
      throw new TransientRegistryFailure(describeTransportError(error, this.requestTimeoutMs), {
        cause: error,
      });
    }
    let text: string;
    try {
      text = await response.text();
    } catch (error) {
      throw new TransientRegistryFailure(describeTransportError(error, this.requestTimeoutMs), {
        cause: error,
      });
    }
    if (response.status >= 500 || response.status === 429 || response.status === 408) {
      throw new TransientRegistryFailure(
        `HTTP ${response.status}${text === '' ? '' : `: ${text.slice(0, 200)}`}`,
      );
    }
    let parsed: unknown = undefined;
    if (text !== '') {
      try {
        parsed = JSON.parse(text);
      } catch {
        parsed = text;
      }
    }
    return { status: response.status, body: parsed };
  }

  private expectOk(response: RegistryResponse, what: string): object {
    if (
      response.status >= 200 &&
      response.status < 300 &&
      typeof response.body === 'object' &&
      response.body !== null
    ) {
      return response.body;
    }
    const code = errorCodeOf(response.body);
    const detail = messageOf(response.body);
    throw new SchemaRegistryError(
      `schema registry at ${this.url}: ${what} failed with HTTP ${response.status}` +
        `${code === undefined ? '' : ` (error code ${code})`}${detail === undefined ? '' : `: ${detail}`}`,
      response.status,
      code,
    );
  }
}

function describeTransportError(error: unknown, timeoutMs: number): string {
  if (error instanceof Error) {
    if (error.name === 'TimeoutError' || error.name === 'AbortError')
      return `no answer within ${timeoutMs} ms`;
    // undici wraps the socket error ("fetch failed"); its cause names it (ECONNREFUSED, ECONNRESET...).
    const cause = (error as { cause?: unknown }).cause;
    if (cause instanceof Error) return `${error.message}: ${cause.message}`;
    return error.message;
  }
  return String(error);
}

function errorCodeOf(body: unknown): number | undefined {
  const code =
    typeof body === 'object' && body !== null ? (body as { error_code?: unknown }).error_code : undefined;
  return typeof code === 'number' ? code : undefined;
}

function messageOf(body: unknown): string | undefined {
  if (typeof body === 'string') return body.slice(0, 500);
  const message =
    typeof body === 'object' && body !== null ? (body as { message?: unknown }).message : undefined;
  return typeof message === 'string' ? message : undefined;
}

function stringField(body: object, field: string): string {
  const value = (body as Record<string, unknown>)[field];
  if (typeof value === 'string') return value;
  // Some registries return the schema as a JSON object rather than a string.
  if (field === 'schema' && typeof value === 'object' && value !== null) return JSON.stringify(value);
  throw new SchemaRegistryError(`schema registry answer lacks string field "${field}"`, 200, undefined);
}

function numberField(body: object, field: string): number {
  const value = (body as Record<string, unknown>)[field];
  if (typeof value === 'number') return value;
  throw new SchemaRegistryError(`schema registry answer lacks numeric field "${field}"`, 200, undefined);
}

function schemaTypeOf(body: object): SchemaType {
  const type = (body as { schemaType?: unknown }).schemaType;
  // Confluent omits schemaType for Avro, the default.
  return type === 'JSON' || type === 'PROTOBUF' ? type : 'AVRO';
}

export const REGISTRY_ERROR_CODES = { SUBJECT_NOT_FOUND, VERSION_NOT_FOUND, SCHEMA_NOT_FOUND } as const;

/** The schema registry did not answer like a Confluent-API registry when probed at start. */
export class SchemaRegistryProbeError extends Error {
  override readonly name = 'SchemaRegistryProbeError';
}

/** The path under which Apicurio Registry serves the Confluent API. */
const APICURIO_CONFLUENT_PATH = '/apis/ccompat/v7';

export interface SchemaRegistryProbeOptions {
  url: string;
  auth?: SchemaRegistryAuth;
  /** For the single attempt. Default 3 s. */
  timeoutMs?: number;
}

/**
 * One quick check at start, instead of retrying a wrong URL forever: `GET <url>/config` must answer
 * a JSON object, as Confluent's API does. Throws a SchemaRegistryProbeError whose one-line message
 * names the URL, what answered and the likely fix; a 404 is followed by a probe of
 * `<url>/apis/ccompat/v7` (Apicurio's Confluent API) to suggest that URL when it answers.
 */
export async function probeSchemaRegistry(options: SchemaRegistryProbeOptions): Promise<void> {
  const url = options.url.replace(/\/+$/, '');
  const timeoutMs = options.timeoutMs ?? 3_000;
  const headers: Record<string, string> = { accept: `${CONTENT_TYPE}, application/json` };
  if (options.auth !== undefined) {
    headers['authorization'] =
      `Basic ${Buffer.from(`${options.auth.username}:${options.auth.password}`).toString('base64')}`;
  }
  const get = async (base: string): Promise<{ status: number; body: unknown }> => {
    const response = await fetch(`${base}/config`, { headers, signal: AbortSignal.timeout(timeoutMs) });
    const text = await response.text();
    try {
      return { status: response.status, body: JSON.parse(text) as unknown };
    } catch {
      return { status: response.status, body: text };
    }
  };
  const fail = (what: string): never => {
    throw new SchemaRegistryProbeError(`schema registry at ${url}: ${what}`);
  };

  let answer: { status: number; body: unknown };
  try {
    answer = await get(url);
  } catch (error) {
    const reason = describeTransportError(error, timeoutMs);
    return fail(
      `${reason.includes('ECONNREFUSED') ? 'connection refused, nothing listens there' : reason}; ` +
        'check the registry URL (TRIBUTARY_SCHEMA_REGISTRY_URL)',
    );
  }
  const isJsonObject = typeof answer.body === 'object' && answer.body !== null && !Array.isArray(answer.body);
  if (answer.status >= 200 && answer.status < 300 && isJsonObject) return;
  if (answer.status === 401 || answer.status === 403) {
    // It is a registry; without credentials of ours to check, that is as far as a probe can tell.
    if (options.auth === undefined) return;
    return fail(`GET /config answered HTTP ${answer.status}: the registry rejects the credentials`);
  }
  if (answer.status === 404 && !url.endsWith(APICURIO_CONFLUENT_PATH)) {
    const suggested = `${url}${APICURIO_CONFLUENT_PATH}`;
    const there = await get(suggested).catch(() => undefined);
    if (there !== undefined && there.status >= 200 && there.status < 300 && typeof there.body === 'object') {
      return fail(
        `GET /config answered HTTP 404, so this is not the root of the Confluent API; ` +
          `${suggested} answers it (Apicurio Registry): use that URL`,
      );
    }
    return fail(
      `GET /config answered HTTP 404: not the root of a Confluent-compatible schema registry API ` +
        `(for Apicurio Registry the URL ends with ${APICURIO_CONFLUENT_PATH})`,
    );
  }
  if (answer.status >= 500) {
    return fail(
      `GET /config answered HTTP ${answer.status}: the registry is there but failing; start again once it recovers`,
    );
  }
  const detail = typeof answer.body === 'string' ? answer.body : JSON.stringify(answer.body);
  return fail(
    `GET /config answered HTTP ${answer.status} ${JSON.stringify(detail.replace(/\s+/g, ' ').slice(0, 120))}, ` +
      'not a Confluent-compatible schema registry answer; check the registry URL',
  );
}
