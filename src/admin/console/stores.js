// The store browser (a partition's stores, page by page) and the key lookup. Entries and lookup
// results are rendered as generic JSON, whatever shape the endpoint gives them (raw `{ key, value }`
// today, decoded window and key-value entries as they come).

import { errorMessage, getJson } from './api.js';
import { el, formatNumber, jsonText, setOptions } from './dom.js';

const PAGE_SIZE = 10;
/** The fallback lookup scans at most this many entries per partition. */
const SCAN_PAGES = 10;
const SCAN_PAGE_SIZE = 1000;
const MAX_RESULTS = 50;

const $ = (id) => document.getElementById(id);

const keyText = (key) => (typeof key === 'string' ? key : JSON.stringify(key));

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
        el('td', {}, el('pre', {}, jsonText(entry.value ?? withoutKey(entry)))),
      ),
    ),
  );
  // The next page starts at the endpoint's `next` cursor (absent on the last page); raw entries
  // (`{ key, value }` with a text key) page on from their last key.
  const last = entries[entries.length - 1];
  browsing.next = answer.body.next ?? (isRawEntry(last) ? last.key : undefined);
  $('next-page').disabled = entries.length < PAGE_SIZE || browsing.next === undefined;
  $('first-page').disabled = pages.length <= 1;
  $('browse-info').textContent =
    `${store} on partition ${partition}: page ${pages.length}, ${entries.length} entries` +
    (answer.body.kind ? ` (${answer.body.kind} store)` : '');
}

function isRawEntry(entry) {
  return (
    entry !== undefined &&
    typeof entry.key === 'string' &&
    Object.keys(entry).every((field) => field === 'key' || field === 'value')
  );
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
  if (answer.status === 404 && isMissingRoute(answer.body)) return scanForKey(store, key);
  if (answer.status !== 200) {
    $('lookup-info').textContent = `Not found: ${errorMessage(answer)}`;
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

/** fastify's own 404 (`Route GET:/... not found`): this instance has no lookup route. */
function isMissingRoute(body) {
  return (
    body && typeof body === 'object' && typeof body.message === 'string' && body.message.startsWith('Route ')
  );
}

/**
 * An instance without `/stores/:store/keys/:key`: scan the store's entries on the partitions this
 * instance owns, for keys containing the text typed.
 */
async function scanForKey(store, key) {
  const results = [];
  for (const partition of knownPartitions) {
    let after;
    for (let page = 0; page < SCAN_PAGES && results.length < MAX_RESULTS; page++) {
      const query = new URLSearchParams({ limit: String(SCAN_PAGE_SIZE) });
      if (after !== undefined) query.set('after', after);
      const answer = await getJson(
        `/tasks/${encodeURIComponent(partition)}/stores/${encodeURIComponent(store)}?${query}`,
      );
      const entries = answer.status === 200 ? (answer.body.entries ?? []) : [];
      for (const entry of entries) {
        if (keyText(entry.key).includes(key))
          results.push({ partition: Number(partition), instance: '', ...entry });
      }
      if (entries.length < SCAN_PAGE_SIZE) break;
      after = keyText(entries[entries.length - 1].key);
    }
  }
  showResults(results.slice(0, MAX_RESULTS));
  $('lookup-info').textContent =
    `${results.length === 0 ? 'Not found' : `${results.length} result${results.length === 1 ? '' : 's'}`}: ` +
    `this instance has no key lookup route, so its partitions' entries of ${store} were scanned for keys containing ${key}`;
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
        el('td', {}, el('pre', {}, jsonText(rest))),
      );
    }),
  );
}
