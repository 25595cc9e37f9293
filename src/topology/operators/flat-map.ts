/**
 * Passes on every item a function returns for each value. No lookahead: a value may become many, so a
 * store read behind it cannot be named before the batch runs.
 */
import type { Operator } from './operator.js';

export function flatMapOperator<T, R>(mapper: (value: T) => Iterable<R>): Operator {
  return {
    kind: 'flat-map',
    detail: '',
    create:
      ({ forward }) =>
      (value) => {
        for (const item of mapper(value as T)) forward(item);
      },
  };
}
