// The API client: every data call of the dashboard goes through here,
// with the user's token as a Bearer header. The token lives in this tab's
// sessionStorage; no cookie is ever set or sent (credentials: "omit").

const tokenKey = 'orderflow.token';

export function token() {
  return sessionStorage.getItem(tokenKey) || '';
}

export function setToken(t) {
  if (t) sessionStorage.setItem(tokenKey, t);
  else sessionStorage.removeItem(tokenKey);
  document.dispatchEvent(new CustomEvent('tokenchange'));
}

// ApiError is a failed call: its status, and the problem+json body when the
// server sent one.
export class ApiError extends Error {
  constructor(status, problem) {
    super((problem && (problem.detail || problem.title)) || `HTTP ${status}`);
    this.status = status;
    this.problem = problem || null;
  }
}

let asking = null;

// askToken shows the token dialog once for every caller waiting on it, and
// resolves when the user gave a token.
export function askToken(reason) {
  if (asking) return asking;
  const dialog = document.getElementById('token-dialog');
  const form = document.getElementById('token-form');
  const input = document.getElementById('token-input');
  document.getElementById('token-reason').textContent = reason;
  asking = new Promise((resolve) => {
    const done = (ev) => {
      ev.preventDefault();
      const t = input.value.trim();
      if (!t) return;
      form.removeEventListener('submit', done);
      input.value = '';
      dialog.close();
      asking = null;
      setToken(t);
      resolve();
    };
    form.addEventListener('submit', done);
    if (!dialog.open) dialog.showModal();
    input.focus();
  });
  return asking;
}

// authHeaders are the headers that carry the token, if any.
export function authHeaders() {
  const t = token();
  return t ? { Authorization: 'Bearer ' + t } : {};
}

// api calls the API. body, when given, is sent as JSON. It resolves to the
// decoded JSON (or the text, with raw), and rejects with an ApiError. A 401
// asks the user for a token and tries again.
export async function api(path, { method = 'GET', body, raw = false, signal } = {}) {
  for (let tries = 0; ; tries++) {
    const headers = { Accept: raw ? '*/*' : 'application/json', ...authHeaders() };
    const init = { method, headers, signal, cache: 'no-store', credentials: 'omit' };
    if (body !== undefined) {
      headers['Content-Type'] = 'application/json';
      init.body = JSON.stringify(body);
    }
    const res = await fetch(path, init);
    if (res.status === 401 && tries < 5) {
      const p = await readProblem(res);
      await askToken(token() ? 'The token was refused: ' + (p && p.detail || 'unauthorized') : 'This server needs an API token.');
      continue;
    }
    if (!res.ok) throw new ApiError(res.status, await readProblem(res));
    if (raw) return res.text();
    if (res.status === 204) return null;
    return res.json();
  }
}

async function readProblem(res) {
  try {
    const ct = res.headers.get('Content-Type') || '';
    if (ct.includes('json')) return await res.json();
  } catch (_) { /* not a problem body */ }
  return null;
}

let workflowsPromise = null;

// workflows returns GET /v1/workflows, read once.
export function workflows() {
  if (!workflowsPromise) {
    workflowsPromise = api('/v1/workflows').then((b) => b.workflows).catch((e) => {
      workflowsPromise = null;
      throw e;
    });
  }
  return workflowsPromise;
}

// workflowState returns the state of an order's workflow version, from
// GET /v1/workflows (orders run the "order" workflow).
export function workflowState(wfs, version, state) {
  const wf = wfs.find((w) => w.name === 'order' && w.version === version);
  return wf ? wf.states.find((s) => s.name === state) : undefined;
}
