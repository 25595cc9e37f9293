/**
 * `tributary init <dir>`: starts a new project from templates/app (package.json, tsconfig, one
 * topology, one TestDriver test, a Dockerfile), depending on this tributary (see defaultTributarySpec)
 * unless told which one (`--tributary <npm spec>`: a git URL, a tarball, a version).
 */
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { cp, mkdir, readFile, rename, writeFile } from 'node:fs/promises';
import { basename, dirname, join, resolve, sep } from 'node:path';
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

/**
 * How a new project depends on this tributary: a checkout (or an `npm link` of one) by its path; an
 * installed copy the way the project that installed it does (its git URL, tarball or version), never
 * by a path into node_modules (npm would try to build that copy, which has no sources).
 */
export function defaultTributarySpec(root: string): string {
  const marker = `${sep}node_modules${sep}`;
  const at = root.lastIndexOf(marker);
  if (at < 0) return `file:${root}`;
  const project = root.slice(0, at);
  let spec: string | undefined;
  try {
    const manifest = JSON.parse(readFileSync(join(project, 'package.json'), 'utf8')) as {
      dependencies?: Record<string, string>;
      devDependencies?: Record<string, string>;
    };
    spec = manifest.dependencies?.tributary ?? manifest.devDependencies?.tributary;
  } catch {
    // no readable package.json: fall through to the error below
  }
  if (spec === undefined) {
    throw new Error(
      `cannot tell where the tributary in ${project} was installed from; pass --tributary <git url, tarball or version>`,
    );
  }
  return spec.startsWith('file:') ? `file:${resolve(project, spec.slice('file:'.length))}` : spec;
}

export interface InitOptions {
  /** npm dependency spec for tributary; default: defaultTributarySpec(this package's root). */
  tributary?: string;
}

/** Copies the template into `dir` (absent or empty) and names the project after the folder. */
export async function initProject(dir: string, options: InitOptions = {}): Promise<string> {
  const target = resolve(dir);
  if (existsSync(target) && readdirSync(target).length > 0) {
    throw new Error(`${target} is not empty; tributary init starts a new project in an empty or new folder`);
  }
  const root = packageRoot();
  const spec = options.tributary ?? defaultTributarySpec(root);
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
  manifest.dependencies.tributary = spec;
  await writeFile(manifestPath, `${JSON.stringify(manifest, null, 2)}\n`);
  return target;
}

export function registerInit(program: Command): void {
  program
    .command('init')
    .argument('<dir>', 'the folder of the new project (absent or empty)')
    .option(
      '--tributary <spec>',
      'how the project depends on tributary (npm spec); default: where this copy came from',
    )
    .description('start a new project: package.json, tsconfig, a topology, a TestDriver test, a Dockerfile')
    .action(async (dir: string, options: InitOptions) => {
      const target = await initProject(dir, options);
      process.stdout.write(
        `created ${target}\nnext:\n  cd ${dir}\n  npm install\n  npm test\n  npm run build && npm start\n`,
      );
    });
}
