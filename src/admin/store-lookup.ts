/**
 * Key lookups for the admin endpoint. Group keys are not co-located by partition (each partition
 * aggregates its own share of a key), so a lookup asks every partition of this instance and, in the
 * `cluster` scope, every other member of the group (with `scope=local`, so nobody asks further), and
 * merges the answers. A member that does not answer is reported, not skipped.
 */
import type { Instance } from '../runtime/instance.js';
import { StoreQueryError } from '../core/store-reads.js';
import { AdminUnreachableError, queryStore } from './query-client.js';
import type { KeyLookupResponse, KeyLookupResult, StoreKind } from './query-client.js';

/** A member of the group as a lookup sees it. */
export interface Peer {
  /** Its admin endpoint; absent when it advertises none (it is then reported, not asked). */
  adminUrl: string | undefined;
  /** This instance (answered locally, not asked again). */
  self: boolean;
  /** How to name it when it advertises no admin URL. Default: "a member". */
  name?: string;
}

/** The members of the group and their admin URLs. */
export type PeerProvider = () => Promise<Peer[]>;

/**
 * The members of `instance`'s consumer group as of its last rebalance (each advertises its admin URL
 * in the group's metadata); members running no partition are left out. Before the group is first
 * joined: none, so lookups answer locally.
 */
export function groupPeers(instance: Instance): PeerProvider {
  return async () =>
    (instance.cluster()?.members ?? [])
      .filter((member) => member.thisInstance || member.active.length > 0)
      .map((member) => ({
        adminUrl: member.adminUrl,
        self: member.thisInstance,
        name: `member ${member.clientId} (${member.host}, partitions ${member.active.join(', ')})`,
      }));
}

/** `no store "x"`, and the stores there are, so a typo is fixed without another request. */
export function noSuchStoreMessage(store: string, existing: readonly string[]): string {
  const names = [...new Set(existing)].sort();
  return names.length === 0
    ? `no store "${store}": this instance's tasks have no stores`
    : `no store "${store}"; the stores are: ${names.join(', ')}`;
}

/** No partition of this instance has a store of that name (its tasks would, if the topology did). */
export class NoSuchStoreError extends Error {
  override readonly name = 'NoSuchStoreError';
  constructor(
    readonly store: string,
    /** The stores this instance's tasks have. */
    readonly existing: readonly string[],
  ) {
    super(noSuchStoreMessage(store, existing));
  }
}

/**
 * The answer of this instance's partitions. Each runs in its task's queue, between batches, so it
 * sees a consistent state. Throws NoSuchStoreError when this instance has tasks and none has the
 * store; a StoreQueryError when the store cannot be looked up by key.
 */
export async function lookupLocally(
  instance: Instance,
  instanceId: string,
  store: string,
  key: string,
): Promise<KeyLookupResponse> {
  const statuses = instance.tasks();
  const results: KeyLookupResult[] = [];
  const partitions: number[] = [];
  let kind: StoreKind | undefined;
  const existing: string[] = [];
  for (const { partition } of statuses) {
    const host = instance.task(partition);
    const views = host?.task.stores() ?? [];
    existing.push(...views.map((candidate) => candidate.name));
    const view = views.find((candidate) => candidate.name === store);
    if (host === undefined || view === undefined) continue;
    kind = view.kind;
    let found;
    try {
      found = await host.queue.run(() => view.lookup(key));
    } catch (error) {
      if (error instanceof StoreQueryError) throw error;
      continue; // the task closed meanwhile (revoked): it was not searched
    }
    partitions.push(partition);
    if (found !== undefined) results.push({ partition, instance: instanceId, ...found });
  }
  if (kind === undefined && statuses.length > 0) throw new NoSuchStoreError(store, existing);
  return {
    store,
    key,
    ...(kind === undefined ? {} : { kind }),
    found: results.length > 0,
    results,
    searched: [{ instance: instanceId, partitions }],
    unreachable: [],
  };
}

/** Adds the answers of every other member (asked with `scope=local`) to this instance's answer. */
export async function lookupAcrossPeers(
  local: KeyLookupResponse,
  peers: PeerProvider | undefined,
  options: { token?: string | undefined; timeoutMs?: number },
): Promise<KeyLookupResponse> {
  if (peers === undefined) return local;
  let members: Peer[];
  try {
    members = await peers();
  } catch (error) {
    return {
      ...local,
      unreachable: [{ adminUrl: '(group membership)', error: errorText(error) }],
    };
  }
  type PeerReply = { adminUrl: string; answer: KeyLookupResponse } | { adminUrl: string; error: string };
  const others = members.filter((member) => !member.self);
  const replies = await Promise.all(
    others.map(async ({ adminUrl, name }): Promise<PeerReply> => {
      if (adminUrl === undefined)
        return { adminUrl: `(${name ?? 'a member'})`, error: 'it advertises no admin URL (admin disabled?)' };
      try {
        const answer = await queryStore(adminUrl, local.store, local.key, { ...options, scope: 'local' });
        return { adminUrl, answer };
      } catch (error) {
        return { adminUrl, error: errorText(error) };
      }
    }),
  );
  const merged: KeyLookupResponse = {
    ...local,
    results: [...local.results],
    searched: [...local.searched],
    unreachable: [...local.unreachable],
  };
  for (const reply of replies) {
    if ('error' in reply) {
      merged.unreachable.push({ adminUrl: reply.adminUrl, error: reply.error });
      continue;
    }
    const { answer } = reply;
    merged.results.push(...answer.results);
    merged.searched.push(...answer.searched);
    merged.unreachable.push(...answer.unreachable);
    if (merged.kind === undefined && answer.kind !== undefined) merged.kind = answer.kind;
  }
  merged.results.sort((a, b) => a.instance.localeCompare(b.instance) || a.partition - b.partition);
  merged.found = merged.results.length > 0;
  return merged;
}

function errorText(error: unknown): string {
  if (!(error instanceof Error)) return String(error);
  // The member's URL is beside the error already: the reason alone (`connection refused`).
  if (error instanceof AdminUnreachableError) return error.reason;
  if (error.name === 'TimeoutError') return 'timed out';
  // fetch() says only "fetch failed"; the cause says why (ECONNREFUSED, ENOTFOUND...).
  const cause = error.cause as { code?: unknown; message?: unknown } | undefined;
  const detail =
    typeof cause?.code === 'string' ? cause.code : typeof cause?.message === 'string' ? cause.message : '';
  return detail === '' ? error.message : `${error.message}: ${detail}`;
}
