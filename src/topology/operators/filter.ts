/** Passes on the values a predicate accepts. */
import { SKIP } from '../graph.js';
import type { Operator } from './operator.js';

export function filterOperator<T>(predicate: (value: T) => boolean): Operator {
  return {
    kind: 'filter',
    detail: '',
    create:
      ({ forward }) =>
      (value) => {
        if (predicate(value as T)) forward(value);
      },
    lookahead: (value) => (predicate(value as T) ? value : SKIP),
  };
}
