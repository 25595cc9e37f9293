/**
 * Memory of outputs waiting for delivery (not a timed test): a sink that is down while windows keep
 * closing. Window results of the metering job (key { subject, meter }, value { count, total }) are
 * appended and committed in segments of 100k rows (a window close of 100k keys), and none is acked;
 * then they are all read and acked, as the runtime does when the sink comes back.
 *
 *   node --expose-gc --import tsx bench/outbox.ts [pending rows, default 1,000,000]
 *
 * Side by side in one process: the outbox as built (past the first 50k pending rows, a delivery
 * round's worth, rows wait packed in the segment format) and the same outbox keeping every pending
 * row as objects
 * (`hotRows: Infinity`, what it did before). Last line:
 * `outbox: <B> bytes of memory per pending row (<O> kept as objects), drain <N> rows/s (<M> as objects)`.
 */
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { OutboxStore, StateDb } from '../src/state/index.js';
import type { OutboxOptions } from '../src/state/index.js';
import { windowResultCodec } from '../src/topology/result-codec.js';

const rows = Number(process.argv[2] ?? 1_000_000);
const SEGMENT_ROWS = 100_000;
const gc = (globalThis as { gc?: () => void }).gc;
if (gc === undefined) throw new Error('run with node --expose-gc (npm run bench:outbox does)');

function memory(): number {
  gc?.();
  gc?.();
  const { heapUsed, arrayBuffers } = process.memoryUsage();
  return heapUsed + arrayBuffers;
}

function row(n: number) {
  const key = n % SEGMENT_ROWS;
  return {
    windowStart: 1_700_000_040_000 + Math.floor(n / SEGMENT_ROWS) * 60_000,
    windowEnd: 1_700_000_100_000 + Math.floor(n / SEGMENT_ROWS) * 60_000,
    key: { subject: `customer-${key}`, meter: key % 2 === 0 ? 'api_calls' : 'tokens' },
    value: { count: (n % 97) + 1, total: ((n % 13) + 1) * 1.5 },
    version: 1,
    partition: 0,
  };
}

async function measure(options: OutboxOptions): Promise<{ bytesPerRow: number; drainPerSecond: number }> {
  const dir = await mkdtemp(join(tmpdir(), 'tributary-bench-outbox-'));
  try {
    const db = await StateDb.open(dir);
    const outbox = await db.attach(new OutboxStore<unknown>(db, 'usage_1m', windowResultCodec, options));
    const before = memory();
    for (let n = 0; n < rows; n++) {
      outbox.append(row(n));
      if ((n + 1) % SEGMENT_ROWS === 0 || n === rows - 1) await db.commit({});
    }
    const bytesPerRow = (memory() - before) / outbox.pending();
    const started = process.hrtime.bigint();
    let drained = 0;
    for (let batch = await outbox.read(50_000); batch.length > 0; batch = await outbox.read(50_000)) {
      drained += batch.length;
      await outbox.ack((batch[batch.length - 1] as { seq: bigint }).seq);
    }
    const seconds = Number(process.hrtime.bigint() - started) / 1e9;
    if (drained !== rows) throw new Error(`drained ${drained} rows of ${rows}`);
    await db.close();
    return { bytesPerRow, drainPerSecond: drained / seconds };
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
}

const objects = await measure({ hotRows: Infinity });
const packed = await measure({});
console.log(
  `outbox: ${Math.round(packed.bytesPerRow)} bytes of memory per pending row (${Math.round(objects.bytesPerRow)} kept as objects), ` +
    `drain ${Math.round(packed.drainPerSecond)} rows/s (${Math.round(objects.drainPerSecond)} as objects)`,
);
