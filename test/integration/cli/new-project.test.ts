// A new user's first hour, from a copy of this checkout (as a git repository, the way a user gets it):
// start a project with `tributary init`, install tributary from a git URL, run the template's TestDriver
// test, link a checkout with `npm link`, and run the image's CMD (`tributary run dist/app.js`) against
// the real services, stopping it with SIGTERM. Needs the npm registry (or npm's cache) for the
// project's own dependencies, and the local stack.
import assert from 'node:assert/strict';
import { spawn, spawnSync } from 'node:child_process';
import type { ChildProcess } from 'node:child_process';
import { copyFileSync, mkdirSync, mkdtempSync, readdirSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { after, before, test } from 'node:test';
import { brokers, clickhouseUrl, uniqueName } from '../../helpers/services.js';

const root = resolve(import.meta.dirname, '../../..');
const scratch = mkdtempSync(join(tmpdir(), 'tributary-new-project-'));
const checkout = join(scratch, 'tributary');
const app = join(scratch, 'my-app');
const INSTALL_TIMEOUT_MS = 8 * 60_000;

/** The environment of a user's shell: none of the npm_* variables of the `npm test` running us, nor our test runner's. */
const userEnv = Object.fromEntries(
  Object.entries(process.env).filter(([name]) => !/^npm_/i.test(name) && name !== 'NODE_TEST_CONTEXT'),
);

function run(command: string, args: string[], cwd: string, env: NodeJS.ProcessEnv = {}): string {
  const result = spawnSync(command, args, {
    cwd,
    env: { ...userEnv, ...env },
    encoding: 'utf8',
    timeout: INSTALL_TIMEOUT_MS,
  });
  assert.equal(
    result.status,
    0,
    `${command} ${args.join(' ')} in ${cwd} exited ${result.status}:\n${result.stdout}\n${result.stderr}`.slice(
      -4000,
    ),
  );
  return result.stdout;
}

const npm = (cwd: string, ...args: string[]) => run('npm', [...args], cwd);
const install = (cwd: string, ...args: string[]) =>
  npm(cwd, 'install', '--prefer-offline', '--no-audit', '--no-fund', ...args);

before(() => {
  // The working tree (what is committed and what is not yet), as a fresh git repository without dist/.
  const files = run('git', ['ls-files', '-z', '--cached', '--others', '--exclude-standard'], root)
    .split('\0')
    .filter((file) => file !== '');
  for (const file of files) {
    const source = join(root, file);
    let isFile = false;
    try {
      isFile = statSync(source).isFile();
    } catch {
      continue; // deleted in the working tree
    }
    if (!isFile || file.startsWith('node_modules') || file.startsWith('.stack')) continue;
    mkdirSync(dirname(join(checkout, file)), { recursive: true });
    copyFileSync(source, join(checkout, file));
  }
  run('git', ['init', '-q'], checkout);
  run('git', ['add', '.'], checkout);
  run(
    'git',
    ['-c', 'user.name=test', '-c', 'user.email=test@example.com', 'commit', '-qm', 'snapshot'],
    checkout,
  );
});

after(() => {
  rmSync(scratch, { recursive: true, force: true });
});

test('npm install <git url>: a project from `tributary init` installs tributary from git, runs its bin, imports it, and passes its TestDriver test', () => {
  run(
    process.execPath,
    ['--import', 'tsx', 'src/cli/main.ts', 'init', app, '--tributary', `git+file://${checkout}`],
    root,
  );
  install(app);

  assert.match(npm(app, 'exec', '--', 'tributary', '--help'), /run <module>/);
  const imported = run(
    process.execPath,
    [
      '--input-type=module',
      '-e',
      "import { tributary, TestDriver } from 'tributary'; console.log(typeof tributary, typeof TestDriver);",
    ],
    app,
  );
  assert.equal(imported.trim(), 'function function');
  npm(app, 'run', 'typecheck');
  assert.match(npm(app, 'test'), /# pass 1\n# fail 0/);
  npm(app, 'run', 'build');
  assert.match(npm(app, 'run', 'describe'), /Sink: .*clickhouse:default\.page_views_1m/);
});

test('npm link: a checkout after `npm install` has its bin and its package usable through links', () => {
  install(checkout);
  const prefix = join(scratch, 'global');
  const env = { NPM_CONFIG_PREFIX: prefix };
  run('npm', ['link', '--no-audit', '--no-fund'], checkout, env);
  assert.match(run(join(prefix, 'bin', 'tributary'), ['--help'], scratch, env), /init \[options\] <dir>/);

  const user = join(scratch, 'linked-user');
  mkdirSync(user);
  writeFileSync(join(user, 'package.json'), '{ "name": "linked-user", "private": true, "type": "module" }\n');
  run('npm', ['link', 'tributary', '--no-audit', '--no-fund'], user, env);
  writeFileSync(
    join(user, 'main.js'),
    "import { tributary } from 'tributary';\nconsole.log(typeof tributary);\n",
  );
  assert.equal(run(process.execPath, ['main.js'], user).trim(), 'function');
});

interface TaskView {
  partition: number;
  positions: Record<string, string>;
}

class Running {
  readonly exited: Promise<number | null>;
  private log = '';

  constructor(
    private readonly child: ChildProcess,
    readonly name: string,
  ) {
    child.stdout?.on('data', (chunk: Buffer) => (this.log += chunk.toString()));
    child.stderr?.on('data', (chunk: Buffer) => (this.log += chunk.toString()));
    this.exited = new Promise((done) => child.on('exit', (code) => done(code)));
  }

  tail(): string {
    return this.log.slice(-3000);
  }

  /** The admin address from the "admin endpoint listening" log line. */
  async adminAddress(timeoutMs = 90_000): Promise<string> {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      const match = /"address":"(http:\/\/[^"]+)","msg":"admin endpoint listening"/.exec(this.log);
      if (match) return match[1] as string;
      if (this.child.exitCode !== null || Date.now() > deadline) {
        throw new Error(`${this.name}: no admin endpoint; log:\n${this.tail()}`);
      }
      await new Promise((wait) => setTimeout(wait, 200));
    }
  }

  stop(): void {
    this.child.kill('SIGTERM');
  }
}

