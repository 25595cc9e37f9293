// The live table of partitions from /tasks: the open tasks with their ids and numbers, and the tasks still
// opening (restoring their state from a changelog) with their restore progress. Records per second
// come from the growth of each task's processed counter between two refreshes; delays and ages are
// measured against the server's clock (`now` in the answer), so a browser on another machine shows
// the same numbers.

import { el, formatDuration, formatNumber, formatTime } from './dom.js';

/** partition -> { at, processed } of the previous refresh. */
const previous = new Map();

function recordsPerSecond(task, now) {
  const before = previous.get(task.partition);
  const processed = task.metrics.recordsProcessed;
  previous.set(task.partition, { at: now, processed });
  if (!before || now <= before.at || processed < before.processed) return undefined;
  return ((processed - before.processed) * 1000) / (now - before.at);
}

function deadLetterCell(deadLetters) {
  const reasons = Object.entries(deadLetters ?? {}).filter(([, count]) => count > 0);
  if (reasons.length === 0) return el('span', { class: 'muted' }, '0');
  return el(
    'ul',
    { class: 'reasons' },
    ...reasons.map(([reason, count]) =>
      el('li', { 'data-reason': reason }, `${reason} ${formatNumber(count)}`),
    ),
  );
}

/** `restore: { restored, remaining, etaSeconds }` while the task restores its state from a changelog. */
function restoreCell(restore, opening = false) {
  if (!restore || typeof restore !== 'object')
    return el('span', { class: 'muted' }, opening ? 'opening its state' : '—');
  const restored = Number(restore.restored ?? 0);
  const remaining = Number(restore.remaining ?? 0);
  const total = restored + remaining;
  const share = total > 0 ? restored / total : 1;
  const eta = Number.isFinite(restore.etaSeconds) ? `, ETA ${formatDuration(restore.etaSeconds * 1000)}` : '';
  return el(
    'span',
    { class: 'restore' },
    el('progress', { max: 1, value: share }),
    ` ${formatNumber(restored)} / ${formatNumber(total)}${eta}`,
  );
}

function cell(field, content, attributes = {}) {
  return el('td', { 'data-field': field, ...attributes }, content);
}

function row(task, now) {
  const metrics = task.metrics;
  const watermark = typeof metrics.watermark === 'number' ? metrics.watermark : undefined;
  const rate = recordsPerSecond(task, now);
  return el(
    'tr',
    { 'data-partition': task.partition, class: task.paused ? 'paused' : undefined },
    cell('task', task.id ?? '—'),
    cell('partition', String(task.partition)),
    cell('owner', task.instance ?? '—'),
    cell('lag', formatNumber(task.lag)),
    cell('watermark', formatTime(watermark)),
    cell('watermark-delay', watermark === undefined ? '—' : formatDuration(now - watermark)),
    cell('records-per-second', rate === undefined ? '…' : formatNumber(rate)),
    cell('processed', formatNumber(metrics.recordsProcessed)),
    cell('duplicates', formatNumber(metrics.duplicatesDropped)),
    cell('late', formatNumber(metrics.lateEvents)),
    cell('dead-letters', deadLetterCell(metrics.deadLetters)),
    cell('pending-outputs', formatNumber(task.pendingOutputs)),
    cell('paused', task.paused ? 'paused' : 'no'),
    cell(
      'last-commit',
      task.lastCommitAt === undefined ? '—' : `${formatDuration(now - task.lastCommitAt)} ago`,
    ),
    cell('restore', restoreCell(task.restore)),
  );
}

/** A partition whose task is being opened (restoring from its changelog): no numbers yet. */
function openingRow(opening) {
  const blank = (field) => cell(field, el('span', { class: 'muted' }, '—'));
  return el(
    'tr',
    { 'data-partition': opening.partition, class: 'opening' },
    cell('task', opening.task ?? '—'),
    cell('partition', String(opening.partition)),
    ...['owner', 'lag', 'watermark', 'watermark-delay', 'records-per-second', 'processed'].map(blank),
    ...['duplicates', 'late', 'dead-letters', 'pending-outputs', 'paused', 'last-commit'].map(blank),
    cell('restore', restoreCell(opening.restore, true)),
  );
}

/** Renders `{ tasks, opening, now }` (the /tasks answer) into the table body, by partition. */
export function renderPartitions(tbody, empty, answer) {
  const now = typeof answer.now === 'number' ? answer.now : Date.now();
  const tasks = answer.tasks ?? [];
  const opening = (answer.opening ?? []).filter((o) => !tasks.some((task) => task.partition === o.partition));
  for (const partition of [...previous.keys()]) {
    if (!tasks.some((task) => task.partition === partition)) previous.delete(partition);
  }
  const rows = [
    ...tasks.map((task) => ({ partition: task.partition, element: row(task, now) })),
    ...opening.map((o) => ({ partition: o.partition, element: openingRow(o) })),
  ].sort((a, b) => a.partition - b.partition);
  tbody.replaceChildren(...rows.map(({ element }) => element));
  empty.hidden = rows.length > 0;
}
