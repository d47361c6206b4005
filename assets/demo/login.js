// Demo storefront login: plays the storefront's own session. The
// storefront's backend (here the demo server's /demo-token) signs a
// short-lived token for the logged-in user, and the page hands it to the
// cart with cartsync.login. The cart never depends on this session: when
// it expires the cart stays, and edits made meanwhile reach the user's
// cart at the next login.
'use strict';

(function () {
  const root = document.getElementById('demo-login');
  if (!root) return;
  const users = ['alice', 'bob', 'carol'];
  const policies = [
    ['merge', 'Merge this device\'s cart into mine'],
    ['choose', 'Let me choose'],
    ['replace', 'Replace my cart with this device\'s'],
    ['keep', 'Keep my cart as it is'],
  ];
  // The policy is the one the shopper picked at login: a reload while the
  // widget asks them to choose must ask again, not merge for them.
  const state = { user: localStorage.getItem('demoUser') || '', policy: localStorage.getItem('demoPolicy') || 'merge' };

  function el(tag, attrs, ...children) {
    const e = document.createElement(tag);
    for (const [k, v] of Object.entries(attrs || {})) {
      if (k.startsWith('on')) e.addEventListener(k.slice(2), v);
      else e.setAttribute(k, v);
    }
    for (const c of children) e.append(c);
    return e;
  }

  function withCartsync(fn) {
    if (window.cartsync) fn(window.cartsync);
    else window.addEventListener('cartsync:load', () => fn(window.cartsync), { once: true });
  }

  async function token(user, ttl) {
    const r = await fetch(`/demo-token?user=${encodeURIComponent(user)}${ttl ? `&ttl=${ttl}` : ''}`);
    if (!r.ok) throw new Error(`no token for ${user}`);
    return (await r.json()).token;
  }

  // The session's renewal: a storefront hands the cart a fresh token
  // whenever its own session refreshes, before the last one expires; here,
  // at 80% of the token's life (2 s before its end, for short ones).
  // data-token-ttl on #demo-login sets that life (a Go duration such as
  // "30s"; the demo backend's 10 minutes if unset). "Expire soon" is not
  // renewed: it shows what the cart does when a token expires.
  let renewAt = 0;
  function lifeOf(ttl) {
    const m = /^(\d+)(ms|s|m)$/.exec(ttl || '');
    return m ? Number(m[1]) * { ms: 1, s: 1e3, m: 6e4 }[m[2]] : 10 * 6e4;
  }
  function renewIfDue() {
    if (!state.user || !renewAt || Date.now() < renewAt || document.visibilityState !== 'visible') return;
    if (localStorage.getItem('demoUser') !== state.user) {
      sessionChanged(); // logged out (or in as someone else) in another tab
      return;
    }
    login(state.user, state.policy).catch((e) => {
      console.warn('demo session renewal:', e);
      renewAt = Date.now() + 5000; // try again soon
    });
  }

  // The session is the browser's (localStorage): another tab logged out, or
  // this page came back from the back/forward cache after a change. The
  // cart follows a logout by itself; the page shows who is signed in now.
  function sessionChanged() {
    const user = localStorage.getItem('demoUser') || '';
    if (user === state.user) return;
    ended++;
    state.user = user;
    state.policy = localStorage.getItem('demoPolicy') || 'merge';
    renewAt = 0;
    render();
    if (user) login(user, state.policy).catch((e) => console.warn('demo login:', e));
  }

  // Counts the session's ends (logouts, here or in another tab): a login
  // whose token comes back after one is dropped, so that it cannot undo it.
  let ended = 0;

  async function login(user, policy, ttl) {
    const renew = !ttl;
    ttl = ttl || root.dataset.tokenTtl || '';
    renewAt = 0;
    const gen = ended;
    const t = await token(user, ttl);
    if (gen !== ended) return;
    // The policy first: the other tabs act on the user's key (storage
    // events), and must read the policy this tab chose, not the last one.
    localStorage.setItem('demoPolicy', policy);
    localStorage.setItem('demoUser', user);
    state.user = user;
    state.policy = policy;
    // A token's expiry is in whole seconds: up to one less than asked.
    if (renew) renewAt = Date.now() + Math.min(lifeOf(ttl) * 0.8, lifeOf(ttl) - 2000);
    render();
    withCartsync((c) => c.login(t, { policy }).catch((e) => console.warn('cartsync login:', e)));
  }

  function logout() {
    ended++;
    renewAt = 0;
    localStorage.removeItem('demoUser');
    localStorage.removeItem('demoPolicy');
    state.user = '';
    render();
    withCartsync((c) => c.logout().catch((e) => console.warn('cartsync logout:', e)));
  }

  function render() {
    root.replaceChildren();
    root.className = 'demo-login';
    if (state.user) {
      root.append(
        el('span', { class: 'who' }, `Signed in as ${state.user}`),
        el('button', { type: 'button', onclick: () => login(state.user, state.policy, '5s'), title: 'Sign in again with a token that expires in 5 seconds' }, 'Expire soon'),
        el('button', { type: 'button', onclick: logout }, 'Log out'),
      );
      return;
    }
    const userSel = el('select', { 'aria-label': 'Demo user' }, ...users.map((u) => el('option', { value: u }, u)));
    const policySel = el('select', { 'aria-label': 'What to do with this device\'s cart' },
      ...policies.map(([v, label]) => el('option', { value: v }, label)));
    root.append(
      userSel, policySel,
      el('button', { type: 'button', onclick: () => login(userSel.value, policySel.value) }, 'Log in'),
    );
  }

  render();
  // The storefront's session survives reloads: log the cart in again.
  if (state.user) login(state.user, state.policy);
  // Timers are slowed in a hidden tab: look again when it is shown.
  setInterval(renewIfDue, 1000);
  document.addEventListener('visibilitychange', renewIfDue);
  window.addEventListener('storage', (e) => { if (e.key === 'demoUser' || e.key === null) sessionChanged(); });
  window.addEventListener('pageshow', (e) => { if (e.persisted) sessionChanged(); });
  withCartsync((c) => c.on('merge', (m) => {
    const log = document.getElementById('event-log');
    if (!log) return;
    const li = document.createElement('li');
    li.textContent = `${new Date().toLocaleTimeString()}  merge: ${m.status}${m.items ? `, ${m.items} item(s) from this device` : ''}`;
    log.prepend(li);
  }));
})();
