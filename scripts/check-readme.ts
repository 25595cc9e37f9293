/**
 * Type-checks every TypeScript code block of README.md and docs/*.md against the package's public
 * entry point, so that what a new user copies compiles (`npm run check:docs`; CI runs it).
 *
 * Conventions for writers of the docs:
 * - Every ```ts (or ```typescript) block is compiled as a module of its own, as if it were a file in
 *   the user's project: it imports what it uses from 'tributary' (mapped to src/index.ts, so the check
 *   needs no build) and may use top-level await.
 * - A block that is a fragment (it uses a name it does not declare) states that name in an HTML
 *   comment placed directly above its fence, which readers of the rendered page do not see:
 *       <!-- check-docs prelude: declare const app: App; -->
 *   Its text is prepended to the block; several such comments add up. Prefer whole blocks.
 * - There is no way to skip a block: a block that cannot compile is a wrong doc.
 *
 * The sources of the project template (templates/app/, what `tributary init` copies) are compiled in
 * the same program, so an API change that breaks a new user's first project fails here too.
 *
 * The blocks are not written to disk: a compiler host serves them as virtual files under
 * `<repo>/.check-docs/`, so modules and types resolve exactly as they do for the repo's own files.
 */
import { readdirSync, readFileSync } from 'node:fs';
import { dirname, join, relative, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import ts from 'typescript';

export interface DocBlock {
  /** The markdown file, relative to the repo root. */
  file: string;
  /** 1-based line of the block's first code line in the markdown file. */
  line: number;
  code: string;
  /** Declarations from `check-docs prelude` comments above the fence. */
  prelude: string;
}

export interface DocProblem {
  file: string;
  line: number;
  column: number;
  message: string;
}

const FENCE_OPEN = /^```(ts|typescript)\s*$/;
const PRELUDE = /^<!--\s*check-docs prelude:\s*([\s\S]*?)\s*-->\s*$/;

/** The TypeScript blocks of one markdown text, with the line each starts on. */
export function extractTsBlocks(markdown: string, file: string): DocBlock[] {
  const lines = markdown.split('\n');
  const blocks: DocBlock[] = [];
  let fence: string | undefined;
  for (let i = 0; i < lines.length; i++) {
    const text = lines[i] as string;
    if (fence !== undefined) {
      if (text.trim() === '```') fence = undefined;
      continue;
    }
    if (!text.startsWith('```')) continue;
    if (!FENCE_OPEN.test(text)) {
      fence = text;
      continue;
    }
    const preludes: string[] = [];
    for (let j = i - 1; j >= 0; j--) {
      const match = PRELUDE.exec(lines[j] as string);
      if (!match) break;
      preludes.unshift(match[1] as string);
    }
    const start = i + 1;
    let end = start;
    while (end < lines.length && (lines[end] as string).trim() !== '```') end++;
    if (end === lines.length) throw new Error(`${file}:${i + 1}: unterminated code block`);
    blocks.push({
      file,
      line: start + 1,
      code: lines.slice(start, end).join('\n'),
      prelude: preludes.join('\n'),
    });
    i = end;
  }
  return blocks;
}

/**
 * Compiles the blocks, and `files` (paths relative to the root, e.g. the project template's sources),
 * against `<root>/src/index.ts` (as 'tributary') with the repo's compiler options.
 */
