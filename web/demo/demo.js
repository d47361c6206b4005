// Demo storefront: shows what the page can learn from window.cartsync.
// The add-to-cart buttons need no script at all (data-cartsync-add).
'use strict';

// embed.js loads async: window.cartsync may not exist yet.
function withCartsync(fn) {
  if (window.cartsync) fn(window.cartsync);
  else window.addEventListener('cartsync:load', () => fn(window.cartsync), { once: true });
}

withCartsync((cartsync) => {
  const syncEl = document.getElementById('sync-status');
  const itemsEl = document.getElementById('item-count');
  const pendingEl = document.getElementById('pending-count');
  const logEl = document.getElementById('event-log');
  const labels = { offline: 'Offline: edits are kept and sent later', connecting: 'Connecting…', syncing: 'Syncing…', synced: 'Synced' };

  function log(text) {
    const li = document.createElement('li');
    li.textContent = `${new Date().toLocaleTimeString()}  ${text}`;
    logEl.prepend(li);
    while (logEl.children.length > 6) logEl.lastChild.remove();
  }

  function showCart(cart) {
    itemsEl.textContent = String(cart.items);
    pendingEl.textContent = String(cart.pending);
  }

  cartsync.on('ready', (cart) => {
    showCart(cart);
    log(`ready: ${cart.items} item(s)`);
  });
  cartsync.on('change', (cart) => {
    showCart(cart);
    log(`change: ${cart.items} item(s), version ${cart.version}`);
  });
  cartsync.on('sync', (s) => {
    syncEl.textContent = labels[s.status] || s.status;
    syncEl.dataset.status = s.status;
    pendingEl.textContent = String(s.pending);
    log(`sync: ${s.status}${s.pending ? `, ${s.pending} waiting` : ''}`);
  });
  cartsync.on('checkout', (c) => log(`checkout: ${c.cart.items} item(s), going to /checkout.html`));

  // Feedback on the data-cartsync-add buttons (optional: they work without it).
  document.addEventListener('cartsync:error', (e) => log(`could not add ${e.detail.sku}: ${e.detail.error.message}`));
});
