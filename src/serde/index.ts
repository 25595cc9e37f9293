/** Public API of the serde module: formats, the registry client, the DLQ envelope. */
export * from './types.js';
export { avro, AvroSerde, type AvroSerdeOptions } from './avro.js';
export {
  parseAvroSchema,
  avroSchemaText,
  schemaFingerprint,
  DEFAULT_MAX_COLLECTION_ITEMS,
  type AvroSchemaInput,
} from './avro-types.js';
export { json, type JsonSerdeOptions } from './json.js';
export { string } from './string.js';
export { nullable, validated, type Validator } from './combinators.js';
export {
  createSchemaRegistryClient,
  HttpSchemaRegistryClient,
  SchemaNotFoundError,
  SchemaRegistryError,
  probeSchemaRegistry,
  SchemaRegistryProbeError,
  type CompatibilityResult,
  type RetryPolicy as RegistryRetryPolicy,
  type SchemaById,
  type SchemaRegistryAuth,
  type SchemaRegistryClient,
  type SchemaRegistryConfig,
  type SchemaRegistryProbeOptions,
  type SchemaType,
  type SubjectVersion,
} from './registry.js';
export { InMemorySchemaRegistry } from './registry-memory.js';
export { encodeWireFormat, readSchemaId, MAGIC_BYTE, WIRE_HEADER_SIZE } from './wire-format.js';
export {
  toDlqMessage,
  parseDlqMessage,
  truncatedSize,
  deadLetterFor,
  defaultDlqTopic,
  NotADeadLetterError,
  DLQ_HEADERS,
  DLQ_HEADER_PREFIX,
  MAX_DLQ_ERROR_MESSAGE_BYTES,
  type DlqMessage,
  type DlqMessageOptions,
  type IncomingDlqMessage,
  type IncomingHeaderValue,
} from './dlq.js';
export {
  loadSchemaMapping,
  schemaFilePath,
  registerSchemas,
  type RegisterSchemasOptions,
  type RegisterSchemasResult,
  type RegistrationOutcome,
  type RegistrationStatus,
  type SchemaMappingEntry,
} from './schema-registration.js';
