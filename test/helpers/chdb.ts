/**
 * chdb: a current ClickHouse engine (26.x) in process, without a server. It is several hundred MB, so it
 * is not a dependency: `.ci/run` installs it (`npm run chdb:install`). Without it the current-engine
 * tests are skipped with that reason, except under CI=true, where its absence is a failure.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

/** The part of chdb's Session the tests use. */
interface ChdbSession {
  query(sql: string, format?: string): string;
  cleanup?(): void;
}
interface ChdbModule {
  Session: new (path: string) => ChdbSession;
}

export interface CurrentEngine {
  /** e.g. `26.7.2.1`. */
  readonly version: string;
  /** Runs a statement; throws with ClickHouse's message when it fails. */
  command(sql: string): void;
  /** Rows of a SELECT, parsed from JSONEachRow. */
  query<T>(sql: string): T[];
  /** `INSERT INTO <table> FORMAT JSONEachRow` with the rows, as @clickhouse/client sends them. */
  insert(table: string, rows: readonly object[]): void;
  close(): void;
}

export type LoadedEngine = { engine: CurrentEngine } | { skip: string };

export const CHDB_INSTALL_HINT = 'chdb is not installed; run `npm run chdb:install` (about 550 MB)';

export async function loadCurrentEngine(): Promise<LoadedEngine> {
  let module: ChdbModule;
  try {
    // A variable specifier: chdb is not a declared dependency, so the type checker must not resolve it.
    const specifier = 'chdb';
    module = (await import(specifier)) as ChdbModule;
  } catch (error) {
    if (process.env.CI === 'true') {
      throw new Error(`${CHDB_INSTALL_HINT}: CI must run the current-engine tests`, { cause: error });
    }
    return { skip: CHDB_INSTALL_HINT };
  }
  const dir = mkdtempSync(join(tmpdir(), 'tributary-chdb-'));
  const session = new module.Session(dir);
  const query = <T>(sql: string): T[] =>
    session
      .query(sql, 'JSONEachRow')
      .split('\n')
      .filter((line) => line.trim() !== '')
      .map((line) => JSON.parse(line) as T);
  const [row] = query<{ version: string }>('SELECT version() AS version');
  return {
    engine: {
      version: row?.version ?? 'unknown',
      command: (sql) => {
        session.query(sql, 'TabSeparated');
      },
      query,
      insert: (table, rows) => {
        session.query(
          `INSERT INTO ${table} FORMAT JSONEachRow\n${rows.map((r) => JSON.stringify(r)).join('\n')}`,
          'TabSeparated',
        );
      },
      close: () => {
        session.cleanup?.();
        rmSync(dir, { recursive: true, force: true });
      },
    },
  };
}
