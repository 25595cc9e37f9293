/** One stream of the values of several: passes on what any parent pushes. */
import type { Operator } from './operator.js';

export function mergeOperator(): Operator {
  return { kind: 'merge', detail: '', create: ({ forward }) => forward, lookahead: (value) => value };
}
