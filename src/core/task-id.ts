/**
 * A task's identity: the sub-topology it runs and the partition it reads, written `<subtopology>_<partition>`
 * (`0_3`), as Kafka Streams' TaskId. A topology has one sub-topology today (every source topic is
 * co-partitioned and read by one DAG), so every task is `0_<partition>`; the sub-topology is in the id
 * so that state folders and admin routes keep their names once repartition topics split a topology.
 *
 * Ids are interned: `taskIdOf(0, 3) === taskIdOf(0, 3)`, so an id serves as a Map key as it is.
 */

/** The one sub-topology of today's topologies. */
export const SINGLE_SUBTOPOLOGY = 0;

const ID_PATTERN = /^(\d+)_(\d+)$/;

export class TaskId {
  private static readonly interned = new Map<string, TaskId>();
  private readonly text: string;

  private constructor(
    readonly subtopology: number,
    readonly partition: number,
  ) {
    this.text = `${subtopology}_${partition}`;
  }

  /** The interned id of (subtopology, partition); both whole numbers. */
  static of(subtopology: number, partition: number): TaskId {
    if (!isWholeNumber(subtopology) || !isWholeNumber(partition))
      throw new RangeError(`a task id is two whole numbers, not (${subtopology}, ${partition})`);
    const key = `${subtopology}_${partition}`;
    let id = TaskId.interned.get(key);
    if (id === undefined) TaskId.interned.set(key, (id = new TaskId(subtopology, partition)));
    return id;
  }

  /** `0_3` → the id; undefined for anything else. */
  static parse(text: string): TaskId | undefined {
    const match = ID_PATTERN.exec(text);
    if (!match) return undefined;
    const subtopology = Number(match[1]);
    const partition = Number(match[2]);
    if (!Number.isSafeInteger(subtopology) || !Number.isSafeInteger(partition)) return undefined;
    return TaskId.of(subtopology, partition);
  }

  /** `0_3`. */
  toString(): string {
    return this.text;
  }

  toJSON(): string {
    return this.text;
  }

  /** The task's state folder under `<stateDir>/<appId>/`: `task-0_3`. */
  get folderName(): string {
    return `task-${this.text}`;
  }
}

/** The interned id of (subtopology, partition). */
export function taskIdOf(subtopology: number, partition: number): TaskId {
  return TaskId.of(subtopology, partition);
}

/** Orders by sub-topology, then partition (`0_2` < `0_10` < `1_0`). */
export function compareTaskIds(a: TaskId, b: TaskId): number {
  return a.subtopology - b.subtopology || a.partition - b.partition;
}

/**
 * The folder name today's main wrote for a task (`task-<partition>`), before ids had a sub-topology:
 * only sub-topology 0 ever had one. A folder of that name is renamed to `folderName` at open.
 */
export function legacyFolderName(id: TaskId): string | undefined {
  return id.subtopology === SINGLE_SUBTOPOLOGY ? `task-${id.partition}` : undefined;
}

function isWholeNumber(n: number): boolean {
  return Number.isSafeInteger(n) && n >= 0;
}

/**
 * A task as an admin route or a command names it: its id (`0_3`), or a bare partition number (`3`,
 * what routes took before task ids) for the one sub-topology. Undefined for anything else.
 */
export function parseTaskRef(text: string): TaskId | undefined {
  if (/^\d+$/.test(text)) {
    const partition = Number(text);
    return Number.isSafeInteger(partition) ? TaskId.of(SINGLE_SUBTOPOLOGY, partition) : undefined;
  }
  return TaskId.parse(text);
}
