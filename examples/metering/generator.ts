/**
 * A synthetic usage stream with a known answer: unique events, 1% re-sent duplicates of recent events
 * (and, when asked, of events sent long before), events out of order by up to 5 s, a few late events,
 * and a few malformed records of every bad-input class. It
 * keeps the ground truth — what the pipeline must write to ClickHouse — and the malformed records'
 * coordinates, which the DLQ must hold exactly.
 *
 * Event time is compressed: the run covers `eventTimeSpanMs` of event time (whole minutes, starting
 * on a minute boundary in the past), so a one-minute run closes several windows and its last window
 * is complete when production stops.
 */
import { Partitioners } from 'kafkajs';
import type { Kafka, Message, Producer } from 'kafkajs';
import type { Logger } from 'pino';
import { setTimeout as sleep } from 'node:timers/promises';
import { avro } from '../../src/index.js';
import type { Serde } from '../../src/index.js';
import { exampleKafka } from './kafka.js';
import { METERING_WINDOW } from './pipeline.js';
import { usageEventSchema } from './usage-event.js';
import type { UsageEvent } from './usage-event.js';

export interface GeneratorOptions {
  brokers: string[];
  registryUrl: string;
  topic: string;
  totalEvents: number;
  /** Target events per second. */
  rate: number;
  subjects?: number;
  meters?: readonly string[];
  duplicateRatio?: number;
  /**
   * Share of messages that re-send an event sent long before: one that has left the window the
   * ordinary duplicates are drawn from (the last RECENT_EVENTS events), picked from all earlier ones.
   * Only a dedupe store's older tier still knows such an id. Default 0 (the run is as without it).
   */
  oldDuplicateRatio?: number;
  maxOutOfOrderMs?: number;
  lateEvents?: number;
  /** Malformed records of each class (bad magic byte, unknown schema id, truncated, invalid). */
  malformedPerClass?: number;
  eventTimeSpanMs?: number;
  /** Where event time starts (a minute boundary); default: far enough back that the run ends before now. */
  eventTimeStart?: number;
  /** Avro schema the events are written with (registered under `<topic>-value`); default schemas/usage-event.avsc. */
  writerSchema?: string;
  seed?: number;
  /** Where kafkajs' lines go (through the runtime's kafkajs bridge); default warnings on stderr. */
  logger?: Logger;
}

export interface WindowTotals {
  count: number;
  total: number;
  max: number;
}

export type MalformedClass = 'bad-magic-byte' | 'unknown-schema-id' | 'truncated' | 'validation-failed';

export interface MalformedRecord {
  kind: MalformedClass;
  partition: number;
  offset: string;
}

export interface GroundTruth {
  /** `${windowStartMs}|${subject}|${meter}` -> totals over unique, valid events. */
  windows: Map<string, WindowTotals>;
  produced: number;
  unique: number;
  duplicates: number;
  /** Of `duplicates`, those of events sent more than RECENT_EVENTS events before (oldDuplicateRatio). */
  oldDuplicates: number;
  late: number;
  malformed: MalformedRecord[];
}

function emptyTruth(): GroundTruth {
  return {
    windows: new Map(),
    produced: 0,
    unique: 0,
    duplicates: 0,
    oldDuplicates: 0,
    late: 0,
    malformed: [],
  };
}

export function truthKey(windowStart: number, subject: string, meter: string): string {
  return `${windowStart}|${subject}|${meter}`;
}

