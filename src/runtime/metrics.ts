/**
 * Prometheus metrics of one instance (prom-client), served by the admin endpoint at /metrics.
 * Task counters are folded in as deltas at every commit, so they stay monotonic across rebalances.
 */
import { Counter, Gauge, Histogram, Registry, collectDefaultMetrics } from 'prom-client';
import type { TaskMetrics } from '../core/task.js';

export class RuntimeMetrics {
  readonly registry = new Registry();
  readonly recordsProcessed = this.counter('tributary_records_processed_total', 'Input records processed', [
    'partition',
  ]);
  readonly duplicatesDropped = this.counter(
    'tributary_duplicates_dropped_total',
    'Records dropped as duplicates',
    ['partition'],
  );
  readonly lateEvents = this.counter(
    'tributary_late_events_total',
    'Events that arrived after their window closed',
    ['partition'],
  );
  readonly windowsEmitted = this.counter('tributary_windows_emitted_total', 'Window results emitted', [
    'partition',
  ]);
  readonly deadLetters = this.counter(
    'tributary_dead_letters_total',
    'Records written to the DLQ, by reason',
    ['reason'],
  );
  readonly sinkRows = this.counter('tributary_sink_rows_total', 'Rows delivered to a sink', ['sink']);
  readonly sinkWrites = this.counter('tributary_sink_writes_total', 'Successful sink writes (inserts)', [
    'sink',
  ]);
  readonly sinkFailures = this.counter(
    'tributary_sink_failures_total',
    'Failed sink write attempts (each retried attempt counts)',
    ['sink'],
  );
  readonly retriableStalls = this.counter(
    'tributary_retriable_stalls_total',
    'Batches held back because a dependency (e.g. the schema registry) was unavailable',
    ['partition'],
  );
  readonly watermark = new Gauge({
    name: 'tributary_watermark_ms',
    help: 'Event-time watermark per partition (epoch ms)',
    labelNames: ['partition'],
    registers: [this.registry],
  });
  readonly pendingOutputs = new Gauge({
    name: 'tributary_pending_outputs',
    help: 'Committed outputs not yet delivered, per partition',
    labelNames: ['partition'],
    registers: [this.registry],
  });
  readonly pausedPartitions = new Gauge({
    name: 'tributary_paused_partitions',
    help: 'Partitions paused by backpressure',
    registers: [this.registry],
  });
  readonly lag = new Gauge({
    name: 'tributary_consumer_lag',
    help: 'Records between the last processed offset and the high watermark, per partition',
    labelNames: ['partition'],
    registers: [this.registry],
  });
  readonly commitDuration = new Histogram({
    name: 'tributary_commit_duration_seconds',
    help: 'Time to checkpoint all tasks',
    buckets: [0.001, 0.005, 0.01, 0.05, 0.1, 0.5, 1, 5],
    registers: [this.registry],
  });

  readonly windowDeliveryLatency = new Histogram({
    name: 'tributary_window_delivery_latency_seconds',
    help: 'End-to-end latency of window rows, per sink: the time the sink write succeeded minus (window end + grace)',
    labelNames: ['sink'],
    buckets: [0.1, 0.25, 0.5, 1, 2, 5, 10, 30, 60, 120, 300, 900],
    registers: [this.registry],
  });

  readonly restoredRecords = this.counter(
    'tributary_restore_records_total',
    'Changelog records applied to local state while restoring, per partition',
    ['partition'],
  );
  readonly restoreRemaining = new Gauge({
    name: 'tributary_restore_remaining_records',
    help: 'Changelog offsets left to restore, per partition restoring (0 when done)',
    labelNames: ['partition'],
    registers: [this.registry],
  });
  readonly restoreEta = new Gauge({
    name: 'tributary_restore_eta_seconds',
    help: 'Estimated seconds left of a running restore, per partition (0 when done)',
    labelNames: ['partition'],
    registers: [this.registry],
  });
  readonly changelogBytes = this.counter(
    'tributary_changelog_bytes_total',
    'Bytes of changelog records (keys and values) committed',
    ['partition'],
  );
  readonly changelogCommitFailures = this.counter(
    'tributary_changelog_commit_failures_total',
    'Task commits whose Kafka transaction failed (the task reopens from its changelog)',
    ['partition'],
  );

  private readonly lastSeen = new Map<number, TaskMetrics>();

  /** Every series carries `instance` and, when given, `app` (the app id) as labels. */
  constructor(instanceId: string, appId?: string) {
    this.registry.setDefaultLabels(
      appId === undefined ? { instance: instanceId } : { instance: instanceId, app: appId },
    );
    // Node's process metrics under their standard names (process_*, nodejs_*): stock dashboards
    // find them, and the `app` label tells the applications apart.
    collectDefaultMetrics({ register: this.registry });
  }

  private counter(name: string, help: string, labelNames: string[]): Counter<string> {
    return new Counter({ name, help, labelNames, registers: [this.registry] });
  }

  /**
   * A sink's counters exist from its opening, at zero: a dashboard shows no failures as 0, not as
   * missing data.
   */
  registerSink(sink: string): void {
    for (const counter of [this.sinkRows, this.sinkWrites, this.sinkFailures]) counter.inc({ sink }, 0);
  }

  /** Folds a task's cumulative counters into the instance counters. */
  observeTask(partition: number, current: TaskMetrics): void {
    const previous = this.lastSeen.get(partition);
    const label = { partition: String(partition) };
    const delta = (now: number, before: number | undefined) => Math.max(0, now - (before ?? 0));
    this.recordsProcessed.inc(label, delta(current.recordsProcessed, previous?.recordsProcessed));
    this.duplicatesDropped.inc(label, delta(current.duplicatesDropped, previous?.duplicatesDropped));
    this.lateEvents.inc(label, delta(current.lateEvents, previous?.lateEvents));
    this.windowsEmitted.inc(label, delta(current.windowsEmitted, previous?.windowsEmitted));
    // Counted while a task opens (changelog.ts); shown at 0 for every partition run here, so a takeover
    // that restored nothing reads 0, not a missing series.
    this.restoredRecords.inc(label, 0);
    if (Number.isFinite(current.watermark)) this.watermark.set(label, current.watermark);
    this.lastSeen.set(partition, { ...current, deadLetters: { ...current.deadLetters } });
  }

  /** A task opened with counters from its checkpoint: they count from there (already reported before). */
  baselineTask(partition: number, current: TaskMetrics): void {
    this.lastSeen.set(partition, { ...current, deadLetters: { ...current.deadLetters } });
  }

  /** A task closed: its next incarnation starts counting from zero again. */
  forgetTask(partition: number): void {
    this.lastSeen.delete(partition);
    const label = { partition: String(partition) };
    this.watermark.remove(label);
    this.pendingOutputs.remove(label);
    this.lag.remove(label);
  }

  /** Sum of a metric's values over its labels, for progress lines and tests. */
  async total(metric: Counter<string> | Gauge<string>): Promise<number> {
    const { values } = await metric.get();
    return values.reduce((sum, v) => sum + v.value, 0);
  }
}
