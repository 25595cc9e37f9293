import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { test } from 'node:test';
import { promisify } from 'node:util';

const run = promisify(execFile);

/** Runs the real `tributary` command, as a user would, in an environment of our choosing. */
async function tributary(args: string[], env: Record<string, string> = {}): Promise<string> {
  const clean = Object.fromEntries(
    Object.entries(process.env).filter(([name]) => !name.startsWith('TRIBUTARY_')),
  );
  const { stdout } = await run(process.execPath, ['--import', 'tsx', 'src/cli/main.ts', ...args], {
    env: { ...clean, ...env },
  });
  return stdout;
}

/** The rows of the env table by variable: [setting, default, current, note]. */
function rowsOf(output: string): Map<string, string[]> {
  const lines = output.split('\n');
  const header = lines[0] ?? '';
  const starts = ['SETTING', 'DEFAULT', 'CURRENT', 'NOTE'].map((title) => header.indexOf(title));
  const rows = new Map<string, string[]>();
  for (const line of lines.slice(1)) {
    if (!line.startsWith('TRIBUTARY_')) continue;
    const cells = starts.map((start, index) => line.slice(start, starts[index + 1]).trim());
    rows.set(line.slice(0, starts[0]).trim(), cells);
  }
  return rows;
}

test('tributary --version prints the version of package.json', async () => {
  const { version } = JSON.parse(readFileSync('package.json', 'utf8')) as { version: string };
  assert.equal((await tributary(['--version'])).trim(), version);
});

test('tributary env lists every variable with its setting, default and current value, secrets masked', async () => {
  const output = await tributary(['env'], {
    TRIBUTARY_CLICKHOUSE_URL: 'http://writer:ch-secret@clickhouse.example:8123',
    TRIBUTARY_CLICKHOUSE_PASSWORD: 'ch-password',
    TRIBUTARY_ADMIN_TOKEN: 'admin-token',
    TRIBUTARY_COMMIT_INTERVAL_MS: '250',
  });
  assert.match(output.split('\n')[0] ?? '', /^VARIABLE\s+SETTING\s+DEFAULT\s+CURRENT\s+NOTE$/);
  const rows = rowsOf(output);
  assert.deepEqual(rows.get('TRIBUTARY_SCHEMA_REGISTRY_URL')?.slice(0, 3), [
    'schemaRegistry.url',
    'http://127.0.0.1:8081/apis/ccompat/v7',
    '-',
  ]);
  assert.deepEqual(rows.get('TRIBUTARY_COMMIT_INTERVAL_MS')?.slice(0, 3), [
    'commitIntervalMs',
    '1000',
    '250',
  ]);
  assert.deepEqual(rows.get('TRIBUTARY_CLICKHOUSE_URL')?.slice(0, 3), [
    'clickhouse.url',
    'http://127.0.0.1:8123',
    'http://writer:***@clickhouse.example:8123/',
  ]);
  assert.equal(rows.get('TRIBUTARY_CLICKHOUSE_PASSWORD')?.[2], '***');
  assert.equal(rows.get('TRIBUTARY_ADMIN_TOKEN')?.[2], '***');
  assert.ok(!/ch-secret|ch-password|admin-token/.test(output), 'no secret is printed');
  for (const [variable, [setting, , , note]] of rows) {
    assert.ok(setting && note, `${variable} has a setting and a note`);
  }
  // The same variables as the configuration's one table, each once.
  const { ENV_OVERRIDES } = await import('../../../src/runtime/config.js');
  assert.deepEqual(
    [...rows.keys()],
    ENV_OVERRIDES.map(({ env }) => env),
  );
});
