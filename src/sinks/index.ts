export * from './types.js';
export * from './clickhouse.js';
