// `tributary init` from a checkout (the documented dev path `npm run cli -- ...`, since Node 20 cannot run
// src/cli/main.ts by itself): a new project from the template, depending on the tributary asked for.
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { after, test } from 'node:test';
import { defaultTributarySpec } from '../../../src/cli/init.js';

const root = resolve(import.meta.dirname, '../../..');
const scratch = mkdtempSync(join(tmpdir(), 'tributary-init-'));
after(() => rmSync(scratch, { recursive: true, force: true }));

function cli(...args: string[]): { status: number | null; stdout: string; stderr: string } {
  const run = spawnSync('npm', ['run', '--silent', 'cli', '--', ...args], { cwd: root, encoding: 'utf8' });
  return { status: run.status, stdout: run.stdout, stderr: run.stderr };
}

test('npm run cli -- init <dir> creates a project: package.json named after the folder and depending on tributary, tsconfig, topology, test, Dockerfile', () => {
  const dir = join(scratch, 'My Shop');
  const run = cli('init', dir, '--tributary', 'git+https://git.example.com/tributary.git#v0.1.0');
  assert.equal(run.status, 0, run.stderr);
  assert.match(run.stdout, /npm install\n {2}npm test/);
  for (const file of [
    '.gitignore',
    '.dockerignore',
    'Dockerfile',
    'tsconfig.json',
    'tsconfig.build.json',
    'src/app.ts',
    'src/page-views.ts',
    'test/page-views.test.ts',
  ]) {
    assert.ok(existsSync(join(dir, file)), file);
  }
  const manifest = JSON.parse(readFileSync(join(dir, 'package.json'), 'utf8')) as {
    name: string;
    dependencies: Record<string, string>;
    scripts: Record<string, string>;
  };
  assert.equal(manifest.name, 'my-shop');
  assert.equal(manifest.dependencies.tributary, 'git+https://git.example.com/tributary.git#v0.1.0');
  assert.equal(manifest.scripts.start, 'tributary run dist/app.js');
});

test('init depends on this checkout by default, and refuses a folder that is not empty', () => {
  const dir = join(scratch, 'default-spec');
  assert.equal(cli('init', dir).status, 0);
  const manifest = JSON.parse(readFileSync(join(dir, 'package.json'), 'utf8')) as {
    dependencies: Record<string, string>;
  };
  assert.equal(manifest.dependencies.tributary, `file:${root}`);

  const busy = join(scratch, 'busy');
  mkdirSync(busy);
  writeFileSync(join(busy, 'notes.txt'), 'mine');
  const refused = cli('init', busy);
  assert.equal(refused.status, 1);
  assert.match(refused.stderr, /busy is not empty/);
  assert.equal(readFileSync(join(busy, 'notes.txt'), 'utf8'), 'mine');
  assert.ok(!existsSync(join(busy, 'package.json')));
});

test('an installed tributary starts projects that depend on it the way its project does, never on a path into node_modules', () => {
  const project = join(scratch, 'tool');
  const installed = join(project, 'node_modules', 'tributary');
  mkdirSync(installed, { recursive: true });
  const manifest = (tributary: string) =>
    writeFileSync(join(project, 'package.json'), JSON.stringify({ dependencies: { tributary } }));

  manifest('git+https://git.example.com/tributary.git#main');
  assert.equal(defaultTributarySpec(installed), 'git+https://git.example.com/tributary.git#main');
  manifest('file:vendor/tributary-0.1.0.tgz');
  assert.equal(defaultTributarySpec(installed), `file:${join(project, 'vendor', 'tributary-0.1.0.tgz')}`);
  writeFileSync(join(project, 'package.json'), '{}');
  assert.throws(() => defaultTributarySpec(installed), /pass --tributary/);
  assert.equal(defaultTributarySpec(root), `file:${root}`, 'a checkout: its path');
});
