/**
 * All configuration in one typed object. Every setting has a default and an environment variable
 * named after its path (ENV_SETTINGS, once per setting; ENV_OVERRIDES, which `tributary env` prints); an invalid value or an unknown key
 * fails at start with a message that names the setting and where it came from. The `clickhouse` and
 * `schemaRegistry` sections are the defaults the App hands to sinks and serdes (serviceDefaultsOf).
 */
import { hostname } from 'node:os';
import { z } from 'zod';
import { DEFAULT_CLICKHOUSE_URL, DEFAULT_SCHEMA_REGISTRY_URL } from '../core/services.js';
import type { ServiceDefaults } from '../core/services.js';
import { unknownKeyMessage } from '../core/unknown-keys.js';
import { defaultDlqTopic } from '../serde/dlq.js';
import { DEFAULT_CACHE_MAX_BYTES } from '../core/cache-budget.js';

// Strict objects throughout: a misspelt key fails (resolveConfig names the closest valid one)
// instead of vanishing and leaving its default in place.
const saslSchema = z.discriminatedUnion('mechanism', [
  z.strictObject({ mechanism: z.literal('plain'), username: z.string(), password: z.string() }),
  z.strictObject({ mechanism: z.literal('scram-sha-256'), username: z.string(), password: z.string() }),
  z.strictObject({ mechanism: z.literal('scram-sha-512'), username: z.string(), password: z.string() }),
]);

const tlsSchema = z.union([
  z.boolean(),
  z.strictObject({
    ca: z.string().optional(),
    cert: z.string().optional(),
    key: z.string().optional(),
    rejectUnauthorized: z.boolean().optional(),
  }),
]);

const positiveMs = z.number().int().positive();

/** Where an external service is; credentials in the URL work too, and are never logged. */
const serviceSchema = (defaultUrl: string) =>
  z
    .strictObject({
      url: z.url().default(defaultUrl),
      username: z.string().optional(),
      password: z.string().optional(),
    })
    .prefault({});

