// The live view of `haul web`: it renders what the server sends over Server-Sent Events (GET /events) and reads one
// migration's timeline (GET /api/migrations/ID/timeline). Plain browser JavaScript, no build step; every value is
// put into the page as text (never as HTML). Ticking numbers (ages, the frozen timer, ETAs) count on the server's
// clock, from the times the server sent.
'use strict';

const ended = ['completed', 'rolled-back', 'failed'];
const forward = ['preflight', 'iterating', 'frozen', 'restoring', 'committed', 'cleanup', 'completed'];
const waits = {
  priority: 'waits for the final-dump transfer',
  slot: 'waits for a transfer slot',
  sync: 'receiver verifies and syncs',
};
/** A wait for the receiver's work before every byte was sent (counted from 0 again) is its read-back, to resume. */
const waitText = (t) =>
  t.waiting === 'sync' && t.bytesDone < t.bytesTotal ? 'receiver reads back what it holds' : waits[t.waiting];

const state = {
  migrations: new Map(),
  nodes: new Map(),
  staleMs: 10000,
  /** Server clock minus this browser's clock. */
  offset: 0,
  selected: undefined,
  /** The user picked a migration (#ID in the URL): do not follow the newest one. */
  pinned: false,
  /** The selected migration's events by stream sequence. */
  timeline: new Map(),
};

const $ = (sel) => document.querySelector(sel);
const now = () => Date.now() + state.offset;

/** An element with attributes and children (strings become text nodes). */
function h(tag, attrs, ...children) {
  const el = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (v === undefined || v === false) continue;
    if (k === 'class') el.className = v;
    // Through the CSSOM: the page's Content-Security-Policy refuses style attributes.
    else if (k === 'width') el.style.width = v;
    else el.setAttribute(k, String(v));
  }
  for (const c of children.flat()) if (c !== undefined && c !== null) el.append(c);
  return el;
}

function duration(ms) {
  if (ms === undefined || !Number.isFinite(ms)) return '–';
  if (ms < 0) ms = 0;
  if (ms < 10000) return `${(ms / 1000).toFixed(2)} s`;
  if (ms < 60000) return `${(ms / 1000).toFixed(1)} s`;
  const s = Math.floor(ms / 1000);
  if (s < 3600) return `${Math.floor(s / 60)}m${String(s % 60).padStart(2, '0')}s`;
  return `${Math.floor(s / 3600)}h${String(Math.floor((s % 3600) / 60)).padStart(2, '0')}m`;
}
const mb = (b) => `${(b / 1e6).toFixed(1)} MB`;
const clockTime = (iso) => iso.slice(11, 23);
const shortId = (id) => (id.length > 14 ? `${id.slice(0, 12)}…` : id);

/** A number that counts on the page: elapsed since `from`, or what is left of `ms` counted from `at`. */
function ticking(kind, from, ms, extra) {
  const el = h('span', { 'data-tick': kind, 'data-from': from, 'data-ms': ms, ...extra });
  renderTick(el);
  return el;
}

function renderTick(el) {
  const from = Date.parse(el.dataset.from);
  const elapsed = now() - from;
  if (el.dataset.tick === 'countdown') el.textContent = duration(Number(el.dataset.ms) - elapsed);
  else el.textContent = duration(elapsed);
}

function tick() {
  for (const el of document.querySelectorAll('[data-tick]')) renderTick(el);
  for (const el of document.querySelectorAll('.node')) {
    const stale = now() - Date.parse(el.dataset.time) > state.staleMs;
    el.dataset.state = stale ? 'stale' : 'alive';
    el.querySelector('.state').textContent = stale ? 'STALE' : 'alive';
  }
  $('#clock').textContent = new Date(now()).toISOString().slice(11, 19) + ' UTC';
}

// --- migrations -------------------------------------------------------------------------------------------

function progressCell(v) {
  if (ended.includes(v.phase)) return h('span', { class: 'ended' }, v.reason || '');
  const t = v.transfers.find((x) => x.waiting);
  if (v.progress) {
    const pct = v.progress.percent;
    return h(
      'div',
      {},
      h(
        'div',
        { class: 'progress', 'data-percent': pct.toFixed(1) },
        h('span', { width: `${pct.toFixed(1)}%` }),
      ),
      h(
        'span',
        { class: 'sub' },
        `${pct.toFixed(0)}% · ${mb(v.progress.bytesDone)} / ${mb(v.progress.bytesTotal)}`,
        t ? h('span', { class: 'waiting' }, ` · ${waitText(t)}`) : undefined,
      ),
    );
  }
  // Step keys are `<step>:<subject>`; `-` is the subject of a step done once.
  const running = (v.runningSteps || []).map((k) => k.replace(/:-$/, '').replace(':', ' ')).join(', ');
  return h('span', { class: 'sub' }, running ? `running ${running}` : '');
}

