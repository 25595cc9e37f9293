export * from './clickhouse.js';
export * from './memory.js';
