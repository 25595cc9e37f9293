/** The end of a stream: appends every value to the outbox of its sink, which the runtime drains. */
import type { SinkSpec } from '../../core/sink.js';
import type { Operator } from './operator.js';

export function sinkOperator<T>(sink: SinkSpec<T>): Operator {
  return {
    kind: 'sink',
    detail: `${sink.kind} ${sink.name}`,
    sink: sink as SinkSpec<unknown>,
    create:
      ({ task }) =>
      (value) =>
        task.appendToOutbox(sink.name, value),
  };
}
