/**
 * Where a task's state lives and under which transactional id it commits. Folders are named by
 * TaskId (`<stateDir>/<appId>/task-0_3`); a folder written before task ids (`task-3`) is renamed to
 * its new name when the task or its standby opens, so an upgrade keeps its state.
 */
import { rename, stat } from 'node:fs/promises';
import { join } from 'node:path';
import type { Logger } from 'pino';
import { SINGLE_SUBTOPOLOGY, legacyFolderName } from '../core/task-id.js';
import type { TaskId } from '../core/task-id.js';

export function taskDir(stateDir: string, appId: string, id: TaskId): string {
  return join(stateDir, appId, id.folderName);
}

/**
 * The transactional id of a task's changelog producer. Sub-topology 0 keeps the id of the versions
 * before task ids, `<appId>-task-<partition>`: during a rolling upgrade an old and a new instance
 * then fence each other whichever way a partition moves (a new id fenced alongside the old one would
 * leave an old owner unable to fence a new zombie). Other sub-topologies, which no older version
 * had, use the id: `<appId>-task-1_3`.
 */
export function taskTransactionalId(appId: string, id: TaskId): string {
  return id.subtopology === SINGLE_SUBTOPOLOGY
    ? `${appId}-task-${id.partition}`
    : `${appId}-task-${id.toString()}`;
}

/**
 * Renames a folder written under the task's legacy name to its current name, with one log line;
 * nothing to do when there is none or the current folder exists (then the legacy one is left alone,
 * with a warning, rather than merged). Returns the task's folder.
 */
export async function migrateLegacyFolder(
  stateDir: string,
  appId: string,
  id: TaskId,
  logger: Logger,
): Promise<string> {
  const dir = taskDir(stateDir, appId, id);
  const legacyName = legacyFolderName(id);
  if (legacyName === undefined) return dir;
  const legacy = join(stateDir, appId, legacyName);
  if (!(await isDirectory(legacy))) return dir;
  if (await isDirectory(dir)) {
    logger.warn(
      { task: id.toString(), folder: dir, legacyFolder: legacy },
      'a state folder exists under both its legacy and its current name: using the current one, leaving the legacy one',
    );
    return dir;
  }
  try {
    await rename(legacy, dir);
  } catch (error) {
    // Renamed meanwhile by this task's standby or another instance on the same state directory.
    if ((error as NodeJS.ErrnoException).code === 'ENOENT' && (await isDirectory(dir))) return dir;
    throw error;
  }
  logger.info(
    { task: id.toString(), from: legacy, to: dir },
    'state folder renamed to its task id (written by a version before task ids)',
  );
  return dir;
}

async function isDirectory(path: string): Promise<boolean> {
  try {
    return (await stat(path)).isDirectory();
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === 'ENOENT') return false;
    throw error;
  }
}
