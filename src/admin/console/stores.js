// The store browser (a partition's stores, page by page) and the key lookup across the group.
// Entries and lookup results are rendered as generic JSON, whatever the store's kind (windows with
// their aggregates by name, key-value pairs, dedupe buckets, outbox entries).

import { errorMessage, getJson } from './api.js';
import { el, fieldsText, formatNumber, jsonText, setOptions } from './dom.js';

const PAGE_SIZE = 10;

const $ = (id) => document.getElementById(id);

/** Where the browser is: the partition and store shown, and the `after` cursor of each page seen. */
const browsing = { partition: undefined, store: undefined, pages: [undefined], next: undefined };
let knownPartitions = [];

export function setupStores() {
  $('browse-partition').addEventListener('change', () => void loadStoreChoices());
  $('store-browser').addEventListener('submit', (event) => {
    event.preventDefault();
    browsing.partition = $('browse-partition').value;
    browsing.store = $('browse-store').value;
    browsing.pages = [undefined];
    void showPage();
  });
  $('first-page').addEventListener('click', () => {
    browsing.pages = [undefined];
    void showPage();
  });
  $('next-page').addEventListener('click', () => {
    browsing.pages.push(browsing.next);
    void showPage();
  });
  $('key-lookup').addEventListener('submit', (event) => {
    event.preventDefault();
    void lookUp($('lookup-store').value, $('lookup-key').value.trim());
  });
}

/** After each /tasks refresh: the partitions to browse. */
export function updatePartitions(tasks) {
  const partitions = tasks.map((task) => String(task.partition));
  const changed = partitions.join(',') !== knownPartitions.join(',');
  knownPartitions = partitions;
  if (!changed) return;
  setOptions(
    $('browse-partition'),
    partitions.map((p) => ({ value: p, label: p })),
  );
  void loadStoreChoices();
}

/** From the topology graph: every store name, for the lookup. */
export function updateLookupStores(graph) {
  const stores = graph.nodes.filter((node) => node.kind === 'store');
  setOptions(
    $('lookup-store'),
    stores.map((store) => ({ value: store.name, label: `${store.name} (${store.type})` })),
  );
}

async function loadStoreChoices() {
  const partition = $('browse-partition').value;
  if (partition === '') return setOptions($('browse-store'), []);
  const answer = await getJson(`/tasks/${encodeURIComponent(partition)}/stores`);
  if (answer.status !== 200) {
    $('browse-info').textContent = errorMessage(answer);
    return;
  }
  setOptions(
    $('browse-store'),
    (answer.body.stores ?? []).map((store) => ({
      value: store.name,
      label: `${store.name} (${store.kind}, ~${formatNumber(store.approximateSize)})`,
    })),
  );
}

async function showPage() {
  const { partition, store, pages } = browsing;
  if (partition === undefined || store === undefined || store === '') return;
  const after = pages[pages.length - 1];
  const query = new URLSearchParams({ limit: String(PAGE_SIZE) });
  if (after !== undefined) query.set('after', after);
  const answer = await getJson(
    `/tasks/${encodeURIComponent(partition)}/stores/${encodeURIComponent(store)}?${query}`,
  );
  const tbody = $('store-entries').tBodies[0];
  if (answer.status !== 200) {
    tbody.replaceChildren();
    $('browse-info').textContent = errorMessage(answer);
    return;
  }
  const entries = answer.body.entries ?? [];
  tbody.replaceChildren(
    ...entries.map((entry) =>
      el(
        'tr',
        {},
        el('td', {}, el('pre', {}, jsonText(entry.key))),
        el('td', {}, el('pre', {}, fieldsText(entry.value ?? withoutKey(entry)))),
      ),
    ),
  );
  // The endpoint's cursor for the next page; absent on the last page.
  browsing.next = answer.body.next;
  $('next-page').disabled = browsing.next === undefined;
  $('first-page').disabled = pages.length <= 1;
  $('browse-info').textContent =
    `${store} on partition ${partition}: page ${pages.length}, ${entries.length} entries` +
    (answer.body.kind ? ` (${answer.body.kind} store)` : '');
}

function withoutKey(entry) {
  const { key: _key, ...rest } = entry;
  return rest;
}

async function lookUp(store, key) {
  const tbody = $('lookup-results').tBodies[0];
  tbody.replaceChildren();
  if (store === '' || key === '') {
    $('lookup-info').textContent = 'Choose a store and type a key.';
    return;
  }
  $('lookup-info').textContent = `Looking up ${key} in ${store}…`;
  const answer = await getJson(`/stores/${encodeURIComponent(store)}/keys/${encodeURIComponent(key)}`);
  if (answer.status !== 200) {
    $('lookup-info').textContent =
      `${answer.status === 404 ? 'Not found' : 'Cannot look it up'}: ${errorMessage(answer)}`;
    return;
  }
  const { results = [], searched, unreachable } = answer.body;
  showResults(results);
  const where = Array.isArray(searched)
    ? `; searched ${searched.map((s) => `${s.instance} [${(s.partitions ?? []).join(', ')}]`).join(', ')}`
    : '';
  const missing =
    Array.isArray(unreachable) && unreachable.length > 0
      ? `; not reached: ${unreachable.map((u) => `${u.adminUrl} (${u.error})`).join(', ')}`
      : '';
  $('lookup-info').textContent =
    `${results.length} result${results.length === 1 ? '' : 's'} for ${key} in ${store}${where}${missing}`;
}

function showResults(results) {
  $('lookup-results').tBodies[0].replaceChildren(
    ...results.map((result) => {
      const { partition, instance, ...rest } = result;
      return el(
        'tr',
        { 'data-partition': partition },
        el('td', {}, String(partition ?? '—')),
        el('td', {}, instance || 'this instance'),
        el('td', {}, el('pre', {}, fieldsText(rest))),
      );
    }),
  );
}
