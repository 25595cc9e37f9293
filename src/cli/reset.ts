/**
 * `tributary reset <appId>`: deletes what lets the application resume, so its next start processes the
 * input from the beginning with empty state (like Kafka Streams' application reset tool): the group
 * offsets (group `<appId>`), the changelog topics (`<appId>-<store>-changelog`, see
 * runtime/app-reset.ts for which topics count as the app's), the DLQ progress (group
 * `<appId>.dlq-progress`), the changelog readers' groups and, with `--state-dir`, the local state
 * folder `<dir>/<appId>`. It refuses while the app's group has members, asks before deleting (or
 * `--yes`), and keeps the input topics and the DLQ topic.
 */
import { createInterface } from 'node:readline/promises';
import type { Command } from 'commander';
import { pino } from 'pino';
import type { ResetPlan } from '../runtime/app-reset.js';
import { activeMembers, executeReset, planIsEmpty, planReset } from '../runtime/app-reset.js';
import { dlqTopicOf, kafkaSettingsOf, resolveConfig } from '../runtime/config.js';
import { createKafkajsClient } from '../runtime/kafka/kafkajs/client.js';
import { createKafkajsResetAdmin } from '../runtime/kafka/kafkajs/reset.js';

interface ResetOptions {
  brokers?: string;
  stateDir?: string;
  yes?: boolean;
  dryRun?: boolean;
}

export function registerResetCommand(program: Command): void {
  program
    .command('reset')
    .argument('<appId>', 'the application to reset')
    .description(
      'delete the group offsets, changelog topics and DLQ progress of an application (not its input or DLQ topics)',
    )
    .option('--brokers <list>', 'comma-separated brokers (default: TRIBUTARY_BROKERS, else 127.0.0.1:9092)')
    .option('--state-dir <dir>', "also delete the local state folder <dir>/<appId> (the instances' stateDir)")
    .option('--yes', 'do not ask for confirmation')
    .option('--dry-run', 'print what would be deleted and stop')
    .action((appId: string, options: ResetOptions) => runReset(appId, options));
}

async function runReset(appId: string, options: ResetOptions): Promise<void> {
  const resolved = resolveConfig({ appId, handleSignals: false });
  const config = {
    ...resolved,
    // The argument, not TRIBUTARY_APP_ID: the environment may be another app's.
    appId,
    brokers: options.brokers?.split(',').map((broker) => broker.trim()) ?? resolved.brokers,
  };
  const out = (line: string) => process.stdout.write(`${line}\n`);
  // kafkajs' own warnings would bury the answer; real failures surface as the command's error.
  const logger = pino({ level: 'error' }, pino.destination(2));
  const settings = kafkaSettingsOf(config);
  for (const note of await createKafkajsClient(settings, logger).probe()) process.stderr.write(`${note}\n`);

  const admin = await createKafkajsResetAdmin(settings, logger);
  try {
    const plan = await planReset(admin, appId, options.stateDir);
    const members = await activeMembers(admin, plan);
    if (members.length > 0) {
      const names = members.map(
        ({ group, clientId, host, memberId }) =>
          `  ${clientId} on ${host} (group ${group}, member ${memberId})`,
      );
      throw new Error(
        `${appId} is running: its consumer group has members; stop every instance first ` +
          `(a running instance would recreate what a reset deletes):\n${names.join('\n')}`,
      );
    }
    for (const line of describePlan(plan, dlqTopicOf(config), config.brokers.join(','))) out(line);
    if (planIsEmpty(plan)) {
      out(`nothing to delete: ${appId} has no group offsets, changelog topics or state folder here`);
      return;
    }
    if (options.dryRun === true) {
      out('dry run: nothing deleted');
      return;
    }
    if (options.yes !== true) {
      if (!process.stdin.isTTY)
        throw new Error(
          'refusing to reset without confirmation: no terminal to ask on; pass --yes to proceed',
        );
      if (!(await confirm(`Delete all of the above for ${appId}?`)))
        throw new Error('reset not confirmed; nothing deleted');
    }
    await executeReset(admin, plan);
    out(
      `reset ${appId}: deleted ${plan.groups.length} consumer groups, ${plan.topics.length} changelog topics` +
        (plan.stateFolder === undefined ? '' : ` and ${plan.stateFolder}`) +
        '; its next start processes its input from the beginning with empty state',
    );
  } finally {
    await admin.close();
  }
}

/** The plan as the user reads it before confirming: what goes, what stays and why. */
export function describePlan(plan: ResetPlan, dlqTopic: string, brokers: string): string[] {
  const lines = [`reset ${plan.appId} on ${brokers} will delete:`];
  const item = (line: string) => lines.push(`  ${line}`);
  for (const group of plan.groups) item(`consumer group ${group}`);
  for (const topic of plan.topics) item(`changelog topic ${topic}`);
  if (plan.stateFolder !== undefined) item(`local state folder ${plan.stateFolder}`);
  if (planIsEmpty(plan)) item('(nothing)');
  lines.push('and keep:');
  lines.push(`  the input topics and the DLQ topic ${dlqTopic} (delete them yourself if you mean to)`);
  const foreignByOwner = new Map<string, string[]>();
  for (const { topic, owner } of plan.foreign)
    foreignByOwner.set(owner, [...(foreignByOwner.get(owner) ?? []), topic]);
  for (const [owner, topics] of foreignByOwner)
    lines.push(
      `  ${topics.length} changelog topics that start with ${owner}-, app ${owner}'s (a topic belongs to the ` +
        `longest app id on the cluster it starts with; delete one yourself if it is ${plan.appId}'s): ` +
        topics.join(', '),
    );
  if (plan.missingStateFolder !== undefined)
    lines.push(`  no local state folder at ${plan.missingStateFolder} (nothing to delete there)`);
  else if (plan.stateFolder === undefined)
    lines.push(
      '  local state folders (pass --state-dir <dir> to delete <dir>/' +
        `${plan.appId} on this machine; with changelogs, an instance also discards a folder its changelog no longer matches)`,
    );
  return lines;
}

/** Asks on the terminal. */
async function confirm(question: string): Promise<boolean> {
  const readline = createInterface({ input: process.stdin, output: process.stderr });
  try {
    return /^y(es)?$/i.test((await readline.question(`${question} [y/N] `)).trim());
  } finally {
    readline.close();
  }
}
