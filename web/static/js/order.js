// One order: its state, the signals it takes, the progress of a long
// step, its review deadline, its step results, attempts and last error,
// the state diagram of its workflow version with its path, and its
// history as a timeline. Everything updates live.

import { api, workflows, workflowState } from './api.js';
import { ago, badge, h, money, problemText, span, when } from './dom.js';
import { follow, newer } from './stream.js';

// The signals a page may send, in the order their buttons show.
const signalOrder = ['approve', 'reject', 'pause', 'resume', 'cancel'];

export function mountOrder(root, id) {
  const path = '/v1/orders/' + encodeURIComponent(id);
  let order = null;
  let wfs = [];
  let shownUpdate = ''; // the updated_at the history and diagram show
  let diagramKey = '';
  let closeStream = null;
  let pending = null;

  const head = h('div', { class: 'order-head' });
  const actions = h('div', { class: 'actions', 'aria-label': 'Signals' });
  const notice = h('p', { class: 'notice', hidden: true, role: 'status' });
  const live = h('div', { class: 'live-boxes' });
  const details = h('div', { class: 'details' });
  const diagram = h('div', { class: 'diagram', 'aria-label': 'Workflow diagram' });
  const timeline = h('ol', { class: 'timeline' });
  const error = h('p', { class: 'error', hidden: true, role: 'alert' });
  const reason = h('input', { type: 'text', class: 'reason', maxlength: 512, placeholder: 'Reason (optional)', 'aria-label': 'Reason for the signal' });
  const showEvents = h('input', { type: 'checkbox', onchange: () => diagram.classList.toggle('show-events', showEvents.checked) });

  root.append(
    h('p', { class: 'crumbs' }, h('a', { href: '#/orders' }, '← Orders')),
    head, error,
    h('div', { class: 'action-bar' }, actions, reason),
    notice,
    live,
    h('div', { class: 'order-grid' },
      h('section', { class: 'card' }, h('h2', {}, 'Details'), details),
      h('section', { class: 'card history' }, h('h2', {}, 'History'), timeline)),
    h('section', { class: 'card' },
      h('div', { class: 'card-head' }, h('h2', {}, 'Workflow'), h('label', { class: 'toggle' }, showEvents, ' show every event')),
      diagram),
  );

  async function load() {
    try {
      const [o, w] = await Promise.all([api(path), workflows()]);
      wfs = w;
      show(o, true);
      error.hidden = true;
    } catch (e) {
      error.textContent = problemText(e);
      error.hidden = false;
    }
  }

  // show renders o if it is not older than what is shown; with force, or
  // when the order moved, it reloads the history and the diagram.
  function show(o, force) {
    if (!force && order && !newer(o, order)) return;
    order = o;
    renderHead();
    renderActions();
    renderLive();
    renderDetails();
    if (force || o.updated_at !== shownUpdate) {
      shownUpdate = o.updated_at;
      clearTimeout(pending);
      pending = setTimeout(reloadTrail, 150);
    }
  }

  async function reloadTrail() {
    const at = order.updated_at;
    try {
      const hist = await api(path + '/history');
      renderTimeline(hist.events);
      const key = `${order.workflow_version}|${order.state}|${hist.events.length}`;
      if (key !== diagramKey) {
        const svgText = await api(`/v1/workflows/order/${order.workflow_version}/diagram?order_id=${encodeURIComponent(id)}`, { raw: true });
        const doc = new DOMParser().parseFromString(svgText, 'image/svg+xml');
        const el = doc.documentElement;
        if (el.nodeName === 'svg') {
          diagram.replaceChildren(document.importNode(el, true));
          diagramKey = key;
        }
      }
      root.dataset.shown = at;
    } catch (e) {
      error.textContent = problemText(e);
      error.hidden = false;
    }
  }

  function renderHead() {
    const o = order;
    head.replaceChildren(
      h('h1', {}, h('span', { class: 'mono' }, o.order_id)),
      h('div', { class: 'head-badges' },
        badge(o.status, 'status-' + o.status + ' big'),
        h('span', { class: 'current-state', dataset: { state: o.state } }, 'state ', h('b', {}, o.state)),
        badge('v' + o.workflow_version, 'version'),
        o.priority !== 'normal' ? badge(o.priority + ' priority', 'prio-' + o.priority) : '',
        o.paused ? badge('paused', 'paused') : '',
        o.cancel_requested ? badge('cancel requested', 'dead') : '',
        o.dead_letter ? badge(`dead letter: ${o.dead_letter.step}`, 'dead') : ''));
  }

  // signals are what the order's state takes now: its workflow state's
  // signals, with pause while not paused and resume while paused.
  function signals() {
    const st = workflowState(wfs, order.workflow_version, order.state);
    if (!st || st.terminal || order.status !== 'running') return [];
    return signalOrder.filter((s) => st.signals.includes(s) &&
      !(s === 'pause' && order.paused) && !(s === 'resume' && !order.paused) &&
      !(s === 'cancel' && order.cancel_requested));
  }

  function renderActions() {
    const sigs = signals();
    const buttons = sigs.map((s) => h('button', {
      type: 'button', class: 'signal ' + (s === 'cancel' || s === 'reject' ? 'danger' : s === 'approve' ? 'primary' : ''),
      dataset: { signal: s }, onclick: (ev) => send(s, ev.target),
    }, s[0].toUpperCase() + s.slice(1)));
    if (order.dead_letter) {
      for (const op of ['retry', 'resolve']) {
        buttons.push(h('button', { type: 'button', class: 'signal', dataset: { signal: op }, title: 'Needs the admin scope', onclick: (ev) => send(op, ev.target) },
          op === 'retry' ? 'Retry step' : 'Resolve by hand'));
      }
    }
    actions.replaceChildren(...(buttons.length ? buttons : [h('span', { class: 'muted' }, order.status === 'running' ? 'No signal is taken in this state.' : 'Finished: takes no more signals.')]));
    reason.hidden = buttons.length === 0;
  }

  async function send(signal, button) {
    button.disabled = true;
    notice.hidden = true;
    const text = reason.value.trim();
    try {
      const o = await api(`${path}/${signal}`, { method: 'POST', body: text ? { reason: text } : undefined });
      reason.value = '';
      notice.textContent = `${signal}: accepted`;
      notice.className = 'notice ok';
      notice.hidden = false;
      show(o, true);
    } catch (e) {
      notice.textContent = `${signal}: ${problemText(e)}`;
      notice.className = 'notice bad';
      notice.hidden = false;
      button.disabled = false;
    }
  }

  function renderLive() {
    const o = order;
    const boxes = [];
    if (o.progress && o.status === 'running') {
      const p = o.progress;
      const fill = h('div', { class: 'fill' });
      fill.style.width = Math.max(0, Math.min(100, p.percent)) + '%';
      boxes.push(h('section', { class: 'card progress-card' },
        h('h2', {}, `Step ${p.step}`),
        h('div', { class: 'progress', role: 'progressbar', 'aria-valuemin': 0, 'aria-valuemax': 100, 'aria-valuenow': p.percent }, fill),
        h('p', {}, h('b', { class: 'percent' }, `${p.percent}%`), p.detail ? ` · ${p.detail}` : '',
          ' · heartbeat ', h('span', { class: 'ago', dataset: { t: p.at } }, ago(p.at)))));
    }
    if (o.review) {
      boxes.push(h('section', { class: 'card review-card' },
        h('h2', {}, 'Waiting for review'),
        h('p', {}, o.review.reason || ''),
        h('p', {}, 'Deadline ', h('b', {}, when(o.review.deadline)), ' · ',
          h('span', { class: 'countdown', dataset: { deadline: o.review.deadline } }, countdown(o.review.deadline)),
          ' — then the order is cancelled.')));
    }
    live.replaceChildren(...boxes);
  }

  function countdown(t) {
    const ms = Date.parse(t) - Date.now();
    return ms > 0 ? 'in ' + span(ms) : 'due now';
  }

  function renderDetails() {
    const o = order;
    const results = [
      ['Reservation', o.reservation_id], ['Warehouse', o.warehouse], ['Transaction', o.transaction_id],
      ['Tracking number', o.tracking_number], ['Refund', o.refund_id], ['Risk decision', o.risk_decision],
    ].filter(([, v]) => v);
    const attempts = Object.entries(o.attempts || {});
    details.replaceChildren(h('dl', {},
      h('dt', {}, 'Customer'), h('dd', { class: 'mono' }, o.customer_id),
      h('dt', {}, 'Amount'), h('dd', {}, money(o.amount_cents, o.currency)),
      h('dt', {}, 'Items'), h('dd', {}, (o.items || []).map((i) => h('div', { class: 'mono' }, `${i.qty} × ${i.sku} @ ${money(i.unit_price_cents, o.currency)}`))),
      h('dt', {}, 'Created'), h('dd', {}, when(o.created_at)),
      h('dt', {}, 'Updated'), h('dd', {}, when(o.updated_at), ' (', h('span', { class: 'ago', dataset: { t: o.updated_at } }, ago(o.updated_at)), ')'),
      results.map(([k, v]) => [h('dt', {}, k), h('dd', { class: 'mono' }, v)]),
      h('dt', {}, 'Attempts'), h('dd', { class: 'attempts' }, attempts.length ? attempts.map(([s, n]) => h('span', { class: 'attempt' }, `${s} × ${n}`)) : 'none'),
      o.last_error ? [h('dt', {}, 'Last error'), h('dd', { class: 'last-error mono' }, o.last_error)] : '',
      o.metadata ? [h('dt', {}, 'Metadata'), h('dd', { class: 'mono' }, Object.entries(o.metadata).map(([k, v]) => `${k}=${v}`).join(', '))] : ''));
  }

  function renderTimeline(events) {
    const start = events.length ? Date.parse(events[0].at) : 0;
    timeline.replaceChildren(...events.map((ev) => {
      let detail = {};
      if (ev.detail && typeof ev.detail === 'object') detail = ev.detail;
      const what = [];
      switch (ev.type) {
        case 'created': what.push('created'); break;
        case 'transition':
          what.push(h('b', {}, ev.event || ''), ' ', ev.from, ' → ', h('b', {}, ev.to));
          break;
        case 'step_failed':
          what.push('step ', h('b', {}, ev.step || ''), ` failed (attempt ${ev.attempt || '?'})`);
          break;
        case 'signal':
          what.push('signal ', h('b', {}, ev.event || detail.signal || ''));
          break;
        case 'dead_lettered':
          what.push('step ', h('b', {}, ev.step || ''), ' dead-lettered: waits for an operator');
          break;
        case 'migrated':
          what.push('migrated ', ev.from, ' → ', h('b', {}, ev.to));
          break;
        default:
          what.push(ev.type, ev.event ? ' ' + ev.event : '');
      }
      const extra = [];
      if (ev.error) extra.push(h('div', { class: 'ev-error mono' }, ev.error));
      if (detail.reason) extra.push(h('div', { class: 'ev-reason' }, 'reason: ', detail.reason));
      return h('li', { class: 'ev type-' + ev.type, dataset: { seq: ev.seq, type: ev.type } },
        h('span', { class: 'ev-time', title: ev.at }, new Date(ev.at).toLocaleTimeString(), h('small', {}, ` +${span(Date.parse(ev.at) - start)}`)),
        h('span', { class: 'ev-what' }, what), extra);
    }));
  }

  const tick = setInterval(() => {
    for (const el of root.querySelectorAll('.ago')) el.textContent = ago(el.dataset.t);
    for (const el of root.querySelectorAll('.countdown')) el.textContent = countdown(el.dataset.deadline);
  }, 1000);

  load();
  closeStream = follow(new URLSearchParams({ order_id: id, recent: 'false' }), {
    hello: () => { if (order) load(); },
    order: (o) => { if (o.order_id === id) show(o, false); },
  });

  return () => {
    closeStream();
    clearInterval(tick);
    clearTimeout(pending);
  };
}
