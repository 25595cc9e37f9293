// The consumer group as this instance saw it at the last rebalance (/cluster): each member, where it
// runs, its active and standby partitions, and a link to its own console (its admin URL, when it
// advertises one). Each console shows the live numbers of its own instance's partitions.

import { el } from './dom.js';

const list = (partitions) => (partitions.length === 0 ? '—' : partitions.join(', '));

function row(member) {
  return el(
    'tr',
    { 'data-member': member.memberId, class: member.thisInstance ? 'this-instance' : undefined },
    el(
      'td',
      {},
      member.clientId,
      member.thisInstance ? el('span', { class: 'muted' }, ' (this console)') : null,
    ),
    el('td', {}, member.host),
    el('td', { 'data-field': 'active' }, list(member.active)),
    el('td', { 'data-field': 'standby' }, list(member.standby)),
    el(
      'td',
      {},
      member.adminUrl
        ? el('a', { href: `${member.adminUrl.replace(/\/$/, '')}/` }, member.adminUrl)
        : el('span', { class: 'muted' }, 'not advertised'),
    ),
  );
}

/** `answer`: the /cluster answer; a 503 (not joined yet) shows its message. */
export function renderCluster(tbody, info, answer) {
  if (answer.status !== 200) {
    tbody.replaceChildren();
    info.textContent = answer.body?.error ?? `HTTP ${answer.status}`;
    return;
  }
  const { groupId, members = [], updatedAt } = answer.body;
  tbody.replaceChildren(...members.map(row));
  const since =
    typeof updatedAt === 'number' ? ` since ${new Date(updatedAt).toISOString().slice(11, 19)} UTC` : '';
  info.textContent = `group ${groupId}: ${members.length} member${members.length === 1 ? '' : 's'}${since}`;
}
