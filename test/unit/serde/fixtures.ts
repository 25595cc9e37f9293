/** Schemas and sample events shared by the serde tests (unit and integration). */
import { readFileSync } from 'node:fs';
import avsc from 'avsc';
import { encodeWireFormat } from '../../../src/serde/index.js';
import { usageEventSchema } from '../../../examples/metering/usage-event.js';
import type { UsageEvent } from '../../../examples/metering/usage-event.js';

const fixture = (name: string): string =>
  readFileSync(new URL(`./fixtures/${name}`, import.meta.url), 'utf8');

export const usageEventV1 = usageEventSchema();
export const usageEventV2 = fixture('usage-event.v2.avsc');
export const usageEventIncompatible = fixture('usage-event.incompatible.avsc');

/** A writer schema no usage-event reader can resolve: `value` is a string, which never promotes to double. */
export const usageEventWithStringValue = JSON.stringify({
  ...(JSON.parse(usageEventV1) as object),
  fields: (JSON.parse(usageEventV1) as { fields: Array<{ name: string }> }).fields.map((field) =>
    field.name === 'value' ? { name: 'value', type: 'string' } : field,
  ),
});

export interface UsageEventV2 extends UsageEvent {
  unit: string | null;
}

export function sampleEvent(n = 1): UsageEvent {
  return {
    id: `evt-${n}`,
    source: 'api-gateway/eu-1',
    type: 'api.call',
    subject: `customer-${n % 7}`,
    time: 1_700_000_000_000 + n * 1000,
    meter: 'requests',
    value: n * 1.5,
    dimensions: { model: 'small', region: 'eu' },
  };
}

/** Encodes by hand with plain avsc and the Confluent framing, as any other producer would. */
export function frame(schemaId: number, schemaText: string, value: unknown): Buffer {
  return encodeWireFormat(
    schemaId,
    avsc.Type.forSchema(JSON.parse(schemaText) as avsc.Schema).toBuffer(value),
  );
}

/**
 * `frame()` of a value in which every `@@@` inside a string is replaced by the bytes ff fe fd, which
 * are not UTF-8 (a lenient decoder reads them as three U+FFFD).
 */
export function frameWithInvalidUtf8(schemaId: number, schemaText: string, value: unknown): Buffer {
  const framed = frame(schemaId, schemaText, value);
  const marker = Buffer.from('@@@');
  for (let at = framed.indexOf(marker); at !== -1; at = framed.indexOf(marker, at + 3)) {
    framed.set([0xff, 0xfe, 0xfd], at);
  }
  return framed;
}
