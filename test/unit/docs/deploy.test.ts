// What an operator relies on when shipping the template app: the Dockerfile's essentials and a
// Kubernetes example that parses and agrees with the image and the settings tributary knows.
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { resolve } from 'node:path';
import { test } from 'node:test';
import { ENV_OVERRIDES } from '../../../src/runtime/config.js';

const root = resolve(import.meta.dirname, '../../..');
const yaml = createRequire(import.meta.url)('js-yaml') as { loadAll(text: string): unknown[] };

interface Instruction {
  keyword: string;
  args: string;
}

/** The instructions of each stage of a Dockerfile (continuation lines joined, comments dropped). */
function dockerfileStages(text: string): Instruction[][] {
  const stages: Instruction[][] = [];
  const logical = text
    .replace(/\\\n/g, ' ')
    .split('\n')
    .map((line) => line.trim())
    .filter((line) => line !== '' && !line.startsWith('#'));
  for (const line of logical) {
    const [keyword = '', ...rest] = line.split(/\s+/);
    const instruction = { keyword: keyword.toUpperCase(), args: rest.join(' ') };
    if (instruction.keyword === 'FROM') stages.push([]);
    stages[stages.length - 1]?.push(instruction);
  }
  return stages;
}

function envOf(stage: Instruction[]): Map<string, string> {
  const env = new Map<string, string>();
  for (const { keyword, args } of stage) {
    if (keyword !== 'ENV') continue;
    for (const match of args.matchAll(/([A-Z_][A-Z0-9_]*)=(\S+)/g))
      env.set(match[1] as string, match[2] as string);
  }
  return env;
}

const only = (stage: Instruction[], keyword: string): string[] =>
  stage.filter((i) => i.keyword === keyword).map((i) => i.args);

test('the template Dockerfile: multi-stage, non-root, tini, SIGTERM, the state folder on a volume, the admin port, `tributary run`', () => {
  const stages = dockerfileStages(readFileSync(resolve(root, 'templates/app/Dockerfile'), 'utf8'));
  assert.ok(stages.length >= 2, 'a build stage and a runtime stage');
  const runtime = stages[stages.length - 1] as Instruction[];
  assert.doesNotMatch(only(runtime, 'FROM')[0] ?? '', / AS build/i);
  const user = only(runtime, 'USER');
  assert.equal(user.length, 1);
  assert.doesNotMatch(user[0] as string, /^(root|0)$/);
  assert.deepEqual(only(runtime, 'STOPSIGNAL'), ['SIGTERM']);
  assert.deepEqual(JSON.parse(only(runtime, 'ENTRYPOINT')[0] ?? 'null'), ['/usr/bin/tini', '--']);
  assert.match(runtime.find((i) => i.keyword === 'RUN')?.args ?? '', /install .*\btini\b/);

  const env = envOf(runtime);
  assert.deepEqual(only(runtime, 'VOLUME'), [env.get('TRIBUTARY_STATE_DIR')]);
  assert.deepEqual(only(runtime, 'EXPOSE'), [env.get('TRIBUTARY_ADMIN_PORT')]);
  assert.equal(env.get('TRIBUTARY_ADMIN_HOST'), '0.0.0.0', 'reachable by probes from outside the container');
  assert.match(env.get('PATH') ?? '', /^\/app\/node_modules\/\.bin:/);

  // The image runs what `npm start` runs, in exec form so that tini's SIGTERM reaches node.
  const cmd = JSON.parse(only(runtime, 'CMD')[0] ?? 'null') as string[];
  const manifest = JSON.parse(readFileSync(resolve(root, 'templates/app/package.json'), 'utf8')) as {
    scripts: Record<string, string>;
  };
  assert.deepEqual(cmd, ['tributary', 'run', 'dist/app.js']);
  assert.equal(manifest.scripts.start, cmd.join(' '));
  assert.match(readFileSync(resolve(root, 'templates/app/.dockerignore'), 'utf8'), /^node_modules$/m);
});

