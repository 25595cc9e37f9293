// The live table of partitions from /tasks. Records per second come from the growth of each task's
// processed counter between two refreshes; delays and ages are measured against the server's clock
// (`now` in the answer), so a browser on another machine shows the same numbers.

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
function restoreCell(restore) {
  if (!restore || typeof restore !== 'object') return el('span', { class: 'muted' }, '—');
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

/** Renders `{ tasks, now }` (the /tasks answer) into the table body. */
export function renderPartitions(tbody, empty, answer) {
  const now = typeof answer.now === 'number' ? answer.now : Date.now();
  const tasks = answer.tasks ?? [];
  for (const partition of [...previous.keys()]) {
    if (!tasks.some((task) => task.partition === partition)) previous.delete(partition);
  }
  tbody.replaceChildren(...tasks.map((task) => row(task, now)));
  empty.hidden = tasks.length > 0;
}
