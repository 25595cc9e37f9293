/**
 * What an instance shows of itself: its state, its tasks, its readiness and the group as it learnt it
 * (the admin endpoint's /tasks, /health/ready and /cluster answers).
 */
import type { FailingSink } from './delivery.js';
import type { GroupMember } from './kafka/client.js';
import type { TaskHost } from './task-host.js';

export type InstanceState = 'created' | 'starting' | 'running' | 'stopping' | 'stopped' | 'failed';

export interface TaskStatus {
  /** The task id, `0_3` (sub-topology 0, partition 3). */
  id: string;
  partition: number;
  /** The instance that owns the partition (this one: `instanceId`). */
  instance: string;
  positions: Record<string, string>;
  paused: boolean;
  pendingOutputs: number;
  /** Records behind the high watermark after the last batch; absent before the first batch. */
  lag?: number;
  /** When the task was last checkpointed (epoch ms); absent before its first commit. */
  lastCommitAt?: number;
  metrics: ReturnType<TaskHost['task']['metrics']>;
}

/** Whether the instance does its work now, and if not, why (the admin's /health/ready). */
export interface Readiness {
  ready: boolean;
  state: InstanceState;
  /** One line per cause, empty when ready. */
  reasons: string[];
  /** Partitions held back on a RetriableError (e.g. the schema registry unreachable), with the error. */
  heldPartitions: Array<{ partition: number; error: string }>;
  failingSinks: FailingSink[];
  /** Partitions whose task is being opened (waiting for its state folder's lock, loading its state). */
  openingPartitions: number[];
  /** Input topics that do not exist yet: the instance waits for them before it joins its group. */
  missingTopics: string[];
}

/** The consumer group as this instance learnt it after the last rebalance (the admin's /cluster). */
export interface ClusterView {
  groupId: string;
  /** This instance's member id. */
  self: string;
  /** When the view was learnt, epoch ms. */
  updatedAt: number;
  /** Ordered by member id; `thisInstance` marks this one. */
  members: Array<GroupMember & { thisInstance: boolean }>;
}
