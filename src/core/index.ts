/** The shared vocabulary of every folder: records, the runtime <-> engine task contract, the sink contract. */
export type { Headers, DeadLetterReason, RawRecord, DeadLetter, WindowResult } from './records.js';
export { DLQ_OUTBOX } from './task.js';
export type {
  PartitionTask,
  ResumeDecision,
  RunnableTopology,
  Outbox,
  OutboxEntry,
  OpenTaskOptions,
  StoreView,
  TaskMetrics,
} from './task.js';
export * from './sink.js';