export const configSchema = z.strictObject({
  /** Names the consumer group, the state folder and the default DLQ topic. */
  appId: z.string().regex(/^[A-Za-z0-9._-]+$/, 'letters, digits, ".", "_" and "-" only'),
  /** Distinguishes instances of one app in logs and metrics. */
  instanceId: z.string().min(1).default(`${hostname()}-${process.pid}`),
  brokers: z.array(z.string().min(1)).min(1).default(['127.0.0.1:9092']),
  /** LevelDB state lives in `<stateDir>/<appId>/task-<task id>` (`task-0_3`: sub-topology 0, partition 3). */
  stateDir: z.string().min(1).default('.tributary-state'),
  state: z
    .strictObject({
      /**
       * Memory for store caches per instance, split evenly among the stores of its open tasks: the
       * dedupe store's recent ids and key-value stores' cached entries. What does not fit stays in
       * LevelDB (reads of it cost a lookup). Sizing: README "Sizing and limits".
       */
      cacheMaxBytes: z.number().int().positive().default(DEFAULT_CACHE_MAX_BYTES),
    })
    .prefault({}),
  kafka: z
    .strictObject({
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
    .strictObject({
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
    .strictObject({
      /** Rows read from the outboxes per sink write. */
      batchSize: z.number().int().positive().default(50_000),
      /** A partition pauses when its undelivered outputs exceed this, and resumes below half of it. */
      maxPendingPerPartition: z.number().int().positive().default(200_000),
      /** Pause between delivery attempts while a sink is failing. */
      retryBackoffMs: positiveMs.default(1000),
    })
    .prefault({}),
  admin: z
    .strictObject({
      enabled: z.boolean().default(true),
      /** Loopback unless configured otherwise: the endpoint exposes state. */
      host: z.string().default('127.0.0.1'),
      /** 0 picks a free port (tests). */
      port: z.number().int().min(0).max(65535).default(7400),
      /** When set, every request needs `Authorization: Bearer <token>`. */
      token: z.string().min(1).optional(),
      /**
       * /health/live and /health/ready answer without the token, so Kubernetes httpGet probes work;
       * they tell whether the instance works and why not, never the state it holds.
       */
      probesWithoutToken: z.boolean().default(true),
      /**
       * This instance's admin endpoint as its peers reach it, advertised in the consumer group
       * (/cluster). Default `http://<host>:<bound port>` (the machine's hostname for a wildcard
       * host): with a bind beyond loopback, set the address the other instances can reach.
       */
      advertisedUrl: z.url().optional(),
    })
    .prefault({}),
  changelog: z
    .strictObject({
      /**
       * Back every store with a compacted changelog topic `<appId>-<store>-changelog` and commit in
       * Kafka transactions: state survives losing its machine. Off: state lives only in stateDir.
       */
      enabled: z.boolean().default(true),
      /** Replication factor of the changelog topics tributary creates; -1: the broker's default. */
      replicationFactor: z.number().int().min(-1).default(-1),
    })
    .prefault({}),
  /**
   * Standby copies of each partition the group assigns to instances other than its owner, each
   * instance at most one copy of a partition (so at most instances - 1 copies take effect).
   */
  standbyReplicas: z.number().int().min(0).default(0),
  /** Waiting for another process to release a partition's LevelDB lock after a rebalance. */
  stateLockTimeoutMs: positiveMs.default(60_000),
  /**
   * Stores whose state may be discarded when it no longer matches the topology (renamed or removed,
   * or another kind or format): without this, such a state folder stops the start, naming the store.
   * A listed store that still matches is kept, so the setting is harmless once the reset is done.
   */
  resetStores: z.array(z.string().min(1)).default([]),
  shutdownTimeoutMs: positiveMs.default(30_000),
  /** Installs SIGTERM/SIGINT handlers: first signal drains and stops, a second exits at once. */
  handleSignals: z.boolean().default(true),
  logLevel: z.enum(['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent']).default('info'),
  /**
   * The default logger's lines: `pretty` (human-readable) or `json` (pino's, one object a line);
   * `auto` is pretty when the log's terminal (stderr) is a TTY, JSON otherwise (files, collectors).
   */
  logFormat: z.enum(['auto', 'json', 'pretty']).default('auto'),
  /** The Schema Registry that avro() serdes use unless given a registry of their own. */
  schemaRegistry: serviceSchema(DEFAULT_SCHEMA_REGISTRY_URL),
  /** The ClickHouse server that clickhouse() sinks write to unless given a url of their own. */
  clickhouse: serviceSchema(DEFAULT_CLICKHOUSE_URL),
});

export type TributaryConfigInput = z.input<typeof configSchema>;
export type TributaryConfig = z.output<typeof configSchema>;

type EnvKind = 'string' | 'int' | 'bool' | 'list';

/** A setting that can be set from the environment, declared once: its variable is derived from its path. */
export interface EnvSetting {
  path: readonly string[];
  /** Older names of the variable, still read (the derived name wins when both are set alike). */
  aliases?: readonly string[];
  kind: EnvKind;
  /** Passwords and tokens: `tributary env` shows whether they are set, never the value. */
  secret?: boolean;
  /** What a user needs to know beyond the setting's name, for `tributary env`. */
  note: string;
  /** Shown as the default where the schema's default is computed or absent. */
  defaultText?: string;
}

export interface EnvOverride extends EnvSetting {
  /** `TRIBUTARY_` and the path in upper snake case (envVariableOf). */
  env: string;
}

/**
 * The variable of a setting: `TRIBUTARY_` and its path, each camelCase step in upper snake case
 * (`kafka.sasl.username` → `TRIBUTARY_KAFKA_SASL_USERNAME`).
 */
export function envVariableOf(path: readonly string[]): string {
  return `TRIBUTARY_${path.map((step) => step.replace(/([a-z0-9])([A-Z])/g, '$1_$2').toUpperCase()).join('_')}`;
}

/**
 * Every setting a user can set from the environment, once each; the environment wins over the object
 * passed in code. A setting of the schema missing here fails the config tests.
 */
const ENV_SETTINGS: readonly EnvSetting[] = [
  {
    path: ['appId'],
    kind: 'string',
    defaultText: '(required)',
    note: 'consumer group, state folder and DLQ topic name',
  },
  {
    path: ['instanceId'],
    kind: 'string',
    defaultText: '<hostname>-<pid>',
    note: 'names this instance in logs and metrics',
  },
  { path: ['brokers'], kind: 'list', note: 'comma-separated host:port list' },
  {
    path: ['stateDir'],
    kind: 'string',
    note: 'LevelDB state in <stateDir>/<appId>/task-<task id> (task-0_3: sub-topology 0, partition 3)',
  },
  {
    path: ['state', 'cacheMaxBytes'],
    kind: 'int',
    note: 'store cache memory per instance, split among its stores',
  },
  {
    path: ['kafka', 'clientId'],
    kind: 'string',
    defaultText: '<appId>-<instanceId>',
    note: 'Kafka client id',
  },
  {
    path: ['kafka', 'ssl'],
    kind: 'bool',
    defaultText: 'false',
    note: 'TLS to the brokers; CA, cert and key in code (kafka.ssl object)',
  },
  {
    path: ['kafka', 'sasl', 'mechanism'],
    kind: 'string',
    note: 'plain, scram-sha-256 or scram-sha-512; needs username and password',
  },
  {
    path: ['kafka', 'sasl', 'username'],
    kind: 'string',
    note: 'SASL user',
  },
  {
    path: ['kafka', 'sasl', 'password'],
    kind: 'string',
    secret: true,
    note: 'SASL password',
  },
  {
    path: ['kafka', 'connectionTimeoutMs'],
    kind: 'int',
    note: 'connecting to a broker',
  },
  {
    path: ['kafka', 'sessionTimeoutMs'],
    kind: 'int',
    note: 'consumer group session',
  },
  {
    path: ['kafka', 'autoOffsetReset'],
    kind: 'string',
    note: 'earliest or latest: start of a partition without state or group offset',
  },
  {
    path: ['kafka', 'maxBytesPerPartition'],
    kind: 'int',
    note: 'fetch size per partition',
  },
  {
    path: ['kafka', 'maxWaitTimeMs'],
    kind: 'int',
    note: 'longest wait of one fetch',
  },
  {
    path: ['commitIntervalMs'],
    kind: 'int',
    note: 'checkpoint and hand outputs to the sinks this often',
  },
  {
    path: ['dlq', 'topic'],
    kind: 'string',
    defaultText: '<appId>.dlq',
    note: 'dead letters go here',
  },
  {
    path: ['dlq', 'partitions'],
    kind: 'int',
    note: 'partitions of the DLQ topic when it is created',
  },
  {
    path: ['dlq', 'maxBatchBytes'],
    kind: 'int',
    note: "bytes per DLQ transaction; keep below the broker's message.max.bytes",
  },
  {
    path: ['outputs', 'batchSize'],
    kind: 'int',
    note: 'rows per sink write',
  },
  {
    path: ['outputs', 'maxPendingPerPartition'],
    kind: 'int',
    note: 'undelivered outputs at which a partition pauses',
  },
  {
    path: ['outputs', 'retryBackoffMs'],
    kind: 'int',
    note: 'pause between delivery attempts while a sink fails',
  },
  {
    path: ['admin', 'enabled'],
    kind: 'bool',
    note: 'serve /health/live, /health/ready, /metrics, /topology, /tasks',
  },
  {
    path: ['admin', 'host'],
    kind: 'string',
    note: 'admin endpoint address (it exposes state)',
  },
  { path: ['admin', 'port'], kind: 'int', note: '0 picks a free port' },
  {
    path: ['admin', 'token'],
    kind: 'string',
    secret: true,
    note: 'requests need Authorization: Bearer <token>',
  },
  {
    path: ['admin', 'probesWithoutToken'],
    kind: 'bool',
    note: '/health/live and /health/ready answer without the token (Kubernetes probes)',
  },
  {
    path: ['changelog', 'enabled'],
    aliases: ['TRIBUTARY_CHANGELOG'],
    kind: 'bool',
    note: 'changelog topics and Kafka transactions (state survives its machine)',
  },
  {
    path: ['changelog', 'replicationFactor'],
    kind: 'int',
    note: 'replication factor of created changelog topics (-1: broker default)',
  },
  {
    path: ['admin', 'advertisedUrl'],
    kind: 'string',
    defaultText: 'http://<admin.host>:<port>',
    note: 'admin URL the other instances reach (set it when binding beyond loopback)',
  },
  {
    path: ['standbyReplicas'],
    kind: 'int',
    note: 'standby copies per partition on other instances (at most instances - 1)',
  },
  {
    path: ['stateLockTimeoutMs'],
    kind: 'int',
    note: 'waiting for a partition state lock after a rebalance',
  },
  {
    path: ['resetStores'],
    kind: 'list',
    defaultText: '(none)',
    note: 'discard these stores if their state no longer matches the topology',
  },
  {
    path: ['shutdownTimeoutMs'],
    kind: 'int',
    note: 'delivering outputs on SIGTERM',
  },
  {
    path: ['handleSignals'],
    kind: 'bool',
    note: 'SIGTERM/SIGINT stop cleanly, a second signal exits at once',
  },
  {
    path: ['logLevel'],
    kind: 'string',
    note: 'fatal, error, warn, info, debug, trace or silent',
  },
  {
    path: ['logFormat'],
    kind: 'string',
    note: 'auto (pretty on a terminal, else JSON), json or pretty',
  },
  {
    path: ['schemaRegistry', 'url'],
    kind: 'string',
    note: "avro() serdes' registry unless given one (Confluent: http://host:8081)",
  },
  {
    path: ['schemaRegistry', 'username'],
    kind: 'string',
    note: 'registry basic auth user',
  },
  {
    path: ['schemaRegistry', 'password'],
    kind: 'string',
    secret: true,
    note: 'registry basic auth password',
  },
  {
    path: ['clickhouse', 'url'],
    kind: 'string',
    note: 'clickhouse() sinks write here unless given a url',
  },
  {
    path: ['clickhouse', 'username'],
    aliases: ['TRIBUTARY_CLICKHOUSE_USER'],
    kind: 'string',
    defaultText: 'default',
    note: 'ClickHouse user',
  },
  {
    path: ['clickhouse', 'password'],
    kind: 'string',
    secret: true,
    note: 'ClickHouse password',
  },
];

/** The one table of environment variables (`tributary env` prints it), derived from ENV_SETTINGS. */
export const ENV_OVERRIDES: readonly EnvOverride[] = ENV_SETTINGS.map((setting) => ({
  env: envVariableOf(setting.path),
  ...setting,
}));

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
 * The variable of a setting that is set, by its name or an alias; both set to different values is an
 * error rather than a silent choice.
 */
function variableSet(
  override: EnvOverride,
  env: NodeJS.ProcessEnv,
): { name: string; raw: string } | undefined {
  const set = [override.env, ...(override.aliases ?? [])]
    .map((name) => ({ name, raw: env[name] }))
    .filter((v): v is { name: string; raw: string } => v.raw !== undefined && v.raw !== '');
  if (new Set(set.map((v) => v.raw)).size > 1)
    throw new ConfigError(
      `${set.map((v) => `${v.name}="${v.raw}"`).join(' and ')} set ${override.path.join('.')} differently: ` +
        `keep ${override.env}`,
    );
  return set[0];
}

/** Writes the set variables into `target`; returns setting path -> the variable it came from. */
function applyEnv(
  target: Record<string, unknown>,
  env: NodeJS.ProcessEnv,
  overrides: readonly EnvOverride[] = ENV_OVERRIDES,
): Map<string, string> {
  const fromEnv = new Map<string, string>();
  for (const override of overrides) {
    const found = variableSet(override, env);
    if (found === undefined) continue;
    setPath(target, override.path, parseEnvValue(override.kind, found.name, found.raw));
    fromEnv.set(override.path.join('.'), found.name);
  }
  return fromEnv;
}

/** The keys an object schema (or a union of them) accepts, through defaults and optionals. */
function objectKeys(schema: z.core.$ZodType | undefined): string[] {
  let def = schema?._zod.def as { type: string; innerType?: z.core.$ZodType } | undefined;
  while (def?.innerType !== undefined) def = def.innerType._zod.def as typeof def;
  if (def?.type === 'object') return Object.keys((def as unknown as { shape: object }).shape);
  if (def?.type === 'union') {
    const options = (def as unknown as { options: z.core.$ZodType[] }).options;
    return [...new Set(options.flatMap((option) => objectKeys(option)))];
  }
  return [];
}

/** The settings valid at `path` of the configuration object. */
function knownKeysAt(path: readonly PropertyKey[]): string[] {
  let schema: z.core.$ZodType | undefined = configSchema;
  for (const key of path) {
    let def = schema?._zod.def as { innerType?: z.core.$ZodType; shape?: Record<string, z.core.$ZodType> };
    while (def?.innerType !== undefined) def = def.innerType._zod.def as typeof def;
    schema = def?.shape?.[String(key)];
  }
  return objectKeys(schema);
}

/**
 * Merges environment overrides into the settings given in code, applies defaults and validates.
 * Throws ConfigError naming every invalid setting (and its environment variable, when it came from
 * one) and every unknown key (with the closest valid one).
 */
export function resolveConfig(
  input: Partial<TributaryConfigInput>,
  env: NodeJS.ProcessEnv = process.env,
): TributaryConfig {
  const merged: Record<string, unknown> = structuredClone(input) as Record<string, unknown>;
  const fromEnv = applyEnv(merged, env);
  const parsed = configSchema.safeParse(merged);
  if (!parsed.success) {
    const problems = parsed.error.issues.flatMap((issue) => {
      if (issue.code === 'unrecognized_keys') {
        const prefix = issue.path.map(String).join('.');
        return issue.keys.map(
          (key) =>
            `  ${unknownKeyMessage(key, knownKeysAt(issue.path), { prefix: prefix ? `${prefix}.` : '' })}`,
        );
      }
      const setting = issue.path.join('.') || '(root)';
      const source = fromEnv.get(setting);
      return [`  ${setting}${source ? ` (from ${source})` : ''}: ${issue.message}`];
    });
    throw new ConfigError(`invalid tributary configuration:\n${problems.join('\n')}`);
  }
  return parsed.data;
}

/**
 * What a Kafka client needs of the configuration: the `kafka` section, the brokers, and the client id
 * resolved (`kafka.clientId`, else `<appId>-<instanceId>`). The adapter sees nothing else.
 */
export interface KafkaSettings extends Omit<TributaryConfig['kafka'], 'clientId'> {
  brokers: readonly string[];
  clientId: string;
}

export function kafkaSettingsOf(config: TributaryConfig): KafkaSettings {
  return {
    ...config.kafka,
    brokers: config.brokers,
    clientId: config.kafka.clientId ?? `${config.appId}-${config.instanceId}`,
  };
}

export function dlqTopicOf(config: TributaryConfig): string {
  return config.dlq.topic ?? defaultDlqTopic(config.appId);
}

/** What the App hands to every sink and serde of its topology. */
export function serviceDefaultsOf(config: TributaryConfig): ServiceDefaults {
  return { clickhouse: config.clickhouse, schemaRegistry: config.schemaRegistry };
}

/**
 * The registry URL from TRIBUTARY_SCHEMA_REGISTRY_URL, else the local default: for scripts that talk
 * to the registry without an App (`npm run schemas:register`).
 */
export function schemaRegistryUrlFromEnv(env: NodeJS.ProcessEnv = process.env): string {
  const settings: Record<string, unknown> = {};
  applyEnv(
    settings,
    env,
    ENV_OVERRIDES.filter(({ path }) => path[0] === 'schemaRegistry'),
  );
  return configSchema.shape.schemaRegistry.parse(settings.schemaRegistry ?? {}).url;
}

export interface EnvTableRow {
  variable: string;
  setting: string;
  default: string;
  /** The variable's value in this environment, masked for secrets; empty when unset. */
  current: string;
  note: string;
}

/** The table `tributary env` prints: every variable with its setting, default and current value. */
export function environmentTable(env: NodeJS.ProcessEnv = process.env): EnvTableRow[] {
  const defaults = configSchema.parse({ appId: 'app' }) as unknown as Record<string, unknown>;
  return ENV_OVERRIDES.map((override) => {
    const { env: variable, path, secret, defaultText, aliases } = override;
    const raw = variableSet(override, env)?.raw;
    const note =
      aliases === undefined ? override.note : `${override.note} (also read: ${aliases.join(', ')})`;
    return {
      variable,
      setting: path.join('.'),
      default: defaultText ?? displayDefault(valueAt(defaults, path)),
      current: raw === undefined || raw === '' ? '' : secret ? '***' : withoutPassword(raw),
      note,
    };
  });
}

function valueAt(root: Record<string, unknown>, path: readonly string[]): unknown {
  let node: unknown = root;
  for (const key of path)
    node = typeof node === 'object' && node !== null ? (node as Record<string, unknown>)[key] : undefined;
  return node;
}

function displayDefault(value: unknown): string {
  if (value === undefined) return '-';
  return Array.isArray(value) ? value.join(',') : String(value);
}

/** A URL with credentials (http://user:secret@host) shows `***` for the password. */
function withoutPassword(value: string): string {
  if (!/^[a-z][a-z0-9+.-]*:\/\//i.test(value)) return value;
  try {
    const url = new URL(value);
    if (url.password === '') return value;
    url.password = '***';
    return url.toString();
  } catch {
    return value;
  }
}
