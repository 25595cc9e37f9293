/**
 * Who runs which partition: the pure algorithm behind the group's partition assigner (assigner.ts).
 * A task owns partition number p of every source topic, so the unit assigned is a partition NUMBER.
 * Moving a partition costs its new owner a restore (state lives in each instance's own folder), so
 * the assignment is sticky: a member keeps what it ran before as far as balance allows, and a
 * partition that has to move goes preferably to a member that kept a standby copy of it.
 */

/** A member of the group and what it ran before this rebalance (from its subscription's user data). */
export interface MemberClaims {
  memberId: string;
  /** Partitions it ran actively. */
  active: readonly number[];
  /** Partitions it kept a standby copy of. */
  standby: readonly number[];
}

export interface AssignmentInput {
  members: readonly MemberClaims[];
  /** Partition numbers 0 .. partitions-1 are assigned (the largest partition count of the topics). */
  partitions: number;
  /** Standby copies wanted per partition; capped at members - 1. */
  standbyReplicas: number;
}

export interface MemberTasks {
  /** Ascending. */
  active: number[];
  /** Ascending; never one of `active`. */
  standby: number[];
}

/**
 * Every partition to exactly one member (counts differ by at most 1), then `min(standbyReplicas,
 * members - 1)` standby copies of each partition on members other than its active owner, one copy
 * per member at most, balanced (counts differ by at most 1 whenever the constraints allow it).
 * Deterministic: the same members and claims give the same answer, whatever their order.
 */
export function assignPartitions(input: AssignmentInput): Map<string, MemberTasks> {
  const members = [...input.members].sort((a, b) => compareIds(a.memberId, b.memberId));
  const result = new Map<string, MemberTasks>();
  if (members.length === 0) return result;
  const partitions = Math.max(0, Math.floor(input.partitions));
  const owners = assignActive(members, partitions);
  const standbys = assignStandbys(members, owners, partitions, input.standbyReplicas);
  members.forEach((member, index) => {
    const active: number[] = [];
    for (let p = 0; p < partitions; p++) if (owners[p] === index) active.push(p);
    result.set(member.memberId, { active, standby: [...(standbys[index] ?? [])].sort((a, b) => a - b) });
  });
  return result;
}

function compareIds(a: string, b: string): number {
  return a < b ? -1 : a > b ? 1 : 0;
}

/** Valid, distinct partition numbers of a claim, ascending. */
function validClaims(claims: readonly number[], partitions: number): number[] {
  const valid = new Set(claims.filter((p) => Number.isInteger(p) && p >= 0 && p < partitions));
  return [...valid].sort((a, b) => a - b);
}

/** owners[p] = index of the member that runs p actively. */
function assignActive(members: readonly MemberClaims[], partitions: number): number[] {
  const owners = new Array<number>(partitions).fill(-1);
  // A partition claimed by two members (a stale view) stays with the first in member order.
  const kept: number[][] = members.map(() => []);
  const claimed = new Set<number>();
  members.forEach((member, index) => {
    for (const p of validClaims(member.active, partitions)) {
      if (claimed.has(p)) continue;
      claimed.add(p);
      kept[index]!.push(p);
    }
  });

  // Quotas: `base` each, one more for `extra` members; the extra slots go to the members that
  // claim the most, so balance costs as few moves as possible.
  const base = Math.floor(partitions / members.length);
  const extra = partitions % members.length;
  const quota = members.map(() => base);
  const byClaims = members
    .map((_, index) => index)
    .sort((a, b) => kept[b]!.length - kept[a]!.length || a - b);
  for (const index of byClaims.slice(0, extra)) quota[index] = base + 1;

  // A member above its quota gives up first the partitions that a member with room holds a standby
  // copy of: they move warm.
  const standbyOf = members.map((member) => new Set(validClaims(member.standby, partitions)));
  const withRoom = members.map((_, index) => index).filter((index) => kept[index]!.length < quota[index]!);
  const warmElsewhere = (p: number) => withRoom.some((index) => standbyOf[index]!.has(p));
  const count = members.map(() => 0);
  kept.forEach((claims, index) => {
    const ordered =
      claims.length > quota[index]!
        ? [...claims].sort((a, b) => Number(warmElsewhere(a)) - Number(warmElsewhere(b)) || a - b)
        : claims;
    for (const p of ordered.slice(0, quota[index])) {
      owners[p] = index;
      count[index]!++;
    }
  });

  // The rest to members below their quota: one that kept a standby copy first (a warm restore),
  // else the least loaded.
  for (let p = 0; p < partitions; p++) {
    if (owners[p] !== -1) continue;
    let best = -1;
    for (let index = 0; index < members.length; index++) {
      if (count[index]! >= quota[index]!) continue;
      if (best === -1) {
        best = index;
        continue;
      }
      const warm = standbyOf[index]!.has(p);
      const bestWarm = standbyOf[best]!.has(p);
      if (warm !== bestWarm) {
        if (warm) best = index;
      } else if (count[index]! < count[best]!) best = index;
    }
    owners[p] = best;
    count[best]!++;
  }
  return owners;
}

