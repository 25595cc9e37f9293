/**
 * `tributary inspect <admin-url> [store] [key]`: a running instance's state as tables, through its
 * admin endpoint.
 *   no store: its tasks (partitions) and their stores;
 *   a store:  the first page of its decoded entries in each partition (`--partition`, `--limit`,
 *             `--after`, and `--from`/`--to` for window stores);
 *   a key:    the key looked up in every partition of the group (`--local`: this instance only).
 */
import type { Command } from 'commander';
import { listStores, listTasks, queryStore, readStore } from '../admin/query-client.js';
import type {
  AdminRequestOptions,
  KeyLookupResponse,
  StoreKind,
  StorePageResponse,
  StoreSummary,
  TaskSummary,
} from '../admin/query-client.js';
import type {
  DedupeBucketView,
  KeyValueEntryView,
  OutboxEntryView,
  StoreEntryView,
  StoreReadOptions,
  WindowEntryView,
} from '../core/store-reads.js';
import { cell, formatTable } from './table.js';

interface InspectOptions {
  token?: string;
  partition?: number;
  limit?: number;
  after?: string;
  from?: string;
  to?: string;
  local?: boolean;
  json?: boolean;
}

const DEFAULT_LIMIT = 20;

function wholeNumber(raw: string): number {
  if (!/^\d+$/.test(raw.trim())) throw new Error(`not a whole number: ${raw}`);
  return Number(raw);
}

/** A time cell: the ISO form, or `-` for none (a watermark before the first record). */
function timeCell(ms: number | null | undefined): string {
  return typeof ms === 'number' && Number.isFinite(ms) ? new Date(ms).toISOString() : '-';
}

export function formatTasks(
  tasks: readonly TaskSummary[],
  stores: ReadonlyMap<number, StoreSummary[]>,
): string[] {
  if (tasks.length === 0) return ['no partitions assigned to this instance'];
  const taskLines = formatTable(
    ['TASK', 'PARTITION', 'RECORDS', 'WATERMARK', 'PENDING OUTPUTS', 'PAUSED', 'POSITIONS'],
    tasks.map((task) => [
      task.id ?? '-',
      String(task.partition),
      String(task.metrics.recordsProcessed),
      timeCell(task.metrics.watermark),
      String(task.pendingOutputs),
      task.paused ? 'yes' : 'no',
      Object.entries(task.positions)
        .map(([topic, offset]) => `${topic}@${offset}`)
        .join(' ') || '-',
    ]),
  );
  const storeLines = formatTable(
    ['PARTITION', 'STORE', 'KIND', 'ENTRIES'],
    tasks.flatMap((task) =>
      (stores.get(task.partition) ?? []).map((store) => [
        String(task.partition),
        store.name,
        store.kind,
        String(store.approximateSize),
      ]),
    ),
  );
  return [...taskLines, '', ...storeLines];
}

interface EntryRow {
  partition: number;
  /** Shown in front when given (key lookups across instances). */
  instance?: string;
  entry: StoreEntryView;
}

/** The header and cells of a store kind's entries (window stores: a column per aggregate). */
function entryColumns(kind: StoreKind, entries: readonly StoreEntryView[]): [string[], string[][]] {
  switch (kind) {
    case 'window': {
      const windows = entries as WindowEntryView[];
      const names = [...new Set(windows.flatMap((entry) => Object.keys(entry.aggregates)))];
      return [
        ['WINDOW START', 'WINDOW END', 'KEY', ...names.map((name) => name.toUpperCase()), 'VERSION'],
        windows.map((entry) => [
          entry.windowStart.iso,
          entry.windowEnd.iso,
          cell(entry.key, 60),
          ...names.map((name) => cell(entry.aggregates[name], 40)),
          String(entry.version),
        ]),
      ];
    }
    case 'key-value':
      return [
        ['KEY', 'VALUE'],
        (entries as KeyValueEntryView[]).map((entry) => [entry.key, cell(entry.value, 100)]),
      ];
    case 'dedupe':
      return [
        ['BUCKET START', 'BUCKET END', 'IDS', 'EXPIRES AT (STREAM TIME)'],
        (entries as DedupeBucketView[]).map((entry) => [
          entry.bucketStart.iso,
          entry.bucketEnd.iso,
          String(entry.ids),
          entry.expiresAt.iso,
        ]),
      ];
    case 'outbox':
      return [
        ['SEQ', 'COMMITTED', 'VALUE'],
        (entries as OutboxEntryView[]).map((entry) => [
          entry.seq,
          entry.committed ? 'yes' : 'no',
          cell(entry.value, 100),
        ]),
      ];
  }
}

function entryTable(kind: StoreKind, rows: readonly EntryRow[]): string[] {
  const [header, cells] = entryColumns(
    kind,
    rows.map((row) => row.entry),
  );
  const withInstance = rows.some((row) => row.instance !== undefined);
  return formatTable(
    [...(withInstance ? ['INSTANCE'] : []), 'PARTITION', ...header],
    rows.map((row, index) => [
      ...(withInstance ? [row.instance ?? ''] : []),
      String(row.partition),
      ...(cells[index] ?? []),
    ]),
  );
}

/** The pages of one store, one per partition, as one table, with how to get each next page. */
export function formatPages(store: string, pages: readonly StorePageResponse[]): string[] {
  const kind = pages[0]?.kind;
  const rows = pages.flatMap((page) =>
    page.entries.map((entry): EntryRow => ({ partition: page.partition, entry })),
  );
  if (kind === undefined || rows.length === 0) return [`${store}: no entries`];
  const lines = entryTable(kind, rows);
  for (const page of pages)
    if (page.next !== undefined)
      lines.push(`more in partition ${page.partition}: --partition ${page.partition} --after ${page.next}`);
  return lines;
}

