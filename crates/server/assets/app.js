// DOFS dashboard. Plain JavaScript, no dependencies, no build step.
//
// Polls /stats and /alerts every POLL_MS, and the first page of the order
// listings; every other page is fetched only when asked for (cursor
// pagination), so the page never loads all rows whatever the store holds.
// An open order view (execution history and order events) is refreshed on
// the same beat. Every request sends the API key kept in localStorage, when
// there is one.
//
// Every URL here (and in index.html) is relative to the page, never absolute:
// `dofs serve` serves the page at `/`, API Gateway at `/{stage}/`, and only a
// relative URL keeps the stage (`stats` is `/dev/stats` there, `/stats` here).
(function () {
  'use strict';

  const POLL_MS = 2000;
  const PAGE_SIZE = 15;
  const KEY_STORAGE = 'dofs.apiKey';
  const SVG = 'http://www.w3.org/2000/svg';

  // Errors seen by the page, for people and for the browser test.
  const pageErrors = [];
  window.__dofsErrors = pageErrors;
  window.addEventListener('error', (e) => pageErrors.push(String(e.message || e)));
  window.addEventListener('unhandledrejection', (e) => pageErrors.push(String(e.reason)));

  const $ = (id) => document.getElementById(id);

  class HttpError extends Error {
    constructor(status, body) {
      super(`HTTP ${status}${body && body.message ? ': ' + body.message : ''}`);
      this.status = status;
      this.body = body;
    }
  }

  function apiKey() {
    try {
      return localStorage.getItem(KEY_STORAGE) || '';
    } catch (_) {
      return '';
    }
  }

  // A JSON request to `path`, relative to the page (`orders?limit=15`, no
  // leading slash); `body`, when given, is sent as JSON (with `method`,
  // default POST).
  async function api(path, { method, body: payload } = {}) {
    const headers = { accept: 'application/json' };
    const key = apiKey();
    if (key) headers['x-api-key'] = key;
    const init = { headers, cache: 'no-store', method: method || (payload === undefined ? 'GET' : 'POST') };
    if (payload !== undefined) {
      headers['content-type'] = 'application/json';
      init.body = JSON.stringify(payload);
    }
    const response = await fetch(path, init);
    let body = null;
    try {
      body = await response.json();
    } catch (_) {
      body = null;
    }
    if (response.status === 401 || response.status === 403) askForKey(response.status);
    if (!response.ok) throw new HttpError(response.status, body);
    return body;
  }

  // ---------- formatting ----------

  function count(n) {
    return typeof n === 'number' ? n.toLocaleString('en-US') : '–';
  }

  function seconds(s) {
    if (typeof s !== 'number' || !isFinite(s)) return '–';
    if (s < 1) return `${(s * 1000).toFixed(s < 0.01 ? 2 : 1)} ms`;
    if (s < 60) return `${s.toFixed(s < 10 ? 2 : 1)} s`;
    const m = Math.floor(s / 60);
    if (m < 60) return `${m} min ${Math.round(s - m * 60)} s`;
    return `${Math.floor(m / 60)} h ${m % 60} min`;
  }

  function time(iso) {
    if (!iso) return '–';
    const d = new Date(iso);
    if (isNaN(d.getTime())) return iso;
    const sameDay = d.toDateString() === new Date().toDateString();
    const t = d.toLocaleTimeString('en-GB', { hour12: false }) + '.' + String(d.getMilliseconds()).padStart(3, '0');
    return sameDay ? t : `${d.toISOString().slice(0, 10)} ${t}`;
  }

  function ago(iso) {
    const d = new Date(iso);
    if (!iso || isNaN(d.getTime())) return '–';
    return seconds(Math.max(0, (Date.now() - d.getTime()) / 1000)) + ' ago';
  }

  function set(id, text) {
    const el = $(id);
    if (el && el.textContent !== text) el.textContent = text;
  }

  function cell(text, className) {
    const td = document.createElement('td');
    td.textContent = text;
    if (className) td.className = className;
    return td;
  }

  function badge(text) {
    const span = document.createElement('span');
    span.className = `status ${text}`;
    span.textContent = text;
    return span;
  }

  function emptyRow(tbody, columns, text) {
    const tr = document.createElement('tr');
    const td = cell(text, 'empty');
    td.colSpan = columns;
    tr.appendChild(td);
    tbody.replaceChildren(tr);
  }

  // ---------- API key ----------

  function askForKey(status) {
    $('key-panel').hidden = false;
    $('key-message').textContent =
      status === 403
        ? 'The API key in use may not do this (an operator key is needed).'
        : 'This server requires an API key. It is kept in this browser only (localStorage) and sent as x-api-key.';
  }

  function setupKey() {
    $('key-button').addEventListener('click', () => {
      $('key-panel').hidden = !$('key-panel').hidden;
    });
    $('key-form').addEventListener('submit', (e) => {
      e.preventDefault();
      const value = $('key-input').value.trim();
      try {
        if (value) localStorage.setItem(KEY_STORAGE, value);
      } catch (_) {
        /* storage disabled: the key lasts for this page only */
      }
      $('key-input').value = '';
      $('key-panel').hidden = true;
      refreshAll();
    });
    $('key-forget').addEventListener('click', () => {
      try {
        localStorage.removeItem(KEY_STORAGE);
      } catch (_) {
        /* nothing stored */
      }
    });
  }

  // ---------- stats, chart, alerts ----------

  let lastStats = null;

  function renderStats(stats) {
    lastStats = stats;
    for (const status of ['PENDING', 'PROCESSING', 'FULFILLED', 'FAILED', 'CANCELLED', 'total']) {
      set(`count-${status}`, count(stats.orders[status]));
    }
    set('success-ratio', stats.successRatio == null ? '–' : `${(stats.successRatio * 100).toFixed(1)}%`);
    set('dlq-depth', count(stats.queue.dlq));
    set('queue-depth', count(stats.queue.orders));
    set('queue-age', stats.queue.oldestAgeSeconds == null ? 'empty' : seconds(stats.queue.oldestAgeSeconds));
    set('environment', stats.environment || '');
    set('rate-accepted', stats.rates.accepted.toFixed(1));
    set('rate-completed', stats.rates.completed.toFixed(1));
    set('accepted-total', count(stats.totals.accepted));
    set('rejected-total', count(stats.totals.rejected));
    set('attempts-ok', count(stats.totals.attemptsSucceeded));
    set('attempts-failed', count(stats.totals.attemptsFailed));
    set('executions-ok', count(stats.totals.executionsSucceeded));
    set('executions-failed', count(stats.totals.executionsFailed));
    set('latency-window', String(Math.round(stats.latency.windowSeconds / 60)));
    for (const [row, h] of [['submit', stats.latency.submit], ['terminal', stats.latency.timeToTerminal]]) {
      set(`lat-${row}-p50`, seconds(h.p50));
      set(`lat-${row}-p95`, seconds(h.p95));
      set(`lat-${row}-p99`, seconds(h.p99));
      set(`lat-${row}-count`, count(h.count));
    }
    drawChart(stats.series);
  }

  function drawChart(series) {
    const svg = $('throughput-chart');
    const W = 600;
    const H = 180;
    const pad = { l: 34, r: 6, t: 8, b: 18 };
    const nodes = [];
    const now = Date.now();
    const span = 10 * 60 * 1000;
    const max = Math.max(1, ...series.map((p) => Math.max(p.accepted, p.completed)));
    const top = niceCeil(max);
    const x = (t) => pad.l + ((t - (now - span)) / span) * (W - pad.l - pad.r);
    const y = (v) => H - pad.b - (v / top) * (H - pad.t - pad.b);
    for (const frac of [0, 0.5, 1]) {
      const line = document.createElementNS(SVG, 'line');
      line.setAttribute('class', 'grid-line');
      line.setAttribute('x1', pad.l);
      line.setAttribute('x2', W - pad.r);
      line.setAttribute('y1', y(top * frac));
      line.setAttribute('y2', y(top * frac));
      nodes.push(line);
      const label = document.createElementNS(SVG, 'text');
      label.setAttribute('class', 'axis-label');
      label.setAttribute('x', 2);
      label.setAttribute('y', y(top * frac) + 3);
      label.textContent = formatRate(top * frac);
      nodes.push(label);
    }
    for (const [minutes, anchor] of [[10, 'start'], [5, 'middle'], [0, 'end']]) {
      const label = document.createElementNS(SVG, 'text');
      label.setAttribute('class', 'axis-label');
      label.setAttribute('x', x(now - minutes * 60000));
      label.setAttribute('y', H - 4);
      label.setAttribute('text-anchor', anchor);
      label.textContent = minutes ? `-${minutes} min` : 'now';
      nodes.push(label);
    }
    const visible = series.filter((p) => p.t >= now - span);
    for (const key of ['accepted', 'completed']) {
      if (visible.length < 2) continue;
      const line = document.createElementNS(SVG, 'polyline');
      line.setAttribute('class', `series ${key}`);
      line.setAttribute('points', visible.map((p) => `${x(p.t).toFixed(1)},${y(p[key]).toFixed(1)}`).join(' '));
      nodes.push(line);
    }
    svg.replaceChildren(...nodes);
  }

  function niceCeil(v) {
    const p = Math.pow(10, Math.floor(Math.log10(v)));
    for (const m of [1, 2, 5, 10]) if (m * p >= v) return m * p;
    return 10 * p;
  }

  function formatRate(v) {
    return v >= 100 ? v.toFixed(0) : v >= 10 ? v.toFixed(0) : v.toFixed(1);
  }

  function renderAlerts(data) {
    const tbody = $('alerts').tBodies[0];
    const rows = data.alerts.map((rule) => {
      const tr = document.createElement('tr');
      tr.dataset.alert = rule.name;
      tr.className = rule.state;
      const name = cell(rule.name);
      name.title = rule.description;
      tr.appendChild(name);
      const state = document.createElement('td');
      state.appendChild(badge(rule.state));
      tr.appendChild(state);
      tr.appendChild(cell(`${time(rule.since)} (${ago(rule.since)})`));
      tr.appendChild(cell(rule.value == null ? '–' : `${round(rule.value)} / ${round(rule.threshold)}`));
      tr.appendChild(cell(rule.message, 'reason'));
      return tr;
    });
    tbody.replaceChildren(...rows);
    const firing = data.alerts.filter((r) => r.state === 'firing').length;
    set('firing-count', String(firing));
    $('firing-banner').hidden = firing === 0;
  }

  function round(v) {
    return Number.isInteger(v) ? String(v) : v.toFixed(3).replace(/0+$/, '').replace(/\.$/, '');
  }

  // ---------- paginated listings ----------

  // A listing: a stack of cursors, the first page refreshed live.
  function listing(opts) {
    const state = { cursors: [null], index: 0, next: null };
    async function load() {
      const params = new URLSearchParams({ limit: String(PAGE_SIZE) });
      const extra = opts.query ? opts.query() : {};
      for (const [k, v] of Object.entries(extra)) if (v) params.set(k, v);
      const cursor = state.cursors[state.index];
      if (cursor) params.set('cursor', cursor);
      const page = opts.known && opts.known() ? opts.known() : await api(`${opts.path}?${params}`);
      state.next = page.nextCursor;
      const tbody = $(opts.table).tBodies[0];
      if (page.items.length === 0) emptyRow(tbody, opts.columns, 'nothing here yet');
      else tbody.replaceChildren(...page.items.map(opts.row));
      $(opts.newer).disabled = state.index === 0;
      $(opts.older).disabled = !state.next;
      set(opts.label, `page ${state.index + 1}`);
    }
    $(opts.older).addEventListener('click', () => {
      if (!state.next) return;
      state.cursors = state.cursors.slice(0, state.index + 1).concat([state.next]);
      state.index += 1;
      load().catch(report);
    });
    $(opts.newer).addEventListener('click', () => {
      if (state.index === 0) return;
      state.index -= 1;
      load().catch(report);
    });
    return {
      load,
      reset() {
        state.cursors = [null];
        state.index = 0;
        return load();
      },
      live() {
        return state.index === 0 ? load() : Promise.resolve();
      },
    };
  }

  function orderLink(id) {
    const button = document.createElement('button');
    button.type = 'button';
    button.className = 'link';
    button.textContent = id.slice(0, 8) + '…' + id.slice(-4);
    button.title = id;
    button.dataset.order = id;
    button.addEventListener('click', () => openExecution(id));
    return button;
  }

  function orderRow(o) {
    const tr = document.createElement('tr');
    tr.className = 'clickable';
    tr.dataset.order = o.orderId;
    const first = document.createElement('td');
    first.appendChild(orderLink(o.orderId));
    tr.appendChild(first);
    const status = document.createElement('td');
    status.appendChild(badge(o.status));
    tr.appendChild(status);
    tr.appendChild(cell(String(o.attempts)));
    tr.appendChild(cell(o.customerId));
    tr.appendChild(cell(o.productId));
    tr.appendChild(cell(`${o.price} × ${o.quantity}`));
    tr.appendChild(cell(time(o.createdAt)));
    tr.appendChild(cell(orderReason(o), 'reason'));
    tr.addEventListener('click', (e) => {
      if (e.target.tagName !== 'BUTTON') openExecution(o.orderId);
    });
    return tr;
  }

  // Why an order is where it is: its cancel reason once cancelled, else its failure reason.
  function orderReason(o) {
    if (o.status === 'CANCELLED' && o.cancelReason) return o.cancelReason;
    return o.failureReason || '';
  }

  function failedRow(f) {
    const tr = document.createElement('tr');
    tr.className = 'clickable';
    tr.dataset.order = f.orderId;
    const first = document.createElement('td');
    first.appendChild(orderLink(f.orderId));
    tr.appendChild(first);
    tr.appendChild(cell(f.reason, 'reason'));
    tr.appendChild(cell(String(f.attempts)));
    tr.appendChild(cell(time(f.failedAt)));
    tr.addEventListener('click', (e) => {
      if (e.target.tagName !== 'BUTTON') openExecution(f.orderId);
    });
    return tr;
  }

  const orders = listing({
    path: 'orders',
    table: 'orders',
    columns: 8,
    newer: 'orders-newer',
    older: 'orders-older',
    label: 'orders-page',
    row: orderRow,
    query: () => ({ status: $('orders-status').value }),
    // A status the counts say is empty needs no listing (and no index walk).
    known: () => {
      const status = $('orders-status').value;
      return status && lastStats && lastStats.orders[status] === 0 ? { items: [], nextCursor: null } : null;
    },
  });
  const failed = listing({
    path: 'failed-orders',
    table: 'failed',
    columns: 4,
    newer: 'failed-newer',
    older: 'failed-older',
    label: 'failed-page',
    row: failedRow,
  });

  // ---------- execution view ----------

  let workflowGraph; // undefined: not fetched; null: none served

  async function workflow() {
    if (workflowGraph !== undefined) return workflowGraph;
    try {
      workflowGraph = await api('workflow');
    } catch (e) {
      if (e.status === 404) workflowGraph = null;
      else throw e;
    }
    return workflowGraph;
  }

  let shownOrder = null;
  // Each load of the order view is numbered; only the latest one renders.
  let executionLoads = 0;
  // Whichever load renders a newly opened view first brings it into sight.
  let scrollPending = false;

  function openExecution(orderId, scroll = true) {
    if (shownOrder !== orderId) {
      showMessage('');
      $('cancel-reason').value = '';
    }
    shownOrder = orderId;
    scrollPending = scroll;
    if (location.hash !== `#order/${orderId}`) history.replaceState(null, '', `#order/${orderId}`);
    const panel = $('execution');
    panel.hidden = false;
    panel.dataset.state = 'loading';
    set('execution-order', orderId);
    set('execution-summary', 'loading…');
    return loadExecution(orderId);
  }

  // Fetches and draws the order, its execution and its events. Never throws:
  // a failure is shown in the panel (or, on a refresh of a view already
  // drawn, left to the next refresh).
  async function loadExecution(orderId) {
    const load = ++executionLoads;
    const panel = $('execution');
    try {
      const order = await api(`orders/${encodeURIComponent(orderId)}`);
      const executionId = String(order.executionArn || '').split(':').pop();
      const [execution, events, graph] = await Promise.all([
        api(`executions/${encodeURIComponent(executionId)}`),
        api(`events?${new URLSearchParams({ orderId })}`).then((page) => page.items, (e) => e),
        workflow(),
      ]);
      if (shownOrder !== orderId || load !== executionLoads) return;
      renderExecution(order, execution, graph);
      renderOrderEvents(events);
      panel.dataset.state = 'ready';
      if (scrollPending) panel.scrollIntoView({ block: 'start', behavior: 'smooth' });
      scrollPending = false;
    } catch (e) {
      if (shownOrder !== orderId || load !== executionLoads || panel.dataset.state === 'ready') return;
      set('execution-summary', `Could not load the execution: ${e.message}`);
      panel.dataset.state = 'error';
    }
  }

  function closeExecution() {
    shownOrder = null;
    $('execution').hidden = true;
    history.replaceState(null, '', location.pathname);
  }

  function showMessage(text) {
    const el = $('execution-message');
    el.textContent = text;
    el.hidden = !text;
  }

  // The operator's cancel of the order shown; the server decides (409 when
  // the order moved on since the page last looked).
  async function cancelShownOrder(e) {
    e.preventDefault();
    const orderId = shownOrder;
    if (!orderId) return;
    const reason = $('cancel-reason').value.trim();
    const button = $('cancel-button');
    button.disabled = true;
    showMessage('');
    try {
      await api(`orders/${encodeURIComponent(orderId)}/cancel`, { body: reason ? { reason } : {} });
      $('cancel-reason').value = '';
    } catch (err) {
      if (shownOrder === orderId) showMessage(`Could not cancel the order: ${err.message}`);
    } finally {
      button.disabled = false;
    }
    if (shownOrder === orderId) await loadExecution(orderId);
    refreshAll();
  }

  function renderExecution(order, execution, graph) {
    const summary = $('execution-summary');
    const field = (name, text) => {
      const span = document.createElement('span');
      span.dataset.field = name;
      span.textContent = text;
      return span;
    };
    const parts = [
      'Order ', badge(order.status), ` after ${order.attempts} attempt(s) · execution `,
      badge(execution.status), ` started ${time(execution.startedAt)}`,
      execution.stoppedAt ? `, stopped ${time(execution.stoppedAt)}` : '',
    ];
    if (order.failureReason) parts.push(' · failure reason: ', field('failureReason', order.failureReason));
    if (order.fulfillmentReference) parts.push(' · reference: ', field('fulfillmentReference', order.fulfillmentReference));
    if (order.cancelReason) parts.push(' · cancel reason: ', field('cancelReason', order.cancelReason));
    summary.replaceChildren(...parts.map((p) => (typeof p === 'string' ? document.createTextNode(p) : p)));
    summary.dataset.executionStatus = execution.status;
    summary.dataset.orderStatus = order.status;
    $('cancel-form').hidden = !(order.status === 'PENDING' || order.status === 'FAILED');

    const events = execution.events || [];
    const tbody = $('execution-events').tBodies[0];
    tbody.replaceChildren(
      ...events.map((e) => {
        const tr = document.createElement('tr');
        tr.appendChild(cell(time(e.timestamp)));
        tr.appendChild(cell(e.type));
        tr.appendChild(cell(e.state || ''));
        tr.appendChild(cell(eventDetail(e), 'reason'));
        return tr;
      }),
    );
    drawGraph(graph, events, execution, order);
  }

  // The order's events (GET /events?orderId=), oldest first, or the error that kept them away.
  function renderOrderEvents(events) {
    const tbody = $('order-events').tBodies[0];
    if (!Array.isArray(events)) {
      emptyRow(tbody, 5, `Could not load the order's events: ${events && events.message}`);
      return;
    }
    if (events.length === 0) {
      emptyRow(tbody, 5, 'no events kept for this order');
      return;
    }
    tbody.replaceChildren(
      ...events.map((e) => {
        const tr = document.createElement('tr');
        tr.dataset.event = e.eventId;
        tr.dataset.type = e.type;
        tr.appendChild(cell(time(e.occurredAt)));
        tr.appendChild(cell(e.type));
        const status = document.createElement('td');
        status.appendChild(badge(e.status));
        tr.appendChild(status);
        tr.appendChild(cell(String(e.attempts)));
        tr.appendChild(cell(orderEventDetail(e.order || {}), 'reason'));
        return tr;
      }),
    );
  }

  function orderEventDetail(o) {
    const bits = [];
    if (o.failureReason) bits.push(`failure: ${o.failureReason}`);
    if (o.fulfillmentReference) bits.push(`reference: ${o.fulfillmentReference}`);
    if (o.cancelReason) bits.push(`cancel reason: ${o.cancelReason}`);
    return bits.join(' · ');
  }

  function eventDetail(e) {
    const d = e.details || {};
    const bits = [];
    if (d.error) bits.push(`${d.error}${d.cause ? ': ' + d.cause : ''}`);
    if (d.attempt) bits.push(`attempt ${d.attempt}`);
    if (d.retry) bits.push(`retry ${d.retry} in ${d.delayMs} ms`);
    if (d.resource) bits.push(d.resource);
    if (d.reason) bits.push(`reason: ${d.reason}`);
    if (e.type === 'StateExited' && d.next !== undefined) bits.push(d.next ? `next: ${d.next}` : 'end');
    return bits.join(' · ');
  }

  // Longest-path layers from StartAt (edges back to an earlier layer are ignored).
  function layers(graph) {
    const level = new Map([[graph.startAt, 0]]);
    for (let round = 0; round < graph.states.length; round++) {
      let changed = false;
      for (const edge of graph.edges) {
        const from = level.get(edge.from);
        if (from === undefined || edge.from === edge.to) continue;
        const to = level.get(edge.to);
        if (to === undefined || (to < from + 1 && to !== 0)) {
          level.set(edge.to, from + 1);
          changed = true;
        }
      }
      if (!changed) break;
    }
    for (const s of graph.states) if (!level.has(s.name)) level.set(s.name, 0);
    return level;
  }

  function drawGraph(graph, events, execution, order) {
    const svg = $('execution-graph');
    if (!graph) {
      svg.replaceChildren();
      svg.setAttribute('width', 0);
      svg.setAttribute('height', 0);
      return;
    }
    const entered = events.filter((e) => e.type === 'StateEntered').map((e) => e.state);
    const failedAt = events.filter((e) => e.type === 'ExecutionFailed').map((e) => e.state);
    const taken = new Set();
    for (let i = 1; i < entered.length; i++) taken.add(`${entered[i - 1]}\u0000${entered[i]}`);

    const level = layers(graph);
    const rows = [];
    for (const s of graph.states) {
      const l = level.get(s.name);
      (rows[l] = rows[l] || []).push(s);
    }
    const NW = 180;
    const NH = 42;
    const GX = 40;
    const GY = 56;
    const width = Math.max(...rows.map((r) => (r ? r.length : 0))) * (NW + GX) + GX;
    const pos = new Map();
    rows.forEach((row, l) => {
      if (!row) return;
      const rowWidth = row.length * (NW + GX) - GX;
      row.forEach((s, i) => {
        pos.set(s.name, { x: (width - rowWidth) / 2 + i * (NW + GX), y: 16 + l * (NH + GY) });
      });
    });

    // The queue worker is not part of the ASL: drawn dashed after the state that queued the order.
    const queued = graph.states.find((s) => s.type === 'Succeed' && entered.includes(s.name));
    let worker = null;
    if (queued) {
      const from = pos.get(queued.name);
      worker = { x: from.x, y: from.y + NH + GY, from: queued.name };
    }
    const height = Math.max(...[...pos.values()].map((p) => p.y), worker ? worker.y : 0) + NH + 20;
    svg.setAttribute('width', width);
    svg.setAttribute('height', height);
    svg.setAttribute('viewBox', `0 0 ${width} ${height}`);

    const nodes = [arrowDefs()];
    const edgeEl = (from, to, label, classes) => {
      const a = pos.get(from) || from;
      const b = pos.get(to) || to;
      const g = document.createElementNS(SVG, 'g');
      g.setAttribute('class', `edge ${classes}`);
      g.dataset.from = typeof from === 'string' ? from : '';
      g.dataset.to = typeof to === 'string' ? to : '';
      const path = document.createElementNS(SVG, 'path');
      const x1 = a.x + NW / 2;
      const y1 = a.y + NH;
      const x2 = b.x + NW / 2;
      const y2 = b.y;
      const d = y2 > y1
        ? `M${x1},${y1} C${x1},${(y1 + y2) / 2} ${x2},${(y1 + y2) / 2} ${x2},${y2 - 2}`
        : `M${a.x + NW},${a.y + NH / 2} C${a.x + NW + 60},${a.y + NH / 2} ${b.x + NW + 60},${b.y + NH / 2} ${b.x + NW},${b.y + NH / 2}`;
      path.setAttribute('d', d);
      path.setAttribute('marker-end', 'url(#arrow)');
      g.appendChild(path);
      if (label && label !== 'Next') {
        const t = document.createElementNS(SVG, 'text');
        t.setAttribute('x', (x1 + x2) / 2);
        t.setAttribute('y', (y1 + y2) / 2 - 3);
        t.textContent = label.length > 34 ? label.slice(0, 33) + '…' : label;
        g.appendChild(t);
      }
      return g;
    };
    for (const edge of graph.edges) {
      const isTaken = taken.has(`${edge.from}\u0000${edge.to}`);
      const intoFailure = graph.states.find((s) => s.name === edge.to && s.type === 'Fail');
      nodes.push(edgeEl(edge.from, edge.to, edge.label, isTaken ? `taken${intoFailure ? ' failed' : ''}` : ''));
    }
    if (worker) nodes.push(edgeEl(worker.from, worker, 'SQS → worker', 'taken'));

    const last = entered[entered.length - 1];
    const nodeEl = (x, y, title, kind, classes, name) => {
      const g = document.createElementNS(SVG, 'g');
      g.setAttribute('class', `node ${classes}`);
      if (name) g.dataset.state = name;
      const rect = document.createElementNS(SVG, 'rect');
      rect.setAttribute('x', x);
      rect.setAttribute('y', y);
      rect.setAttribute('width', NW);
      rect.setAttribute('height', NH);
      rect.setAttribute('rx', 6);
      g.appendChild(rect);
      const t = document.createElementNS(SVG, 'text');
      t.setAttribute('x', x + NW / 2);
      t.setAttribute('y', y + 18);
      t.textContent = title;
      g.appendChild(t);
      const k = document.createElementNS(SVG, 'text');
      k.setAttribute('class', 'kind');
      k.setAttribute('x', x + NW / 2);
      k.setAttribute('y', y + 33);
      k.textContent = kind;
      g.appendChild(k);
      return g;
    };
    for (const s of graph.states) {
      const p = pos.get(s.name);
      const visited = entered.includes(s.name);
      let classes = visited ? 'visited' : '';
      if (visited && (s.type === 'Fail' || failedAt.includes(s.name))) classes = 'visited failed';
      else if (visited && execution.status === 'RUNNING' && s.name === last) classes = 'visited current';
      const retries = events.filter((e) => e.type === 'TaskRetryScheduled' && e.state === s.name).length;
      const kind = s.type + (retries ? ` · ${retries} retr${retries === 1 ? 'y' : 'ies'}` : '');
      nodes.push(nodeEl(p.x, p.y, s.name, kind, classes, s.name));
    }
    if (worker) {
      const cls = new Map([
        ['FULFILLED', 'worker visited'],
        ['FAILED', 'worker visited failed'],
        ['CANCELLED', 'worker visited cancelled'],
      ]).get(order.status) || 'worker current';
      nodes.push(nodeEl(worker.x, worker.y, `Fulfillment: ${order.status}`, `queue worker · ${order.attempts} attempt(s)`, cls, 'fulfillment'));
    }
    svg.replaceChildren(...nodes);
  }

  function arrowDefs() {
    const defs = document.createElementNS(SVG, 'defs');
    const marker = document.createElementNS(SVG, 'marker');
    marker.setAttribute('id', 'arrow');
    marker.setAttribute('viewBox', '0 0 10 10');
    marker.setAttribute('refX', '9');
    marker.setAttribute('refY', '5');
    marker.setAttribute('markerUnits', 'userSpaceOnUse');
    marker.setAttribute('markerWidth', '9');
    marker.setAttribute('markerHeight', '9');
    marker.setAttribute('orient', 'auto-start-reverse');
    const path = document.createElementNS(SVG, 'path');
    path.setAttribute('d', 'M0,0 L10,5 L0,10 z');
    marker.appendChild(path);
    defs.appendChild(marker);
    return defs;
  }

  // ---------- the loop ----------

  function report(e) {
    const live = $('live');
    live.textContent = e && e.status ? `error ${e.status}` : 'offline';
    live.className = 'pill offline';
  }

  let refreshing = false;

  async function refreshAll() {
    if (refreshing) return;
    refreshing = true;
    try {
      const [stats, alerts] = await Promise.all([api('stats'), api('alerts')]);
      renderStats(stats);
      renderAlerts(alerts);
      await Promise.all([orders.live(), failed.live(), shownOrder ? loadExecution(shownOrder) : null]);
      const live = $('live');
      live.textContent = 'live';
      live.className = 'pill live';
      set('updated', `updated ${time(new Date().toISOString())}`);
      document.body.dataset.updates = String(Number(document.body.dataset.updates || 0) + 1);
    } catch (e) {
      report(e);
    } finally {
      refreshing = false;
    }
  }

  function start() {
    setupKey();
    $('orders-status').addEventListener('change', () => orders.reset().catch(report));
    $('execution-close').addEventListener('click', closeExecution);
    $('cancel-form').addEventListener('submit', (e) => cancelShownOrder(e).catch(report));
    const match = /^#order\/([0-9a-fA-F-]{36})$/.exec(location.hash);
    if (match) openExecution(match[1], false);
    refreshAll();
    setInterval(refreshAll, POLL_MS);
  }

  if (document.readyState === 'loading') document.addEventListener('DOMContentLoaded', start);
  else start();
})();
