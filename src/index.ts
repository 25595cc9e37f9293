/**
 * tributary: Kafka Streams-style stream processing for TypeScript.
 *
 *   const app = tributary({ appId: 'metering' });
 *   app.stream('orders', avro<Order>()).groupBy(...).window(tumbling(minutes(1))).aggregate({...}).to(clickhouse({...}));
 *   await app.start();
 */
export * from './core/index.js';
export { App, tributary } from './app.js';
export type { AppOptions } from './app.js';
export * from './runtime/index.js';
export * from './topology/index.js';
export * from './serde/index.js';
export * from './sinks/index.js';
export { startAdminServer } from './admin/server.js';
export type { AdminOptions } from './admin/server.js';
export { AdminRequestError, AdminUnreachableError, queryStore, readStore } from './admin/query-client.js';
export type {
  AdminRequestOptions,
  KeyLookupResponse,
  KeyLookupResult,
  QueryStoreOptions,
  StorePageResponse,
} from './admin/query-client.js';
export type { Peer, PeerProvider } from './admin/store-lookup.js';
