// The orders list: filters, a search by order or customer ID, counts per
// status, state, version and priority, a throughput sparkline, and rows
// that change live.

import { api, ApiError, workflows } from './api.js';
import { ago, badge, h, money, problemText, svg } from './dom.js';
import { follow, newer } from './stream.js';

const filterNames = ['status', 'state', 'version', 'priority', 'q'];
const statuses = ['running', 'completed', 'failed', 'cancelled'];
const priorities = ['high', 'normal', 'low'];
const pageSize = 50;
const statsEvery = 5000;

export function mountList(root, params) {
  const filters = {};
  for (const n of filterNames) filters[n] = params.get(n) || '';

  const rows = new Map(); // order_id -> {order, tr}
  let cursor = '';
  let loading = null;
  let closeStream = null;
  let statsTimer = null;
  let tick = null;

  const stats = h('section', { class: 'stats', 'aria-label': 'Counts' });
  const spark = h('section', { class: 'throughput', 'aria-label': 'Throughput' });
  const error = h('p', { class: 'error', hidden: true, role: 'alert' });
  const tbody = h('tbody');
  const more = h('button', { type: 'button', hidden: true, onclick: () => load(false) }, 'Load more');
  const empty = h('p', { class: 'empty', hidden: true }, 'No orders match.');
  const form = filterForm(filters);

  root.append(
    h('div', { class: 'list-head' }, h('h1', {}, 'Orders'), spark),
    stats,
    form,
    error,
    h('table', { class: 'orders' },
      h('thead', {}, h('tr', {},
        ['Order', 'Customer', 'Status', 'State', 'Version', 'Priority', 'Amount', 'Updated'].map((t) => h('th', { scope: 'col' }, t)))),
      tbody),
    empty,
    h('div', { class: 'more' }, more),
  );

  function setFilter(name, value) {
    const next = { ...filters, [name]: value };
    const p = new URLSearchParams();
    for (const n of filterNames) if (next[n]) p.set(n, next[n]);
    const qs = p.toString();
    location.hash = '#/orders' + (qs ? '?' + qs : '');
  }

  function filterForm(f) {
    const select = (name, label, options) => h('label', {}, label,
      h('select', { name, onchange: (ev) => setFilter(name, ev.target.value) },
        h('option', { value: '' }, 'any'),
        options.map((o) => h('option', { value: o, selected: String(f[name]) === String(o) }, o))));
    const stateSelect = select('state', 'State', f.state ? [f.state] : []);
    workflows().then((wfs) => {
      const names = [];
      for (const w of wfs) for (const s of w.states) if (!names.includes(s.name)) names.push(s.name);
      const sel = stateSelect.querySelector('select');
      sel.replaceChildren(h('option', { value: '' }, 'any'), names.map((n) => h('option', { value: n, selected: f.state === n }, n)));
      const vsel = form.querySelector('select[name=version]');
      vsel.replaceChildren(h('option', { value: '' }, 'any'),
        wfs.filter((w) => w.name === 'order').map((w) => h('option', { value: w.version, selected: String(f.version) === String(w.version) }, `v${w.version}${w.default ? ' (default)' : ''}`)));
    }).catch(() => {});
    const search = h('input', { type: 'search', name: 'q', value: f.q, placeholder: 'Order or customer ID', 'aria-label': 'Search by order or customer ID' });
    return h('form', {
      class: 'filters', role: 'search',
      onsubmit: (ev) => { ev.preventDefault(); setFilter('q', search.value.trim()); },
    },
    h('label', { class: 'search' }, 'Search', search),
    select('status', 'Status', statuses),
    stateSelect,
    select('version', 'Version', f.version ? [f.version] : []),
    select('priority', 'Priority', priorities),
    h('button', { type: 'submit' }, 'Search'),
    h('a', { href: '#/orders', class: 'clear' }, 'Clear'));
  }

  function matches(o) {
    return (!filters.status || o.status === filters.status) &&
      (!filters.state || o.state === filters.state) &&
      (!filters.version || String(o.workflow_version) === String(filters.version)) &&
      (!filters.priority || o.priority === filters.priority) &&
      (!filters.q || o.customer_id === filters.q || o.order_id === filters.q);
  }

  function row(o) {
    const state = [badge(o.state, 'state')];
    if (o.paused) state.push(' ', badge('paused', 'paused'));
    if (o.dead_letter) state.push(' ', badge('dead letter', 'dead'));
    if (o.progress && o.status === 'running') state.push(' ', h('span', { class: 'pct' }, `${o.progress.percent}%`));
    const tr = h('tr', { dataset: { orderId: o.order_id, status: o.status, state: o.state }, class: matches(o) ? '' : 'stale' },
      h('td', {}, h('a', { href: '#/orders/' + encodeURIComponent(o.order_id), class: 'mono' }, o.order_id)),
      h('td', { class: 'mono' }, o.customer_id),
      h('td', {}, badge(o.status, 'status-' + o.status)),
      h('td', {}, state),
      h('td', {}, 'v' + o.workflow_version),
      h('td', {}, o.priority),
      h('td', { class: 'num' }, money(o.amount_cents, o.currency)),
      h('td', { class: 'ago', dataset: { t: o.updated_at }, title: o.updated_at }, ago(o.updated_at)));
    return tr;
  }

  function put(o, { prepend = false, flash = false } = {}) {
    const cur = rows.get(o.order_id);
    if (cur && !newer(o, cur.order)) return;
    const tr = row(o);
    if (flash) tr.classList.add('flash');
    if (cur) cur.tr.replaceWith(tr);
    else if (prepend) tbody.prepend(tr);
    else tbody.append(tr);
    rows.set(o.order_id, { order: o, tr });
    empty.hidden = rows.size > 0;
  }

  function query(c) {
    const p = new URLSearchParams({ limit: String(pageSize) });
    for (const n of ['status', 'state', 'version', 'priority']) if (filters[n]) p.set(n, filters[n]);
    if (filters.q) p.set('customer_id', filters.q);
    if (c) p.set('cursor', c);
    return p;
  }

  // load reads the first page (reset) or the next one, and follows the
  // orders shown.
  async function load(reset) {
    if (loading) return loading;
    loading = (async () => {
      try {
        const found = [];
        if (reset && filters.q) found.push(...await exact(filters.q));
        const page = await api('/v1/orders?' + query(reset ? '' : cursor));
        if (reset) {
          rows.clear();
          tbody.replaceChildren();
        }
        for (const o of found.concat(page.orders)) put(o);
        cursor = page.next_cursor;
        more.hidden = !cursor;
        empty.hidden = rows.size > 0;
        error.hidden = true;
        startStream();
      } catch (e) {
        error.textContent = problemText(e);
        error.hidden = false;
      } finally {
        loading = null;
      }
    })();
    return loading;
  }

  // exact is the order whose ID is the search, if there is one.
  async function exact(q) {
    try {
      return [await api('/v1/orders/' + encodeURIComponent(q))];
    } catch (e) {
      if (e instanceof ApiError && (e.status === 404 || e.status === 400)) return [];
      throw e;
    }
  }

  // refresh re-reads as many pages as are shown and merges them in, when a
  // stream (re)connects: what changed while none was open is then shown.
  async function refresh() {
    try {
      let c = '';
      const found = filters.q ? await exact(filters.q) : [];
      for (let n = 0; n < Math.min(4, Math.max(1, Math.ceil(rows.size / pageSize))); n++) {
        const page = await api('/v1/orders?' + query(c));
        found.push(...page.orders);
        c = page.next_cursor;
        if (!c) break;
      }
      for (const o of found) put(o, { prepend: !rows.has(o.order_id) && isNewest(o) });
      error.hidden = true;
    } catch (e) {
      error.textContent = problemText(e);
      error.hidden = false;
    }
  }

  // The stream follows the newest orders, and every order shown (up to
  // 100): it restarts only when the rows shown are another set.
  let followed = null;
  function startStream() {
    const ids = [...rows.keys()].slice(0, 100);
    const key = ids.join(',');
    if (key === followed) return;
    followed = key;
    const p = new URLSearchParams({ recent: 'true' });
    for (const id of ids) p.append('order_id', id);
    if (closeStream) closeStream();
    closeStream = follow(p, {
      hello: () => { refresh(); refreshStats(); },
      order: (o) => {
        if (rows.has(o.order_id)) put(o, { flash: true });
        else if (matches(o) && isNewest(o)) put(o, { prepend: true, flash: true });
        scheduleStats();
      },
    });
  }

  function isNewest(o) {
    const first = tbody.firstElementChild;
    if (!first) return true;
    const top = rows.get(first.dataset.orderId);
    return !top || Date.parse(o.created_at) >= Date.parse(top.order.created_at);
  }

  let statsSoon = null;
  function scheduleStats() {
    if (statsSoon) return;
    statsSoon = setTimeout(() => { statsSoon = null; refreshStats(); }, 1000);
  }

  async function refreshStats() {
    try {
      const s = await api('/v1/stats');
      renderStats(s);
      renderSpark(s.throughput);
    } catch (e) {
      stats.replaceChildren(h('p', { class: 'error' }, 'Counts unavailable: ' + problemText(e)));
    }
  }

  function chips(title, counts, name, order) {
    const keys = Object.keys(counts).sort((a, b) => {
      const ia = order ? order.indexOf(a) : -1;
      const ib = order ? order.indexOf(b) : -1;
      if (ia !== ib) return (ia < 0 ? 99 : ia) - (ib < 0 ? 99 : ib);
      return counts[b] - counts[a] || a.localeCompare(b);
    });
    return h('div', { class: 'chips', dataset: { group: name } }, h('span', { class: 'chips-title' }, title),
      keys.map((k) => h('button', {
        type: 'button', class: 'chip' + (String(filters[name]) === String(k) ? ' on' : ''),
        dataset: { [name]: k }, title: `Show only ${name} ${k}`,
        onclick: () => setFilter(name, String(filters[name]) === String(k) ? '' : k),
      }, name === 'version' ? 'v' + k : k, ' ', h('b', {}, counts[k]))));
  }

  function renderStats(s) {
    stats.replaceChildren(
      chips('Status', s.by_status, 'status', statuses),
      chips('State', s.by_state, 'state'),
      chips('Version', s.by_version, 'version'),
      chips('Priority', s.by_priority, 'priority', priorities),
      h('p', { class: 'note' },
        s.complete ? `${s.counted} orders` : `Counts of the newest ${s.counted} of ${s.total} orders`,
        s.dead_letters ? [' · ', h('span', { class: 'dead' }, `${s.dead_letters} dead-lettered`)] : ''));
  }

  function renderSpark(t) {
    const w = 240, ht = 44, n = t.finished.length;
    const peak = Math.max(1, ...t.finished, ...t.created);
    const pts = (arr) => arr.map((v, i) => `${(i * w / (n - 1)).toFixed(1)},${(ht - 2 - v * (ht - 4) / peak).toFixed(1)}`).join(' ');
    const total = (arr) => arr.reduce((a, b) => a + b, 0);
    const minutes = (n * t.bucket_seconds) / 60;
    const fin = total(t.finished);
    spark.replaceChildren(
      svg('svg', { class: 'sparkline', viewBox: `0 0 ${w} ${ht}`, width: w, height: ht, role: 'img', 'aria-label': `Orders per ${t.bucket_seconds}s over the last ${minutes} minutes` },
        svg('polyline', { class: 'created', points: pts(t.created), fill: 'none' }),
        svg('polyline', { class: 'finished', points: pts(t.finished), fill: 'none' })),
      h('div', { class: 'spark-text' },
        h('b', { class: 'finished-rate' }, (fin / minutes).toFixed(1)), ' finished/min',
        h('br'), h('span', { class: 'created-rate' }, `${(total(t.created) / minutes).toFixed(1)} created/min`),
        h('br'), h('small', {}, `last ${minutes} min`)));
  }

  load(true);
  refreshStats();
  statsTimer = setInterval(refreshStats, statsEvery);
  tick = setInterval(() => {
    for (const td of tbody.querySelectorAll('td.ago')) td.textContent = ago(td.dataset.t);
  }, 1000);

  return () => {
    if (closeStream) closeStream();
    clearInterval(statsTimer);
    clearInterval(tick);
    clearTimeout(statsSoon);
  };
}
