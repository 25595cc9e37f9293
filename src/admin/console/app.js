// The console's entry point: asks for the token when the instance wants one, draws the topology
// once, then refreshes readiness, the partition table, the group, the sinks and the recent dead
// letters every REFRESH_MS (polling: one request per panel, nothing held open on the instance).

import { Unauthorized, errorMessage, forgetToken, getJson, storeToken, storedToken } from './api.js';
import { renderCluster } from './cluster.js';
import { renderDeadLetters } from './dead-letters.js';
import { formatTime } from './dom.js';
import { renderGraph } from './graph.js';
import { renderPartitions } from './partitions.js';
import { renderSinks } from './sinks.js';
import { setupStores, updateLookupStores, updatePartitions } from './stores.js';

const REFRESH_MS = 1500;

const $ = (id) => document.getElementById(id);

let paused = false;
let timer;
let graphDrawn = false;
/** The topology's sinks (their names as the metrics label them), from the graph. */
let sinkNames = [];

function showTokenForm(message) {
  clearTimeout(timer);
  $('console').hidden = true;
  $('token-form').hidden = false;
  $('token-error').textContent = message ?? '';
  $('token-input').focus();
}

function showConsole() {
  $('token-form').hidden = true;
  $('console').hidden = false;
  $('forget-token').hidden = storedToken() === undefined;
}

async function drawTopology() {
  const answer = await getJson('/topology.json');
  graphDrawn = true;
  if (answer.status !== 200) {
    // The rest of the console works without the graph (an endpoint started without a topology).
    $('topology-warnings').replaceChildren(
      Object.assign(document.createElement('li'), { textContent: `no graph: ${errorMessage(answer)}` }),
    );
    return;
  }
  renderGraph($('graph'), answer.body);
  $('topology-warnings').replaceChildren(
    ...answer.body.warnings.map((warning) =>
      Object.assign(document.createElement('li'), { textContent: warning }),
    ),
  );
  updateLookupStores(answer.body);
  sinkNames = answer.body.nodes.filter((node) => node.kind === 'sink').map((node) => node.detail);
}

async function refresh() {
  const [ready, tasks, deadLetters, metrics, cluster] = await Promise.all([
    getJson('/health/ready'),
    getJson('/tasks'),
    getJson('/dead-letters/recent'),
    getJson('/metrics'),
    getJson('/cluster'),
  ]);
  if (!graphDrawn) await drawTopology();
  const readiness = ready.body ?? {};
  const badge = $('readiness');
  badge.textContent = readiness.ready
    ? 'ready'
    : `not ready: ${(readiness.reasons ?? []).join('; ') || readiness.state}`;
  badge.className = `badge ${readiness.ready ? 'ok' : 'warn'}`;
  if (tasks.status !== 200) throw new Error(`tasks: ${errorMessage(tasks)}`);
  const owner = tasks.body.tasks[0]?.instance ?? deadLetters.body?.instance;
  $('instance').textContent = owner ? `instance ${owner}` : '';
  renderPartitions($('partition-table').tBodies[0], $('no-partitions'), tasks.body);
  updatePartitions(tasks.body.tasks);
  if (deadLetters.status === 200)
    renderDeadLetters($('dead-letter-table').tBodies[0], $('no-dead-letters'), deadLetters.body);
  if (metrics.status === 200 && typeof metrics.body === 'string')
    renderSinks($('sink-table').tBodies[0], $('no-sinks'), {
      metricsText: metrics.body,
      failingSinks: readiness.failingSinks,
      sinkNames,
    });
  renderCluster($('cluster-table').tBodies[0], $('cluster-info'), cluster);
  $('updated').textContent = `updated ${formatTime(tasks.body.now ?? Date.now())} UTC`;
}

async function tick() {
  try {
    await refresh();
    showConsole();
    $('notice').hidden = true;
  } catch (error) {
    if (error instanceof Unauthorized) {
      showTokenForm(storedToken() === undefined ? '' : 'That token was refused.');
      return;
    }
    $('notice').textContent = `Cannot refresh: ${error.message}`;
    $('notice').hidden = false;
  }
  if (!paused) timer = setTimeout(tick, REFRESH_MS);
}

$('token-form').addEventListener('submit', (event) => {
  event.preventDefault();
  storeToken($('token-input').value);
  $('token-input').value = '';
  void tick();
});

$('forget-token').addEventListener('click', () => {
  forgetToken();
  showTokenForm('');
});

$('pause').addEventListener('click', () => {
  paused = !paused;
  $('pause').textContent = paused ? 'Resume' : 'Pause';
  clearTimeout(timer);
  if (!paused) void tick();
});

setupStores();
void tick();
