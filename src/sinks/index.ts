export * from './types.js';
export * from './clickhouse.js';
export * from './memory.js';