export function checkBlocks(
  blocks: readonly DocBlock[],
  root: string,
  files: readonly string[] = [],
): DocProblem[] {
  const configPath = join(root, 'tsconfig.json');
  const parsed = ts.parseJsonConfigFileContent(
    ts.readConfigFile(configPath, ts.sys.readFile).config,
    ts.sys,
    root,
    undefined,
    configPath,
  );
  const options: ts.CompilerOptions = {
    ...parsed.options,
    noEmit: true,
    declaration: false,
    sourceMap: false,
    baseUrl: root,
    paths: { tributary: ['src/index.ts'] },
  };
  const virtualDir = join(root, '.check-docs');
  const virtual = new Map<string, { block: DocBlock; preludeLines: number; text: string }>();
  for (const block of blocks) {
    const name = join(virtualDir, `${block.file.replace(/[^A-Za-z0-9]/g, '_')}_L${block.line}.ts`);
    const prelude = block.prelude === '' ? '' : `${block.prelude}\n`;
    virtual.set(name, {
      block,
      preludeLines: prelude === '' ? 0 : prelude.split('\n').length - 1,
      text: prelude + block.code,
    });
  }
  const host = ts.createCompilerHost(options);
  const { fileExists, readFile, getSourceFile } = host;
  host.fileExists = (name) => virtual.has(resolve(name)) || fileExists.call(host, name);
  host.readFile = (name) => virtual.get(resolve(name))?.text ?? readFile.call(host, name);
  host.getSourceFile = (name, language, onError, shouldCreate) => {
    const entry = virtual.get(resolve(name));
    if (entry) return ts.createSourceFile(name, entry.text, language, true);
    return getSourceFile.call(host, name, language, onError, shouldCreate);
  };
  const program = ts.createProgram(
    [...virtual.keys(), ...files.map((file) => join(root, file))],
    options,
    host,
  );
  return ts.getPreEmitDiagnostics(program).map((diagnostic) => {
    const message = `TS${diagnostic.code}: ${ts.flattenDiagnosticMessageText(diagnostic.messageText, '\n')}`;
    const source = diagnostic.file;
    if (!source || diagnostic.start === undefined) return { file: '(program)', line: 0, column: 0, message };
    const at = source.getLineAndCharacterOfPosition(diagnostic.start);
    const entry = virtual.get(resolve(source.fileName));
    if (!entry) {
      return { file: relative(root, source.fileName), line: at.line + 1, column: at.character + 1, message };
    }
    const inPrelude = at.line < entry.preludeLines;
    return {
      file: entry.block.file,
      line: inPrelude ? entry.block.line - 1 : entry.block.line + at.line - entry.preludeLines,
      column: at.character + 1,
      message: inPrelude ? `(in the check-docs prelude) ${message}` : message,
    };
  });
}

/** README.md and every markdown file of docs/, relative to the root. */
export function docFiles(root: string): string[] {
  let docs: string[] = [];
  try {
    docs = readdirSync(join(root, 'docs'))
      .filter((name) => name.endsWith('.md'))
      .sort()
      .map((name) => `docs/${name}`);
  } catch {
    // no docs/ folder
  }
  return ['README.md', ...docs];
}

/** The TypeScript files of the project template (`tributary init`), relative to the root. */
export function templateFiles(root: string): string[] {
  const walk = (dir: string): string[] =>
    readdirSync(join(root, dir), { withFileTypes: true }).flatMap((entry) => {
      const path = `${dir}/${entry.name}`;
      if (entry.isDirectory())
        return entry.name === 'node_modules' || entry.name === 'dist' ? [] : walk(path);
      return entry.name.endsWith('.ts') ? [path] : [];
    });
  return walk('templates/app').sort();
}

export function checkDocs(
  root: string,
  files: readonly string[] = docFiles(root),
  sources: readonly string[] = templateFiles(root),
): { blocks: number; problems: DocProblem[] } {
  const blocks = files.flatMap((file) => extractTsBlocks(readFileSync(join(root, file), 'utf8'), file));
  return { blocks: blocks.length, problems: checkBlocks(blocks, root, sources) };
}

if (process.argv[1] && resolve(process.argv[1]) === fileURLToPath(import.meta.url)) {
  const root = resolve(dirname(fileURLToPath(import.meta.url)), '..');
  const files = process.argv.length > 2 ? process.argv.slice(2) : docFiles(root);
  const sources = process.argv.length > 2 ? [] : templateFiles(root);
  const { blocks, problems } = checkDocs(root, files, sources);
  for (const problem of problems) {
    process.stderr.write(`${problem.file}:${problem.line}:${problem.column} ${problem.message}\n`);
  }
  if (problems.length > 0) {
    process.stderr.write(
      `check-docs: ${problems.length} problem(s) in ${blocks} TypeScript block(s) of ${files.join(', ')}\n`,
    );
    process.exit(1);
  }
  process.stdout.write(
    `check-docs: ${blocks} TypeScript block(s) of ${files.join(', ')} and ${sources.length} template file(s) compile\n`,
  );
}
