/**
 * The web console's files (src/admin/console/: hand-written HTML, CSS and browser modules, no build
 * step), served by the admin endpoint at `/` and `/console/<file>`. They are read once when the
 * endpoint starts; `npm run build` copies the folder next to the compiled server (dist/src/admin/).
 * The files hold no data, so they load without the admin token; the page asks for the token and sends
 * it on every data request.
 */
import { readdir, readFile } from 'node:fs/promises';
import { extname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

export const CONSOLE_DIR = fileURLToPath(new URL('./console/', import.meta.url));

/** Under this prefix the console's files are served (`/console/app.js`); `/` is its index.html. */
export const CONSOLE_PREFIX = '/console/';

const CONTENT_TYPES: Readonly<Record<string, string>> = {
  '.html': 'text/html; charset=utf-8',
  '.js': 'text/javascript; charset=utf-8',
  '.css': 'text/css; charset=utf-8',
  '.svg': 'image/svg+xml',
  '.png': 'image/png',
};

export interface ConsoleAsset {
  body: Buffer;
  contentType: string;
}

/** The servable files of `dir` by name (no sub-folders: a request can only name one of these). */
export async function loadConsoleAssets(dir: string = CONSOLE_DIR): Promise<Map<string, ConsoleAsset>> {
  const assets = new Map<string, ConsoleAsset>();
  let names: string[];
  try {
    names = await readdir(dir);
  } catch {
    return assets; // no console (e.g. a build that did not copy it): `/` says so
  }
  for (const name of names.sort()) {
    const contentType = CONTENT_TYPES[extname(name)];
    if (contentType !== undefined) assets.set(name, { body: await readFile(join(dir, name)), contentType });
  }
  return assets;
}

/** Whether a request path is one of the console's files (served without the token). */
export function isConsoleAssetPath(path: string): boolean {
  return path === '/' || path === '/index.html' || path.startsWith(CONSOLE_PREFIX);
}
