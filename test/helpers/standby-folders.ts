/**
 * How far a partition's state folder on disk is behind its changelog topics, read from the test while
 * an instance holds the folder open (a standby replica keeping it warm): which changelog offset of
 * each store the folder reflects, against where each changelog ends. Tests use it to prove that a
 * standby followed its changelog before a takeover, not only that the takeover restored little.
 */
import { cp, mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { basename, join } from 'node:path';
import { Kafka, logLevel } from 'kafkajs';
import { SINGLE_SUBTOPOLOGY, taskIdOf } from '../../src/core/task-id.js';
import { changelogTopic } from '../../src/runtime/changelog.js';
import { StateDb } from '../../src/state/db.js';
import { brokers } from './services.js';

/** The folder of one partition's task (or standby copy) in an instance's state folder: the runtime's naming. */
export function taskFolder(stateDir: string, appId: string, partition: number): string {
  return join(stateDir, appId, taskIdOf(SINGLE_SUBTOPOLOGY, partition).folderName);
}

/**
 * Per store, the last changelog offset `folder` reflects, read from a copy of it: the instance that
 * holds the folder keeps its LevelDB lock. The copy is consistent when nothing writes the folder
 * meanwhile (the caller froze the instance, or its changelogs are idle); otherwise it may fail to open
 * or show an older state, and the caller reads again.
 */
export async function changelogPositionsOf(folder: string): Promise<Map<string, bigint>> {
  const copy = await mkdtemp(join(tmpdir(), 'tributary-folder-copy-'));
  try {
    await cp(folder, copy, { recursive: true, filter: (source) => basename(source) !== 'LOCK' });
    const db = await StateDb.open(copy);
    try {
      return new Map(db.changelogPositions());
    } finally {
      await db.close();
    }
  } finally {
    await rm(copy, { recursive: true, force: true });
  }
}

/** One store's changelog partition: its offsets now, and the next one the folder would read. */
export interface ChangelogLag {
  /** The store's name, or the changelog topic's when the folder reflects no offset of it. */
  store: string;
  low: number;
  high: number;
  /** The folder's next offset (its last + 1; the low offset when it reflects none). */
  next: number;
}

/** How far a folder is behind the app's changelogs for one partition (markers and aborted records count). */
export interface FolderLag {
  stores: ChangelogLag[];
  /** Offsets the changelogs span (high − low, summed). */
  span: number;
  /** Offsets beyond the folder's position (high − next, summed): what a takeover would replay. */
  behind: number;
  /** Changelogs holding any offset: each ends with its last transaction's commit marker, never applied. */
  changelogsWithData: number;
}

/** Compares a folder's positions (changelogPositionsOf) with the ends of the app's changelogs now. */
export async function folderLag(
  appId: string,
  partition: number,
  positions: ReadonlyMap<string, bigint>,
): Promise<FolderLag> {
  const admin = new Kafka({ clientId: 'standby-folders', brokers, logLevel: logLevel.NOTHING }).admin();
  await admin.connect();
  try {
    const suffix = '-changelog';
    const topics = (await admin.listTopics()).filter((t) => t.startsWith(`${appId}-`) && t.endsWith(suffix));
    if (topics.length === 0) throw new Error(`app ${appId} has no changelog topics`);
    // Topic names escape some characters of store names (a sink's `clickhouse:db.table`): map them back.
    const storeOfTopic = new Map([...positions.keys()].map((store) => [changelogTopic(appId, store), store]));
    const stores: ChangelogLag[] = [];
    for (const topic of topics) {
      const range = (await admin.fetchTopicOffsets(topic)).find((p) => p.partition === partition);
      if (range === undefined) throw new Error(`changelog ${topic} has no partition ${partition}`);
      const store = storeOfTopic.get(topic);
      const [low, high] = [Number(range.low), Number(range.high)];
      const last = store === undefined ? undefined : positions.get(store);
      stores.push({ store: store ?? topic, low, high, next: last === undefined ? low : Number(last) + 1 });
    }
    return {
      stores,
      span: stores.reduce((sum, s) => sum + s.high - s.low, 0),
      behind: stores.reduce((sum, s) => sum + Math.max(0, s.high - s.next), 0),
      changelogsWithData: stores.filter((s) => s.high > s.low).length,
    };
  } finally {
    await admin.disconnect();
  }
}

/** One line per changelog, for assertion messages. */
export function describeLag(lag: FolderLag): string {
  return lag.stores.map((s) => `${s.store}: next ${s.next} of ${s.low}..${s.high}`).join('; ');
}
