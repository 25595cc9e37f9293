/**
 * The reference job: usage events deduplicated by (source, id) over 32 days, counted and summed per
 * subject and meter in 1-minute tumbling windows, written to ClickHouse as one row per (window, key).
 */
import {
  avro,
  clickhouse,
  count,
  days,
  max,
  minutes,
  seconds,
  sum,
  tributary,
  tumbling,
} from '../../src/index.js';
import type { App, TributaryConfigInput } from '../../src/index.js';
import type { Logger } from 'pino';
import { usageEventSchema, validateUsageEvent } from './usage-event.js';
import type { UsageEvent } from './usage-event.js';

export interface MeteringOptions {
  topic: string;
  /** Default: the App's schemaRegistry setting (TRIBUTARY_SCHEMA_REGISTRY_URL). */
  registryUrl?: string;
  /** `url` defaults to the App's clickhouse setting (TRIBUTARY_CLICKHOUSE_URL). */
  /** `cluster`: a ClickHouse cluster name for replicated tables (see the sink's `cluster` option). */
  clickhouse: { url?: string; database: string; table: string; cluster?: string | undefined };
  /** Runtime settings (appId, brokers, stateDir, ...); environment variables still override them. */
  config: Partial<TributaryConfigInput>;
  logger?: Logger;
  /**
   * A later version of the job, for the topology-evolution tests: `extraStep` adds a stateless
   * `.peek()` before the dedupe; `dedupeStoreName` renames the dedupe store (default dedupe-source-id).
   */
  evolution?: { extraStep?: boolean; dedupeStoreName?: string };
}

/** Window settings of the reference job; the generator's ground truth and the tests rely on them. */
export const METERING_WINDOW = {
  size: minutes(1),
  grace: seconds(5),
  outOfOrderness: seconds(5),
  /** A partition without records for this long lets its watermark follow the wall clock. */
  idleness: seconds(2),
} as const;

export function meteringApp(options: MeteringOptions): App {
  const app = tributary(options.config, options.logger ? { logger: options.logger } : {});
  const validated = app
    .stream(
      options.topic,
      avro<UsageEvent>({
        ...(options.registryUrl === undefined ? {} : { registry: { url: options.registryUrl } }),
        readerSchema: usageEventSchema(),
      }),
      { timestamp: (event) => event.time },
    )
    .validate(validateUsageEvent);
  (options.evolution?.extraStep ? validated.peek(() => {}) : validated)
    .dedupe((event) => `${event.source}/${event.id}`, {
      horizon: days(32),
      name: options.evolution?.dedupeStoreName ?? 'dedupe-source-id',
    })
    .groupBy((event) => ({ subject: event.subject, meter: event.meter }))
    .window(tumbling(METERING_WINDOW.size), {
      grace: METERING_WINDOW.grace,
      outOfOrderness: METERING_WINDOW.outOfOrderness,
      idleness: METERING_WINDOW.idleness,
      // Late events update their window (a higher version replaces the row in ClickHouse): totals stay exact.
      late: 're-emit',
      name: 'usage-1m',
    })
    .aggregate({
      count: count(),
      total: sum((e: UsageEvent) => e.value),
      max: max((e: UsageEvent) => e.value),
    })
    .to(
      clickhouse({
        ...(options.clickhouse.url === undefined ? {} : { url: options.clickhouse.url }),
        database: options.clickhouse.database,
        table: options.clickhouse.table,
        ...(options.clickhouse.cluster === undefined ? {} : { cluster: options.clickhouse.cluster }),
        keyColumns: [
          { name: 'subject', type: 'String' },
          { name: 'meter', type: 'String' },
        ],
      }),
    );
  return app;
}
