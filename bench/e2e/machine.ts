/**
 * How busy the whole machine was over an interval. On a small box Kafka, ClickHouse, the registry and
 * the measured process share the cores: a run at ~100% busy is bound by the machine, not by the
 * code under test, and the figures should be read that way.
 */
import { cpus } from 'node:os';

export interface CpuSnapshot {
  idleMs: number;
  totalMs: number;
}

export function cpuSnapshot(): CpuSnapshot {
  let idleMs = 0;
  let totalMs = 0;
  for (const { times } of cpus()) {
    idleMs += times.idle;
    totalMs += times.user + times.nice + times.sys + times.idle + times.irq;
  }
  return { idleMs, totalMs };
}

/** Share of all cores' time that was not idle between two snapshots, 0..1. */
export function busyShare(from: CpuSnapshot, to: CpuSnapshot): number {
  const total = to.totalMs - from.totalMs;
  return total > 0 ? 1 - (to.idleMs - from.idleMs) / total : 0;
}

export const coreCount = (): number => cpus().length;
