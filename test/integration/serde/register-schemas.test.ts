/** `npm run schemas:register` as a child process against the real registry, with a temp mapping. */
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { promisify } from 'node:util';
import { createSchemaRegistryClient } from '../../../src/serde/index.js';
import { registryUrl, uniqueName } from '../../helpers/services.js';
import { usageEventIncompatible, usageEventV1, usageEventV2 } from '../../unit/serde/fixtures.js';

const run = promisify(execFile);

async function registerScript(
  topic: string,
  schema: string,
): Promise<{ code: number; stdout: string; stderr: string }> {
  const dir = mkdtempSync(join(tmpdir(), 'tributary-register-'));
  writeFileSync(join(dir, 'event.avsc'), schema);
  writeFileSync(join(dir, 'subjects.json'), JSON.stringify({ [topic]: 'event.avsc' }));
  try {
    const { stdout, stderr } = await run(
      process.execPath,
      [
        '--import',
        'tsx',
        'scripts/register-schemas.ts',
        '--mapping',
        join(dir, 'subjects.json'),
        '--registry',
        registryUrl,
      ],
      { cwd: new URL('../../../', import.meta.url).pathname },
    );
    return { code: 0, stdout, stderr };
  } catch (error) {
    const failed = error as { code?: number; stdout?: string; stderr?: string };
    return { code: failed.code ?? -1, stdout: failed.stdout ?? '', stderr: failed.stderr ?? '' };
  }
}

test('schemas:register registers, accepts a compatible change and refuses an incompatible one', async () => {
  const topic = uniqueName('serde-register');
  const subject = `${topic}-value`;
  const registry = createSchemaRegistryClient({ url: registryUrl });

  const first = await registerScript(topic, usageEventV1);
  assert.equal(first.code, 0, first.stderr);
  assert.match(first.stdout, new RegExp(`registered\\s+${subject}`));
  const again = await registerScript(topic, usageEventV1);
  assert.match(again.stdout, new RegExp(`unchanged\\s+${subject}`));

  const evolved = await registerScript(topic, usageEventV2);
  assert.equal(evolved.code, 0, evolved.stderr);
  assert.equal((await registry.getLatestVersion(subject))?.version, 2);

  const refused = await registerScript(topic, usageEventIncompatible);
  assert.equal(refused.code, 1);
  assert.match(refused.stderr, new RegExp(`refused subject ${subject} \\(incompatible`));
  assert.match(refused.stderr, /tenant/, 'names the offending field');
  assert.equal((await registry.getLatestVersion(subject))?.version, 2, 'nothing registered');
});
