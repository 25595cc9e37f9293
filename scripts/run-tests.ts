// Runs the test files of one suite with Node's built-in test runner.
// Node 20's `--test` does not expand globs nor pick up .ts files by itself, so we list them here.
import { spawnSync } from 'node:child_process';
import { readdirSync, statSync } from 'node:fs';
import { join } from 'node:path';

const suites = {
  unit: ['test/unit'],
  integration: ['test/integration'],
  all: ['test/unit', 'test/integration'],
  // Needs the replicated ClickHouse cluster (`npm run stack:up -- --cluster`); run by `npm run test:cluster`.
  cluster: ['test/cluster'],
  // Instances in child processes killed, frozen, moved; one file stops the broker: run by `npm run test:chaos`.
  chaos: ['test/chaos'],
};
const suite = (process.argv[2] ?? 'all') as keyof typeof suites;
const roots = suites[suite];
if (!roots) {
  console.error(`unknown suite "${process.argv[2]}"; expected one of: ${Object.keys(suites).join(', ')}`);
  process.exit(2);
}

function testFiles(dir: string): string[] {
  let entries: string[];
  try {
    entries = readdirSync(dir);
  } catch {
    return [];
  }
  return entries.flatMap((name) => {
    const path = join(dir, name);
    if (statSync(path).isDirectory()) return testFiles(path);
    return name.endsWith('.test.ts') ? [path] : [];
  });
}

const files = roots.flatMap(testFiles).sort();
if (files.length === 0) {
  console.error(`no test files found under ${roots.join(', ')}`);
  process.exit(1);
}
// Integration tests share one broker, registry and ClickHouse; running their files one at a time keeps
// timings predictable on two cores. Unit tests are cheap enough to run the same way.
const result = spawnSync(
  process.execPath,
  // --test-force-exit: a test file that leaks a client connection must not hang the run.
  [
    '--import',
    'tsx',
    '--test',
    '--test-concurrency=1',
    '--test-force-exit',
    ...process.argv.slice(3),
    ...files,
  ],
  { stdio: 'inherit' },
);
process.exit(result.status ?? 1);
