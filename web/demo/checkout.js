// Demo checkout: the storefront decides what checkout means. This one lists
// the lines of cartsync.cart() and, on "Place order", clears the cart.
'use strict';

function withCartsync(fn) {
  if (window.cartsync) fn(window.cartsync);
  else window.addEventListener('cartsync:load', () => fn(window.cartsync), { once: true });
}

// money formats minor units in their currency (EUR 1999 → €19.99).
function money(minor, currency) {
  if (!currency) return String(minor);
  const fmt = new Intl.NumberFormat(undefined, { style: 'currency', currency });
  const digits = fmt.resolvedOptions().maximumFractionDigits;
  return fmt.format(minor / 10 ** digits);
}

withCartsync((cartsync) => {
  const state = document.getElementById('checkout-state');
  const table = document.getElementById('lines');
  const body = table.tBodies[0];
  const foot = table.tFoot;
  const place = document.getElementById('place-order');
  let placed = false;

  function cell(row, text, className) {
    const td = row.insertCell();
    td.textContent = text;
    if (className) td.className = className;
    return td;
  }

  function render(cart) {
    body.replaceChildren();
    foot.replaceChildren();
    if (cart.lines.length === 0) {
      table.hidden = true;
      place.hidden = true;
      if (!placed) state.textContent = 'Your cart is empty.';
      return;
    }
    placed = false;
    const totals = new Map(); // currency → minor units
    for (const line of cart.lines) {
      const d = line.details || {};
      const row = body.insertRow();
      const options = Object.entries(line.options || {}).map(([k, v]) => `${k}: ${v}`).join(', ');
      const item = cell(row, d.name || line.sku);
      if (options) {
        const small = document.createElement('small');
        small.textContent = options;
        item.append(document.createElement('br'), small);
      }
      cell(row, String(line.quantity), 'num');
      const priced = Number.isFinite(d.price) && d.currency;
      cell(row, priced ? money(d.price, d.currency) : '–', 'num');
      cell(row, priced ? money(d.price * line.quantity, d.currency) : '–', 'num');
      if (priced) totals.set(d.currency, (totals.get(d.currency) || 0) + d.price * line.quantity);
    }
    for (const [currency, total] of totals) {
      const row = foot.insertRow();
      const label = row.insertCell();
      label.colSpan = 3;
      label.textContent = `Total (${currency})`;
      cell(row, money(total, currency), 'num');
    }
    table.hidden = false;
    place.hidden = false;
    state.textContent = `${cart.items} item(s)${cart.synced ? '' : ` · ${cart.pending} edit(s) not yet synced`}`;
  }

  function fail(err) {
    state.textContent = `Could not read the cart (${err.code || 'error'}): ${err.message}`;
  }

  cartsync.cart().then(render, fail);
  cartsync.on('change', render); // another tab or device edited the cart

  place.addEventListener('click', () => {
    place.setAttribute('aria-busy', 'true');
    cartsync.clear().then(() => {
      placed = true;
      state.textContent = 'Thank you! (Demo: nothing was charged, and the cart was emptied.)';
      table.hidden = true;
      place.hidden = true;
    }, fail).finally(() => place.removeAttribute('aria-busy'));
  });
});
