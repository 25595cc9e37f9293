import assert from 'node:assert/strict';
import { resolve } from 'node:path';
import { test } from 'node:test';
import { checkBlocks, docFiles, extractTsBlocks, templateFiles } from '../../../scripts/check-readme.js';
import { readFileSync } from 'node:fs';

const root = resolve(import.meta.dirname, '../../..');

/** The README's first example as it was reported in issue 12 (`schemaRegistry` given a URL string: a type error). */
const REPORTED_EXAMPLE = [
  '# an old README',
  '',
  '```ts',
  "import { avro, clickhouse, count, days, minutes, seconds, sum, tributary, tumbling } from 'tributary';",
  'interface UsageEvent { subject: string; value: number }',
  "const brokers = ['127.0.0.1:9092'];",
  "const schemaRegistry = 'http://127.0.0.1:8081/apis/ccompat/v7';",
  "const stateDir = '/var/lib/tributary';",
  "const app = tributary({ appId: 'metering', brokers, schemaRegistry, stateDir });",
  "app.stream('usage-events', avro<UsageEvent>()).groupBy((e) => e.subject).window(tumbling(minutes(1)), { grace: seconds(1) })",
  "  .aggregate({ n: count(), total: sum((e) => e.value) }).to(clickhouse({ table: 'usage_1m' }));",
  'void days;',
  'await app.start();',
  '```',
].join('\n');

test('every TypeScript block of the README and docs/, and the project template, compile against the public API, and a wrong one is caught at its line', () => {
  const files = docFiles(root);
  assert.ok(files.includes('README.md'));
  const docBlocks = files.flatMap((file) => extractTsBlocks(readFileSync(resolve(root, file), 'utf8'), file));
  assert.ok(docBlocks.length >= 2, 'the README has TypeScript examples');
  // One program for both, to type-check src/ once.
  const reported = extractTsBlocks(REPORTED_EXAMPLE, 'reported.md');
  const problems = checkBlocks([...docBlocks, ...reported], root, templateFiles(root));

  const inDocs = problems.filter((p) => p.file !== 'reported.md');
  assert.deepEqual(
    inDocs.map((p) => `${p.file}:${p.line}:${p.column} ${p.message}`),
    [],
    'the docs and the template compile',
  );
  const inReported = problems.filter((p) => p.file === 'reported.md');
  assert.equal(inReported.length, 1, JSON.stringify(inReported));
  assert.equal(inReported[0]?.line, 9, 'the line of the tributary({...}) call in the markdown file');
  // `schemaRegistry` is a section ({ url, username, password }), not a URL string.
  assert.match(inReported[0]?.message ?? '', /TS2559.*url\?: string/);
});

test('code blocks: only ts/typescript fences are extracted, with their markdown line and check-docs preludes', () => {
  const markdown = [
    'text', // 1
    '```sh', // 2
    'npm install', // 3
    '```', // 4
    '<!-- check-docs prelude: declare const app: App; -->', // 5
    '```ts', // 6
    'await app.start();', // 7
    '```', // 8
    '```typescript', // 9
    'const x = 1;', // 10
    '```', // 11
    '```yaml', // 12
    'a: 1', // 13
    '```', // 14
  ].join('\n');
  assert.deepEqual(extractTsBlocks(markdown, 'x.md'), [
    { file: 'x.md', line: 7, code: 'await app.start();', prelude: 'declare const app: App;' },
    { file: 'x.md', line: 10, code: 'const x = 1;', prelude: '' },
  ]);
  assert.throws(() => extractTsBlocks('```ts\nconst x = 1;\n', 'y.md'), /y\.md:1: unterminated code block/);
});

test("the README's first-project block is the template's src/page-views.ts, word for word", () => {
  const readme = readFileSync(resolve(root, 'README.md'), 'utf8');
  const template = readFileSync(resolve(root, 'templates/app/src/page-views.ts'), 'utf8');
  const blocks = extractTsBlocks(readme, 'README.md');
  const shown = blocks.find((block) => block.code.includes('export function declarePageViews('));
  assert.ok(shown, 'the README shows the template topology');
  assert.equal(
    `${shown.code}\n`,
    template,
    'README and templates/app/src/page-views.ts differ: copy one to the other',
  );
  const before = readme.slice(0, readme.indexOf(shown.code));
  assert.match(before.slice(-600), /The topology is `src\/page-views\.ts`/);
});
