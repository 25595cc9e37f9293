// The recent dead letters of /dead-letters/recent, newest first.

import { el, formatNumber, formatTime } from './dom.js';

function row(letter) {
  const size = letter.valueBytes === null ? 'no value' : `${formatNumber(letter.valueBytes)} bytes`;
  return el(
    'tr',
    { 'data-reason': letter.reason },
    el('td', {}, formatTime(letter.deliveredAt)),
    el('td', {}, `${letter.topic} [${letter.partition}] @ ${letter.offset}`),
    el('td', {}, el('span', { class: 'reason' }, letter.reason)),
    el('td', { class: 'message' }, el('strong', {}, letter.errorClass), ` ${letter.message}`),
    el('td', { class: 'key', title: size }, letter.key ?? el('span', { class: 'muted' }, 'null')),
  );
}

export function renderDeadLetters(tbody, empty, answer) {
  const letters = answer.deadLetters ?? [];
  tbody.replaceChildren(...letters.map(row));
  empty.hidden = letters.length > 0;
}
