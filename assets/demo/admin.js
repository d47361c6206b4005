// Demo catalog admin: lists the catalog and changes one item's price, stock
// or sellable through the storefront's backend (/demo/admin/items), which
// uploads it to the cart server; the cart server tells open carts.
'use strict';

(function () {
  const form = document.getElementById('item-form');
  const sku = document.getElementById('item-sku');
  const price = document.getElementById('item-price');
  const stock = document.getElementById('item-stock');
  const sellable = document.getElementById('item-sellable');
  const currencyEl = document.getElementById('item-currency');
  const save = document.getElementById('item-save');
  const formState = document.getElementById('item-state');
  const tbody = document.getElementById('catalog').tBodies[0];
  const listState = document.getElementById('catalog-state');
  let items = [];

  // digits is how many decimal digits a currency's minor unit has (EUR: 2),
  // as the cart server counts them (site.js).
  const digits = minorDigits;

  function selected() {
    return items.find((it) => it.sku === sku.value);
  }

  // fill puts the selected item's values in the form.
  function fill() {
    const it = selected();
    if (!it) return;
    const d = digits(it.currency);
    currencyEl.textContent = it.currency;
    price.step = String(1 / 10 ** d);
    price.min = price.step;
    price.value = (it.price / 10 ** d).toFixed(d);
    stock.value = it.stock == null ? '' : String(it.stock);
    sellable.checked = it.sellable;
    for (const f of [price, stock]) f.removeAttribute('aria-invalid');
  }

  function render() {
    tbody.replaceChildren();
    for (const it of items) {
      const row = tbody.insertRow();
      const cells = [
        [it.sku], [it.name], [money(it.price, it.currency), 'num'],
        [it.stock == null ? 'no limit' : String(it.stock), 'num'],
        [it.max_per_order == null ? '–' : String(it.max_per_order), 'num'],
        [it.sellable ? 'yes' : 'no'],
      ];
      for (const [text, cls] of cells) {
        const td = row.insertCell();
        td.textContent = text;
        if (cls) td.className = cls;
      }
    }
    const keep = sku.value;
    sku.replaceChildren(...items.map((it) => new Option(`${it.name} (${it.sku})`, it.sku)));
    if (items.some((it) => it.sku === keep)) sku.value = keep;
    fill();
  }

  async function load() {
    try {
      items = (await demoFetch('/demo/admin/items')).items;
      listState.textContent = `${items.length} item(s).`;
      render();
    } catch (err) {
      listState.textContent = `Could not read the catalog: ${err.message}`;
    }
  }

  // invalid marks a field and says why.
  function invalid(field, message) {
    field.setAttribute('aria-invalid', 'true');
    field.focus();
    formState.textContent = message;
  }

  form.addEventListener('submit', async (e) => {
    e.preventDefault();
    const it = selected();
    if (!it) return;
    for (const f of [price, stock]) f.removeAttribute('aria-invalid');
    const minor = Math.round(Number(price.value) * 10 ** digits(it.currency));
    if (price.value.trim() === '' || !Number.isFinite(minor) || minor <= 0) {
      return invalid(price, 'The price must be more than zero.');
    }
    const s = stock.value.trim();
    if (s !== '' && !/^\d+$/.test(s)) return invalid(stock, 'The stock must be a whole number, or empty for no limit.');
    const change = { sku: it.sku, price: minor, stock: s === '' ? null : Number(s), sellable: sellable.checked };
    save.disabled = true;
    save.setAttribute('aria-busy', 'true');
    formState.textContent = 'Saving…';
    try {
      const got = (await demoFetch('/demo/admin/items', {
        method: 'POST', headers: { 'Content-Type': 'application/json' }, body: JSON.stringify(change),
      })).item;
      const left = got.stock == null ? 'no stock limit' : `${got.stock} in stock`;
      formState.textContent = `Saved: ${got.name} at ${money(got.price, got.currency)}, ${left}, `
        + `${got.sellable ? 'sellable' : 'not sellable'}. Open carts that hold it are told now.`;
      await load();
    } catch (err) {
      formState.textContent = `Not saved: ${err.message}`;
    } finally {
      save.disabled = false;
      save.removeAttribute('aria-busy');
    }
  });
  sku.addEventListener('change', () => {
    formState.textContent = '';
    fill();
  });

  load();
})();
