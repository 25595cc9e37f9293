/**
 * What one operator file gives the builder, in the manner of Kafka Streams' one small processor per
 * operator: its node without the name and parents the DSL gives it, the reads it makes of its stores
 * (the pre-pass plans from them: prefetch-plan.ts) and the stores it creates. The engine knows no
 * operator: it wires `create` and runs the declared reads.
 */
import type { NodeSpec, StoreRead } from '../graph.js';
import type { StoreSpec } from '../../state/store-spec.js';

export interface Operator extends Omit<NodeSpec, 'name' | 'parents' | 'stores' | 'reads'> {
  /** The node's name when the operator fixes it (a dedupe or a windowed aggregate: its store's name). */
  readonly name?: string;
  /** The stores the node uses, created on first mention and shared by name. */
  readonly stores?: readonly StoreSpec[];
  readonly reads?: readonly StoreRead[];
}

/**
 * The last part of a stateful node's detail: its state holds only the records of the task's input
 * partition (topology.ts describeText spells out what that asks of the producer's key).
 */
export const PER_INPUT_PARTITION = 'per input partition';

/** A function as describe() shows it: its source on one line, shortened (`(e) => e.subject`). */
export function functionText(fn: (...args: never[]) => unknown): string {
  const text = fn.toString().replace(/\s+/g, ' ').trim();
  return text.length > 80 ? `${text.slice(0, 79)}…` : text;
}
