/**
 * The entry point of a tributary application and its composition root: `tributary(config)` resolves
 * the configuration (code, then TRIBUTARY_* variables), the topology is declared on the App
 * (`app.stream(...)`), and `start()` joins the consumer group and serves the admin endpoint. The App
 * is what hands the configured ClickHouse and schema registry to the topology's sinks and serdes.
 */
import { hostname } from 'node:os';
import type { FastifyInstance } from 'fastify';
import type { Logger } from 'pino';
import { startAdminServer } from './admin/server.js';
import { groupPeers } from './admin/store-lookup.js';
import type { Serde } from './serde/types.js';
import { TopologyBuilder } from './topology/builder.js';
import type { Stream, StreamOptions } from './topology/builder.js';
import type { Topology } from './topology/topology.js';
import { renderTopologyGraph } from './topology/graph-render.js';
import type { GraphFormat } from './topology/graph-render.js';
import { dlqTopicOf, kafkaSettingsOf, resolveConfig, serviceDefaultsOf } from './runtime/config.js';
import type { TributaryConfig, TributaryConfigInput } from './runtime/config.js';
import { Instance } from './runtime/instance.js';
import { createKafkajsClient } from './runtime/kafka/kafkajs/client.js';
import { createDefaultLogger } from './runtime/logger.js';
import type { KafkaClient } from './runtime/kafka/client.js';

export interface AppOptions {
  /** A logger of your own (pino); by default one at `logLevel` on stderr, in `logFormat`. */
  logger?: Logger;
  /** Another Kafka client implementation (see src/runtime/kafka/client.ts). */
  kafkaClient?: KafkaClient;
}

/** Secrets never reach the logs. */
const REDACT = [
  'config.kafka.sasl.password',
  'config.admin.token',
  'config.schemaRegistry.password',
  'config.clickhouse.password',
  '*.password',
  '*.token',
];

export class App {
  readonly config: TributaryConfig;
  readonly logger: Logger;
  private readonly builder = new TopologyBuilder();
  private built: Topology | undefined;
  private instance: Instance | undefined;
  private admin: FastifyInstance | undefined;
  private signalHandlers: Array<[NodeJS.Signals, () => void]> = [];

  constructor(
    config: Partial<TributaryConfigInput>,
    private readonly options: AppOptions = {},
  ) {
    this.config = resolveConfig(config);
    this.logger =
      options.logger ??
      createDefaultLogger(
        { level: this.config.logLevel, redact: REDACT, base: { app: this.config.appId } },
        this.config.logFormat,
      );
  }

  /** A stream of the values of `topic` (see TopologyBuilder.stream). */
  stream<T>(topic: string, serde: Serde<T>, options?: StreamOptions<T>): Stream<T> {
    if (this.built) throw new Error('the topology is already built; declare every stream before start()');
    return this.builder.stream(topic, serde, options);
  }

  topology(): Topology {
    if (this.built === undefined) {
      this.built = this.builder.build();
      this.applyServiceDefaults(this.built);
    }
    return this.built;
  }

  /** Sinks and serdes use the configured ClickHouse and registry where their own options are silent. */
  private applyServiceDefaults(topology: Topology): void {
    const defaults = serviceDefaultsOf(this.config);
    for (const topic of topology.sourceTopics) topology.sourceSerde(topic)?.useServiceDefaults?.(defaults);
    for (const { spec } of topology.sinks) spec.useServiceDefaults?.(defaults);
  }

  describe(): string {
    return this.topology().describeText({ dlqTopic: dlqTopicOf(this.config) });
  }

  /** The topology as a Mermaid or Graphviz DOT graph (`tributary describe --format mermaid|dot`). */
  describeGraph(format: GraphFormat): string {
    return renderTopologyGraph(this.topology().describe({ dlqTopic: dlqTopicOf(this.config) }), format);
  }

  /**
   * Binds the admin endpoint, then joins the consumer group and starts processing; resolves once the
   * group is joined. The admin port is bound first: a clashing port fails the start before this
   * instance takes partitions it would leave unprocessed.
   */
  async start(): Promise<void> {
    if (this.instance) throw new Error('app already started');
    const topology = this.topology();
    const kafka = this.options.kafkaClient ?? createKafkajsClient(kafkaSettingsOf(this.config), this.logger);
    await this.probeDependencies(topology, kafka);
    const instance = new Instance(
      topology,
      this.config,
      kafka,
      this.logger.child({ instance: this.config.instanceId }),
    );
    this.instance = instance;
    if (this.config.admin.enabled) await this.startAdmin(instance);
    if (this.config.handleSignals) this.installSignalHandlers();
    instance.onCrash(() => {
      // An instance that cannot go on exits non-zero, so a supervisor restarts it from its checkpoint.
      if (this.config.handleSignals) process.exitCode = 1;
      void this.stop();
    });
    try {
      await instance.start({ adminUrl: this.advertisedAdminUrl });
    } catch (error) {
      await this.admin?.close().catch(() => undefined);
      this.admin = undefined;
      throw error;
    }
    // Logged once the group is joined: tools and tests read "listening" as "started".
    if (this.admin) this.logger.info({ address: this.adminAddress }, 'admin endpoint listening');
  }

