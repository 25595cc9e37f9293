/**
 * Serde throughput of the reference usage event with a cached schema (no registry round trips in
 * the measured loop): decode of Confluent-framed Avro to the reader schema, and encode. Also the
 * evolution path (v1 writer resolved to a v2 reader), since mixed-version topics are the norm.
 *
 *   node --import tsx bench/serde.ts [seconds per measurement, default 3]
 *
 * Last line: `serde: <N> records/s decode, <M> records/s encode`.
 */
import { readFileSync } from 'node:fs';
import { avro, InMemorySchemaRegistry } from '../src/index.js';
import { usageEventSchema, type UsageEvent } from '../examples/metering/usage-event.js';

const seconds = Number(process.argv[2] ?? 3);
const ctx = { topic: 'usage-events', role: 'value' as const };
const v1 = usageEventSchema();
const v2 = readFileSync(new URL('../test/unit/serde/fixtures/usage-event.v2.avsc', import.meta.url), 'utf8');

function event(n: number): UsageEvent {
  return {
    id: `01J${n.toString(36).padStart(10, '0')}`,
    source: 'api-gateway/eu-1',
    type: 'api.call',
    subject: `customer-${n % 1000}`,
    time: 1_700_000_000_000 + n,
    meter: 'tokens',
    value: (n % 977) * 1.25,
    dimensions: { model: n % 2 === 0 ? 'small' : 'large', region: 'eu-west-1' },
  };
}

/** Runs `body` over `inputs` round-robin for about `seconds`; returns calls per second. */
function measure<I>(inputs: readonly I[], body: (input: I) => unknown): number {
  const batch = inputs.length;
  for (let i = 0; i < batch * 20; i++) body(inputs[i % batch]!); // warm-up: let V8 optimize the hot path
  let calls = 0;
  const started = process.hrtime.bigint();
  const budget = BigInt(Math.round(seconds * 1e9));
  let elapsed = 0n;
  while (elapsed < budget) {
    for (let i = 0; i < batch; i++) body(inputs[i]!);
    calls += batch;
    elapsed = process.hrtime.bigint() - started;
  }
  return Math.round((calls * 1e9) / Number(elapsed));
}

function assertSync<T>(value: T | Promise<T>): T {
  if (value instanceof Promise) throw new Error('expected the cached path to be synchronous');
  return value;
}

async function main(): Promise<void> {
  const registry = new InMemorySchemaRegistry();
  const serde = avro<UsageEvent>({ registry, readerSchema: v1 });
  const events = Array.from({ length: 1024 }, (_, n) => event(n));
  const framed: Buffer[] = [];
  for (const e of events) framed.push(await serde.serialize(e, ctx));
  await serde.deserialize(framed[0]!, ctx); // caches the schema id
  const evolving = avro<UsageEvent & { unit: string | null }>({ registry, readerSchema: v2 });
  await evolving.deserialize(framed[0]!, ctx);

  const decodeRate = measure(framed, (buffer) => assertSync(serde.deserialize(buffer, ctx)));
  const resolveRate = measure(framed, (buffer) => assertSync(evolving.deserialize(buffer, ctx)));
  const encodeRate = measure(events, (e) => assertSync(serde.serialize(e, ctx)));

  const bytes = framed.reduce((sum, buffer) => sum + buffer.length, 0) / framed.length;
  console.log(
    `record size: ${bytes.toFixed(0)} bytes framed; ${seconds} s per measurement; node ${process.version}`,
  );
  console.log(`decode (writer = reader):        ${decodeRate.toLocaleString('en-US')} records/s`);
  console.log(`decode (v1 writer -> v2 reader): ${resolveRate.toLocaleString('en-US')} records/s`);
  console.log(`encode:                          ${encodeRate.toLocaleString('en-US')} records/s`);
  console.log(`serde: ${decodeRate} records/s decode, ${encodeRate} records/s encode`);
}

await main();