/** Small, seedable PRNG (mulberry32): runs are reproducible from their seed. */
export function seededRandom(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

/** Ordinary duplicates re-send one of this many latest fresh events. */
export const RECENT_EVENTS = 5000;

interface Pending {
  message: Message;
  /** Applied to the truth once the broker acknowledged the message. */
  account: ((partition: number, offset: string) => void) | undefined;
}

export class UsageGenerator {
  readonly truth: GroundTruth = emptyTruth();
  private readonly kafka: Kafka;
  private producer: Producer | undefined;
  private readonly serde: Serde<UsageEvent>;
  private readonly next: () => number;
  private readonly options: Required<Omit<GeneratorOptions, 'eventTimeStart' | 'logger'>>;
  private readonly recent: UsageEvent[] = [];
  /** Fresh events that left `recent`, kept only when old duplicates are asked for. */
  private readonly older: UsageEvent[] = [];
  private stopped = false;
  readonly eventTimeStart: number;

  constructor(options: GeneratorOptions) {
    this.options = {
      subjects: 500,
      meters: ['api.calls', 'tokens', 'storage.gb'],
      duplicateRatio: 0.01,
      oldDuplicateRatio: 0,
      maxOutOfOrderMs: 5000,
      lateEvents: 10,
      malformedPerClass: 2,
      eventTimeSpanMs: 5 * 60_000,
      writerSchema: usageEventSchema(),
      seed: 42,
      ...options,
    };
    this.next = seededRandom(this.options.seed);
    this.kafka = exampleKafka('usage-generator', options.brokers, options.logger);
    this.serde = avro<UsageEvent>({
      registry: { url: options.registryUrl },
      readerSchema: this.options.writerSchema,
    });
    const size = METERING_WINDOW.size;
    this.eventTimeStart =
      options.eventTimeStart ?? Math.floor(Date.now() / size) * size - this.options.eventTimeSpanMs - size;
  }

  /** Where the event time of this run ends: a following run may start there. */
  get eventTimeEnd(): number {
    return this.eventTimeStart + this.options.eventTimeSpanMs;
  }

  stop(): void {
    this.stopped = true;
  }

  private pick<T>(items: readonly T[]): T {
    return items[Math.floor(this.next() * items.length)] as T;
  }

  private account(event: UsageEvent): void {
    const start = Math.floor(event.time / METERING_WINDOW.size) * METERING_WINDOW.size;
    const key = truthKey(start, event.subject, event.meter);
    const totals = this.truth.windows.get(key);
    if (totals) {
      totals.count += 1;
      totals.total += event.value;
      totals.max = Math.max(totals.max, event.value);
    } else {
      this.truth.windows.set(key, { count: 1, total: event.value, max: event.value });
    }
  }

  private eventAt(index: number, time: number): UsageEvent {
    return {
      id: `evt-${this.options.seed}-${index}`,
      source: `gateway/${index % 3}`,
      type: 'api.call',
      subject: `customer-${Math.floor(this.next() * this.options.subjects)}`,
      time,
      meter: this.pick(this.options.meters),
      // Whole numbers keep every sum exact in doubles, whatever the order of addition.
      value: 1 + Math.floor(this.next() * 1000),
      dimensions: { region: this.pick(['eu-1', 'us-1', 'ap-1']) },
    };
  }

  /** Builds message i of the run: mostly fresh events, sometimes a duplicate, a late or a malformed one. */
  private async messageAt(index: number): Promise<Pending> {
    const { totalEvents, eventTimeSpanMs, maxOutOfOrderMs, duplicateRatio, oldDuplicateRatio } = this.options;
    const now = this.eventTimeStart + Math.floor((index * eventTimeSpanMs) / totalEvents);
    const encode = (event: UsageEvent) =>
      this.serde.serialize(event, { topic: this.options.topic, role: 'value' });

    const malformedEvery = Math.floor(totalEvents / (4 * this.options.malformedPerClass + 1));
    if (malformedEvery > 0 && index % malformedEvery === malformedEvery - 1) {
      const slot = Math.floor(index / malformedEvery);
      if (slot < 4 * this.options.malformedPerClass) {
        const kind = (['bad-magic-byte', 'unknown-schema-id', 'truncated', 'validation-failed'] as const)[
          slot % 4
        ]!;
        const event = this.eventAt(index, now);
        const valid = await encode(event);
        const value =
          kind === 'bad-magic-byte'
            ? Buffer.concat([Buffer.from([0x7b]), valid.subarray(1)])
            : kind === 'unknown-schema-id'
              ? Buffer.concat([Buffer.from([0, 0x7f, 0xff, 0xff, 0xf0]), valid.subarray(5)])
              : kind === 'truncated'
                ? valid.subarray(0, Math.max(6, valid.length - 12))
                : await encode({ ...event, id: '' });
        return {
          message: { key: event.subject, value },
          account: (partition, offset) => this.truth.malformed.push({ kind, partition, offset }),
        };
      }
    }

    const lateEvery = Math.floor(totalEvents / (this.options.lateEvents + 1));
    const pastFirstWindows = now - this.eventTimeStart > 3 * METERING_WINDOW.size;
    if (lateEvery > 0 && index % lateEvery === lateEvery - 1 && pastFirstWindows) {
      // Two minutes behind: its window has closed, so the pipeline re-emits that window.
      const event = this.eventAt(index, now - 2 * METERING_WINDOW.size);
      return {
        message: { key: event.subject, value: await encode(event) },
        account: () => {
          this.truth.late++;
          this.truth.unique++;
          this.account(event);
        },
      };
    }

    // Drawn only when asked for, so that runs without old duplicates keep their sequence per seed.
    if (oldDuplicateRatio > 0 && this.older.length > 0 && this.next() < oldDuplicateRatio) {
      const original = this.pick(this.older);
      return {
        message: { key: original.subject, value: await encode(original) },
        account: () => {
          this.truth.duplicates++;
          this.truth.oldDuplicates++;
        },
      };
    }

    if (this.recent.length > 0 && this.next() < duplicateRatio) {
      const original = this.pick(this.recent);
      return {
        message: { key: original.subject, value: await encode(original) },
        account: () => this.truth.duplicates++,
      };
    }

    const time = Math.max(this.eventTimeStart, now - Math.floor(this.next() * maxOutOfOrderMs));
    const event = this.eventAt(index, time);
    this.recent.push(event);
    if (this.recent.length > RECENT_EVENTS) {
      const left = this.recent.shift() as UsageEvent;
      if (oldDuplicateRatio > 0) this.older.push(left);
    }
    return {
      message: { key: event.subject, value: await encode(event) },
      account: () => {
        this.truth.unique++;
        this.account(event);
      },
    };
  }

  private partitions = 1;

  async connect(): Promise<void> {
    const admin = this.kafka.admin();
    await admin.connect();
    const metadata = await admin.fetchTopicMetadata({ topics: [this.options.topic] });
    this.partitions = metadata.topics[0]?.partitions.length ?? 1;
    await admin.disconnect();
    // Partitions are chosen explicitly (partitionOfSubject), so the partitioner never runs.
    this.producer = this.kafka.producer({
      idempotent: true,
      maxInFlightRequests: 1,
      createPartitioner: Partitioners.DefaultPartitioner,
    });
    await this.producer.connect();
  }

  /**
   * Produces the whole run at about `rate` events/s, in batches. Every message is accounted only
   * after the broker acknowledged it, with the partition and offset it got.
   */
  async run(onProgress?: (produced: number) => void): Promise<GroundTruth> {
    if (!this.producer) await this.connect();
    const producer = this.producer as Producer;
    const batchSize = Math.max(1, Math.min(2000, Math.floor(this.options.rate / 10)));
    const started = Date.now();
    for (let index = 0; index < this.options.totalEvents && !this.stopped;) {
      const count = Math.min(batchSize, this.options.totalEvents - index);
      const batch: Pending[] = [];
      for (let i = 0; i < count; i++) batch.push(await this.messageAt(index + i));
      for (const pending of batch) {
        pending.message.partition = partitionOfSubject(String(pending.message.key), this.partitions);
      }
      const results = await producer.send({
        topic: this.options.topic,
        acks: -1,
        messages: batch.map((p) => p.message),
      });
      // The broker reports each partition's base offset; a partition's messages keep their batch order.
      const nextOffset = new Map(results.map((r) => [r.partition, BigInt(r.baseOffset ?? '0')]));
      for (const pending of batch) {
        const partition = pending.message.partition as number;
        const offset = nextOffset.get(partition) ?? 0n;
        nextOffset.set(partition, offset + 1n);
        pending.account?.(partition, offset.toString());
      }
      index += count;
      this.truth.produced = index;
      onProgress?.(index);
      const due = started + (index / this.options.rate) * 1000;
      const wait = due - Date.now();
      if (wait > 0) await sleep(wait);
    }
    return this.truth;
  }

  /** Disconnects; safe to call more than once. */
  async close(): Promise<void> {
    const producer = this.producer;
    this.producer = undefined;
    await producer?.disconnect();
  }
}

/** Where a subject's events go (FNV-1a): all events of a subject, duplicates included, share a partition. */
export function partitionOfSubject(subject: string, partitions: number): number {
  let hash = 0x811c9dc5;
  for (let i = 0; i < subject.length; i++) hash = Math.imul(hash ^ subject.charCodeAt(i), 0x01000193);
  return (hash >>> 0) % partitions;
}

/** The ground truth of several runs into the same topic, as one. */
export function combineTruths(...truths: GroundTruth[]): GroundTruth {
  const combined = emptyTruth();
  for (const truth of truths) {
    combined.produced += truth.produced;
    combined.unique += truth.unique;
    combined.duplicates += truth.duplicates;
    combined.oldDuplicates += truth.oldDuplicates;
    combined.late += truth.late;
    combined.malformed.push(...truth.malformed);
    for (const [key, totals] of truth.windows) {
      const into = combined.windows.get(key);
      if (!into) combined.windows.set(key, { ...totals });
      else {
        into.count += totals.count;
        into.total += totals.total;
        into.max = Math.max(into.max, totals.max);
      }
    }
  }
  return combined;
}