  /** Binds the admin port (before the group is joined) and warns when it is open beyond loopback. */
  private async startAdmin(instance: Instance): Promise<void> {
    const { host, port, token, probesWithoutToken } = this.config.admin;
    this.admin = await startAdminServer(instance, {
      host,
      port,
      token,
      probesWithoutToken,
      describe: () => this.describe(),
      shape: () => this.topology().describe({ dlqTopic: dlqTopicOf(this.config) }),
      instanceId: this.config.instanceId,
      // Key lookups ask the other members at the admin URLs they advertise in the group.
      peers: groupPeers(instance),
    });
    if (token === undefined && !isLoopback(host)) {
      this.logger.warn(
        { host, address: this.adminAddress },
        'the admin endpoint listens beyond loopback without a token: anyone who reaches it can read the ' +
          'state stores; set admin.token (TRIBUTARY_ADMIN_TOKEN) or bind it to 127.0.0.1',
      );
    }
  }

  /**
   * Before joining the group: one short attempt at Kafka and at each source serde's dependency (the
   * schema registry), so a wrong address fails at once with one line naming it and the likely fix,
   * rather than after a minute of client retries or with a 404 retried forever.
   */
  private async probeDependencies(topology: Topology, kafka: KafkaClient): Promise<void> {
    for (const note of await kafka.probe()) this.logger.warn(note);
    const serdes = topology.sourceTopics.map((topic) => topology.sourceSerde(topic));
    await Promise.all(serdes.map((serde) => serde?.probe?.()));
    this.logger.info(
      { brokers: this.config.brokers, serdes: serdes.map((serde) => serde?.name) },
      'start-up checks passed: Kafka and what the source serdes depend on answer',
    );
  }

  /**
   * The admin URL this instance advertises to its group (the /cluster view, lookups across
   * instances): `admin.advertisedUrl`, else `http://<admin.host>:<bound port>`, with the machine's
   * hostname for a wildcard host (0.0.0.0, ::), which is no address a peer can use.
   */
  get advertisedAdminUrl(): string | undefined {
    const address = this.admin?.server.address();
    if (!address || typeof address === 'string') return undefined;
    if (this.config.admin.advertisedUrl !== undefined) return this.config.admin.advertisedUrl;
    const configured = this.config.admin.host;
    const host = configured === '0.0.0.0' || configured === '::' ? hostname() : configured;
    return `http://${host.includes(':') ? `[${host}]` : host}:${address.port}`;
  }

  /** `http://host:port` of the admin endpoint, once started. */
  get adminAddress(): string | undefined {
    const address = this.admin?.server.address();
    if (!address || typeof address === 'string') return address ?? undefined;
    return `http://${address.address.includes(':') ? `[${address.address}]` : address.address}:${address.port}`;
  }

  get runtime(): Instance | undefined {
    return this.instance;
  }

  /** Stops fetching, finishes in-flight work, checkpoints, delivers what it can, leaves the group. */
  async stop(): Promise<void> {
    await this.admin?.close();
    this.admin = undefined;
    await this.instance?.stop();
    // Only now: a second signal during the shutdown above must still reach our handler and exit at once.
    for (const [signal, handler] of this.signalHandlers) process.off(signal, handler);
    this.signalHandlers = [];
  }

  private installSignalHandlers(): void {
    let signalled = false;
    for (const signal of ['SIGTERM', 'SIGINT'] as const) {
      const handler = () => {
        if (signalled) {
          this.logger.warn({ signal }, 'second signal: exiting at once');
          process.exit(130);
        }
        signalled = true;
        this.logger.info(
          { signal },
          'stopping: finishing in-flight work and checkpointing (signal again to exit at once)',
        );
        this.stop().then(
          () => process.exit(process.exitCode ?? 0),
          (error: unknown) => {
            this.logger.error({ err: error }, 'clean stop failed');
            process.exit(1);
          },
        );
      };
      // Re-registered so the second signal reaches the handler rather than the default action.
      process.on(signal, handler);
      this.signalHandlers.push([signal, handler]);
    }
  }
}

/** An address only this machine reaches (the admin's default). */
function isLoopback(host: string): boolean {
  return host === 'localhost' || host === '::1' || /^127\.\d+\.\d+\.\d+$/.test(host);
}

export function tributary(config: Partial<TributaryConfigInput>, options?: AppOptions): App {
  return new App(config, options);
}
