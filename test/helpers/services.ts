/** Endpoints of the real services the integration tests talk to (the stack's defaults, overridable). */
import { randomBytes } from 'node:crypto';

export const brokers = (process.env.TRIBUTARY_BROKERS ?? '127.0.0.1:9092').split(',');
export const registryUrl =
  process.env.TRIBUTARY_SCHEMA_REGISTRY_URL ?? 'http://127.0.0.1:8081/apis/ccompat/v7';
export const clickhouseUrl = process.env.TRIBUTARY_CLICKHOUSE_URL ?? 'http://127.0.0.1:8123';

/** A name no earlier run used, so tests pass on a fresh stack and on one that old runs left behind. */
export function uniqueName(prefix: string): string {
  return `${prefix}_${Date.now().toString(36)}_${randomBytes(3).toString('hex')}`;
}
