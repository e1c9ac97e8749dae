// Live updates: GET /v1/events read as a server-sent event stream. It is
// read with fetch rather than EventSource, which cannot send the
// Authorization header. It reconnects with backoff; each connection begins
// with a "hello" event, on which a page re-reads what it shows.

import { askToken, authHeaders, token } from './api.js';

const live = () => document.getElementById('live');

function showLive(state) {
  const el = live();
  if (!el) return;
  el.dataset.state = state;
  el.textContent = { live: 'live', connecting: 'connecting…', off: 'offline' }[state] || state;
}

// follow opens the stream with the query params and calls handlers.hello()
// and handlers.order(resource). It returns a function that closes it.
export function follow(params, handlers) {
  let stopped = false;
  let ctrl = null;
  let backoff = 500;
  let timer = null;

  async function connect() {
    if (stopped) return;
    ctrl = new AbortController();
    showLive('connecting');
    try {
      const res = await fetch('/v1/events?' + params.toString(), {
        headers: { Accept: 'text/event-stream', ...authHeaders() },
        cache: 'no-store', credentials: 'omit', signal: ctrl.signal,
      });
      if (res.status === 401) {
        await askToken(token() ? 'The token was refused.' : 'This server needs an API token.');
        backoff = 0;
      } else if (res.ok && res.body) {
        await read(res.body);
      }
    } catch (_) {
      // A dropped connection or an abort: reconnect below unless stopped.
    }
    if (stopped) return;
    showLive('connecting');
    timer = setTimeout(connect, backoff);
    backoff = Math.min(Math.max(backoff * 2, 500), 10000);
  }

  async function read(body) {
    const reader = body.pipeThrough(new TextDecoderStream()).getReader();
    let buf = '';
    for (;;) {
      const { value, done } = await reader.read();
      if (done) return;
      buf += value.replace(/\r\n/g, '\n');
      let i;
      while ((i = buf.indexOf('\n\n')) >= 0) {
        dispatch(buf.slice(0, i));
        buf = buf.slice(i + 2);
      }
    }
  }

  function dispatch(block) {
    let event = 'message';
    const data = [];
    for (const line of block.split('\n')) {
      if (line.startsWith(':')) continue;
      const [field, ...rest] = line.split(':');
      const value = rest.join(':').replace(/^ /, '');
      if (field === 'event') event = value;
      else if (field === 'data') data.push(value);
    }
    if (event === 'hello') {
      backoff = 500;
      showLive('live');
      handlers.hello && handlers.hello();
    } else if (event === 'order' && data.length) {
      handlers.order && handlers.order(JSON.parse(data.join('\n')));
    }
  }

  connect();
  return () => {
    stopped = true;
    clearTimeout(timer);
    if (ctrl) ctrl.abort();
    showLive('off');
  };
}

// newer reports whether order resource a is more recent than b: by its
// last change, then by its progress.
export function newer(a, b) {
  if (!b) return true;
  if (a.updated_at !== b.updated_at) return Date.parse(a.updated_at) > Date.parse(b.updated_at);
  const pa = a.progress ? Date.parse(a.progress.at) : 0;
  const pb = b.progress ? Date.parse(b.progress.at) : 0;
  return pa > pb;
}
