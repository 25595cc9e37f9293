/**
 * All runtime configuration in one typed object. Every setting has a default and an environment
 * variable override (the table in ENV_OVERRIDES); an invalid value fails at start with a message that
 * names the setting and where it came from.
 */
import { hostname } from 'node:os';
import { z } from 'zod';
import { defaultDlqTopic } from '../serde/dlq.js';

const saslSchema = z.discriminatedUnion('mechanism', [
  z.object({ mechanism: z.literal('plain'), username: z.string(), password: z.string() }),
  z.object({ mechanism: z.literal('scram-sha-256'), username: z.string(), password: z.string() }),
  z.object({ mechanism: z.literal('scram-sha-512'), username: z.string(), password: z.string() }),
]);

const tlsSchema = z.union([
  z.boolean(),
  z.object({
    ca: z.string().optional(),
    cert: z.string().optional(),
    key: z.string().optional(),
    rejectUnauthorized: z.boolean().optional(),
  }),
]);

const positiveMs = z.number().int().positive();

export const configSchema = z.object({
  /** Names the consumer group, the state folder and the default DLQ topic. */
  appId: z.string().regex(/^[A-Za-z0-9._-]+$/, 'letters, digits, ".", "_" and "-" only'),
  /** Distinguishes instances of one app in logs and metrics. */
  instanceId: z.string().min(1).default(`${hostname()}-${process.pid}`),
  brokers: z.array(z.string().min(1)).min(1).default(['127.0.0.1:9092']),
  /** LevelDB state lives in `<stateDir>/<appId>/task-<partition>`. */
  stateDir: z.string().min(1).default('.tributary-state'),
  kafka: z
    .object({
      clientId: z.string().optional(),
      ssl: tlsSchema.optional(),
      sasl: saslSchema.optional(),
      connectionTimeoutMs: positiveMs.default(3000),
      sessionTimeoutMs: positiveMs.default(30_000),
      /** Where a partition with neither local state nor a committed group offset starts. */
      autoOffsetReset: z.enum(['earliest', 'latest']).default('earliest'),
      maxBytesPerPartition: positiveMs.default(1_048_576),
      maxWaitTimeMs: positiveMs.default(250),
    })
    .prefault({}),
  /** How often task state is checkpointed and outputs are handed to the sinks. */
  commitIntervalMs: positiveMs.default(1000),
  dlq: z
    .object({
      /** Defaults to `<appId>.dlq`. */
      topic: z.string().min(1).optional(),
      partitions: z.number().int().positive().default(1),
      /**
       * Bytes of dead letters per DLQ transaction (one record batch). Below the broker's default
       * `message.max.bytes` (1 MiB); a single letter larger than this goes out without its record.
       */
      maxBatchBytes: z.number().int().min(16_384).default(1_000_000),
    })
    .prefault({}),
  outputs: z
    .object({
      /** Rows read from the outboxes per sink write. */
      batchSize: z.number().int().positive().default(50_000),
      /** A partition pauses when its undelivered outputs exceed this, and resumes below half of it. */
      maxPendingPerPartition: z.number().int().positive().default(200_000),
      /** Pause between delivery attempts while a sink is failing. */
      retryBackoffMs: positiveMs.default(1000),
    })
    .prefault({}),
  admin: z
    .object({
      enabled: z.boolean().default(true),
      /** Loopback unless configured otherwise: the endpoint exposes state. */
      host: z.string().default('127.0.0.1'),
      /** 0 picks a free port (tests). */
      port: z.number().int().min(0).max(65535).default(7400),
      /** When set, every request needs `Authorization: Bearer <token>`. */
      token: z.string().min(1).optional(),
    })
    .prefault({}),
  /** Waiting for another process to release a partition's LevelDB lock after a rebalance. */
  stateLockTimeoutMs: positiveMs.default(60_000),
  shutdownTimeoutMs: positiveMs.default(30_000),
  /** Installs SIGTERM/SIGINT handlers: first signal drains and stops, a second exits at once. */
  handleSignals: z.boolean().default(true),
  logLevel: z.enum(['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent']).default('info'),
});

export type TributaryConfigInput = z.input<typeof configSchema>;
export type TributaryConfig = z.output<typeof configSchema>;

type EnvKind = 'string' | 'int' | 'bool' | 'list';

