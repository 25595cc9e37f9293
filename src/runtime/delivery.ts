/**
 * Hands committed outputs from the task outboxes to their destinations, then acks them.
 *
 * - Sink outboxes (ClickHouse, ...): rows of all tasks go out in one write per sink, then each task's
 *   outbox is acked. A crash between write and ack replays the same rows with the same versions,
 *   which the sink makes harmless (ReplacingMergeTree).
 * - The DLQ outbox: per task, dead letters and a progress offset (group `<appId>.dlq-progress`, the
 *   source partition, last dead-lettered offset + 1) are written in one Kafka transaction. After a
 *   crash between that commit and the ack, entries below the progress offset are known to be in the
 *   DLQ already and are skipped: the DLQ holds every bad record exactly once.
 */
import type { Logger } from 'pino';
import { PermanentSinkError } from '../core/sink.js';
import type { SinkSpec, SinkWriter } from '../core/sink.js';
import type { DeadLetter, WindowResult } from '../core/records.js';
import { settleWithin } from '../core/retry.js';
import { DLQ_OUTBOX } from '../core/task.js';
import type { Outbox, OutboxEntry, RunnableTopology } from '../core/task.js';
import type { TributaryConfig } from './config.js';
import { dlqTopicOf } from './config.js';
import type { KafkaAdmin, KafkaClient, OutgoingMessage, TransactionalWriter } from './kafka/client.js';
import { packDeadLetters } from './dlq-transactions.js';
import type { RuntimeMetrics } from './metrics.js';
import { RecentDeadLetters } from './recent-dead-letters.js';
import type { TaskHost } from './task-host.js';

interface OpenSink {
  spec: SinkSpec<unknown>;
  writer: SinkWriter<unknown>;
  /** Set when only window results reach the sink: their end-to-end latency is measured. */
  windowGraceMs: number | undefined;
  /** The last write rejected (the next round retries it). */
  failing: boolean;
  /** The last error of a write or of a retried attempt within one; undefined once a write succeeds. */
  lastError: string | undefined;
}

/** A sink whose writes are failing (the runtime retries them), for readiness. */
export interface FailingSink {
  sink: string;
  error: string;
}

/** Dead letters read per delivery round (the transactions within it are cut by bytes). */
const DLQ_BATCH = 1000;

const sameRecord = (a: DeadLetter, b: DeadLetter) =>
  a.record.topic === b.record.topic && a.record.offset === b.record.offset;

/**
 * Up to `max` committed dead letters, ending on a record boundary. The DLQ progress offset says
 * "every dead letter of source offsets below this is in the DLQ", so one transaction must carry all
 * the dead letters of a source record (a record failing in two branches has two): when more are
 * pending, the last record's letters wait for the next round, unless they alone fill the batch.
 */
export async function readWholeRecords(outbox: Outbox, max: number): Promise<OutboxEntry<unknown>[]> {
  if (outbox.pending() === 0) return [];
  const entries = await outbox.read(max);
  if (outbox.pending() === entries.length) return entries;
  const tail = entries[entries.length - 1]!.value as DeadLetter;
  const boundary = entries.findLastIndex(({ value }) => !sameRecord(value as DeadLetter, tail));
  if (boundary >= 0) return entries.slice(0, boundary + 1);
  const all = await outbox.read(outbox.pending());
  const end = all.findIndex(({ value }) => !sameRecord(value as DeadLetter, tail));
  return end < 0 ? all : all.slice(0, end);
}

const messageOf = (error: unknown) => (error instanceof Error ? error.message : String(error));

export class OutputDelivery {
  private sinks: OpenSink[] = [];
  private admin: KafkaAdmin | undefined;
  private readonly dlqWriters = new Map<number, TransactionalWriter>();
  /** Next source offset not yet in the DLQ, per `topic:partition`, read from Kafka once per task open. */
  private readonly dlqProgress = new Map<string, bigint>();
  private readonly dlqTopic: string;
  private readonly progressGroup: string;
  /** The last dead letters written to the DLQ, for the admin console. */
  readonly recentDeadLetters = new RecentDeadLetters();

  constructor(
    private readonly topology: RunnableTopology,
    private readonly config: TributaryConfig,
    private readonly kafka: KafkaClient,
    private readonly metrics: RuntimeMetrics,
    private readonly logger: Logger,
    /** A sink failed in a way retrying cannot fix: the instance must stop. */
    private readonly onFatal: (error: Error) => void,
  ) {
    this.dlqTopic = dlqTopicOf(config);
    this.progressGroup = `${config.appId}.dlq-progress`;
  }

