import assert from 'node:assert/strict';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import {
  InMemorySchemaRegistry,
  loadSchemaMapping,
  registerSchemas,
  schemaFilePath,
} from '../../../src/serde/index.js';
import { usageEventIncompatible, usageEventV1, usageEventV2 } from './fixtures.js';

function mappingWith(files: Record<string, string>): string {
  const dir = mkdtempSync(join(tmpdir(), 'tributary-schemas-'));
  const mapping: Record<string, string> = {};
  for (const [topic, schema] of Object.entries(files)) {
    writeFileSync(join(dir, `${topic}.avsc`), schema);
    mapping[topic] = `${topic}.avsc`;
  }
  writeFileSync(join(dir, 'subjects.json'), JSON.stringify(mapping));
  return join(dir, 'subjects.json');
}

describe('schema registration', () => {
  it('maps the reference topic to its -value subject', () => {
    const entries = loadSchemaMapping(schemaFilePath('subjects.json'));
    assert.deepEqual(
      entries.map((entry) => [entry.topic, entry.subject]),
      [['usage-events', 'usage-events-value']],
    );
    assert.ok(entries[0]?.file.endsWith('schemas/usage-event.avsc'));
  });

  it('registers, is idempotent, accepts a compatible evolution', async () => {
    const registry = new InMemorySchemaRegistry();
    const first = await registerSchemas(registry, loadSchemaMapping(mappingWith({ events: usageEventV1 })));
    assert.deepEqual(
      first.outcomes.map((o) => o.status),
      ['registered'],
    );
    const again = await registerSchemas(registry, loadSchemaMapping(mappingWith({ events: usageEventV1 })));
    assert.deepEqual(
      again.outcomes.map((o) => [o.status, o.id]),
      [['unchanged', first.outcomes[0]?.id]],
    );
    const evolved = await registerSchemas(registry, loadSchemaMapping(mappingWith({ events: usageEventV2 })));
    assert.ok(evolved.ok);
    assert.equal((await registry.getLatestVersion('events-value'))?.version, 2);
  });

  it('refuses an incompatible change, names subject and field, and registers nothing at all', async () => {
    const registry = new InMemorySchemaRegistry();
    await registerSchemas(registry, loadSchemaMapping(mappingWith({ events: usageEventV1 })));
    const result = await registerSchemas(
      registry,
      loadSchemaMapping(mappingWith({ events: usageEventIncompatible, other: usageEventV1 })),
    );
    assert.equal(result.ok, false);
    const refused = result.outcomes.find((o) => o.subject === 'events-value');
    assert.equal(refused?.status, 'incompatible');
    assert.match(refused?.problems.join('\n') ?? '', /tenant/);
    assert.equal(result.outcomes.find((o) => o.subject === 'other-value')?.status, 'would-register');
    assert.equal(await registry.getLatestVersion('other-value'), undefined, 'all or nothing');
  });

  it('the local check guards subjects whose registry rule is NONE; dry runs register nothing', async () => {
    const registry = new InMemorySchemaRegistry();
    registry.compatibility = 'NONE';
    await registerSchemas(registry, loadSchemaMapping(mappingWith({ events: usageEventV1 })));
    const mapping = loadSchemaMapping(mappingWith({ events: usageEventIncompatible }));
    assert.equal((await registerSchemas(registry, mapping)).ok, false);
    assert.equal(
      (await registerSchemas(registry, mapping, { localCheck: false, dryRun: true })).outcomes[0]?.status,
      'would-register',
    );
    assert.equal((await registry.getLatestVersion('events-value'))?.version, 1);
  });

  it('reports a schema that is not valid Avro', async () => {
    const result = await registerSchemas(
      new InMemorySchemaRegistry(),
      loadSchemaMapping(
        mappingWith({ events: '{"type":"record","name":"X","fields":[{"name":"a","type":"strnig"}]}' }),
      ),
    );
    assert.equal(result.outcomes[0]?.status, 'invalid');
    assert.match(result.outcomes[0]?.problems[0] ?? '', /strnig/);
  });
});
