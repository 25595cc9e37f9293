/**
 * A minimal App module for CLI tests (`tributary run test/helpers/avro-app.ts`): one Avro source read
 * through the registry from the environment, into a memory sink. Settings come from TRIBUTARY_* and
 * TEST_INPUT_TOPIC.
 */
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { avro, memorySink, tributary } from '../../src/index.js';
import { usageEventSchema, type UsageEvent } from '../../examples/metering/usage-event.js';

export default function app() {
  const built = tributary({
    appId: 'cli-test-app',
    stateDir: mkdtempSync(join(tmpdir(), 'tributary-cli-test-')),
    admin: { enabled: false },
  });
  built
    .stream(
      process.env.TEST_INPUT_TOPIC ?? 'cli-test-input',
      avro<UsageEvent>({
        registry: {
          url: process.env.TRIBUTARY_SCHEMA_REGISTRY_URL ?? 'http://127.0.0.1:8081/apis/ccompat/v7',
        },
        readerSchema: usageEventSchema(),
      }),
    )
    .to(memorySink('out'));
  return built;
}