  /** Creates the DLQ topic when absent and opens every sink; `admin` stays the caller's to close. */
  async open(admin: KafkaAdmin): Promise<void> {
    this.admin = admin;
    await this.admin.ensureTopic(this.dlqTopic, this.config.dlq.partitions);
    for (const { spec, schema, windowGraceMs } of this.topology.sinks) {
      const sink: Omit<OpenSink, 'writer'> = { spec, windowGraceMs, failing: false, lastError: undefined };
      const writer = await spec.open({
        appId: this.config.appId,
        ...(schema ? { schema } : {}),
        logger: this.logger.child({ sink: spec.name }),
        onRetry: (error) => {
          this.metrics.sinkFailures.inc({ sink: spec.name });
          // Failing from the first retried attempt: a sink retries a write for a while before it gives up.
          sink.lastError = messageOf(error);
        },
      });
      this.sinks.push(Object.assign(sink, { writer }));
      this.metrics.registerSink(spec.name);
    }
  }

  /** Forget what we knew of a partition's DLQ progress: another instance may have owned it meanwhile. */
  forgetPartition(partition: number): void {
    for (const key of [...this.dlqProgress.keys()])
      if (key.endsWith(`:${partition}`)) this.dlqProgress.delete(key);
  }

  /** The partition left this instance: drop its transactional writer so the new owner's can take over. */
  async releasePartition(partition: number): Promise<void> {
    await this.dropDlqWriter(partition);
  }

  get healthy(): boolean {
    return this.sinks.every((s) => s.lastError === undefined);
  }

  failingSinks(): FailingSink[] {
    return this.sinks.flatMap(({ spec, lastError }) =>
      lastError === undefined ? [] : [{ sink: spec.name, error: lastError }],
    );
  }

  /** One delivery round over all tasks. Returns true when it delivered anything. */
  async deliver(hosts: readonly TaskHost[]): Promise<boolean> {
    let delivered = false;
    for (const sink of this.sinks) delivered = (await this.deliverSink(sink, hosts)) || delivered;
    for (const host of hosts) delivered = (await this.deliverDeadLetters(host)) || delivered;
    return delivered;
  }

  private async deliverSink(sink: OpenSink, hosts: readonly TaskHost[]): Promise<boolean> {
    const budget = this.config.outputs.batchSize;
    const taken: Array<{ host: TaskHost; throughSeq: bigint }> = [];
    const rows: unknown[] = [];
    for (const host of hosts) {
      if (rows.length >= budget) break;
      const entries = await host.queue.run(async () => {
        if (host.closed) return [];
        const outbox = host.outbox(sink.spec.name);
        return outbox && outbox.pending() > 0 ? outbox.read(budget - rows.length) : [];
      });
      const last = entries[entries.length - 1];
      if (!last) continue;
      for (const entry of entries) rows.push(entry.value);
      taken.push({ host, throughSeq: last.seq });
    }
    if (rows.length === 0) return false;
    try {
      await sink.writer.write(rows);
      if (sink.failing) this.logger.info({ sink: sink.spec.name }, 'sink recovered');
      sink.failing = false;
      sink.lastError = undefined;
    } catch (error) {
      if (error instanceof PermanentSinkError) {
        this.onFatal(
          new Error(`sink ${sink.spec.name} cannot take the rows: ${error.message}`, { cause: error }),
        );
        return false;
      }
      if (!sink.failing)
        this.logger.warn({ sink: sink.spec.name, err: error }, 'sink write failed; will retry');
      sink.failing = true;
      sink.lastError = messageOf(error);
      this.metrics.sinkFailures.inc({ sink: sink.spec.name });
      return false;
    }
    this.metrics.sinkRows.inc({ sink: sink.spec.name }, rows.length);
    this.metrics.sinkWrites.inc({ sink: sink.spec.name });
    if (sink.windowGraceMs !== undefined) this.observeLatency(sink.spec.name, sink.windowGraceMs, rows);
    for (const { host, throughSeq } of taken) {
      await host.queue.run(async () => {
        // A task revoked meanwhile is acked by its next owner's replay instead (harmless, same rows).
        if (host.closed) return;
        const outbox = host.outbox(sink.spec.name);
        await outbox?.ack(throughSeq);
      });
    }
    return true;
  }

