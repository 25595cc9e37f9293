/** Passes on what a function returns for each value. */
import type { Operator } from './operator.js';

export function mapOperator<T, R>(mapper: (value: T) => R): Operator {
  return {
    kind: 'map',
    detail: '',
    create:
      ({ forward }) =>
      (value) =>
        forward(mapper(value as T)),
    lookahead: (value) => mapper(value as T),
  };
}
