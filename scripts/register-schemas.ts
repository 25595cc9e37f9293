/**
 * `npm run schemas:register`: registers every schema of schemas/subjects.json under its topic's
 * `-value` subject. Checks all of them for compatibility first and registers nothing if one is
 * refused; exits 1 then (2 when the registry cannot be reached), naming subject, file and reason.
 */
import { relative } from 'node:path';
import { Command } from 'commander';
import {
  createSchemaRegistryClient,
  loadSchemaMapping,
  registerSchemas,
  RetriableError,
  schemaFilePath,
  type RegistrationOutcome,
} from '../src/serde/index.js';
import { schemaRegistryUrlFromEnv } from '../src/runtime/config.js';

const program = new Command()
  .name('register-schemas')
  .description('Register the Avro schemas of schemas/ in the Schema Registry, after checking compatibility.')
  .option('--mapping <file>', 'topic -> .avsc mapping file', schemaFilePath('subjects.json'))
  .option(
    '--registry <url>',
    'Schema Registry URL (env TRIBUTARY_SCHEMA_REGISTRY_URL)',
    schemaRegistryUrlFromEnv(),
  )
  .option('--dry-run', 'check compatibility only, register nothing', false)
  .option('--no-local-check', 'trust the registry compatibility rule alone (skip the avsc BACKWARD check)')
  .parse();

const options = program.opts<{ mapping: string; registry: string; dryRun: boolean; localCheck: boolean }>();

function describe(outcome: RegistrationOutcome): string {
  const file = relative(process.cwd(), outcome.file);
  const id = outcome.id === undefined ? '' : ` (id ${outcome.id})`;
  return `${outcome.status.padEnd(14)} ${outcome.subject} <- ${file}${id}`;
}

async function main(): Promise<number> {
  const entries = loadSchemaMapping(options.mapping);
  const client = createSchemaRegistryClient({ url: options.registry });
  const result = await registerSchemas(client, entries, {
    dryRun: options.dryRun,
    localCheck: options.localCheck,
  });
  for (const outcome of result.outcomes) {
    console.log(describe(outcome));
    for (const problem of outcome.problems) {
      console.error(
        `schemas:register: refused subject ${outcome.subject} (${outcome.status}, ` +
          `${relative(process.cwd(), outcome.file)}): ${problem}`,
      );
    }
  }
  if (!result.ok) {
    console.error(`schemas:register: nothing was registered; fix the schemas above (registry ${client.url})`);
    return 1;
  }
  return 0;
}

main().then(
  (code) => process.exit(code),
  (error: unknown) => {
    const message = error instanceof Error ? error.message : String(error);
    console.error(`schemas:register: ${message}`);
    process.exit(error instanceof RetriableError ? 2 : 1);
  },
);
