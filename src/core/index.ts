/**
 * The shared vocabulary of every folder: records, the runtime <-> engine task contract, the sink
 * contract, the service endpoints sinks and serdes get from the App, and the unknown-option check.
 */
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
export { StoreQueryError, storeTime } from './store-reads.js';
export type {
  DedupeBucketView,
  DedupeLookup,
  KeyValueEntryView,
  OutboxEntryView,
  StoreEntryView,
  StoreLookup,
  StorePage,
  StoreReadOptions,
  StoreTime,
  WindowEntryView,
} from './store-reads.js';
export {
  DEFAULT_CLICKHOUSE_URL,
  DEFAULT_SCHEMA_REGISTRY_URL,
  type ServiceDefaults,
  type ServiceEndpoint,
  type UsesServiceDefaults,
} from './services.js';
export { closestName, rejectUnknownKeys, unknownKeyMessage } from './unknown-keys.js';
