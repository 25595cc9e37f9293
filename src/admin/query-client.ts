/**
 * A typed client of an instance's admin endpoint, for code (`queryStore()`), the CLI (`tributary
 * inspect`) and the admin endpoint itself (asking its peers). Knows the endpoint's answers as types
 * and nothing of the instance behind it.
 */
import type { StoreLookup, StorePage, StoreReadOptions } from '../core/store-reads.js';
import type { StoreView, TaskMetrics } from '../core/task.js';

export type StoreKind = StoreView['kind'];

/** What one partition holds for a looked-up key, and where that partition is. */
export type KeyLookupResult = { partition: number; instance: string } & StoreLookup;

/** The answer of `GET /stores/:store/keys/:key`, merged over the instances asked. */
export interface KeyLookupResponse {
  store: string;
  /** The key as it was asked for. */
  key: string;
  /** The store's kind, when an instance asked holds it. */
  kind?: StoreKind;
  /** Whether any partition holds the key (for a dedupe store: whether the id counts as seen). */
  found: boolean;
  /** One entry per partition that holds the key, by instance and partition. */
  results: KeyLookupResult[];
  /** The instances that answered and the partitions each searched. */
  searched: Array<{ instance: string; partitions: number[] }>;
  /** Members that did not answer (the lookup is then partial), with why. */
  unreachable: Array<{ adminUrl: string; error: string }>;
}

/** The answer of `GET /tasks/:task/stores/:store`. */
export interface StorePageResponse extends StorePage {
  store: string;
  kind: StoreKind;
  /** The task id (`0_3`); absent from an instance of a version before task ids. */
  task?: string;
  partition: number;
}

/** A task as `GET /tasks` shows it (the fields the client reads). */
export interface TaskSummary {
  /** The task id (`0_3`); absent from an instance of a version before task ids. */
  id?: string;
  partition: number;
  /** Next offset per source topic, as of the last commit. */
  positions: Record<string, string>;
  paused: boolean;
  pendingOutputs: number;
  metrics: TaskMetrics;
}

/** A store of a task as `GET /tasks/:task/stores` lists it. */
export interface StoreSummary {
  name: string;
  kind: StoreKind;
  approximateSize: number;
}

export interface AdminRequestOptions {
  /** The admin token (`admin.token`), sent as a bearer token. */
  token?: string | undefined;
  /** Give up after this long. Default 5000 ms. */
  timeoutMs?: number;
}

export interface QueryStoreOptions extends AdminRequestOptions {
  /** `cluster` (default): every member of the group; `local`: only the instance at adminUrl. */
  scope?: 'cluster' | 'local';
}

/** The admin endpoint answered with an error status (or not as JSON). */
export class AdminRequestError extends Error {
  override readonly name = 'AdminRequestError';
  constructor(
    readonly url: string,
    readonly status: number,
    message: string,
  ) {
    super(`${url}: ${status} ${message}`);
  }
}

/** The admin endpoint did not answer at all: nothing listens there, the host is unknown, no answer in time. */
export class AdminUnreachableError extends Error {
  override readonly name = 'AdminUnreachableError';
  constructor(
    readonly url: string,
    /** Why, in a few words: `connection refused`, `host not found`, `no answer within 5000 ms`. */
    readonly reason: string,
    options?: ErrorOptions,
  ) {
    super(
      `${url}: ${reason} (is an instance running with its admin endpoint at ${new URL(url).origin}?)`,
      options,
    );
  }
}

const DEFAULT_TIMEOUT_MS = 5000;

/** fetch() says only "fetch failed"; its cause (a system error code) says why. */
const REASONS: Record<string, string> = {
  ECONNREFUSED: 'connection refused',
  ENOTFOUND: 'host not found',
  EAI_AGAIN: 'host not found (DNS lookup failed)',
  ECONNRESET: 'connection reset',
  EHOSTUNREACH: 'host unreachable',
  ENETUNREACH: 'network unreachable',
  ETIMEDOUT: 'connection timed out',
};

