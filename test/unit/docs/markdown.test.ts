// What a reader of the README and docs/ relies on: links that lead somewhere, a README short enough to
// read, one current figure per benchmark, and a settings page that lists every setting.
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
import { dirname, resolve } from 'node:path';
import { test } from 'node:test';
import { docFiles } from '../../../scripts/check-readme.js';

const root = resolve(import.meta.dirname, '../../..');
const read = (file: string): string => readFileSync(resolve(root, file), 'utf8');

/** The markdown without its fenced code blocks, whose brackets are code, not links. */
function prose(markdown: string): string {
  return markdown.replace(/^```[^\n]*\n[\s\S]*?^```\s*$/gm, '');
}

/** GitHub's anchor for a heading: lower case, punctuation dropped, spaces as `-`, repeats numbered. */
function anchorsOf(markdown: string): Set<string> {
  const anchors = new Set<string>();
  const seen = new Map<string, number>();
  for (const match of prose(markdown).matchAll(/^#{1,6}\s+(.+?)\s*#*\s*$/gm)) {
    const slug = (match[1] as string)
      .toLowerCase()
      .replace(/[^\p{L}\p{N}\s_-]/gu, '')
      .replace(/\s/g, '-');
    const count = seen.get(slug) ?? 0;
    seen.set(slug, count + 1);
    anchors.add(count === 0 ? slug : `${slug}-${count}`);
  }
  return anchors;
}

/** Every relative link target of a markdown file: `[text](target)` and images, as `path#anchor`. */
function relativeLinks(markdown: string): string[] {
  return [...prose(markdown).matchAll(/\]\(([^)\s]+)\)/g)]
    .map((match) => match[1] as string)
    .filter((target) => !/^[a-z]+:/i.test(target));
}

/** Links that lead nowhere: a missing file, or an anchor with no such heading in its file. */
function brokenLinks(files: readonly string[]): string[] {
  const broken: string[] = [];
  for (const file of files) {
    for (const target of relativeLinks(read(file))) {
      const [path = '', anchor] = target.split('#');
      const linked = path === '' ? resolve(root, file) : resolve(root, dirname(file), path);
      if (!existsSync(linked)) broken.push(`${file}: ${target} (no such file)`);
      else if (anchor !== undefined && !anchorsOf(readFileSync(linked, 'utf8')).has(anchor))
        broken.push(`${file}: ${target} (no such heading)`);
    }
  }
  return broken;
}

/** The rows of the README's Performance table, as the npm scripts they name. */
function performanceRows(readme: string): string[] {
  const section = readme.split(/^## /m).find((part) => part.startsWith('Performance\n')) ?? '';
  return [...section.matchAll(/^\| `npm run ([\w:-]+)`/gm)].map((match) => match[1] as string);
}

test('anchors follow GitHub: punctuation and code marks dropped, spaces as dashes, repeats numbered', () => {
  assert.deepEqual(
    [...anchorsOf('# Exactly-once, as built\n## State stores of `process()`\n## Notes\n## Notes\n')],
    ['exactly-once-as-built', 'state-stores-of-process', 'notes', 'notes-1'],
  );
  assert.deepEqual(relativeLinks('[a](b.md#c) ![d](e.png) [f](https://x.org) `x`\n```\n[g](h.md)\n```\n'), [
    'b.md#c',
    'e.png',
  ]);
});

test('every relative link of the README, ARCHITECTURE.md and docs/ leads to a file, and to a heading in it', () => {
  const files = [...docFiles(root), 'ARCHITECTURE.md'];
  assert.deepEqual(brokenLinks(files), []);
  // A link to a heading that moved away is caught.
  assert.ok(anchorsOf(read('README.md')).has('sizing-and-limits'));
  assert.ok(!anchorsOf(read('README.md')).has('looking-at-state'));
});

test('the README reads in ten minutes and links every page of docs/', () => {
  const readme = read('README.md');
  const lines = readme.split('\n').length;
  assert.ok(lines < 450, `the README has ${lines} lines`);
  const linked = new Set(relativeLinks(readme).map((target) => target.split('#')[0]));
  for (const page of docFiles(root).filter((file) => file.startsWith('docs/')))
    assert.ok(linked.has(page), `the README links ${page}`);
  // CI runs these by name.
  for (const command of ['npm test', 'npm run test:cluster', 'npm run test:chaos'])
    assert.ok(readme.includes(`\`${command}\``), `the README names ${command}`);
});

test('the README has one performance row per bench script, and quotes each bench once', () => {
  const readme = read('README.md');
  const scripts = Object.keys(
    (JSON.parse(read('package.json')) as { scripts: Record<string, string> }).scripts,
  ).filter((name) => /^bench(:|$)/.test(name));
  assert.deepEqual(performanceRows(readme).sort(), scripts.sort());
  // The last line each bench prints starts with its name: one figure of each in the README.
  for (const prefix of ['core', 'state', 'serde', 'outbox', 'restore', 'e2e']) {
    const quoted = readme.match(new RegExp(`\`${prefix}: `, 'g')) ?? [];
    assert.equal(quoted.length, 1, `the README quotes one ${prefix}: figure`);
  }
});

test('docs/configuration.md lists every setting that `tributary env` prints, with its variable', () => {
  const env = spawnSync(process.execPath, ['--import', 'tsx', 'src/cli/main.ts', 'env'], {
    cwd: root,
    encoding: 'utf8',
    env: { PATH: process.env.PATH },
  });
  assert.equal(env.status, 0, env.stderr);
  const settings = env.stdout
    .split('\n')
    .filter((line) => line.startsWith('TRIBUTARY_'))
    .map((line) => line.split(/\s+/).slice(0, 2) as [string, string]);
  assert.ok(settings.length >= 40, `tributary env printed ${settings.length} settings`);
  const page = read('docs/configuration.md');
  const missing = settings.filter(
    ([variable, setting]) => !page.includes(`| \`${variable}\` | \`${setting}\` |`),
  );
  assert.deepEqual(missing, []);
});