function frozenCell(v) {
  if (v.frozenSince && !v.frozenUntil && !ended.includes(v.phase))
    return ticking('elapsed', v.frozenSince, 0, { class: 'frozen', 'data-frozen': 'true' });
  const downtime = v.stats ? v.stats.downtimeMs : undefined;
  if (downtime !== undefined) return h('span', {}, duration(downtime));
  if (v.frozenSince && v.frozenUntil) return duration(Date.parse(v.frozenUntil) - Date.parse(v.frozenSince));
  return '–';
}

function migrationRow(v) {
  const active = !ended.includes(v.phase);
  const p = v.progress;
  const eta = p && !v.transfers.some((t) => t.waiting);
  // The core's phase stays `iterating` until the final dump has succeeded; once the CT is frozen for it, say so.
  const frozenNow = active && v.frozenSince && !v.frozenUntil;
  const phaseText =
    v.phase !== 'iterating'
      ? v.phase
      : frozenNow
        ? 'iterating · final dump'
        : `iterating · pre-dump ${v.iteration}`;
  return h(
    'tr',
    {
      'data-migration': v.migrationId,
      'data-phase': v.phase,
      class: v.migrationId === state.selected ? 'selected' : undefined,
    },
    h(
      'td',
      {},
      h('span', { class: 'id', title: v.migrationId }, shortId(v.migrationId)),
      h('span', { class: 'sub' }, `requested ${clockTime(v.requestedAt)}`),
    ),
    h('td', {}, v.ctid),
    h('td', {}, `${v.source} → ${v.target}`, h('span', { class: 'mode' }, v.mode)),
    h('td', {}, h('span', { class: `badge phase-${v.phase}` }, phaseText)),
    h('td', {}, progressCell(v)),
    h('td', { class: 'num' }, p && active ? `${p.mbPerSec.toFixed(1)} MB/s` : '–'),
    h('td', { class: 'num' }, eta && active ? ticking('countdown', v.transfers[0].time, p.etaMs) : '–'),
    h('td', { class: 'num' }, frozenCell(v)),
    h(
      'td',
      { class: 'num' },
      active ? ticking('elapsed', v.requestedAt, 0) : duration(v.stats ? v.stats.totalMs : undefined),
    ),
  );
}

function sortedMigrations() {
  return [...state.migrations.values()].sort(
    (a, b) =>
      Number(ended.includes(a.phase)) - Number(ended.includes(b.phase)) ||
      b.requestedAt.localeCompare(a.requestedAt),
  );
}

function renderMigrations() {
  const list = sortedMigrations();
  const body = h('tbody', {}, list.map(migrationRow));
  $('#migrations tbody').replaceWith(body);
  const active = list.filter((v) => !ended.includes(v.phase)).length;
  $('#migration-count').textContent = `${active} active · ${list.length - active} ended`;
  $('#no-migrations').hidden = list.length > 0;
}

// --- the selected migration -------------------------------------------------------------------------------

function select(id, pinned) {
  if (pinned) state.pinned = true;
  if (id === state.selected) return;
  state.selected = id;
  state.timeline = new Map();
  if (pinned && location.hash !== `#${id}`) history.replaceState(null, '', `#${id}`);
  renderMigrations();
  renderDetail();
  if (id) void loadTimeline(id);
}

/** Follow the newest active migration (else the latest one) unless the user picked one. */
function followNewest() {
  if (state.pinned && state.migrations.has(state.selected)) return;
  const first = sortedMigrations()[0];
  select(first ? first.migrationId : undefined, false);
}

async function loadTimeline(id) {
  const r = await fetch(`/api/migrations/${encodeURIComponent(id)}/timeline`);
  if (!r.ok || state.selected !== id) return;
  addEntries((await r.json()).entries);
  renderDetail();
}

function addEntries(entries) {
  for (const e of entries) state.timeline.set(e.seq, e);
}

function phaseSteps(v) {
  const back = ['rollback', 'rolled-back'].includes(v.phase) || v.phase === 'stuck';
  const names = back ? ['preflight', v.phase === 'stuck' ? 'stuck' : 'rollback', 'rolled-back'] : forward;
  const at = names.indexOf(v.phase);
  return names.map((n, i) =>
    h('li', { class: i === at ? `current phase-${n}` : i < at ? 'done' : undefined, 'data-step': n }, n),
  );
}

function statsOf(v) {
  const s = v.stats;
  if (!s) return [];
  const item = (key, label, value, raw) =>
    h('div', {}, h('dt', {}, label), h('dd', { 'data-stat': key, 'data-value': raw }, value));
  return [
    item('totalMs', 'total', duration(s.totalMs), s.totalMs),
    item('downtimeMs', 'downtime', duration(s.downtimeMs), s.downtimeMs),
    item('frozenMs', 'frozen (criu)', duration(s.frozenMs), s.frozenMs),
    item('bytesStreamed', 'streamed', mb(s.bytesStreamed || 0), s.bytesStreamed),
    item('iterations', 'dumps', String(s.iterations.length), s.iterations.length),
  ];
}

