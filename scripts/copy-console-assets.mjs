// After `tsc`: copies the admin web console's files (HTML, CSS, browser modules; no build step of
// their own) next to the compiled admin server, where it serves them from (dist/src/admin/console/).
import { cpSync, rmSync } from 'node:fs';

const from = 'src/admin/console';
const to = 'dist/src/admin/console';
rmSync(to, { recursive: true, force: true });
cpSync(from, to, { recursive: true });
