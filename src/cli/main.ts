#!/usr/bin/env node
/**
 * The `tributary` command.
 *   tributary run <module>       start the App a module exports (default export, or `app`)
 *   tributary describe <module>  print its topology
 *   tributary env                list the environment variables that override settings
 *   tributary init <dir>         start a new project from templates/app (see init.ts)
 */
import { resolve } from 'node:path';
import { pathToFileURL } from 'node:url';
import { Command } from 'commander';
import { App } from '../app.js';
import { ENV_OVERRIDES } from '../runtime/config.js';
import { registerInit } from './init.js';

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
  .description('Kafka Streams-style stream processing for TypeScript');

program
  .command('run')
  .argument('<module>', 'a module exporting the App')
  .description('join the consumer group and process until SIGTERM/SIGINT')
  .action(async (modulePath: string) => {
    const app = await loadApp(modulePath);
    await app.start();
  });

program
  .command('describe')
  .argument('<module>', 'a module exporting the App')
  .description('print the topology: sources, processors, stores, sinks')
  .action(async (modulePath: string) => {
    const app = await loadApp(modulePath);
    process.stdout.write(`${app.describe()}\n`);
  });

program
  .command('env')
  .description('list the environment variables that override settings')
  .action(() => {
    for (const { env, path } of ENV_OVERRIDES) process.stdout.write(`${env.padEnd(44)} ${path.join('.')}\n`);
  });

registerInit(program);

program.parseAsync().catch((error: unknown) => {
  process.stderr.write(`tributary: ${error instanceof Error ? error.message : String(error)}\n`);
  process.exit(1);
});
