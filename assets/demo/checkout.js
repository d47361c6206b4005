// Demo checkout: the storefront decides what checkout means. With
// ?checkout=<id> (the checkout the cart created when the shopper confirmed
// it) this page redeems it through the storefront's backend, which reads
// it from the cart server, and places the order there. Without one it
// lists the lines of cartsync.cart() and, on "Place order", clears the cart.
'use strict';

(function () {
  const checkoutId = new URLSearchParams(window.location.search).get('checkout');
  const note = document.getElementById('checkout-note');
  const state = document.getElementById('checkout-state');
  const table = document.getElementById('lines');
  const body = table.tBodies[0];
  const foot = table.tFoot;
  const place = document.getElementById('place-order');
  const cancel = document.getElementById('cancel-checkout');
  const placed = document.getElementById('placed');

  function cell(row, text, className) {
    const td = row.insertCell();
    td.textContent = text;
    if (className) td.className = className;
    return td;
  }

  function optionText(options) {
    return Object.entries(options || {}).map(([k, v]) => `${k}: ${v}`).join(', ');
  }

  // renderLines draws rows of {name, options, quantity, unit, total,
  // currency} (unit and total in minor units, or null when unpriced) and
  // the totals per currency.
  function renderLines(rows, totals) {
    body.replaceChildren();
    foot.replaceChildren();
    for (const r of rows) {
      const row = body.insertRow();
      const item = cell(row, r.name);
      const options = optionText(r.options);
      if (options) {
        const small = document.createElement('small');
        small.textContent = options;
        item.append(document.createElement('br'), small);
      }
      cell(row, String(r.quantity), 'num');
      cell(row, r.unit == null ? '–' : money(r.unit, r.currency), 'num');
      cell(row, r.total == null ? '–' : money(r.total, r.currency), 'num');
    }
    for (const [currency, total] of Object.entries(totals)) {
      const row = foot.insertRow();
      const label = row.insertCell();
      label.colSpan = 3;
      label.textContent = `Total (${currency})`;
      cell(row, money(total, currency), 'num');
    }
    table.hidden = rows.length === 0;
  }

  // busy marks both buttons while a request is on its way.
  function busy(on) {
    for (const b of [place, cancel]) {
      b.disabled = on;
      if (on) b.setAttribute('aria-busy', 'true');
      else b.removeAttribute('aria-busy');
    }
  }

  // ---- with a checkout id: the server's snapshot ------------------------

  const base = `/demo/checkout/${encodeURIComponent(checkoutId || '')}`;

  function showCheckout(co) {
    renderLines(co.lines.map((l) => ({
      name: l.name || l.sku, options: l.options, quantity: l.quantity,
      unit: l.unit_price, total: l.total, currency: l.currency,
    })), co.totals || {});
    const items = co.lines.reduce((n, l) => n + l.quantity, 0);
    place.hidden = cancel.hidden = co.status !== 'open';
    switch (co.status) {
      case 'open': {
        const until = new Date(co.expires_at).toLocaleTimeString([], { hour: '2-digit', minute: '2-digit' });
        state.textContent = `${items} item(s), as you confirmed them. This checkout is open until ${until}.`;
        break;
      }
      case 'completed':
        showPlaced({ order: co.order, checkout: co });
        break;
      case 'cancelled':
        state.textContent = 'This checkout was cancelled. Your cart is as it was: open it to check out again.';
        break;
      case 'expired':
        state.textContent = 'This checkout expired. Your cart is as it was: open it to check out again.';
        break;
      default:
        state.textContent = `This checkout is ${co.status}.`;
    }
  }

  // showPlaced shows the placed order and what the cart still holds: what
  // was added during the checkout (the order took out only what it had).
  function showPlaced(p) {
    place.hidden = cancel.hidden = true;
    state.textContent = `Order ${p.order} placed.`;
    document.getElementById('placed-title').textContent = `Thank you! Order ${p.order} placed`;
    document.getElementById('placed-detail').textContent = 'Demo: nothing was charged. The cart server took exactly '
      + 'these items out of your cart.';
    const list = document.getElementById('placed-remaining');
    list.replaceChildren();
    if (p.cart) {
      const lines = p.cart.lines || [];
      if (lines.length === 0) {
        document.getElementById('placed-detail').textContent += ' Your cart is now empty.';
      } else {
        document.getElementById('placed-detail').textContent += ' Your cart still holds what was added during checkout:';
        for (const l of lines) {
          const li = document.createElement('li');
          const options = optionText(l.options);
          li.textContent = `${(l.details && l.details.name) || l.sku}${options ? ` (${options})` : ''} × ${l.quantity}`;
          list.append(li);
        }
      }
    }
    placed.hidden = false;
  }

  async function redeem() {
    try {
      showCheckout(await demoFetch(base));
    } catch (err) {
      state.textContent = err.status === 404
        ? 'There is no such checkout (or its cart expired). Open the cart and check out again.'
        : `Could not load the checkout: ${err.message}`;
    }
  }

  function redeemMode() {
    place.addEventListener('click', async () => {
      busy(true);
      try {
        showPlaced(await demoFetch(`${base}/place`, { method: 'POST' }));
        placed.focus();
      } catch (err) {
        state.textContent = `Could not place the order: ${err.message}`;
        if (err.status === 409) redeem(); // ended meanwhile: show how
      } finally {
        busy(false);
      }
    });
    cancel.addEventListener('click', async () => {
      busy(true);
      try {
        showCheckout(await demoFetch(`${base}/cancel`, { method: 'POST' }));
      } catch (err) {
        state.textContent = `Could not cancel the checkout: ${err.message}`;
      } finally {
        busy(false);
      }
    });
    redeem();
  }

  // ---- without one: the cart as this browser has it ---------------------

  function cartMode(cartsync) {
    let done = false;
    note.textContent = 'cartsync hands the cart over; the storefront decides what checkout means (prices, '
      + 'stock, shipping, payment). This page came without a checkout, so it only lists the lines it got '
      + 'from cartsync.cart(): their prices are a display snapshot.';

    function render(cart) {
      if (cart.lines.length === 0) {
        renderLines([], {});
        place.hidden = true;
        if (!done) state.textContent = 'Your cart is empty.';
        return;
      }
      done = false;
      const totals = {};
      renderLines(cart.lines.map((line) => {
        const d = line.details || {};
        const priced = Number.isFinite(d.price) && d.currency;
        if (priced) totals[d.currency] = (totals[d.currency] || 0) + d.price * line.quantity;
        return {
          name: d.name || line.sku, options: line.options, quantity: line.quantity,
          unit: priced ? d.price : null, total: priced ? d.price * line.quantity : null, currency: d.currency,
        };
      }), totals);
      place.hidden = false;
      state.textContent = `${cart.items} item(s)${cart.synced ? '' : ` · ${cart.pending} edit(s) not yet synced`}`;
    }

    function fail(err) {
      state.textContent = `Could not read the cart (${err.code || 'error'}): ${err.message}`;
    }

    cartsync.cart().then(render, fail);
    cartsync.on('change', render); // another tab or device edited the cart

    place.addEventListener('click', () => {
      busy(true);
      cartsync.clear().then(() => {
        done = true;
        state.textContent = 'Thank you! (Demo: nothing was charged, and the cart was emptied.)';
        table.hidden = true;
        place.hidden = true;
      }, fail).finally(() => busy(false));
    });
  }

  if (checkoutId) redeemMode();
  else {
    state.textContent = 'Loading the cart…';
    withCartsync(cartMode);
  }
})();
