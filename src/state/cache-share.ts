/**
 * A store's account with the instance's cache memory (`state.cacheMaxBytes`, core/cache-budget.ts):
 * the share it joins (a budget of its own by default), what it may keep resident, how much it must
 * drop to fit, what it reports keeping after a commit, and leaving on close. Every store that caches
 * (the key-value store's LRU cache, the window store's resident windows) keeps its own resident bytes
 * and its own eviction order, and settles them with its share through this one place.
 */
import { CacheBudget } from '../core/cache-budget.js';
import type { CacheMemory, CacheShare } from '../core/task.js';

export class CacheShareAccount {
  private readonly share: CacheShare;

  /** Joins `cache` (default: a budget of its own, `state.cacheMaxBytes`'s default). */
  constructor(cache: CacheMemory | undefined) {
    this.share = (cache ?? new CacheBudget()).join();
  }

  /** The bytes the store may keep resident now (changes as other stores join, leave and report). */
  get limitBytes(): number {
    return this.share.limitBytes;
  }

  /** The bytes to drop for `residentBytes` to fit the share; 0 or less when they fit. */
  excessOf(residentBytes: number): number {
    return residentBytes - this.share.limitBytes;
  }

  /** Tells the budget what the store keeps resident now (after an open, a commit's write-back or eviction). */
  report(residentBytes: number): void {
    this.share.report(residentBytes);
  }

  /** Gives the share back (the store's folder closes). */
  leave(): void {
    this.share.leave();
  }
}
