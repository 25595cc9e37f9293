/**
 * An instance's memory for store caches (`state.cacheMaxBytes`), shared by the stores of its open
 * tasks: each store that keeps a cache joins with a share. A store keeps at most its limit resident
 * and writes back or drops the rest at commit, so opening more partitions shrinks each cache instead
 * of growing the process.
 *
 * A share's limit is its even part of the budget, or more when the other stores leave part of theirs
 * unused (what they reported keeping after their last commit): a window store holding a few MB does
 * not halve the dedupe store beside it. Each store can always grow to its even part, so the others
 * give back what they borrowed at their next commit; between commits the total may pass the budget
 * by at most one even part.
 */

/** Default `state.cacheMaxBytes`: what bench:core's 2M remembered ids (one partition) fit in. */
export const DEFAULT_CACHE_MAX_BYTES = 256 * 1024 * 1024;

import type { CacheMemory, CacheShare } from './task.js';

export type { CacheMemory, CacheShare };

export class CacheBudget implements CacheMemory {
  /** Each share's resident bytes, as it last reported them. */
  private readonly resident = new Map<object, number>();
  private residentTotal = 0;

  constructor(readonly maxBytes: number = DEFAULT_CACHE_MAX_BYTES) {
    if (!(maxBytes > 0)) throw new Error(`state.cacheMaxBytes must be positive, got ${maxBytes}`);
  }

  join(): CacheShare {
    const token = {};
    this.resident.set(token, 0);
    const limitOf = () => this.limitOf(token);
    return {
      get limitBytes() {
        return limitOf();
      },
      report: (residentBytes) => this.report(token, residentBytes),
      leave: () => {
        this.report(token, 0);
        this.resident.delete(token);
      },
    };
  }

  /** Stores holding a share. */
  get shares(): number {
    return this.resident.size;
  }

  private limitOf(token: object): number {
    const even = Math.floor(this.maxBytes / Math.max(1, this.resident.size));
    const unusedByOthers = this.maxBytes - (this.residentTotal - (this.resident.get(token) ?? 0));
    return Math.max(even, unusedByOthers);
  }

  private report(token: object, residentBytes: number): void {
    const before = this.resident.get(token);
    if (before === undefined) return;
    this.resident.set(token, residentBytes);
    this.residentTotal += residentBytes - before;
  }
}