function renderDetail() {
  const v = state.migrations.get(state.selected);
  const detail = $('#detail');
  detail.dataset.migration = v ? v.migrationId : '';
  detail.dataset.phase = v ? v.phase : '';
  $('#detail-title').textContent = v ? `Timeline · ${v.migrationId}` : 'Timeline';
  $('#summary').replaceChildren(
    ...(v
      ? [
          `CT ${v.ctid} · ${v.source} → ${v.target} · ${v.mode} · requested ${clockTime(v.requestedAt)} UTC`,
          v.reason ? h('span', { class: 'reason' }, ` · ${v.reason}`) : '',
        ]
      : ['Select a migration.']),
  );
  $('#phases').replaceChildren(...(v ? phaseSteps(v) : []));
  $('#stats').replaceChildren(...(v ? statsOf(v) : []));
  const start = v ? Date.parse(v.requestedAt) : 0;
  const rows = [...state.timeline.values()]
    .sort((a, b) => a.seq - b.seq)
    .map((e) =>
      h(
        'tr',
        { class: `tone-${e.tone}`, 'data-seq': e.seq, 'data-type': e.type },
        h('td', { class: 'num' }, String(e.seq)),
        h('td', { class: 'num' }, clockTime(e.time)),
        h('td', { class: 'num' }, ((Date.parse(e.time) - start) / 1000).toFixed(2)),
        h('td', {}, e.actor),
        h('td', { class: 'type' }, e.type),
        h('td', { class: 'detail' }, e.detail),
      ),
    );
  $('#timeline tbody').replaceChildren(...rows);
}

// --- nodes ------------------------------------------------------------------------------------------------

const ctsRunning = (cts) =>
  cts.length === 0 ? 'no CT running' : `${cts.length === 1 ? 'CT' : 'CTs'} ${cts.join(', ')} running`;

function renderNodes() {
  const items = [...state.nodes.values()]
    .sort((a, b) => a.node.localeCompare(b.node))
    .map((n) =>
      h(
        'li',
        { class: 'node', 'data-node': n.node, 'data-time': n.time, 'data-state': 'alive' },
        h('span', { class: 'state' }, 'alive'),
        h('span', { class: 'name' }, n.node),
        h('div', { class: 'facts' }, 'heartbeat ', ticking('elapsed', n.time, 0), ' ago'),
        h(
          'div',
          { class: 'facts' },
          `criu ${n.criuVersion} · ${(n.freeBytes / 1e9).toFixed(1)} GB free · ${ctsRunning(n.runningCts || [])}`,
        ),
      ),
    );
  $('#nodes').replaceChildren(...items);
  $('#no-nodes').hidden = items.length > 0;
  tick();
}

// --- the live stream ----------------------------------------------------------------------------------------

function setLive(live) {
  document.body.dataset.live = String(live);
  const el = $('#live');
  el.textContent = live ? 'live' : 'reconnecting…';
  el.classList.toggle('off', !live);
}

function setNats(s) {
  const el = $('#nats');
  el.textContent = `NATS ${s}`;
  el.classList.toggle('off', s !== 'connected');
}

function on(source, event, handle) {
  source.addEventListener(event, (m) => {
    const d = JSON.parse(m.data);
    if (d.serverTime) state.offset = Date.parse(d.serverTime) - Date.now();
    handle(d);
  });
}

function connect() {
  const es = new EventSource('/events');
  es.addEventListener('error', () => setLive(false));
  on(es, 'snapshot', (d) => {
    state.staleMs = d.staleMs;
    state.migrations = new Map(d.migrations.map((v) => [v.migrationId, v]));
    state.nodes = new Map(d.nodes.map((n) => [n.node, n]));
    setNats(d.nats);
    renderNodes();
    const keep = state.selected;
    state.selected = undefined; // reload the timeline: events may have come while disconnected
    if (keep && state.pinned) select(keep, true);
    else followNewest();
    renderMigrations();
    renderDetail();
    setLive(true);
  });
  on(es, 'migration', (d) => {
    state.migrations.set(d.view.migrationId, d.view);
    if (d.view.migrationId === state.selected) addEntries(d.entries);
    followNewest();
    renderMigrations();
    if (d.view.migrationId === state.selected) renderDetail();
  });
  on(es, 'migration-gone', (d) => {
    state.migrations.delete(d.migrationId);
    followNewest();
    renderMigrations();
  });
  on(es, 'node', (d) => {
    state.nodes.set(d.node.node, d.node);
    renderNodes();
  });
  on(es, 'node-gone', (d) => {
    state.nodes.delete(d.node);
    renderNodes();
  });
  on(es, 'nats', (d) => setNats(d.nats));
}

document.addEventListener('DOMContentLoaded', () => {
  if (location.hash.length > 1) {
    state.pinned = true;
    state.selected = decodeURIComponent(location.hash.slice(1));
  }
  $('#migrations').addEventListener('click', (ev) => {
    const row = ev.target.closest('tr[data-migration]');
    if (row) select(row.dataset.migration, true);
  });
  setInterval(tick, 100);
  connect();
});
