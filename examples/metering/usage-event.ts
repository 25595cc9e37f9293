/**
 * The event of the reference job: a usage event (schemas/usage-event.avsc) as a TypeScript type, with
 * the checks Avro cannot express (bounded dimensions, finite values), for use with
 * `.validate(validateUsageEvent)` or `validated(avro(...), validateUsageEvent)`.
 */
import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';

export interface UsageEvent {
  id: string;
  source: string;
  type: string;
  subject: string;
  /** Event time, epoch ms (timestamp-millis). */
  time: number;
  meter: string;
  value: number;
  dimensions: Record<string, string>;
}

export const USAGE_EVENT_LIMITS = {
  maxDimensions: 16,
  maxDimensionKeyLength: 64,
  maxDimensionValueLength: 256,
} as const;

/** Returns what is wrong with the event, or undefined when it is fine (the Validator contract). */
export function validateUsageEvent(event: UsageEvent): string | undefined {
  if (event.id === '') return 'id is empty';
  if (event.source === '') return 'source is empty';
  if (!Number.isFinite(event.value)) return `value is not a finite number: ${event.value}`;
  if (!Number.isSafeInteger(event.time) || event.time < 0)
    return `time is not a valid epoch-ms timestamp: ${event.time}`;
  const keys = Object.keys(event.dimensions);
  if (keys.length > USAGE_EVENT_LIMITS.maxDimensions) {
    return `${keys.length} dimensions, at most ${USAGE_EVENT_LIMITS.maxDimensions} allowed`;
  }
  for (const key of keys) {
    if (key.length > USAGE_EVENT_LIMITS.maxDimensionKeyLength)
      return `dimension key too long: ${key.slice(0, 32)}...`;
    if ((event.dimensions[key] ?? '').length > USAGE_EVENT_LIMITS.maxDimensionValueLength) {
      return `dimension ${key} value longer than ${USAGE_EVENT_LIMITS.maxDimensionValueLength} characters`;
    }
  }
  return undefined;
}

/** The Avro schema of the usage event, registered under `<topic>-value` (see schemas/subjects.json). */
export const USAGE_EVENT_SCHEMA_FILE = fileURLToPath(
  new URL('../../schemas/usage-event.avsc', import.meta.url),
);

/** The usage-event schema text. */
export function usageEventSchema(): string {
  return readFileSync(USAGE_EVENT_SCHEMA_FILE, 'utf8');
}
