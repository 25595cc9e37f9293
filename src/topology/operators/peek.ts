/** Runs a side effect per value and passes it on unchanged. */
import type { Operator } from './operator.js';

export function peekOperator<T>(action: (value: T) => void): Operator {
  return {
    kind: 'peek',
    detail: '',
    create:
      ({ forward }) =>
      (value) => {
        action(value as T);
        forward(value);
      },
    // The pre-pass does not run the action: it would run twice per value.
    lookahead: (value) => value,
  };
}