/** standbys[i] = the partitions member i keeps a standby copy of. */
function assignStandbys(
  members: readonly MemberClaims[],
  owners: readonly number[],
  partitions: number,
  standbyReplicas: number,
): Set<number>[] {
  const standbys = members.map(() => new Set<number>());
  const replicas = Math.min(Math.max(0, Math.floor(standbyReplicas)), members.length - 1);
  if (replicas === 0 || partitions === 0) return standbys;

  const total = partitions * replicas;
  const ceiling = Math.ceil(total / members.length);
  const copies = new Array<number>(partitions).fill(0);
  const allowed = (index: number, p: number) => owners[p] !== index && !standbys[index]!.has(p);

  // Sticky first: a member keeps the copies it held before (or the partition it ran, now moved
  // away from it: its state is the warmest there is), up to the ceiling of a balanced share.
  const held = members.map(
    (member) =>
      new Set([...validClaims(member.active, partitions), ...validClaims(member.standby, partitions)]),
  );
  members.forEach((_, index) => {
    for (const p of [...held[index]!].sort((a, b) => a - b)) {
      if (standbys[index]!.size >= ceiling) break;
      if (copies[p]! < replicas && allowed(index, p)) {
        standbys[index]!.add(p);
        copies[p]!++;
      }
    }
  });

  // Then the missing copies, each to the allowed member with the fewest copies.
  for (let p = 0; p < partitions; p++) {
    while (copies[p]! < replicas) {
      let best = -1;
      for (let index = 0; index < members.length; index++) {
        if (!allowed(index, p)) continue;
        if (best === -1 || standbys[index]!.size < standbys[best]!.size) best = index;
      }
      if (best === -1) break; // cannot happen with replicas <= members - 1; kept for safety
      standbys[best]!.add(p);
      copies[p]!++;
    }
  }

  rebalanceStandbys(standbys, owners, partitions);
  return standbys;
}

/**
 * Greedy filling can leave one member two copies ahead of another (the only partitions left were
 * the other's own). Moves one copy at a time from a member to one holding at least two fewer, the
 * widest gap first, until counts differ by at most 1 or no copy can move (each candidate is the
 * receiver's own partition or already held by it).
 */
function rebalanceStandbys(standbys: Set<number>[], owners: readonly number[], partitions: number): void {
  const indexes = standbys.map((_, index) => index);
  for (let moves = 0; moves < partitions * standbys.length; moves++) {
    const bySize = [...indexes].sort((a, b) => standbys[b]!.size - standbys[a]!.size || a - b);
    const chain = findMove(standbys, owners, bySize) ?? findChain(standbys, owners, bySize);
    if (chain === undefined) return;
    for (const move of chain) {
      standbys[move.from]!.delete(move.partition);
      standbys[move.to]!.add(move.partition);
    }
  }
}

interface StandbyMove {
  from: number;
  to: number;
  partition: number;
}

/** Whether member `to` may take a standby copy of `partition` (not its owner, not holding it yet). */
function canTake(standbys: readonly Set<number>[], owners: readonly number[], to: number, partition: number) {
  return owners[partition] !== to && !standbys[to]!.has(partition);
}

function findMove(
  standbys: readonly Set<number>[],
  owners: readonly number[],
  bySize: readonly number[],
): StandbyMove[] | undefined {
  let best: { move: StandbyMove; gap: number } | undefined;
  for (const from of bySize) {
    for (const to of [...bySize].reverse()) {
      const gap = standbys[from]!.size - standbys[to]!.size;
      if (gap < 2 || (best !== undefined && gap <= best.gap)) continue;
      const partition = [...standbys[from]!]
        .sort((a, b) => a - b)
        .find((p) => canTake(standbys, owners, to, p));
      if (partition !== undefined) best = { move: { from, to, partition }, gap };
    }
  }
  return best && [best.move];
}

/**
 * When every copy the fullest member could give is one the emptiest may not take (it owns those
 * partitions), a third member passes one on: `from` gives p to `via`, `via` gives q to `to`; `via`
 * keeps its count, `from` and `to` move one closer.
 */
function findChain(
  standbys: readonly Set<number>[],
  owners: readonly number[],
  bySize: readonly number[],
): StandbyMove[] | undefined {
  for (const from of bySize) {
    for (const to of [...bySize].reverse()) {
      if (standbys[from]!.size - standbys[to]!.size < 2) continue;
      for (const via of bySize) {
        if (via === from || via === to) continue;
        for (const p of [...standbys[from]!].sort((a, b) => a - b)) {
          if (!canTake(standbys, owners, via, p)) continue;
          const q = [...standbys[via]!]
            .sort((a, b) => a - b)
            .find((candidate) => candidate !== p && canTake(standbys, owners, to, candidate));
          if (q !== undefined)
            return [
              { from, to: via, partition: p },
              { from: via, to, partition: q },
            ];
        }
      }
    }
  }
  return undefined;
}
