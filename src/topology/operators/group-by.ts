/**
 * The key step of groupBy(): the group key becomes the record's key in the record context
 * (`TaskRuntime.key`, record-context.ts) for the steps it feeds, which read it there (the window
 * aggregate groups by it; a later Kafka sink or repartition will write it). A field of the task, not
 * a (key, value) pair per push: nothing is allocated per record. The previous key is put back after
 * those steps, so a sibling branch of the same record sees the key it had.
 */
import type { Push, TaskRuntime } from '../graph.js';

export function groupByStep(keyOf: (value: unknown) => unknown, task: TaskRuntime, next: Push): Push {
  return (value) => {
    const previous = task.key;
    task.key = keyOf(value);
    try {
      next(value);
    } finally {
      task.key = previous;
    }
  };
}
