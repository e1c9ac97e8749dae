// The providers' flow control, from GET /v1/providers: each provider's
// state (closed, open, half_open, paused), rate limit, calls in flight and
// error rate, with pause and resume (admin). A server without flow control
// (no such endpoint) shows "not configured".

import { api, ApiError } from './api.js';
import { ago, badge, h, problemText } from './dom.js';

const every = 2000;

export function mountProviders(root) {
  const body = h('div', { class: 'providers' }, h('p', { class: 'muted' }, 'Loading…'));
  const notice = h('p', { class: 'notice', hidden: true, role: 'status' });
  root.append(h('h1', {}, 'Providers'), notice, body);
  let timer = null;
  let stopped = false;

  async function refresh() {
    try {
      const res = await api('/v1/providers');
      render(res.providers || []);
    } catch (e) {
      if (e instanceof ApiError && (e.status === 404 || e.status === 501)) {
        body.replaceChildren(h('div', { class: 'card not-configured', dataset: { state: 'not-configured' } },
          h('h2', {}, 'Flow control is not configured'),
          h('p', {}, 'This server does not expose GET /v1/providers: there are no provider rate limits, circuit breakers or pauses to show.')));
      } else {
        body.replaceChildren(h('p', { class: 'error', role: 'alert' }, problemText(e)));
      }
    }
    if (!stopped) {
      clearTimeout(timer); // one pending refresh, however many ran
      timer = setTimeout(refresh, every);
    }
  }

  function render(providers) {
    if (!providers.length) {
      body.replaceChildren(h('p', { class: 'muted' }, 'No providers.'));
      return;
    }
    body.replaceChildren(h('table', { class: 'providers-table' },
      h('thead', {}, h('tr', {}, ['Provider', 'State', 'Rate limit', 'In flight', 'Error rate', 'Opened', ''].map((t) => h('th', { scope: 'col' }, t)))),
      h('tbody', {}, providers.map((p) => h('tr', { dataset: { provider: p.name, state: p.state } },
        h('td', { class: 'mono' }, p.name),
        h('td', {}, badge(p.state.replace('_', ' '), 'breaker-' + p.state)),
        h('td', { class: 'num' }, p.rate_limit_rps ? `${p.rate_limit_rps}/s` : 'none'),
        h('td', { class: 'num' }, p.in_flight ?? 0),
        h('td', { class: 'num' }, typeof p.error_rate === 'number' ? `${(p.error_rate * 100).toFixed(1)}%` : ''),
        h('td', {}, p.opened_at ? h('span', { title: p.opened_at }, ago(p.opened_at)) : ''),
        h('td', {}, p.state === 'paused'
          ? h('button', { type: 'button', onclick: () => act(p.name, 'resume') }, 'Resume')
          : h('button', { type: 'button', class: 'danger', onclick: () => act(p.name, 'pause') }, 'Pause')))))));
  }

  async function act(name, op) {
    notice.hidden = true;
    try {
      await api(`/v1/providers/${encodeURIComponent(name)}/${op}`, { method: 'POST' });
      notice.textContent = `${name}: ${op}d`;
      notice.className = 'notice ok';
      clearTimeout(timer);
      refresh(); // show the new state at once, not at the next tick
    } catch (e) {
      notice.textContent = `${name}: ${problemText(e)}`;
      notice.className = 'notice bad';
    }
    notice.hidden = false;
  }

  refresh();
  return () => {
    stopped = true;
    clearTimeout(timer);
  };
}
