#!/usr/bin/env node
/**
 * The `tributary` command.
 *   tributary run <module>       start the App a module exports (default export, or `app`)
 *   tributary describe <module>  print its topology (--format mermaid|dot: as a graph)
 *   tributary env                every setting's environment variable, default and current value
 *   tributary --version          the installed package's version
 *   tributary dlq <appId>        list dead letters; --replay re-publishes them (see cli/dlq.ts)
 *   tributary init <dir>         start a new project from templates/app (see init.ts)
 *   tributary inspect <url>      tasks, store entries and key lookups of a running instance (inspect.ts)
 *   tributary lag <appId>        per-partition committed offset, end offset and lag (lag.ts)
 *   tributary reset <appId>      delete its group offsets, changelogs and DLQ progress (see reset.ts)
 */
import { existsSync, readFileSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { Command } from 'commander';
import { App } from '../app.js';
import { environmentTable, type EnvTableRow } from '../runtime/config.js';
import { registerDlqCommand } from './dlq.js';
import { registerInit } from './init.js';
import { registerInspect } from './inspect.js';
import { registerLag } from './lag.js';
import { registerResetCommand } from './reset.js';

/**
 * The version in the package.json this file ships in, read at run time so it cannot drift. Searched
 * upwards because the file runs from src/cli/ (tsx) and from dist/src/cli/ (built).
 */
function packageVersion(): string {
  for (let dir = dirname(fileURLToPath(import.meta.url)); ; dir = dirname(dir)) {
    const file = join(dir, 'package.json');
    if (existsSync(file)) {
      const manifest = JSON.parse(readFileSync(file, 'utf8')) as { name?: unknown; version?: unknown };
      if (manifest.name === 'tributary' && typeof manifest.version === 'string') return manifest.version;
    }
    if (dirname(dir) === dir) return 'unknown';
  }
}

const COLUMNS: ReadonlyArray<[keyof EnvTableRow, string]> = [
  ['variable', 'VARIABLE'],
  ['setting', 'SETTING'],
  ['default', 'DEFAULT'],
  ['current', 'CURRENT'],
  ['note', 'NOTE'],
];

/** Aligned columns; the note, last, may run as long as it needs. */
function formatEnvTable(rows: readonly EnvTableRow[]): string {
  const cells = rows.map((row) =>
    COLUMNS.map(([key]) => (key === 'current' && row[key] === '' ? '-' : row[key])),
  );
  const header = COLUMNS.map(([, title]) => title);
  const widths = header.map((title, column) =>
    Math.max(title.length, ...cells.map((line) => (line[column] ?? '').length)),
  );
  const format = (line: readonly string[]) =>
    line
      .map((cell, column) => (column === line.length - 1 ? cell : cell.padEnd(widths[column] ?? 0)))
      .join('  ')
      .trimEnd();
  return [format(header), ...cells.map(format)].join('\n');
}

async function loadApp(modulePath: string): Promise<App> {
  const module = (await import(pathToFileURL(resolve(modulePath)).href)) as Record<string, unknown>;
  const candidate = module.default ?? module.app;
  const app = typeof candidate === 'function' ? await (candidate as () => unknown)() : candidate;
  if (!(app instanceof App)) {
    throw new Error(
      `${modulePath} must export a tributary App (or a function returning one) as default or as "app"`,
    );
  }
  return app;
}

const program = new Command()
  .name('tributary')
  .description('Kafka Streams-style stream processing for TypeScript')
  .version(packageVersion(), '-V, --version', 'print the version');

program
  .command('run')
  .argument('<module>', 'a module exporting the App')
  .description('join the consumer group and process until SIGTERM/SIGINT')
  .action(async (modulePath: string) => {
    const app = await loadApp(modulePath);
    await app.start();
  });

const DESCRIBE_FORMATS = ['text', 'mermaid', 'dot'] as const;

program
  .command('describe')
  .argument('<module>', 'a module exporting the App')
  .description('print the topology: sources, processors, stores, sinks')
  .option('--format <format>', `${DESCRIBE_FORMATS.join(', ')} (a Mermaid or Graphviz graph)`, 'text')
  .action(async (modulePath: string, options: { format: string }) => {
    const format = DESCRIBE_FORMATS.find((known) => known === options.format);
    if (format === undefined)
      throw new Error(`--format ${options.format}: use one of ${DESCRIBE_FORMATS.join(', ')}`);
    const app = await loadApp(modulePath);
    process.stdout.write(`${format === 'text' ? app.describe() : app.describeGraph(format)}\n`);
  });

program
  .command('env')
  .description("list every setting's environment variable, default and current value")
  .action(() => {
    process.stdout.write(`${formatEnvTable(environmentTable(process.env))}\n\n`);
    process.stdout.write(
      'A set variable overrides the setting given in code. Passwords and tokens show as ***.\n',
    );
  });

registerDlqCommand(program);
registerInit(program);
registerInspect(program);
registerLag(program);
registerResetCommand(program);

let finished = false;
// Node exits with 0 once nothing is left to wait on, even while a command's promise is pending (a
// client that dropped its request without settling it): say so and fail rather than pass silently.
process.once('beforeExit', () => {
  if (finished) return;
  process.stderr.write('tributary: the command stopped before it finished (nothing left to wait on)\n');
  process.exitCode = 1;
});
program
  .parseAsync()
  .then(() => {
    finished = true;
  })
  .catch((error: unknown) => {
    process.stderr.write(`tributary: ${error instanceof Error ? error.message : String(error)}\n`);
    process.exit(1);
  });