  /**
   * Per window row: now (the write succeeded) minus the moment the window could first emit. Event
   * times ahead of the wall clock can make it negative; those count as 0.
   */
  private observeLatency(sink: string, graceMs: number, rows: readonly unknown[]): void {
    const writtenAt = Date.now();
    const histogram = this.metrics.windowDeliveryLatency.labels({ sink });
    for (const row of rows) {
      const { windowEnd } = row as WindowResult<unknown, unknown>;
      histogram.observe(Math.max(0, writtenAt - (windowEnd + graceMs)) / 1000);
    }
  }

  private async deliverDeadLetters(host: TaskHost): Promise<boolean> {
    const entries = await host.queue.run(async () => {
      const outbox = host.closed ? undefined : host.outbox(DLQ_OUTBOX);
      return outbox ? readWholeRecords(outbox, DLQ_BATCH) : [];
    });
    const last = entries[entries.length - 1];
    if (!last) return false;
    try {
      const byTopic = new Map<string, DeadLetter[]>();
      for (const { value } of entries) {
        const letter = value as DeadLetter;
        byTopic.set(letter.record.topic, [...(byTopic.get(letter.record.topic) ?? []), letter]);
      }
      for (const [topic, letters] of byTopic) {
        const delivered = await this.progressOf(topic, host.partition);
        const fresh = letters.filter((l) => l.record.offset >= delivered);
        // Transactions of at most dlq.maxBatchBytes: a batch over the broker's limit is refused forever.
        for (const transaction of packDeadLetters(fresh, this.config.dlq.maxBatchBytes)) {
          const messages: OutgoingMessage[] = transaction.messages.map((m) => ({
            topic: this.dlqTopic,
            ...m,
          }));
          const writer = await this.dlqWriter(host.partition);
          await writer.sendWithOffset(messages, {
            groupId: this.progressGroup,
            topic,
            partition: host.partition,
            offset: transaction.nextOffset,
          });
          this.dlqProgress.set(`${topic}:${host.partition}`, transaction.nextOffset);
          const deliveredAt = Date.now();
          for (const l of transaction.letters) {
            this.metrics.deadLetters.inc({ reason: l.reason });
            this.recentDeadLetters.add(l, deliveredAt);
          }
        }
      }
    } catch (error) {
      this.logger.warn(
        {
          partition: host.partition,
          err: error,
          // The broker refuses batches over its message.max.bytes; ours must stay below it.
          ...(/too large|max message size/i.test(String(error))
            ? {
                hint: `lower dlq.maxBatchBytes (now ${this.config.dlq.maxBatchBytes}) below the broker's message.max.bytes`,
              }
            : {}),
        },
        'writing dead letters to the DLQ failed; will retry',
      );
      await this.dropDlqWriter(host.partition);
      return false;
    }
    await host.queue.run(async () => {
      if (host.closed) return;
      await host.outbox(DLQ_OUTBOX)?.ack(last.seq);
    });
    return true;
  }

  private async progressOf(topic: string, partition: number): Promise<bigint> {
    const key = `${topic}:${partition}`;
    const known = this.dlqProgress.get(key);
    if (known !== undefined) return known;
    if (!this.admin) throw new Error('OutputDelivery.open() was not called');
    const offsets = await this.admin.groupOffsets(this.progressGroup, topic);
    const next = offsets.get(partition) ?? 0n;
    this.dlqProgress.set(key, next);
    return next;
  }

  private async dlqWriter(partition: number): Promise<TransactionalWriter> {
    let writer = this.dlqWriters.get(partition);
    if (!writer) {
      // One transactional id per partition: a zombie owner of the partition is fenced off.
      writer = await this.kafka.transactionalWriter(`${this.config.appId}.dlq.p${partition}`);
      this.dlqWriters.set(partition, writer);
    }
    return writer;
  }

  private async dropDlqWriter(partition: number): Promise<void> {
    const writer = this.dlqWriters.get(partition);
    this.dlqWriters.delete(partition);
    this.forgetPartition(partition);
    // Bounded: a producer's disconnect can hang on a request the broker never answers (a restart).
    if (writer) await settleWithin(writer.close(), 5_000);
  }

  async close(): Promise<void> {
    for (const partition of [...this.dlqWriters.keys()]) await this.dropDlqWriter(partition);
    for (const sink of this.sinks) await sink.writer.close().catch(() => undefined);
    this.sinks = [];
    this.admin = undefined;
  }
}
