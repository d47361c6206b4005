// Demo storefront: what every page shares. Loaded first (defer keeps the
// order), so the page scripts after it can use withCartsync and money.
'use strict';

// embed.js loads async: window.cartsync may not exist yet.
function withCartsync(fn) {
  if (window.cartsync) fn(window.cartsync);
  else window.addEventListener('cartsync:load', () => fn(window.cartsync), { once: true });
}

// minorDigits is how many decimal digits a currency's minor unit has, as
// ISO 4217 and the cart server count them (2 unless listed). The browser's
// Intl does not always agree (it shows HUF and IQD without decimals), so
// the amounts are not read through it.
function minorDigits(currency) {
  if (['BIF', 'CLP', 'DJF', 'GNF', 'ISK', 'JPY', 'KMF', 'KRW', 'PYG', 'RWF', 'UGX', 'VND', 'VUV', 'XAF', 'XOF', 'XPF'].includes(currency)) return 0;
  if (['BHD', 'IQD', 'JOD', 'KWD', 'LYD', 'OMR', 'TND'].includes(currency)) return 3;
  return 2;
}

// money formats minor units in their currency (EUR 1999 → €19.99).
function money(minor, currency) {
  if (!currency) return String(minor);
  const digits = minorDigits(currency);
  const fmt = new Intl.NumberFormat(undefined, { style: 'currency', currency, minimumFractionDigits: digits, maximumFractionDigits: digits });
  return fmt.format(minor / 10 ** digits);
}

// demoFetch calls a route of the storefront's backend on this origin and
// returns its JSON; a failure throws an Error with the backend's message,
// code and the HTTP status.
async function demoFetch(url, options) {
  const r = await fetch(url, { ...options, headers: { Accept: 'application/json', ...(options && options.headers) } });
  const body = r.status === 204 ? null : await r.json().catch(() => null);
  if (!r.ok) {
    const e = (body && body.error) || {};
    const err = new Error(e.message || `${r.status} ${r.statusText}`);
    err.code = e.code || String(r.status);
    err.status = r.status;
    throw err;
  }
  return body;
}

// Checkout: when the shopper confirms the cart, the widget creates a
// checkout on the cart server and says which; the checkout page redeems it
// through this storefront's backend. The pages leave data-checkout-url out
// and navigate here, with the checkout's id in the URL.
withCartsync((cartsync) => {
  cartsync.on('checkout', (c) => {
    const id = c && (c.checkout_id || (c.checkout && c.checkout.id));
    window.location.assign(id ? `/checkout.html?checkout=${encodeURIComponent(id)}` : '/checkout.html');
  });
});
