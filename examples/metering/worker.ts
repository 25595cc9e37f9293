/**
 * Runs the reference job as a long-lived process (one consumer-group instance) until SIGTERM/SIGINT.
 * Settings come from the environment: the runtime's TRIBUTARY_* variables (`tributary env`; the App
 * hands the registry and ClickHouse settings to the serde and the sink), plus
 *   METERING_TOPIC (default usage-events), METERING_CLICKHOUSE_DATABASE (default metering),
 *   METERING_CLICKHOUSE_TABLE (default usage_1m), METERING_CLICKHOUSE_CLUSTER (replicated tables on
 *   that cluster; default none: one server), and for the topology-evolution tests METERING_EXTRA_STEP=1
 *   (a stateless step more) and METERING_DEDUPE_STORE (another name for the dedupe store).
 * The tests start it as a child process and kill it with SIGKILL to prove the exactly-once protocol.
 */
import { ConfigError } from '../../src/index.js';
import { meteringApp } from './pipeline.js';

function build() {
  return meteringApp({
    topic: process.env.METERING_TOPIC ?? 'usage-events',
    clickhouse: {
      database: process.env.METERING_CLICKHOUSE_DATABASE ?? 'metering',
      table: process.env.METERING_CLICKHOUSE_TABLE ?? 'usage_1m',
      cluster: process.env.METERING_CLICKHOUSE_CLUSTER || undefined,
    },
    config: { appId: process.env.TRIBUTARY_APP_ID ?? 'metering' },
    evolution: {
      extraStep: process.env.METERING_EXTRA_STEP === '1',
      ...(process.env.METERING_DEDUPE_STORE ? { dedupeStoreName: process.env.METERING_DEDUPE_STORE } : {}),
    },
  });
}

let app: ReturnType<typeof build>;
try {
  app = build();
} catch (error) {
  // An invalid setting: say which, without a stack trace.
  process.stderr.write(`${error instanceof ConfigError ? error.message : String(error)}\n`);
  process.exit(1);
}

try {
  await app.start();
} catch (error) {
  app.logger.fatal({ err: error }, 'failed to start');
  process.exit(1);
}
