/**
 * How the benchmark's child processes talk to bench/e2e.ts: one JSON object per line on stdout
 * (their logs go to stderr). Each measurement runs in a child of its own so that its memory, CPU
 * and event loop are not shared with the generator or with the other measurement.
 *
 * Timestamps are the child's `Date.now()`: parent and children share the machine's clock, and the
 * figures are computed from the child's own timestamps so process start-up is never counted.
 */
import { spawn } from 'node:child_process';
import type { ChildProcess } from 'node:child_process';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';
import { z } from 'zod';

/** What a child reports about its own process when it finishes. */
const processUsage = z.object({
  /** `process.resourceUsage().maxRSS`, converted to bytes. */
  maxRssBytes: z.number(),
  /** User plus system CPU time of the whole child, start-up included. */
  cpuMs: z.number(),
});
export type ProcessUsage = z.infer<typeof processUsage>;

export const ceilingMessage = z.discriminatedUnion('type', [
  /** Connected and subscribed; `consumer.run()` (group join, first fetch) starts now. */
  z.object({ type: z.literal('running'), at: z.number(), cpuMs: z.number() }),
  z.object({
    type: z.literal('done'),
    records: z.number(),
    runAt: z.number(),
    firstBatchAt: z.number(),
    lastRecordAt: z.number(),
    batches: z.number(),
    cpuMs: z.number(),
    usage: processUsage,
  }),
]);
export type CeilingMessage = z.infer<typeof ceilingMessage>;

export const pipelineMessage = z.discriminatedUnion('type', [
  /** About to call `app.start()`: the pipeline's clock starts here. */
  z.object({ type: z.literal('starting'), at: z.number(), cpuMs: z.number() }),
  z.object({ type: z.literal('started'), at: z.number() }),
  z.object({
    type: z.literal('progress'),
    at: z.number(),
    processed: z.number(),
    rowsWritten: z.number(),
    inserts: z.number(),
    pendingOutputs: z.number(),
    rssBytes: z.number(),
  }),
  /** Every expected input record went through the topology (outputs may still be on their way). */
  z.object({
    type: z.literal('processed'),
    at: z.number(),
    /**
     * The counters when a record was first seen processed: the run's rates are over the span from
     * here to `at`, numerators (records, inserts, changelog bytes) counted over that span too.
     */
    firstRecord: z.object({
      at: z.number(),
      processed: z.number(),
      inserts: z.number(),
      changelogBytes: z.number(),
    }),
    cpuMs: z.number(),
    processed: z.number(),
    rowsWritten: z.number(),
    inserts: z.number(),
    /** Bytes of changelog records committed so far (0 without changelogs). */
    changelogBytes: z.number(),
  }),
  /** After a clean `app.stop()`: everything committed was delivered, the counters are final. */
  z.object({
    type: z.literal('stopped'),
    processed: z.number(),
    rowsWritten: z.number(),
    inserts: z.number(),
    sinkFailures: z.number(),
    deadLetters: z.number(),
    /** Bytes of changelog records committed over the whole run (0 without changelogs). */
    changelogBytes: z.number(),
    maxPausedPartitions: z.number(),
    usage: processUsage,
  }),
]);
export type PipelineMessage = z.infer<typeof pipelineMessage>;

/** Writes one protocol message; used by the children. */
export function emit(message: CeilingMessage | PipelineMessage): void {
  process.stdout.write(`${JSON.stringify(message)}\n`);
}

export function usageOfThisProcess(): ProcessUsage {
  const usage = process.resourceUsage();
  return {
    // resourceUsage() reports maxRSS in kilobytes.
    maxRssBytes: usage.maxRSS * 1024,
    // ... and CPU times in microseconds.
    cpuMs: (usage.userCPUTime + usage.systemCPUTime) / 1000,
  };
}

export interface BenchChild<M> {
  readonly process: ChildProcess;
  /** Resolves with the first message that `accept` returns a value for; rejects if the child exits first. */
  next<R>(accept: (message: M) => R | undefined, timeoutMs: number, what: string): Promise<R>;
  /** Every message seen so far, in order. */
  readonly messages: readonly M[];
  /** Resolves with the exit code (or the signal's name) once the child has exited. */
  readonly exited: Promise<number | string>;
}

/**
 * Starts `bench/e2e/<script>` under tsx with `env` added to ours. Lines on its stdout that are not
 * protocol messages are passed through to our stderr rather than lost.
 */
export function startChild<M>(
  script: string,
  schema: z.ZodType<M>,
  env: Record<string, string>,
  onMessage?: (message: M) => void,
  /** Extra options for node, e.g. `--cpu-prof`. */
  nodeOptions: readonly string[] = [],
): BenchChild<M> {
  const path = fileURLToPath(new URL(script, import.meta.url));
  const child = spawn(process.execPath, [...nodeOptions, '--import', 'tsx', path], {
    env: { ...process.env, ...env },
    stdio: ['ignore', 'pipe', 'inherit'],
  });
  const messages: M[] = [];
  const waiters = new Set<() => void>();
  let exitStatus: number | string | undefined;
  const exited = new Promise<number | string>((resolve) => {
    child.on('exit', (code, signal) => {
      exitStatus = code ?? signal ?? 'unknown';
      resolve(exitStatus);
      for (const wake of waiters) wake();
    });
  });
  createInterface({ input: child.stdout! }).on('line', (line) => {
    let parsed: M;
    try {
      parsed = schema.parse(JSON.parse(line));
    } catch {
      process.stderr.write(`[${script}] ${line}\n`);
      return;
    }
    messages.push(parsed);
    onMessage?.(parsed);
    for (const wake of waiters) wake();
  });

  return {
    process: child,
    messages,
    exited,
    next<R>(accept: (message: M) => R | undefined, timeoutMs: number, what: string): Promise<R> {
      return new Promise<R>((resolve, reject) => {
        let seen = 0;
        const check = (): void => {
          for (; seen < messages.length; seen++) {
            const result = accept(messages[seen]!);
            if (result !== undefined) return finish(() => resolve(result));
          }
          if (exitStatus !== undefined) {
            finish(() => reject(new Error(`${script} exited (${exitStatus}) before ${what}`)));
          }
        };
        const timer = setTimeout(
          () => finish(() => reject(new Error(`timed out after ${timeoutMs / 1000} s waiting for ${what}`))),
          timeoutMs,
        );
        const finish = (settle: () => void): void => {
          clearTimeout(timer);
          waiters.delete(check);
          settle();
        };
        waiters.add(check);
        check();
      });
    },
  };
}
