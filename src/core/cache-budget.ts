/**
 * An instance's memory for store caches (`state.cacheMaxBytes`), shared by the stores of its open
 * tasks: each store that keeps a cache joins with a share, and the budget is split evenly among the
 * shares held. A store keeps at most its share resident and writes back or drops the rest at commit,
 * so opening more partitions shrinks each cache instead of growing the process.
 */

/** Default `state.cacheMaxBytes`: what bench:core's 2M remembered ids (one partition) fit in. */
export const DEFAULT_CACHE_MAX_BYTES = 256 * 1024 * 1024;

import type { CacheMemory, CacheShare } from './task.js';

export type { CacheMemory, CacheShare };

export class CacheBudget implements CacheMemory {
  private readonly members = new Set<object>();

  constructor(readonly maxBytes: number = DEFAULT_CACHE_MAX_BYTES) {
    if (!(maxBytes > 0)) throw new Error(`state.cacheMaxBytes must be positive, got ${maxBytes}`);
  }

  join(): CacheShare {
    const token = {};
    this.members.add(token);
    const members = this.members;
    const maxBytes = this.maxBytes;
    return {
      get limitBytes() {
        return Math.floor(maxBytes / Math.max(1, members.size));
      },
      leave() {
        members.delete(token);
      },
    };
  }

  /** Stores holding a share. */
  get shares(): number {
    return this.members.size;
  }
}