/** Why a fetch of `url` failed before any answer, in the words of AdminUnreachableError. */
export function unreachableReason(error: unknown, timeoutMs: number): string {
  if (error instanceof Error && (error.name === 'TimeoutError' || error.name === 'AbortError'))
    return `no answer within ${timeoutMs} ms`;
  const cause =
    error instanceof Error ? (error.cause as { code?: unknown; message?: unknown } | undefined) : undefined;
  const code = typeof cause?.code === 'string' ? cause.code : undefined;
  if (code !== undefined) return REASONS[code] ?? code;
  if (typeof cause?.message === 'string') return cause.message;
  return error instanceof Error ? error.message : String(error);
}

/**
 * GETs `path` of an admin endpoint as JSON; an error status throws AdminRequestError with its message,
 * no answer at all AdminUnreachableError naming the URL and why.
 */
export async function adminGet<T>(
  adminUrl: string,
  path: string,
  options: AdminRequestOptions = {},
): Promise<T> {
  const url = `${adminUrl.replace(/\/+$/, '')}${path}`;
  if (!URL.canParse(url))
    throw new Error(`${adminUrl}: not a URL (give the admin endpoint as http://host:port)`);
  const timeoutMs = options.timeoutMs ?? DEFAULT_TIMEOUT_MS;
  let response: Response;
  let text: string;
  try {
    response = await fetch(url, {
      headers: options.token === undefined ? {} : { authorization: `Bearer ${options.token}` },
      signal: AbortSignal.timeout(timeoutMs),
    });
    text = await response.text();
  } catch (error) {
    throw new AdminUnreachableError(url, unreachableReason(error, timeoutMs), { cause: error });
  }
  let body: unknown;
  try {
    body = JSON.parse(text) as unknown;
  } catch {
    throw new AdminRequestError(url, response.status, `not JSON: ${text.slice(0, 200)}`);
  }
  if (!response.ok) {
    const error = (body as { error?: unknown } | null)?.error;
    throw new AdminRequestError(url, response.status, typeof error === 'string' ? error : text.slice(0, 200));
  }
  return body as T;
}

/** The text of a key as the admin endpoint takes it: a string as it is, anything else as JSON. */
export function keyText(key: unknown): string {
  return typeof key === 'string' ? key : (JSON.stringify(key) ?? 'null');
}

/**
 * Looks a key up in a store, across the group by default: the instance at `adminUrl` answers from its
 * partitions and asks every other member. A window store's key is the group key (an object or a
 * string, as groupBy() returned it), a key-value store's its key, a dedupe store's the id.
 *
 *   const { found, results } = await queryStore('http://127.0.0.1:9464', 'usage-1m', { subject: 'c1', meter: 'tokens' });
 */
export function queryStore(
  adminUrl: string,
  store: string,
  key: unknown,
  options: QueryStoreOptions = {},
): Promise<KeyLookupResponse> {
  const scope = options.scope === 'local' ? '?scope=local' : '';
  return adminGet<KeyLookupResponse>(
    adminUrl,
    `/stores/${encodeURIComponent(store)}/keys/${encodeURIComponent(keyText(key))}${scope}`,
    options,
  );
}

/**
 * One page of a store's decoded entries in one partition (`next` asks for the following page). The
 * route names the task by its partition, which instances before and after task ids both take.
 */
export function readStore(
  adminUrl: string,
  partition: number,
  store: string,
  read: StoreReadOptions = {},
  options: AdminRequestOptions = {},
): Promise<StorePageResponse> {
  const query = new URLSearchParams();
  for (const [name, value] of Object.entries(read))
    if (value !== undefined) query.set(name, String(value as string | number));
  const search = query.size > 0 ? `?${query.toString()}` : '';
  return adminGet<StorePageResponse>(
    adminUrl,
    `/tasks/${partition}/stores/${encodeURIComponent(store)}${search}`,
    options,
  );
}

/** The tasks (partitions) of the instance at `adminUrl`. */
export async function listTasks(adminUrl: string, options: AdminRequestOptions = {}): Promise<TaskSummary[]> {
  return (await adminGet<{ tasks: TaskSummary[] }>(adminUrl, '/tasks', options)).tasks;
}

/** The stores of one task. */
export async function listStores(
  adminUrl: string,
  partition: number,
  options: AdminRequestOptions = {},
): Promise<StoreSummary[]> {
  return (await adminGet<{ stores: StoreSummary[] }>(adminUrl, `/tasks/${partition}/stores`, options)).stores;
}