export function formatLookup(response: KeyLookupResponse): string[] {
  const lines: string[] = [];
  if (!response.found || response.kind === undefined) {
    lines.push(
      response.kind === 'dedupe'
        ? `${response.key}: not seen in ${response.store} (or already forgotten)`
        : `${response.key}: not found in ${response.store}`,
    );
  } else if (response.kind === 'dedupe') {
    lines.push(
      ...formatTable(
        ['INSTANCE', 'PARTITION', 'SEEN', 'BUCKET START', 'EXPIRES AT (STREAM TIME)'],
        response.results.flatMap((result) =>
          result.kind === 'dedupe'
            ? [
                [
                  result.instance,
                  String(result.partition),
                  'yes',
                  result.bucketStart.iso,
                  result.expiresAt.iso,
                ],
              ]
            : [],
        ),
      ),
    );
  } else {
    // A window store: a row per window of the key; a key-value store: its value.
    const rows = response.results.flatMap((result): EntryRow[] =>
      result.kind === 'window'
        ? result.windows.map((entry) => ({ partition: result.partition, instance: result.instance, entry }))
        : result.kind === 'key-value'
          ? [
              {
                partition: result.partition,
                instance: result.instance,
                entry: { key: response.key, value: result.value },
              },
            ]
          : [],
    );
    lines.push(...entryTable(response.kind, rows));
  }
  const searched = response.searched
    .map(({ instance, partitions }) => `${instance} [${partitions.join(', ')}]`)
    .join(', ');
  lines.push(`searched: ${searched || 'no partitions'}`);
  for (const { adminUrl, error } of response.unreachable)
    lines.push(`unreachable: ${adminUrl} (${error}): the answer may be partial`);
  return lines;
}

function readOptionsOf(options: InspectOptions): StoreReadOptions {
  const time = (name: string, raw: string | undefined): number | undefined => {
    if (raw === undefined) return undefined;
    const ms = /^-?\d+$/.test(raw) ? Number(raw) : Date.parse(raw);
    if (Number.isNaN(ms)) throw new Error(`--${name} ${raw}: give epoch ms or an ISO time`);
    return ms;
  };
  const from = time('from', options.from);
  const to = time('to', options.to);
  return {
    limit: options.limit ?? DEFAULT_LIMIT,
    ...(options.after === undefined ? {} : { after: options.after }),
    ...(from === undefined ? {} : { from }),
    ...(to === undefined ? {} : { to }),
  };
}

async function inspect(
  adminUrl: string,
  store: string | undefined,
  key: string | undefined,
  options: InspectOptions,
): Promise<void> {
  if (options.after !== undefined && options.partition === undefined)
    throw new Error('--after continues one partition: give --partition too');
  const request: AdminRequestOptions = { token: options.token ?? process.env.TRIBUTARY_ADMIN_TOKEN };
  const print = (lines: readonly string[]): void => {
    process.stdout.write(`${lines.join('\n')}\n`);
  };
  const json = (value: unknown): void => {
    process.stdout.write(
      `${JSON.stringify(value, (_key, inner: unknown) => (typeof inner === 'bigint' ? inner.toString() : inner), 2)}\n`,
    );
  };

  if (store !== undefined && key !== undefined) {
    const response = await queryStore(adminUrl, store, key, {
      ...request,
      scope: options.local ? 'local' : 'cluster',
    });
    return options.json ? json(response) : print(formatLookup(response));
  }
  const tasks = (await listTasks(adminUrl, request)).filter(
    (task) => options.partition === undefined || task.partition === options.partition,
  );
  if (store === undefined) {
    const stores = new Map<number, StoreSummary[]>();
    for (const task of tasks) stores.set(task.partition, await listStores(adminUrl, task.partition, request));
    return options.json
      ? json(tasks.map((task) => ({ ...task, stores: stores.get(task.partition) })))
      : print(formatTasks(tasks, stores));
  }
  if (options.partition !== undefined && tasks.length === 0)
    throw new Error(`partition ${options.partition} is not assigned to the instance at ${adminUrl}`);
  const read = readOptionsOf(options);
  const pages: StorePageResponse[] = [];
  for (const task of tasks) pages.push(await readStore(adminUrl, task.partition, store, read, request));
  return options.json ? json(pages) : print(formatPages(store, pages));
}

export function registerInspect(program: Command): void {
  program
    .command('inspect')
    .argument('<admin-url>', "a running instance's admin endpoint, e.g. http://127.0.0.1:9464")
    .argument('[store]', 'a store: list its entries')
    .argument(
      '[key]',
      'a key of the store: look it up in every partition (a group key as JSON, e.g. \'{"customer":"c1"}\')',
    )
    .description("a running instance's tasks, a store's entries or a key, as tables")
    .option('--token <token>', 'the admin token (default: TRIBUTARY_ADMIN_TOKEN)')
    .option('--partition <n>', 'only this partition', wholeNumber)
    .option('--limit <n>', `entries per partition (default ${DEFAULT_LIMIT})`, wholeNumber)
    .option(
      '--after <cursor>',
      'with --partition: the page after this cursor (printed as "more in partition")',
    )
    .option('--from <time>', 'window stores: windows starting at or after this time (ISO or epoch ms)')
    .option('--to <time>', 'window stores: windows starting before this time (ISO or epoch ms)')
    .option('--local', 'key lookups: only this instance, not the whole group')
    .option('--json', "print the admin endpoint's JSON instead of tables")
    .action((adminUrl: string, store: string | undefined, key: string | undefined, options: InspectOptions) =>
      inspect(adminUrl, store, key, options),
    );
}
