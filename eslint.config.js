// @ts-check
import js from '@eslint/js';
import tseslint from 'typescript-eslint';
import { importX } from 'eslint-plugin-import-x';
import { createTypeScriptImportResolver } from 'eslint-import-resolver-typescript';

/**
 * Folder boundaries (ARCHITECTURE.md, "knows about"): what each folder of src/ may import from the
 * others. Data flows one way; `src/core/` is the shared vocabulary and imports nothing of ours.
 */
const FOLDERS = ['core', 'state', 'serde', 'sinks', 'topology', 'runtime', 'admin', 'cli'];
const MAY_IMPORT = {
  core: [],
  state: ['core'],
  serde: ['core'],
  sinks: ['core'],
  // The engine sees serde *interfaces* only (types.ts), never an implementation.
  topology: ['core', 'state', 'serde/types'],
  runtime: ['core', 'serde'],
  admin: ['core', 'runtime'],
  // admin: its HTTP client (query-client.ts), for `tributary inspect`.
  cli: ['core', 'runtime', 'admin', 'app'],
};

function boundaryRule(folder) {
  const allowed = MAY_IMPORT[folder];
  const patterns = [];
  for (const other of FOLDERS) {
    if (other === folder || allowed.includes(other)) continue;
    const only = allowed.find((entry) => entry.startsWith(`${other}/`));
    patterns.push({
      regex: only ? `^(\\.\\./)+${other}/(?!${only.slice(other.length + 1)}\\.js$)` : `^(\\.\\./)+${other}/`,
      message: `src/${folder}/ may import only ${allowed.join(', ') || 'nothing of ours'} (see ARCHITECTURE.md).`,
    });
  }
  // The composition root (src/app.ts) and the public entry point (src/index.ts) sit above every folder.
  patterns.push({
    regex: allowed.includes('app') ? '^(\\.\\./)+index\\.js$' : '^(\\.\\./)+(app|index)\\.js$',
    message: `src/${folder}/ must not import the composition root or the public entry point.`,
  });
  return {
    files: [`src/${folder}/**/*.ts`],
    rules: { 'no-restricted-imports': ['error', { patterns }] },
  };
}

export default tseslint.config(
  { ignores: ['dist/', 'node_modules/', '.stack/', 'coverage/'] },
  js.configs.recommended,
  ...tseslint.configs.recommended,
  {
    languageOptions: { globals: { process: 'readonly', console: 'readonly', Buffer: 'readonly' } },
    rules: {
      '@typescript-eslint/no-explicit-any': 'error',
      '@typescript-eslint/no-unused-vars': ['error', { argsIgnorePattern: '^_', varsIgnorePattern: '^_' }],
      '@typescript-eslint/consistent-type-imports': 'error',
      eqeqeq: ['error', 'always', { null: 'ignore' }],
    },
  },
  ...FOLDERS.map(boundaryRule),
  {
    // No import circles anywhere in src/: a circle means two files are one concern, or one of them
    // holds a piece both need (move it to its own file). Type-only imports count too.
    files: ['src/**/*.ts'],
    plugins: { 'import-x': importX },
    settings: {
      ...importX.flatConfigs.typescript.settings,
      'import-x/resolver-next': [createTypeScriptImportResolver({ project: './tsconfig.json' })],
    },
    rules: { 'import-x/no-cycle': ['error', { ignoreExternal: true }] },
  },
  {
    // The admin web console: browser modules served as they are (no build step).
    files: ['src/admin/console/**/*.js'],
    languageOptions: {
      globals: Object.fromEntries(
        ['document', 'fetch', 'sessionStorage', 'setTimeout', 'clearTimeout', 'URLSearchParams'].map(
          (name) => [name, 'readonly'],
        ),
      ),
    },
  },
);
