/**
 * Drops values whose id its dedupe store saw within the horizon of event time (see DedupeStore for
 * the exact bounds). Declares its read, the id of each value, so the pre-pass fetches the ids the
 * store cannot rule out in one read per batch.
 */
import { DEDUPE_FORMAT, DedupeStore, dedupeRestoreDeriver } from '../../state/dedupe-store.js';
import type { DedupeOptions } from '../../state/dedupe-store.js';
import { PER_INPUT_PARTITION } from './operator.js';
import type { Operator } from './operator.js';

export function dedupeOperator<T>(
  name: string,
  idOf: (value: T) => string,
  options: DedupeOptions,
): Operator {
  return {
    kind: 'dedupe',
    // A task runs one input partition, so its store remembers that partition's ids only (describeText
    // says what that means for the producer's key).
    detail: `horizon ${options.horizon} ms; ${PER_INPUT_PARTITION}`,
    name,
    stores: [
      {
        name,
        kind: 'dedupe',
        format: DEDUPE_FORMAT,
        create: (db, { cache }) => new DedupeStore(db, name, options, cache),
        restoreDeriver: (db) => dedupeRestoreDeriver(db, name, options),
      },
    ],
    reads: [{ kind: 'keys', store: name, keysOf: idOf as (value: unknown) => string }],
    // Passes on what it does not drop: a later dedupe's pre-pass may name more ids, never fewer.
    lookahead: (value) => value,
    create: ({ forward, task }) => {
      const store = task.store<DedupeStore>(name);
      return (value) => {
        if (store.checkAndRemember(idOf(value as T), task.timestamp, task.streamTime)) task.countDuplicate();
        else forward(value);
      };
    },
  };
}
