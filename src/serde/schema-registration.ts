/**
 * Registers the schemas of schemas/ under their topics' `-value` subjects, all or nothing: every
 * schema is parsed and checked for compatibility first, and nothing is registered if one fails.
 * The logic behind `npm run schemas:register` (scripts/register-schemas.ts).
 */
import { existsSync, readFileSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { avroSchemaText, parseAvroSchema } from './avro-types.js';
import { SchemaRegistryError, type SchemaRegistryClient } from './registry.js';

export interface SchemaMappingEntry {
  topic: string;
  subject: string;
  /** Absolute path of the .avsc file. */
  file: string;
}

/**
 * Path of a file in the repository's schemas/ folder. Walks up from this module, because it runs
 * both from src/serde (tsx) and from dist/src/serde (built package, which ships schemas/).
 */
export function schemaFilePath(fileName: string): string {
  let dir = dirname(fileURLToPath(import.meta.url));
  for (let depth = 0; depth < 5; depth++) {
    const candidate = join(dir, 'schemas', fileName);
    if (existsSync(candidate)) return candidate;
    dir = dirname(dir);
  }
  throw new Error(`schemas/${fileName} not found above ${fileURLToPath(import.meta.url)}`);
}

/** Reads a mapping file `{ "<topic>": "<schema file relative to the mapping>" }`. */
export function loadSchemaMapping(mappingFile: string): SchemaMappingEntry[] {
  const parsed: unknown = JSON.parse(readFileSync(mappingFile, 'utf8'));
  if (typeof parsed !== 'object' || parsed === null || Array.isArray(parsed)) {
    throw new Error(`${mappingFile}: expected an object mapping topic names to .avsc files`);
  }
  return Object.entries(parsed).map(([topic, file]) => {
    if (typeof file !== 'string') throw new Error(`${mappingFile}: topic "${topic}" must map to a file name`);
    return { topic, subject: `${topic}-value`, file: resolve(dirname(mappingFile), file) };
  });
}

export type RegistrationStatus =
  'registered' | 'unchanged' | 'would-register' | 'invalid' | 'incompatible' | 'failed';

export interface RegistrationOutcome {
  subject: string;
  file: string;
  status: RegistrationStatus;
  /** Global schema id, when registered or already there. */
  id?: number;
  /** Why it was refused. */
  problems: string[];
}

export interface RegisterSchemasOptions {
  /** Check only. */
  dryRun?: boolean;
  /**
   * Also check BACKWARD compatibility locally with avsc (default true). The registry's own check is
   * authoritative, but Apicurio answers a bare `is_compatible: false`; the local check names the field,
   * and still guards subjects whose registry rule is NONE.
   */
  localCheck?: boolean;
}

export interface RegisterSchemasResult {
  ok: boolean;
  outcomes: RegistrationOutcome[];
}

export async function registerSchemas(
  client: SchemaRegistryClient,
  entries: readonly SchemaMappingEntry[],
  options: RegisterSchemasOptions = {},
): Promise<RegisterSchemasResult> {
  const { dryRun = false, localCheck = true } = options;
  const checked: Array<RegistrationOutcome & { schema?: string }> = [];
  for (const entry of entries) checked.push(await checkOne(client, entry, localCheck));

  const ok = checked.every((outcome) => outcome.status !== 'invalid' && outcome.status !== 'incompatible');
  if (!ok || dryRun) return { ok, outcomes: checked.map(withoutSchema) };

  const outcomes: RegistrationOutcome[] = [];
  let allRegistered = true;
  for (const outcome of checked) {
    if (outcome.status !== 'would-register' || outcome.schema === undefined) {
      outcomes.push(withoutSchema(outcome));
      continue;
    }
    try {
      const id = await client.registerSchema(outcome.subject, outcome.schema);
      outcomes.push({ subject: outcome.subject, file: outcome.file, status: 'registered', id, problems: [] });
    } catch (error) {
      // A 409 here means someone registered a conflicting version between our check and now.
      if (!(error instanceof SchemaRegistryError)) throw error;
      allRegistered = false;
      outcomes.push({
        subject: outcome.subject,
        file: outcome.file,
        status: error.status === 409 ? 'incompatible' : 'failed',
        problems: [error.message],
      });
    }
  }
  return { ok: allRegistered, outcomes };
}

async function checkOne(
  client: SchemaRegistryClient,
  entry: SchemaMappingEntry,
  localCheck: boolean,
): Promise<RegistrationOutcome & { schema?: string }> {
  const base = { subject: entry.subject, file: entry.file };
  let schema: string;
  try {
    // Validate locally first: a typo should say "line/field", not a registry 422.
    const text = readFileSync(entry.file, 'utf8');
    parseAvroSchema(text);
    schema = avroSchemaText(text);
  } catch (error) {
    return { ...base, status: 'invalid', problems: [`not a valid Avro schema: ${messageOf(error)}`] };
  }
  const existing = await client.lookupSchema(entry.subject, schema);
  if (existing !== undefined) return { ...base, status: 'unchanged', id: existing.id, problems: [] };

  const problems: string[] = [];
  const verdict = await client.checkCompatibility(entry.subject, schema);
  if (!verdict.compatible) {
    problems.push(
      verdict.messages.length > 0
        ? `registry: ${verdict.messages.join('; ')}`
        : 'registry: not compatible with the latest version under the subject compatibility rule',
    );
  }
  if (localCheck) {
    const latest = await client.getLatestVersion(entry.subject);
    if (latest !== undefined) {
      try {
        parseAvroSchema(schema).createResolver(parseAvroSchema(latest.schema));
      } catch (error) {
        problems.push(
          `BACKWARD: consumers on the new schema could not read records written with version ${latest.version} ` +
            `(id ${latest.id}): ${messageOf(error)}`,
        );
      }
    }
  }
  if (problems.length > 0) return { ...base, status: 'incompatible', problems };
  return { ...base, status: 'would-register', problems: [], schema };
}

function withoutSchema(outcome: RegistrationOutcome & { schema?: string }): RegistrationOutcome {
  const { schema: _schema, ...rest } = outcome;
  return rest;
}

function messageOf(error: unknown): string {
  return error instanceof Error ? error.message : String(error);
}
