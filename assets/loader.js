/* cartsync loader: inline it in the page instead of the embed.js tag (docs/embedding.md) */
(function (w, d, src, attrs) {
  if (w.cartsync) return;
  var q = [], tries = 0, stub = { stub: 1, q: q };
  stub.ready = new Promise(function (resolve, reject) { stub.settle = [resolve, reject]; });
  'add setQuantity remove clear cart open close login logout theme on off mount destroy'.split(' ').forEach(function (m) {
    stub[m] = function () {
      var a = arguments;
      if (stub.real) return stub.real[m].apply(null, a);
      if (m === 'on') { q.push([m, a]); return function () { stub.off(a[0], a[1]); }; }
      if (/^(off|mount|destroy)$/.test(m)) { q.push([m, a]); return; }
      return new Promise(function (resolve, reject) {
        var call = [m, a, resolve, reject];
        q.push(call);
        setTimeout(function () {
          var i = q.indexOf(call), e;
          if (i < 0) return;
          q.splice(i, 1);
          e = new Error('cartsync: ' + m + ' not run: embed.js did not load within 60 s');
          e.name = 'CartsyncError';
          e.code = tries ? 'unreachable' : 'not_ready';
          reject(e);
        }, 60000);
      });
    };
  });
  w.cartsync = stub;
  function load() {
    var s = d.createElement('script');
    s.async = true;
    s.src = src;
    for (var k in attrs) s.setAttribute(k, attrs[k]);
    s.onerror = function () {
      s.remove();
      if (!tries++) console.error('cartsync: cannot load ' + src + ' (the cart server is unreachable); cart calls are queued and run once it loads');
      setTimeout(load, Math.min(5000 * tries, 60000));
    };
    d.head.appendChild(s);
  }
  // After the page's load event (which then does not wait for the cart), or 1 s from here if that is sooner.
  if (d.readyState === 'complete') load();
  else {
    var t = setTimeout(function () { w.removeEventListener('load', go); load(); }, 1000);
    var go = function () { clearTimeout(t); load(); };
    w.addEventListener('load', go, { once: true });
  }
})(window, document, 'https://CART-SERVER/embed.js', { 'data-mount': '#cart' });
