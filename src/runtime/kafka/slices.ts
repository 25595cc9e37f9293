/**
 * Consecutive runs of items, each at most `maxBytes` (by `sizeOf`) and `maxCount` items; an item larger
 * than `maxBytes` goes alone. What one produce request may carry without hitting a broker limit.
 */
export function* slicesOf<T>(
  items: readonly T[],
  sizeOf: (item: T) => number,
  limits: { maxBytes: number; maxCount?: number },
): Generator<T[]> {
  const maxCount = limits.maxCount ?? Infinity;
  let slice: T[] = [];
  let bytes = 0;
  for (const item of items) {
    const size = sizeOf(item);
    if (slice.length > 0 && (slice.length >= maxCount || bytes + size > limits.maxBytes)) {
      yield slice;
      slice = [];
      bytes = 0;
    }
    slice.push(item);
    bytes += size;
  }
  if (slice.length > 0) yield slice;
}
