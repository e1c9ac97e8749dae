// The dashboard: a page per route of the location's hash.
//   #/orders?status=&state=&version=&priority=&q=   the orders list
//   #/orders/<order_id>                              one order
//   #/providers                                      the providers' flow control

import { setToken, token } from './api.js';
import { h } from './dom.js';
import { mountList } from './list.js';
import { mountOrder } from './order.js';
import { mountProviders } from './providers.js';

const view = document.getElementById('view');
let unmount = null;

function route() {
  if (unmount) unmount();
  unmount = null;
  view.replaceChildren();
  const hash = location.hash.replace(/^#/, '') || '/orders';
  const [path, query] = hash.split('?');
  const params = new URLSearchParams(query || '');
  const parts = path.split('/').filter(Boolean);
  let page = parts[0] || 'orders';
  if (page === 'orders' && parts.length > 1) {
    unmount = mountOrder(view, decodeURIComponent(parts.slice(1).join('/')));
  } else if (page === 'providers') {
    unmount = mountProviders(view);
  } else {
    page = 'orders';
    unmount = mountList(view, params);
  }
  for (const a of document.querySelectorAll('[data-nav]')) {
    a.classList.toggle('active', a.dataset.nav === page);
  }
}

function showAuth() {
  const el = document.getElementById('auth');
  el.replaceChildren();
  if (token()) {
    el.append('token set ', h('button', { class: 'link', type: 'button', onclick: () => { setToken(''); location.reload(); } }, 'forget'));
  }
}

document.getElementById('token-dialog').addEventListener('cancel', (ev) => ev.preventDefault());
document.addEventListener('tokenchange', showAuth);
window.addEventListener('hashchange', route);
showAuth();
route();
