/** One branch of branch(): the values its predicate accepts and no earlier predicate does. */
import { SKIP } from '../graph.js';
import type { Operator } from './operator.js';

export function branchOperator<T>(predicates: ReadonlyArray<(value: T) => boolean>, index: number): Operator {
  const predicate = predicates[index] as (value: T) => boolean;
  const passes = (value: unknown): boolean => {
    for (let i = 0; i < index; i++) if ((predicates[i] as (value: T) => boolean)(value as T)) return false;
    return predicate(value as T);
  };
  return {
    kind: 'branch',
    detail: `${index + 1} of ${predicates.length}`,
    create:
      ({ forward }) =>
      (value) => {
        if (passes(value)) forward(value);
      },
    lookahead: (value) => (passes(value) ? value : SKIP),
  };
}
