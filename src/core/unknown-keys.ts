/**
 * Unknown option keys fail loudly instead of vanishing: a misspelt `brokerz` or an option from an
 * older version would otherwise be ignored without a word, and the default silently used instead.
 * TypeScript catches these for typed callers; this catches everyone else (JavaScript, JSON, spreads).
 */

/** The known name closest to `name` when it is close enough to be a likely misspelling. */
export function closestName(name: string, known: readonly string[]): string | undefined {
  let best: string | undefined;
  let bestDistance = Infinity;
  for (const candidate of known) {
    const distance = editDistance(name.toLowerCase(), candidate.toLowerCase());
    if (distance < bestDistance) {
      best = candidate;
      bestDistance = distance;
    }
  }
  // A third of the name (at least 2 edits) keeps "brokerz" -> "brokers" and drops unrelated names.
  return bestDistance <= Math.max(2, Math.floor(name.length / 3)) ? best : undefined;
}

/** `unknown setting "brokerz" (did you mean "brokers"?)`; `prefix` is the path of the enclosing object. */
export function unknownKeyMessage(
  key: string,
  known: readonly string[],
  { prefix = '', noun = 'setting' }: { prefix?: string; noun?: string } = {},
): string {
  const suggestion = closestName(key, known);
  return (
    `unknown ${noun} "${prefix}${key}"` +
    (suggestion === undefined ? '' : ` (did you mean "${prefix}${suggestion}"?)`)
  );
}

/**
 * Throws when `given` has a key outside `known`, naming it and the closest known one. `removed` maps
 * options that no longer exist to why, so an upgrade fails with advice rather than a guess.
 */
export function rejectUnknownKeys(
  owner: string,
  given: object,
  known: readonly string[],
  removed: Readonly<Record<string, string>> = {},
): void {
  for (const key of Object.keys(given)) {
    if (known.includes(key)) continue;
    const why = removed[key];
    throw new Error(
      why === undefined
        ? `${owner}: ${unknownKeyMessage(key, known, { noun: 'option' })}`
        : `${owner}: option "${key}" no longer exists: ${why}`,
    );
  }
}

function editDistance(a: string, b: string): number {
  let previous = Array.from({ length: b.length + 1 }, (_, index) => index);
  for (let i = 1; i <= a.length; i++) {
    const current = [i];
    for (let j = 1; j <= b.length; j++) {
      const substitution = (previous[j - 1] ?? 0) + (a[i - 1] === b[j - 1] ? 0 : 1);
      current[j] = Math.min((previous[j] ?? 0) + 1, (current[j - 1] ?? 0) + 1, substitution);
    }
    previous = current;
  }
  return previous[b.length] ?? 0;
}
