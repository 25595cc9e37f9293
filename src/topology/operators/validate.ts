/**
 * Passes on the values a check accepts (true or undefined); the others become dead letters with reason
 * `validation-failed` and the returned string, if any, as message.
 */
import { SKIP } from '../graph.js';
import type { Operator } from './operator.js';

export function validateOperator<T>(check: (value: T) => boolean | string | undefined | void): Operator {
  return {
    kind: 'validate',
    detail: '',
    create:
      ({ forward, task }) =>
      (value) => {
        const verdict = check(value as T);
        if (verdict === true || verdict === undefined) forward(value);
        else
          task.deadLetter(
            'validation-failed',
            new Error(typeof verdict === 'string' ? verdict : 'validation failed'),
          );
      },
    lookahead: (value) => {
      const verdict = check(value as T);
      return verdict === true || verdict === undefined ? value : SKIP;
    },
  };
}
