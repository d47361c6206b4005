// Demo webhooks page: the deliveries the storefront's backend received
// (GET /demo/webhooks.json), newest first, refreshed every 2 seconds.
'use strict';

(function () {
  const table = document.getElementById('webhooks');
  const tbody = table.tBodies[0];
  const state = document.getElementById('webhooks-state');
  const auto = document.getElementById('auto-refresh');
  const now = document.getElementById('refresh');
  const open = new Set(); // keys of the deliveries whose details are open
  let last = '';
  let timer = 0;

  function key(ev) {
    return `${ev.id}|${ev.received_at}`;
  }

  // shortID keeps the start of a cart id (g_9ad3d5aa62f2…): the whole id
  // is in the event's details.
  function shortID(id) {
    return id.length > 14 ? `${id.slice(0, 14)}…` : id;
  }

  function cell(row, content, className) {
    const td = row.insertCell();
    td.append(content);
    if (className) td.className = className;
    return td;
  }

  // details shows the event's data in a disclosure, or the reason it was
  // refused.
  function details(ev) {
    const d = document.createElement('details');
    d.open = open.has(key(ev));
    d.addEventListener('toggle', () => (d.open ? open.add(key(ev)) : open.delete(key(ev))));
    const s = document.createElement('summary');
    s.textContent = ev.type || '(no type)';
    const pre = document.createElement('pre');
    const shown = { id: ev.id, cart_id: ev.cart_id, timestamp: ev.timestamp, duplicate: ev.duplicate || undefined, data: ev.data };
    pre.textContent = ev.error ? `${ev.error}\n${JSON.stringify(shown, null, 2)}` : JSON.stringify(shown, null, 2);
    d.append(s, pre);
    return d;
  }

  function verified(ev) {
    const span = document.createElement('span');
    span.className = ev.verified ? 'verified yes' : 'verified no';
    span.textContent = ev.verified ? '✓ ' : '✗ ';
    span.setAttribute('aria-hidden', 'true');
    const text = document.createElement('span');
    text.textContent = ev.verified ? (ev.duplicate ? 'verified (again)' : 'verified') : 'refused';
    const wrap = document.createElement('span');
    wrap.append(span, text);
    return wrap;
  }

  function render(list) {
    const events = list.events || [];
    const sig = JSON.stringify(events.map(key));
    const secret = list.verifying ? '' : ' The demo has no webhook secret: every delivery is refused.';
    const text = `${events.length} delivery(ies) received.${secret}`;
    if (state.textContent !== text) state.textContent = text; // a live region: only news
    if (sig === last) return; // nothing new: keep the table (and any open details) as it is
    last = sig;
    tbody.replaceChildren();
    for (const ev of events) {
      const row = tbody.insertRow();
      const at = document.createElement('time');
      at.dateTime = ev.received_at;
      at.textContent = new Date(ev.received_at).toLocaleTimeString();
      cell(row, at, 'nowrap');
      const what = cell(row, details(ev));
      const cart = document.createElement('small');
      cart.className = 'cart-id';
      cart.textContent = `cart ${ev.cart_id ? shortID(ev.cart_id) : '–'}`;
      if (ev.cart_id) cart.title = ev.cart_id;
      what.append(cart);
      cell(row, verified(ev), 'nowrap');
    }
    table.hidden = events.length === 0;
  }

  async function refresh() {
    try {
      render(await demoFetch('/demo/webhooks.json'));
    } catch (err) {
      state.textContent = `Could not read the deliveries: ${err.message}`;
    }
  }

  function schedule() {
    clearInterval(timer);
    if (auto.checked) timer = setInterval(refresh, 2000);
  }

  auto.addEventListener('change', schedule);
  now.addEventListener('click', refresh);
  refresh();
  schedule();
})();
