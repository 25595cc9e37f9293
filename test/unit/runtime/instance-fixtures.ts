/**
 * What the Instance tests share: a small topology (JSON events in, ids out to a sink, events marked
 * bad dead-lettered), a sink the test can make fail, a decode the test can hold, a config and a quiet
 * logger. The Kafka side is test/helpers/fake-kafka.ts.
 */
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach } from 'node:test';
import { pino } from 'pino';
import type { Logger } from 'pino';
import type { SinkSpec } from '../../../src/core/sink.js';
import { resolveConfig } from '../../../src/runtime/config.js';
import type { TributaryConfig, TributaryConfigInput } from '../../../src/runtime/config.js';
import { Instance } from '../../../src/runtime/instance.js';
import { DeserializationError } from '../../../src/serde/types.js';
import type { Serde } from '../../../src/serde/types.js';
import { TopologyBuilder } from '../../../src/topology/builder.js';
import type { Topology } from '../../../src/topology/topology.js';
import type { FakeKafka } from '../../helpers/fake-kafka.js';
import type { ProducedRecord } from '../../helpers/fake-kafka.js';

export const INPUT = 'events';

export interface Event {
  id: string;
  /** false: the event fails validation and goes to the DLQ. */
  ok?: boolean;
}

/** A sink whose writes the test can make fail; `rows` holds what it accepted, in write order. */
export interface SwitchableSink extends SinkSpec<string> {
  readonly rows: string[];
  failing: boolean;
  /** Writes it still accepts before it starts failing (Infinity: no limit). */
  remainingWrites: number;
  /** Write attempts, failed ones included. */
  attempts: number;
}

export function switchableSink(name = 'ids'): SwitchableSink {
  const sink: SwitchableSink = {
    kind: 'memory',
    name,
    rows: [],
    failing: false,
    remainingWrites: Infinity,
    attempts: 0,
    async open() {
      return {
        async write(batch: readonly string[]) {
          sink.attempts++;
          if (sink.failing || sink.remainingWrites <= 0) throw new Error('sink unavailable');
          sink.remainingWrites--;
          sink.rows.push(...batch);
        },
        async close() {},
      };
    },
  };
  return sink;
}

/** Decodes JSON events; while `hold` is set, every decode waits for it (a batch stays in hand). */
export class HoldableJson implements Serde<Event> {
  readonly name = 'test-json';
  hold: Promise<void> | undefined;

  serialize(value: Event): Buffer {
    return Buffer.from(JSON.stringify(value));
  }

  deserialize(data: Buffer | null): Event | Promise<Event> {
    if (this.hold) return this.hold.then(() => this.parse(data));
    return this.parse(data);
  }

  private parse(data: Buffer | null): Event {
    try {
      return JSON.parse(String(data)) as Event;
    } catch (error) {
      throw new DeserializationError('decode-failed', 'not JSON', { cause: error });
    }
  }
}

/** events -> validate(ok) -> id -> sink. */
export function idsTopology(sink: SinkSpec<string>, serde: Serde<Event> = new HoldableJson()): Topology {
  const builder = new TopologyBuilder();
  builder
    .stream(INPUT, serde)
    .validate((event) => event.ok !== false || `event ${event.id} is marked bad`)
    .map((event) => event.id)
    .to(sink);
  return builder.build();
}

export const quietLogger = (): Logger => pino({ level: 'silent' });

export async function tempStateDir(): Promise<{ dir: string; remove: () => Promise<void> }> {
  const dir = await mkdtemp(join(tmpdir(), 'tributary-instance-test-'));
  return { dir, remove: () => rm(dir, { recursive: true, force: true }) };
}

/**
 * Registers node:test hooks: each test gets a fresh state folder (`dir`), and every instance it
 * `track`s is stopped after it, before the folder is removed.
 */
export function instanceHarness(): { readonly dir: string; track(instance: Instance): Instance } {
  let stateDir: { dir: string; remove: () => Promise<void> } | undefined;
  const running: Instance[] = [];
  beforeEach(async () => {
    stateDir = await tempStateDir();
  });
  afterEach(async () => {
    for (const instance of running.splice(0)) await instance.stop();
    await stateDir?.remove();
  });
  return {
    get dir() {
      if (stateDir === undefined) throw new Error('instanceHarness().dir is only set inside a test');
      return stateDir.dir;
    },
    track(instance) {
      running.push(instance);
      return instance;
    },
  };
}

/** Commits and deliveries only when the test asks (no interval), quick retries and shutdown. */
export function testConfig(stateDir: string, overrides: Partial<TributaryConfigInput> = {}): TributaryConfig {
  return resolveConfig(
    {
      appId: 'app',
      instanceId: 'test',
      stateDir,
      commitIntervalMs: 3_600_000,
      shutdownTimeoutMs: 2_000,
      handleSignals: false,
      admin: { enabled: false },
      // The in-memory Kafka has no changelog transactions; the changelog protocol runs on real Kafka.
      changelog: { enabled: false },
      ...overrides,
    },
    {},
  );
}

export const events = (ids: readonly string[], bad: readonly string[] = []): ProducedRecord[] =>
  ids.map((id) => ({
    key: id,
    value: JSON.stringify(bad.includes(id) ? { id, ok: false } : { id }),
  }));

export const range = (prefix: string, from: number, to: number): string[] =>
  Array.from({ length: to - from }, (_, i) => `${prefix}${from + i}`);

/** A started instance on a fake Kafka (the input topic created with 2 partitions when absent). */
export async function startInstance(
  kafka: FakeKafka,
  topology: Topology,
  config: TributaryConfig,
): Promise<Instance> {
  if (!kafka.topicExists(INPUT)) kafka.createTopic(INPUT, 2);
  const instance = new Instance(topology, config, kafka, quietLogger());
  await instance.start();
  return instance;
}
