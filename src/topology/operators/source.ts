/** The entry of a source topic's values into the DAG: passes each decoded value on. */
import type { Operator } from './operator.js';

export function sourceOperator(topic: string, serdeName: string): Operator {
  return {
    kind: 'source',
    detail: `topic ${topic}, serde ${serdeName}`,
    topic,
    create: ({ forward }) => forward,
  };
}
