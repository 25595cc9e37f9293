/**
 * `tributary init <dir>`: starts a new project from templates/app (package.json, tsconfig, one
 * topology, one TestDriver test, a Dockerfile), depending on this very copy of tributary unless told
 * which one (`--tributary <npm spec>`: a git URL, a tarball, a version).
 */
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { cp, mkdir, readFile, rename, writeFile } from 'node:fs/promises';
import { basename, dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { Command } from 'commander';

/** The package root of this tributary (src/cli/ from a checkout, dist/src/cli/ once built). */
export function packageRoot(from: string = dirname(fileURLToPath(import.meta.url))): string {
  for (let dir = from; ; dir = dirname(dir)) {
    const manifest = join(dir, 'package.json');
    if (
      existsSync(manifest) &&
      (JSON.parse(readFileSync(manifest, 'utf8')) as { name?: string }).name === 'tributary'
    ) {
      return dir;
    }
    if (dirname(dir) === dir) throw new Error(`no tributary package.json above ${from}`);
  }
}

export interface InitOptions {
  /** npm dependency spec for tributary; default `file:<this package's root>`. */
  tributary?: string;
}

/** Copies the template into `dir` (absent or empty) and names the project after the folder. */
export async function initProject(dir: string, options: InitOptions = {}): Promise<string> {
  const target = resolve(dir);
  if (existsSync(target) && readdirSync(target).length > 0) {
    throw new Error(`${target} is not empty; tributary init starts a new project in an empty or new folder`);
  }
  const root = packageRoot();
  await mkdir(target, { recursive: true });
  await cp(join(root, 'templates', 'app'), target, {
    recursive: true,
    filter: (source) => !/[\\/](node_modules|dist)$/.test(source),
  });
  // npm never packs a file named .gitignore, so the template carries it as `gitignore`.
  await rename(join(target, 'gitignore'), join(target, '.gitignore'));
  const manifestPath = join(target, 'package.json');
  const manifest = JSON.parse(await readFile(manifestPath, 'utf8')) as {
    name: string;
    dependencies: Record<string, string>;
  };
  manifest.name = basename(target)
    .toLowerCase()
    .replace(/[^a-z0-9._-]+/g, '-');
  manifest.dependencies.tributary = options.tributary ?? `file:${root}`;
  await writeFile(manifestPath, `${JSON.stringify(manifest, null, 2)}\n`);
  return target;
}

export function registerInit(program: Command): void {
  program
    .command('init')
    .argument('<dir>', 'the folder of the new project (absent or empty)')
    .option('--tributary <spec>', 'how the project depends on tributary (npm spec); default: this copy')
    .description('start a new project: package.json, tsconfig, a topology, a TestDriver test, a Dockerfile')
    .action(async (dir: string, options: InitOptions) => {
      const target = await initProject(dir, options);
      process.stdout.write(
        `created ${target}\nnext:\n  cd ${dir}\n  npm install\n  npm test\n  npm run build && npm start\n`,
      );
    });
}