async function getJson<T>(url: string): Promise<T> {
  const response = await fetch(url);
  assert.equal(response.status, 200, `${url} answered ${response.status}`);
  return (await response.json()) as T;
}

/** Polls the admin endpoint until every partition of the topic is open and `check` holds. */
async function waitForTasks(
  admin: string,
  partitions: number,
  check: (tasks: TaskView[]) => boolean,
  timeoutMs = 90_000,
): Promise<TaskView[]> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const { tasks } = await getJson<{ tasks: TaskView[] }>(`${admin}/tasks`);
    if (tasks.length === partitions && check(tasks)) return tasks;
    if (Date.now() > deadline) throw new Error(`tasks never got there: ${JSON.stringify(tasks)}`);
    await new Promise((wait) => setTimeout(wait, 300));
  }
}

const consumed = (tasks: TaskView[], topic: string) =>
  tasks.reduce((sum, task) => sum + Number(task.positions[topic] ?? 0), 0);

test("the image's CMD, `tributary run dist/app.js`, processes, stops on SIGTERM with exit 0, and resumes from its checkpoint", async (t) => {
  const topic = uniqueName('pageviews');
  const table = uniqueName('page_views_1m');
  const env = {
    ...userEnv,
    PAGE_VIEWS_TOPIC: topic,
    PAGE_VIEWS_TABLE: table,
    TRIBUTARY_BROKERS: brokers.join(','),
    TRIBUTARY_CLICKHOUSE_URL: clickhouseUrl,
    TRIBUTARY_APP_ID: topic,
    TRIBUTARY_STATE_DIR: join(scratch, 'state'),
    TRIBUTARY_ADMIN_PORT: '0',
    // As in the image: the tools of node_modules/.bin on the PATH.
    PATH: `${join(app, 'node_modules', '.bin')}:${process.env.PATH ?? ''}`,
  };
  t.after(async () => {
    for (const name of [`${table}_totals`, table]) {
      await fetch(`${clickhouseUrl}/?query=${encodeURIComponent(`DROP TABLE IF EXISTS default.${name}`)}`, {
        method: 'POST',
        body: '', // ClickHouse 18.16 wants a Content-Length on a POST
      });
    }
  });
  // The template's producer creates the topic (4 partitions) and sends 40 page views.
  run('npm', ['run', 'produce', '--', '40'], app, env);

  const start = (name: string) =>
    new Running(
      spawn('tributary', ['run', 'dist/app.js'], { cwd: app, env, stdio: ['ignore', 'pipe', 'pipe'] }),
      name,
    );

  const first = start('first run');
  const admin = await first.adminAddress();
  assert.equal((await fetch(`${admin}/health`)).status, 200, 'ready');
  await waitForTasks(admin, 4, (tasks) => consumed(tasks, topic) === 40);
  first.stop();
  assert.equal(await first.exited, 0, `a clean exit; log:\n${first.tail()}`);
  assert.match(first.tail(), /instance stopped/);

  // The checkpoint holds the offsets and the window counts: a new process resumes from it, reading nothing again.
  const second = start('second run');
  const secondAdmin = await second.adminAddress();
  const tasks = await waitForTasks(secondAdmin, 4, () => true);
  assert.equal(consumed(tasks, topic), 40, 'positions restored from the state folder');
  let views = 0;
  for (const { partition } of tasks) {
    const stores = await getJson<{ stores: Array<{ name: string; kind: string }> }>(
      `${secondAdmin}/tasks/${partition}/stores`,
    );
    for (const store of stores.stores.filter((s) => s.kind === 'window')) {
      const { entries } = await getJson<{ entries: Array<{ aggregates: { views: number } }> }>(
        `${secondAdmin}/tasks/${partition}/stores/${store.name}`,
      );
      views += entries.reduce((sum, entry) => sum + entry.aggregates.views, 0);
    }
  }
  assert.equal(views, 40, 'the open windows count every view once after the restart');
  second.stop();
  assert.equal(await second.exited, 0, `a clean exit; log:\n${second.tail()}`);

  assert.ok(readdirSync(join(scratch, 'state', topic)).length === 4, 'one state folder per partition');
});