test('the template image sets the memory settings docs/deploy.md describes, as Node and glibc read them', () => {
  const stages = dockerfileStages(readFileSync(resolve(root, 'templates/app/Dockerfile'), 'utf8'));
  const env = envOf(stages[stages.length - 1] as Instruction[]);
  const deploy = readFileSync(resolve(root, 'docs/deploy.md'), 'utf8');
  const nodeOptions = env.get('NODE_OPTIONS');
  assert.ok(nodeOptions !== undefined, 'the runtime stage sets NODE_OPTIONS');
  // Only some V8 flags are allowed in NODE_OPTIONS: Node refuses to start on any other one.
  const started = spawnSync(process.execPath, ['-e', 'process.exit(0)'], {
    env: { ...process.env, NODE_OPTIONS: nodeOptions },
    encoding: 'utf8',
  });
  assert.equal(started.status, 0, started.stderr);
  assert.ok(
    deploy.includes(`NODE_OPTIONS=${nodeOptions}`),
    `docs/deploy.md names NODE_OPTIONS=${nodeOptions}`,
  );
  assert.match(env.get('MALLOC_ARENA_MAX') ?? '', /^[1-9]\d*$/);
  assert.ok(deploy.includes(`MALLOC_ARENA_MAX=${env.get('MALLOC_ARENA_MAX')}`));
});

interface Container {
  env?: Array<{ name: string; value?: string }>;
  ports?: Array<{ name?: string; containerPort: number }>;
  readinessProbe?: { httpGet?: { path: string; port: string | number } };
  livenessProbe?: { httpGet?: { path: string; port: string | number } };
  volumeMounts?: Array<{ name: string; mountPath: string }>;
}

interface StatefulSet {
  kind: 'StatefulSet';
  spec: {
    volumeClaimTemplates?: Array<{ metadata: { name: string } }>;
    template: { spec: { terminationGracePeriodSeconds?: number; containers: Container[] } };
  };
}

function yamlBlocks(markdown: string): string[] {
  return [...markdown.matchAll(/^```yaml\n([\s\S]*?)^```$/gm)].map((match) => match[1] as string);
}

test('docs/deploy.md: the YAML parses; the StatefulSet has a volume per instance for the state, a readiness probe on /health/ready, a liveness probe on /health/live, and time to stop', () => {
  const blocks = yamlBlocks(readFileSync(resolve(root, 'docs/deploy.md'), 'utf8'));
  assert.ok(blocks.length >= 1);
  const documents = blocks.flatMap((block) => yaml.loadAll(block)) as Array<{ kind?: string }>;
  const statefulSet = documents.find((doc): doc is StatefulSet => doc?.kind === 'StatefulSet');
  assert.ok(statefulSet, 'a StatefulSet');
  const pod = statefulSet.spec.template.spec;
  const container = pod.containers[0] as Container;
  const env = new Map((container.env ?? []).map((e) => [e.name, e.value]));

  const claims = (statefulSet.spec.volumeClaimTemplates ?? []).map((claim) => claim.metadata.name);
  const stateMount = (container.volumeMounts ?? []).find((mount) => claims.includes(mount.name));
  assert.ok(stateMount, 'a volume from volumeClaimTemplates is mounted');
  assert.equal(stateMount.mountPath, env.get('TRIBUTARY_STATE_DIR'), 'the state folder is on it');

  const probe = container.readinessProbe?.httpGet;
  assert.equal(probe?.path, '/health/ready');
  assert.equal(container.livenessProbe?.httpGet?.path, '/health/live');
  const adminPort = (container.ports ?? []).find(
    (p) => p.name === probe?.port || p.containerPort === probe?.port,
  );
  assert.equal(adminPort?.containerPort, 7400, 'the image serves the admin endpoint on 7400');

  const shutdownMs = Number(env.get('TRIBUTARY_SHUTDOWN_TIMEOUT_MS') ?? 30_000);
  assert.ok(
    (pod.terminationGracePeriodSeconds ?? 30) * 1000 > shutdownMs,
    'Kubernetes waits longer than the clean shutdown may take before it kills',
  );

  // Every TRIBUTARY_* variable the example sets is one tributary reads.
  const known = new Set([
    ...ENV_OVERRIDES.flatMap((o) => [o.env, ...(o.aliases ?? [])]),
    'TRIBUTARY_SCHEMA_REGISTRY_URL',
    'TRIBUTARY_CLICKHOUSE_URL',
    'TRIBUTARY_CLICKHOUSE_USER',
    'TRIBUTARY_CLICKHOUSE_PASSWORD',
  ]);
  for (const name of env.keys()) {
    if (name.startsWith('TRIBUTARY_')) assert.ok(known.has(name), `${name} is a setting tributary reads`);
  }
});
