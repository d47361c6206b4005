// Demo storefront: shows what the page can learn from window.cartsync, and
// the catalog's prices and stock from the storefront's backend. The
// add-to-cart buttons need no script at all (data-cartsync-add).
'use strict';

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
  cartsync.on('checkout', (c) => log(`checkout: ${c.cart.items} item(s), going to the checkout page`));

  // Feedback on the data-cartsync-add buttons (optional: they work without it).
  document.addEventListener('cartsync:error', (e) => log(`could not add ${e.detail.sku}: ${e.detail.error.message}`));
});

// The catalog as the storefront's backend has it (the admin page changes
// it): prices, what is left, what is withdrawn. Without the backend the
// page keeps what its HTML says.
async function showCatalog() {
  let items;
  try {
    items = (await demoFetch('/demo/catalog')).items;
  } catch (e) {
    return;
  }
  for (const it of items) {
    const button = document.querySelector(`button[data-cartsync-add="${CSS.escape(it.sku)}"]`);
    const product = button && button.closest('.product');
    if (!product) continue;
    const perPair = Number(button.getAttribute('data-cartsync-quantity') || 1) > 1;
    product.querySelector('.price').textContent = `${money(it.price, it.currency)}${perPair ? ' a pair' : ''}`;
    button.setAttribute('data-cartsync-price', String(it.price));
    let note = product.querySelector('.stock');
    if (!note) {
      note = document.createElement('p');
      note.className = 'stock';
      product.querySelector('.price').after(note);
    }
    const left = it.stock === undefined || it.stock === null ? Infinity : it.stock;
    const soldOut = !it.sellable || left === 0;
    note.textContent = !it.sellable ? 'No longer available'
      : left === 0 ? 'Sold out'
      : left <= 5 ? `Only ${left} left`
      : it.max_per_order ? `At most ${it.max_per_order} per order` : '';
    note.dataset.level = soldOut ? 'out' : left <= 5 ? 'low' : '';
    button.disabled = soldOut;
  }
}

showCatalog();
// Back from the admin page in another tab: show its changes.
document.addEventListener('visibilitychange', () => {
  if (document.visibilityState === 'visible') showCatalog();
});
