// Small helpers to build the DOM from data without ever parsing it as
// HTML, and to format what the pages show.

// h builds an element: h('a', {href: '#/x', class: 'c'}, 'text', child).
// Attributes named on* add listeners; text is set as text, never as HTML.
export function h(tag, attrs, ...children) {
  const el = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (v === undefined || v === null || v === false) continue;
    if (k === 'class') el.className = v;
    else if (k === 'dataset') Object.assign(el.dataset, v);
    else if (k.startsWith('on') && typeof v === 'function') el.addEventListener(k.slice(2), v);
    else el.setAttribute(k, v === true ? '' : String(v));
  }
  append(el, children);
  return el;
}

function append(el, children) {
  for (const c of children) {
    if (c === undefined || c === null || c === false) continue;
    if (Array.isArray(c)) append(el, c);
    else el.append(c instanceof Node ? c : String(c));
  }
}

// svg builds an SVG element.
export function svg(tag, attrs, ...children) {
  const el = document.createElementNS('http://www.w3.org/2000/svg', tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (v !== undefined && v !== null) el.setAttribute(k, String(v));
  }
  for (const c of children) if (c) el.append(c);
  return el;
}

// badge shows a status or a state.
export function badge(text, kind) {
  return h('span', { class: `badge ${kind || ''}` }, text);
}

export function money(cents, currency) {
  try {
    return new Intl.NumberFormat(undefined, { style: 'currency', currency }).format(cents / 100);
  } catch (_) {
    return `${(cents / 100).toFixed(2)} ${currency}`;
  }
}

// ago is how long before now t was, shortly: "4s ago", "3m ago".
export function ago(t, now = Date.now()) {
  const ms = now - Date.parse(t);
  if (!Number.isFinite(ms)) return '';
  if (ms < 0) return 'in ' + span(-ms);
  return span(ms) + ' ago';
}

// span formats a duration in ms: "42s", "3m 5s", "2h 10m", "1d 4h".
export function span(ms) {
  const s = Math.floor(ms / 1000);
  if (s < 60) return `${s}s`;
  const m = Math.floor(s / 60);
  if (m < 60) return `${m}m ${s % 60}s`;
  const hr = Math.floor(m / 60);
  if (hr < 24) return `${hr}h ${m % 60}m`;
  return `${Math.floor(hr / 24)}d ${hr % 24}h`;
}

export function when(t) {
  const d = new Date(t);
  return Number.isNaN(d.getTime()) ? '' : d.toLocaleString();
}

// problemText is what to tell the user about a failed call.
export function problemText(err) {
  if (err && err.problem) {
    const p = err.problem;
    const fields = (p.errors || []).map((e) => `${e.field} ${e.message}`).join('; ');
    return `${p.title || 'Error'} (${p.status || err.status}): ${p.detail || ''}${fields ? ' — ' + fields : ''}`;
  }
  return String((err && err.message) || err);
}