/** Environment variable -> setting path. Environment wins over the object passed in code. */
export const ENV_OVERRIDES: ReadonlyArray<{ env: string; path: readonly string[]; kind: EnvKind }> = [
  { env: 'TRIBUTARY_APP_ID', path: ['appId'], kind: 'string' },
  { env: 'TRIBUTARY_INSTANCE_ID', path: ['instanceId'], kind: 'string' },
  { env: 'TRIBUTARY_BROKERS', path: ['brokers'], kind: 'list' },
  { env: 'TRIBUTARY_STATE_DIR', path: ['stateDir'], kind: 'string' },
  { env: 'TRIBUTARY_KAFKA_CLIENT_ID', path: ['kafka', 'clientId'], kind: 'string' },
  { env: 'TRIBUTARY_KAFKA_SSL', path: ['kafka', 'ssl'], kind: 'bool' },
  { env: 'TRIBUTARY_KAFKA_SESSION_TIMEOUT_MS', path: ['kafka', 'sessionTimeoutMs'], kind: 'int' },
  { env: 'TRIBUTARY_KAFKA_AUTO_OFFSET_RESET', path: ['kafka', 'autoOffsetReset'], kind: 'string' },
  { env: 'TRIBUTARY_COMMIT_INTERVAL_MS', path: ['commitIntervalMs'], kind: 'int' },
  { env: 'TRIBUTARY_DLQ_TOPIC', path: ['dlq', 'topic'], kind: 'string' },
  { env: 'TRIBUTARY_DLQ_MAX_BATCH_BYTES', path: ['dlq', 'maxBatchBytes'], kind: 'int' },
  {
    env: 'TRIBUTARY_OUTPUTS_MAX_PENDING_PER_PARTITION',
    path: ['outputs', 'maxPendingPerPartition'],
    kind: 'int',
  },
  { env: 'TRIBUTARY_ADMIN_ENABLED', path: ['admin', 'enabled'], kind: 'bool' },
  { env: 'TRIBUTARY_ADMIN_HOST', path: ['admin', 'host'], kind: 'string' },
  { env: 'TRIBUTARY_ADMIN_PORT', path: ['admin', 'port'], kind: 'int' },
  { env: 'TRIBUTARY_ADMIN_TOKEN', path: ['admin', 'token'], kind: 'string' },
  { env: 'TRIBUTARY_STATE_LOCK_TIMEOUT_MS', path: ['stateLockTimeoutMs'], kind: 'int' },
  { env: 'TRIBUTARY_SHUTDOWN_TIMEOUT_MS', path: ['shutdownTimeoutMs'], kind: 'int' },
  { env: 'TRIBUTARY_LOG_LEVEL', path: ['logLevel'], kind: 'string' },
];

export class ConfigError extends Error {
  override readonly name = 'ConfigError';
}

function parseEnvValue(kind: EnvKind, env: string, raw: string): unknown {
  switch (kind) {
    case 'string':
      return raw;
    case 'list':
      return raw
        .split(',')
        .map((s) => s.trim())
        .filter((s) => s.length > 0);
    case 'int': {
      if (!/^-?\d+$/.test(raw.trim())) throw new ConfigError(`${env}="${raw}" is not a whole number`);
      return Number(raw);
    }
    case 'bool': {
      const value = raw.trim().toLowerCase();
      if (['1', 'true', 'yes', 'on'].includes(value)) return true;
      if (['0', 'false', 'no', 'off'].includes(value)) return false;
      throw new ConfigError(`${env}="${raw}" is not a boolean (true/false)`);
    }
  }
}

function setPath(target: Record<string, unknown>, path: readonly string[], value: unknown): void {
  let node = target;
  for (const key of path.slice(0, -1)) {
    const next = node[key];
    const child: Record<string, unknown> =
      typeof next === 'object' && next !== null ? { ...(next as Record<string, unknown>) } : {};
    node[key] = child;
    node = child;
  }
  node[path[path.length - 1] as string] = value;
}

/**
 * Merges environment overrides into the settings given in code, applies defaults and validates.
 * Throws ConfigError naming every invalid setting (and its environment variable, when it came from one).
 */
export function resolveConfig(
  input: Partial<TributaryConfigInput>,
  env: NodeJS.ProcessEnv = process.env,
): TributaryConfig {
  const merged: Record<string, unknown> = structuredClone(input) as Record<string, unknown>;
  const fromEnv = new Map<string, string>();
  for (const { env: name, path, kind } of ENV_OVERRIDES) {
    const raw = env[name];
    if (raw === undefined || raw === '') continue;
    setPath(merged, path, parseEnvValue(kind, name, raw));
    fromEnv.set(path.join('.'), name);
  }
  const parsed = configSchema.safeParse(merged);
  if (!parsed.success) {
    const problems = parsed.error.issues.map((issue) => {
      const setting = issue.path.join('.') || '(root)';
      const source = fromEnv.get(setting);
      return `  ${setting}${source ? ` (from ${source})` : ''}: ${issue.message}`;
    });
    throw new ConfigError(`invalid tributary configuration:\n${problems.join('\n')}`);
  }
  return parsed.data;
}

export function dlqTopicOf(config: TributaryConfig): string {
  return config.dlq.topic ?? defaultDlqTopic(config.appId);
}
