/*
 * cartsync embed: puts the cart widget in a storefront page and exposes
 * window.cartsync. Usage:
 *
 *   <div id="cart"></div>
 *   <script async src="https://CART-SERVER/embed.js" data-mount="#cart"></script>
 *
 * or, in a single-page app, cartsync.mount('#cart') and cartsync.destroy().
 * The widget is the cart server's page "/" in an iframe; the two talk only
 * through postMessage, as docs/embedding.md ("Bridge protocol") specifies.
 * Until the widget is ready, embed.js draws the cart button itself (the
 * shell, with the count this device last saw), and it creates the iframe,
 * which starts the widget's WebAssembly, only once the page has loaded and
 * the browser is idle, or at once when the shopper or the page needs it.
 * Plain ES2020, no dependencies, no build step.
 */
(() => {
  'use strict';

  // Included twice: the first copy owns the page.
  if (window.cartsync && window.cartsync.protocol === 1) return;

  const PROTOCOL = 1;
  const REPLY_TIMEOUT = 15000; // a request sent to the widget must be answered within this
  const READY_TIMEOUT = 60000; // a request made before the widget is ready waits at most this
  const UNREACHABLE_WAIT = 10000; // ... or this, once the cart server is known to be unreachable
  const PROBE_AFTER = [1500, 10000]; // after the frame's load event, and after creating it: no ready yet? probe
  const PROBE_AGAIN = 5000; // while unreachable: probe this often
  const PROBE_CONFIRM = 2000; // after a 404 from /embed.json: ask once more this much later before giving up
  const EVENTS = ['ready', 'change', 'sync', 'merge', 'rejected', 'reduced', 'expired', 'checkout', 'open', 'close', 'error'];
  const THEME = ['accent', 'background', 'foreground', 'font', 'radius'];
  const IDLE_TIMEOUT = 3000; // after the page's load event, the frame starts when idle, or after this
  const NO_IDLE_WAIT = 500; // ... or after this where requestIdleCallback does not exist (Safari)
  const SWAP_AFTER_READY = 500; // the shell gives way to the frame at its first size, or this after ready
  const STORE_KEY = 'cartsync:shell:'; // + the cart server's origin: {items, w, h} last reported
  const WIDGET_COLORS = { accent: '#1f5fbf', background: '#ffffff', foreground: '#1b1f24' }; // web/widget.css
  const Z = 2147483000;

  const script = document.currentScript || document.querySelector('script[src*="/embed."][data-mount]');
  const attr = (name) => (script ? script.getAttribute(name) : null);

  let serverOrigin = '';
  let broken = null; // {code, message} once the embed cannot work at all
  let frame = null;
  let mountEl = null;
  let box = null; // placeholder in the mount, the closed widget's size; null when not mounted
  let shell = null; // the cart button embed.js draws until the widget shows its own
  let shown = false; // the frame has replaced the shell
  let idleStart = null; // cancels the wait for the page's load and the browser's idle time
  let known = {}; // what the widget last reported, as kept in localStorage (recall, remember)
  let backdrop = null;
  let checkoutURL = null; // data-checkout-url, or mount()'s checkoutUrl
  let openOnAdd = false;
  let signedOut = false; // data-signed-in="false", or mount()'s signedIn: false
  let generation = 0; // of mounts: a probe answered after destroy() is dropped
  const timers = new Set(); // every timer of the mounted frame, cleared by destroy()
  let stopProbe = null; // ends a probe under way
  let unreachable = null; // the error while the cart server cannot be reached

  let ready = false;
  let nextId = 1;
  const queue = []; // requests waiting for the widget's ready event, in call order
  const inflight = new Map(); // id -> request sent to the widget and not yet answered
  const handlers = Object.fromEntries(EVENTS.map((e) => [e, new Set()]));
  // Replayed to late subscribers: ready (the mounted widget's current cart),
  // sync (its status), error (while the embed cannot work: why).
  const latest = {};

  // What the page gave theme(), sent again at every ready, since a new
  // frame (a mount) or a reloaded widget starts without it: the overrides
  // by key, and the messages by the language they were given for (the
  // language subtag of the locale then, '' for the browser's), in the
  // order they were last given.
  let themeOverrides = {};
  const themeMessages = new Map();
  let themeQueue = Promise.resolve(); // theme() calls run one after another

  let open = false;
  // The closed frame's size. Until the widget reports it: the size of its
  // round button, never zero (a browser may not render a cross-origin frame
  // that has no area).
  let closedW = 64;
  let closedH = 64;
  let panelW = 420; // the open panel's width, unless the widget asks for another

  let resolveReady;
  let rejectReady;
  const readyPromise = new Promise((resolve, reject) => {
    resolveReady = resolve;
    rejectReady = reject;
  });
  readyPromise.catch(() => {}); // a misconfigured embed is reported once, on the console

  // Every rejection and error event is a CartsyncError with a code.
  class CartsyncError extends Error {
    constructor(code, message) {
      super(message || code);
      this.name = 'CartsyncError';
      this.code = code;
    }
  }

  const error = (code, message) => new CartsyncError(code, message);

  function later(fn, ms) {
    const t = setTimeout(() => {
      timers.delete(t);
      fn();
    }, ms);
    timers.add(t);
    return t;
  }

  function report(err) {
    if (typeof window.reportError === 'function') window.reportError(err);
    else setTimeout(() => { throw err; });
  }

  // fail makes every pending and future request reject with code.
  function fail(code, message) {
    if (broken) return;
    broken = { code, message: 'cartsync: ' + message };
    console.error(broken.message);
    for (const req of queue.splice(0)) settle(req, error(code, broken.message));
    for (const req of inflight.values()) settle(req, error(code, broken.message));
    inflight.clear();
    rejectReady(error(code, broken.message));
    // Also for handlers subscribed later: a bad data-mount fails before
    // the page's cartsync:load listener has run.
    latest.error = error(code, broken.message);
    emit('error', latest.error);
  }

  function settle(req, err, result) {
    clearTimeout(req.timer);
    if (err) req.reject(err);
    else req.resolve(result);
  }

  // ---- requests -----------------------------------------------------------

  function request(method, args) {
    return new Promise((resolve, reject) => {
      if (broken) return reject(error(broken.code, broken.message));
      const req = { id: nextId++, method, args, resolve, reject, timer: 0, deadline: Date.now() + READY_TIMEOUT };
      if (ready) return send(req);
      if (box && !frame) start(); // a call needs the widget: no waiting for idle time
      if (unreachable) req.deadline = Math.min(req.deadline, Date.now() + UNREACHABLE_WAIT);
      queue.push(req);
      arm(req);
    });
  }

  // arm makes a queued request reject at its deadline.
  function arm(req) {
    clearTimeout(req.timer);
    req.timer = setTimeout(() => {
      const i = queue.indexOf(req);
      if (i >= 0) queue.splice(i, 1);
      if (unreachable) {
        req.reject(error('unreachable', `cartsync: the cart server ${serverOrigin} cannot be reached (${req.method})`));
      } else if (!box) {
        req.reject(error('not_mounted', `cartsync: no cart widget is mounted: give the embed.js script data-mount, or call cartsync.mount() (${req.method})`));
      } else {
        req.reject(error('not_ready', `cartsync: the cart widget was not ready within ${READY_TIMEOUT / 1000} s (${req.method})`));
      }
    }, Math.max(0, req.deadline - Date.now()));
  }

  function send(req) {
    clearTimeout(req.timer);
    const target = frame && frame.contentWindow;
    if (!target) return settle(req, error('not_mounted', 'cartsync: the cart widget is no longer in the page'));
    try {
      target.postMessage({ cartsync: PROTOCOL, id: req.id, method: req.method, args: req.args }, serverOrigin);
    } catch (e) {
      // DataCloneError: an argument holds something postMessage cannot copy (a function, a DOM node).
      return settle(req, error('bad_request', `cartsync: cannot send ${req.method}: ${e.message}`));
    }
    inflight.set(req.id, req);
    req.timer = setTimeout(() => {
      inflight.delete(req.id);
      req.reject(error('timeout', `cartsync: no answer to ${req.method} within ${REPLY_TIMEOUT / 1000} s`));
    }, REPLY_TIMEOUT);
  }

  // Image paths are the storefront's: resolve them here, since the widget
  // would resolve "/img/x.png" against the cart server.
  function withAbsoluteImage(details) {
    if (!details || typeof details !== 'object' || typeof details.image !== 'string' || !details.image) return details;
    try {
      return { ...details, image: new URL(details.image, document.baseURI).href };
    } catch (e) {
      return details;
    }
  }

  function readTheme() {
    const style = getComputedStyle(mountEl);
    const theme = {};
    for (const k of THEME) theme[k] = style.getPropertyValue('--cartsync-' + k).trim();
    // data-locale: the language tag prices are formatted for, instead of
    // the browser's. Sent only when given, so an older widget, which knows
    // no locale key, still takes the theme.
    const locale = attr('data-locale');
    if (locale != null) theme.locale = locale;
    // data-checkout-mode: "review" (a review step before checkout) or
    // "direct"; sent only when given, as the locale.
    const checkout = attr('data-checkout-mode');
    if (checkout != null) theme.checkout = checkout;
    return theme;
  }

  // languageOf is the language subtag of a locale, as the widget matches
  // texts: "fr" for "fr-CA"; "" (the browser's language) for "".
  function languageOf(locale) {
    return String(locale).trim().split('-')[0].toLowerCase();
  }

  // withOverrides returns the overrides with those of values: a key given
  // null or undefined drops its override.
  function withOverrides(overrides, values) {
    const out = { ...overrides };
    for (const [k, v] of Object.entries(values)) {
      if (v == null) delete out[k];
      else out[k] = v;
    }
    return out;
  }

  // theme sends the mount element's theme with the page's overrides, those
  // kept and those of values, and values' messages; once the widget took
  // them, they are kept for the next ready.
  function theme(values) {
    const { messages, ...props } = values && typeof values === 'object' ? values : {};
    const run = () => {
      const overrides = withOverrides(themeOverrides, props);
      const sent = { ...(mountEl ? readTheme() : {}), ...overrides };
      // A dropped locale or checkout mode: back to the script's attribute,
      // else the widget's default (the browser's language, review).
      for (const [k, a] of [['locale', 'data-locale'], ['checkout', 'data-checkout-mode']]) {
        if (k in props && props[k] == null && sent[k] == null) sent[k] = attr(a) || '';
      }
      if (messages != null) sent.messages = messages;
      const lang = languageOf(sent.locale != null ? sent.locale : attr('data-locale') || '');
      const kept = messages != null && typeof messages === 'object' ? { ...messages } : null;
      return request('theme', [sent]).then((ok) => {
        themeOverrides = overrides;
        if (kept) {
          themeMessages.delete(lang); // last given, last sent again
          if (Object.keys(kept).length) themeMessages.set(lang, kept);
        }
        return ok;
      });
    };
    const p = themeQueue.then(run, run);
    themeQueue = p.catch(() => {});
    return p;
  }

  // sendTheme sends the theme at a ready: the mount element's, with what
  // the page gave theme() before. Messages of other languages go first,
  // each with its language as locale; then the current locale and theme.
  function sendTheme() {
    const warn = (err) => console.warn('cartsync: theme:', err.message);
    const current = { ...readTheme(), ...themeOverrides };
    const lang = languageOf(current.locale != null ? current.locale : '');
    let others = false;
    for (const [l, messages] of themeMessages) {
      if (l === lang) continue;
      others = true;
      request('theme', [{ locale: l, messages }]).catch(warn);
    }
    if (others && current.locale == null) current.locale = '';
    if (themeMessages.has(lang)) current.messages = themeMessages.get(lang);
    request('theme', [current]).catch(warn);
  }

  // ---- events -------------------------------------------------------------

  function call(handler, data) {
    try {
      handler(data);
    } catch (err) {
      report(err);
    }
  }

  function emit(event, data) {
    for (const h of [...handlers[event]]) call(h, data);
  }

  function on(event, handler) {
    if (!handlers[event]) throw new TypeError(`cartsync: unknown event "${event}" (one of ${EVENTS.join(', ')})`);
    if (typeof handler !== 'function') throw new TypeError('cartsync: the handler must be a function');
    handlers[event].add(handler);
    if (event in latest) {
      queueMicrotask(() => {
        if (handlers[event].has(handler)) call(handler, latest[event]);
      });
    }
    return () => off(event, handler);
  }

  function off(event, handler) {
    if (handlers[event]) handlers[event].delete(handler);
  }

  function onMessage(e) {
    if (!frame || e.source !== frame.contentWindow || e.origin !== serverOrigin) return;
    const d = e.data;
    if (!d || typeof d !== 'object' || d.cartsync !== PROTOCOL) return;
    if (typeof d.id === 'number') {
      const req = inflight.get(d.id);
      if (!req) return; // timed out, or sent to a previous load of the widget
      inflight.delete(d.id);
      if (d.error != null) {
        const code = String(d.error.code || 'error');
        settle(req, error(code, String(d.error.message || code)));
      } else {
        settle(req, null, d.result);
      }
      return;
    }
    switch (d.event) {
      case 'ready': return onReady(d.data);
      case 'resize': return onResize(d.data || {});
      case 'change':
        latest.ready = d.data;
        remember(countOf(d.data));
        return emit('change', d.data);
      case 'sync':
        latest.sync = d.data;
        return emit('sync', d.data);
      case 'merge': return emit('merge', d.data);
      case 'rejected': return emit('rejected', d.data);
      case 'reduced': return emit('reduced', d.data);
      case 'expired': return emit('expired', d.data || { reason: 'expired' });
      case 'checkout': return onCheckout(d.data);
    }
  }

  function onReady(cart) {
    if (unreachable) {
      if (latest.error === unreachable) delete latest.error;
      unreachable = null;
      console.info('cartsync: the cart server answers again');
    }
    // A second ready means the widget page reloaded: it never saw, or forgot,
    // the requests it had not answered. Whether they were applied is unknown.
    for (const req of inflight.values()) {
      settle(req, error('interrupted', `cartsync: the cart widget reloaded before answering ${req.method}; it may or may not have been applied`));
    }
    inflight.clear();
    ready = true;
    latest.ready = cart;
    remember(countOf(cart));
    mark('cartsync:ready');
    if (!shown) later(show, SWAP_AFTER_READY);
    sendTheme();
    for (const req of queue.splice(0)) send(req);
    resolveReady(cart);
    emit('ready', cart);
  }

  function onCheckout(data) {
    emit('checkout', data);
    const url = checkoutURL;
    if (!url) return;
    let target;
    try {
      target = new URL(url, document.baseURI);
    } catch (e) {
      return console.error('cartsync: data-checkout-url is not a URL:', url);
    }
    if (target.protocol !== 'https:' && target.protocol !== 'http:') {
      return console.error('cartsync: data-checkout-url must be an http(s) URL:', url);
    }
    // The checkout the server recorded at the reviewed version: the
    // storefront's backend redeems it by id (docs/integration.md).
    if (data && typeof data.checkout_id === 'string' && data.checkout_id) {
      target.searchParams.set('checkout', data.checkout_id);
    }
    window.location.assign(target.href);
  }

  // ---- layout -------------------------------------------------------------

  function px(n) {
    n = Math.ceil(Number(n));
    return Number.isFinite(n) && n > 0 ? Math.min(n, 4096) : 0;
  }

  // While the panel is open the rest of the page is inert: out of reach of
  // the keyboard, the pointer and screen readers, as a modal dialog's page
  // is (the dialog's aria-modal does not reach past its frame). Every
  // sibling of the widget's box and of each of its ancestors is made inert;
  // what was inert already is left alone, and given back as it was.
  let inerted = [];

  function inertPage() {
    freePage();
    for (let el = box; el && el.parentElement && el !== document.body; el = el.parentElement) {
      for (const sib of el.parentElement.children) {
        if (sib === el || sib.inert || sib.tagName === 'SCRIPT' || sib.tagName === 'STYLE' || sib.tagName === 'LINK') continue;
        sib.inert = true;
        inerted.push(sib);
      }
    }
  }

  function freePage() {
    for (const el of inerted) el.inert = false;
    inerted = [];
  }

  function onResize(d) {
    show();
    const wasOpen = open;
    open = d.open === true;
    // Closed: the button's box. Open: the panel's width (the host makes it
    // full height, so its height is not used). A zero size is ignored.
    if (open) {
      panelW = px(d.width) || panelW;
    } else if (px(d.width) && px(d.height)) {
      closedW = px(d.width);
      closedH = px(d.height);
      remember({ w: closedW, h: closedH });
    }
    layout();
    if (open && !wasOpen) {
      document.addEventListener('keydown', onKey);
      inertPage();
      frame.focus();
      requestAnimationFrame(checkPanel);
      emit('open');
    } else if (!open && wasOpen) {
      document.removeEventListener('keydown', onKey);
      freePage();
      const active = document.activeElement;
      if (!active || active === frame || active === document.body || active === document.documentElement) frame.focus();
      emit('close');
    }
  }

  function layout() {
    box.style.width = closedW + 'px';
    box.style.height = closedH + 'px';
    if (!frame) return;
    const s = frame.style;
    if (!shown) {
      // Loading under the shell: the button's size (a frame with no area
      // may not be rendered), invisible, and out of reach of the pointer,
      // the keyboard and screen readers.
      Object.assign(s, { position: 'absolute', top: '0', left: '0', width: closedW + 'px', height: closedH + 'px', opacity: '0', pointerEvents: 'none' });
      return;
    }
    if (open) {
      s.position = 'fixed';
      s.top = '0';
      s.right = '0';
      s.width = `min(${panelW}px, 100%)`;
      s.height = '100%';
      s.zIndex = String(Z);
      backdrop.style.display = 'block';
    } else {
      s.position = '';
      s.top = '';
      s.right = '';
      s.width = closedW + 'px';
      s.height = closedH + 'px';
      s.zIndex = '';
      backdrop.style.display = 'none';
    }
  }

  // A transformed or filtered ancestor of the mount makes position: fixed
  // relative to that ancestor, not to the window. Tell the developer.
  function checkPanel() {
    if (!open || !frame) return;
    const r = frame.getBoundingClientRect();
    if (Math.abs(r.top) > 1 || Math.abs(r.right - document.documentElement.clientWidth) > 1) {
      console.warn('cartsync: the cart panel is not at the top right of the window. An ancestor of the mount element ' +
        'probably has transform, filter, backdrop-filter, perspective, contain or will-change set (see Troubleshooting in the embedding guide).');
    }
  }

  function onKey(e) {
    if (e.key === 'Escape' && !e.isComposing) request('close', []).catch(() => {});
  }

  // ---- mounting ---------------------------------------------------------

  // The cart server's origin: mount()'s server, data-server, or the origin
  // embed.js was loaded from if it is the cart server's embed.js: one of
  // the two paths a cart server serves it at (webui/embed.go), on another
  // origin than the page's (the cart server's "/" is the widget, not a
  // storefront page). A copy elsewhere needs data-server.
  function originOf(server) {
    if (server == null) server = attr('data-server');
    if (server == null && script && script.src) {
      const src = new URL(script.src, document.baseURI);
      const served = src.pathname === '/embed.js' || /^\/embed\.[0-9a-f]{16}\.js$/.test(src.pathname);
      if (served && src.origin !== location.origin) return src.origin;
      throw error('not_configured', `cartsync: no cart server: embed.js was loaded from ${src.origin + src.pathname}, ` +
        (served ? 'this page\'s own origin' : 'not a cart server\'s /embed.js') +
        '; give the script data-server="https://CART-SERVER" (or mount()\'s server option), or load embed.js from the cart server');
    }
    if (server == null) throw error('not_configured', 'cartsync: no cart server: load embed.js from it, or give data-server or mount()\'s server option');
    try {
      const u = new URL(server, document.baseURI);
      if (u.protocol === 'https:' || u.protocol === 'http:') return u.origin;
    } catch (e) { /* below */ }
    throw error('not_configured', `cartsync: the cart server "${server}" is not an http(s) URL`);
  }

  function makeFrame() {
    const f = document.createElement('iframe');
    f.title = 'Shopping cart';
    const label = attr('data-label');
    if (label) f.setAttribute('aria-label', label);
    Object.assign(f.style, {
      display: 'block', border: '0', margin: '0', padding: '0', background: 'transparent',
      colorScheme: 'normal', // a color-scheme mismatch would paint the frame opaque
    });
    // The frame's load event comes for an error page too: not ready soon
    // after it, the server may be down.
    f.addEventListener('load', () => { if (!ready) probeSoon(PROBE_AFTER[0]); });
    // signedout: the widget hides the account's cart the device keeps
    // from its first moment, instead of after the login grace.
    f.src = serverOrigin + '/#host=' + encodeURIComponent(location.origin) + (signedOut ? '&signedout=1' : '');
    return f;
  }

  function mount(target, options) {
    const o = options || {};
    let el = target;
    if (typeof target === 'string') {
      try {
        el = document.querySelector(target);
      } catch (e) {
        throw error('no_mount', `cartsync: "${target}" is not a valid selector`);
      }
      if (!el) throw error('no_mount', `cartsync: no element matches "${target}"`);
    }
    if (!(el instanceof Element)) throw error('no_mount', 'cartsync: mount() needs a selector or an element');
    const origin = originOf(o.server);
    destroy();
    broken = null;
    delete latest.error;
    serverOrigin = origin;
    mountEl = el;
    checkoutURL = o.checkoutUrl != null ? String(o.checkoutUrl) : attr('data-checkout-url');
    const attrOpen = attr('data-open-on-add');
    openOnAdd = o.openOnAdd != null ? !!o.openOnAdd : attrOpen != null && attrOpen !== 'false';
    signedOut = o.signedIn != null ? o.signedIn === false : attr('data-signed-in') === 'false';
    if (location.origin === 'null') console.error('cartsync: this page has no origin (file:// or sandboxed); the cart widget will refuse it');

    const known = recall();
    if (known.w && known.h) [closedW, closedH] = [known.w, known.h];
    box = document.createElement('span');
    box.className = 'cartsync-embed';
    Object.assign(box.style, { display: 'inline-block', verticalAlign: 'middle', position: 'relative' });
    backdrop = document.createElement('div');
    backdrop.className = 'cartsync-backdrop';
    backdrop.setAttribute('aria-hidden', 'true');
    Object.assign(backdrop.style, {
      display: 'none', position: 'fixed', top: '0', right: '0', bottom: '0', left: '0',
      zIndex: String(Z - 1), background: 'var(--cartsync-backdrop, rgba(0, 0, 0, 0.4))', touchAction: 'none',
    });
    backdrop.addEventListener('click', () => request('close', []).catch(() => {}));
    // Nobody is signed in: an account's count from an earlier page is not
    // this visitor's to see.
    shell = makeShell(signedOut && known.account ? undefined : known.items);
    box.append(backdrop, shell.host);
    layout();
    mountEl.append(box);
    mark('cartsync:shell');
    window.addEventListener('message', onMessage);
    document.addEventListener('click', onClick);
    if (queue.length) start(); // calls made while unmounted are waiting
    else startWhenIdle();
  }

  // startWhenIdle creates the frame once the page has loaded and the
  // browser has time to spare: the widget's WebAssembly then competes
  // neither with the page's own loading nor with its first input.
  function startWhenIdle() {
    let cancel = null;
    const idle = () => {
      if (typeof window.requestIdleCallback === 'function') {
        const h = window.requestIdleCallback(start, { timeout: IDLE_TIMEOUT });
        cancel = () => window.cancelIdleCallback(h);
      } else {
        const t = later(start, NO_IDLE_WAIT);
        cancel = () => clearTimeout(t);
      }
    };
    if (document.readyState === 'complete') {
      idle();
    } else {
      const onLoad = () => idle();
      window.addEventListener('load', onLoad, { once: true });
      cancel = () => window.removeEventListener('load', onLoad);
    }
    idleStart = () => {
      idleStart = null;
      if (cancel) cancel();
    };
  }

  // start creates the widget's frame under the shell, if mounted and not
  // done yet.
  function start() {
    if (!box || frame || broken) return;
    if (idleStart) idleStart();
    mark('cartsync:start');
    frame = makeFrame();
    frame.inert = true; // until shown
    box.append(frame);
    layout();
    probeSoon(PROBE_AFTER[1]);
    later(() => {
      if (!ready && !broken && !unreachable) {
        console.warn(`cartsync: the cart widget is not ready after ${REPLY_TIMEOUT / 1000} s. Either it is still loading ` +
          `(first visit on a slow network, or offline), or the cart server does not list ${location.origin} in ` +
          'CARTSYNC_ALLOWED_ORIGINS.');
      }
    }, REPLY_TIMEOUT);
  }

  // show replaces the shell by the ready widget's frame, in the same box:
  // nothing in the page moves. The focus follows into the frame.
  function show() {
    if (shown || !ready || !frame) return;
    shown = true;
    const focused = shell && document.activeElement === shell.host;
    if (shell) shell.host.remove();
    shell = null;
    frame.inert = false;
    Object.assign(frame.style, { left: '', opacity: '', pointerEvents: '' });
    layout();
    if (focused) frame.focus();
  }

  // ---- the shell: the cart button before the widget is ready ------------

  // makeShell draws a button like the widget's (web/widget.css: a 52 px
  // round button with a cart icon and a count badge, in a 64 px box) in a
  // shadow root, so that the page's CSS does not reach it. Styles are set
  // through the DOM: the page's CSP needs no 'unsafe-inline'. A click
  // starts the widget and opens its panel as soon as it is ready; pointing
  // at it or focusing it starts the widget.
  function makeShell(items) {
    const host = document.createElement('span');
    host.className = 'cartsync-shell';
    Object.assign(host.style, { display: 'block', width: '100%', height: '100%' });
    const root = host.attachShadow({ mode: 'open' });
    // The page's --cartsync-* properties reach into the shadow root by
    // inheritance: no getComputedStyle, which would make the browser
    // compute the page's styles now, while it is still loading.
    const color = (k) => `var(--cartsync-${k}, ${WIDGET_COLORS[k]})`;
    const button = document.createElement('button');
    button.type = 'button';
    button.setAttribute('aria-haspopup', 'dialog');
    button.setAttribute('aria-expanded', 'false');
    button.setAttribute('aria-label', shellLabel(items));
    Object.assign(button.style, {
      position: 'relative', display: 'flex', alignItems: 'center', justifyContent: 'center', boxSizing: 'border-box',
      width: '52px', height: '52px', margin: '6px', padding: '0', border: '0', borderRadius: '50%', cursor: 'pointer',
      background: color('accent'), color: color('background'), boxShadow: '0 2px 6px rgb(0 0 0 / 25%)',
      font: '700 12px/1 system-ui, sans-serif',
    });
    button.append(cartIcon());
    if (items > 0) {
      const badge = document.createElement('span');
      badge.setAttribute('aria-hidden', 'true');
      badge.textContent = items > 99 ? '99+' : String(items);
      Object.assign(badge.style, {
        position: 'absolute', top: '-4px', right: '-4px', minWidth: '22px', height: '22px', padding: '0 5px',
        boxSizing: 'border-box', border: '2px solid ' + color('background'), borderRadius: '11px',
        background: color('foreground'), color: color('background'), display: 'flex', alignItems: 'center', justifyContent: 'center',
      });
      button.append(badge);
    }
    button.addEventListener('click', () => {
      button.style.cursor = 'progress';
      request('open', []).catch(() => {}); // starts the widget; sent once it is ready
    });
    button.addEventListener('pointerenter', start, { once: true });
    button.addEventListener('focus', start, { once: true });
    root.append(button);
    return { host, button };
  }

  // shellLabel is the widget's accessible name of its button (cartLabel
  // in app/widget/text.go) for a count, or "Cart" when none is known.
  function shellLabel(items) {
    if (typeof items !== 'number') return 'Cart';
    if (items === 0) return 'Cart, empty';
    return `Cart, ${items} ${items === 1 ? 'item' : 'items'}`;
  }

  function cartIcon() {
    const ns = 'http://www.w3.org/2000/svg';
    const el = (name, attrs) => {
      const e = document.createElementNS(ns, name);
      for (const [k, v] of Object.entries(attrs)) e.setAttribute(k, v);
      return e;
    };
    const svg = el('svg', {
      viewBox: '0 0 24 24', width: '26', height: '26', fill: 'none', stroke: 'currentColor', 'stroke-width': '2',
      'stroke-linecap': 'round', 'stroke-linejoin': 'round', 'aria-hidden': 'true', focusable: 'false',
    });
    svg.append(el('path', { d: 'M2 3h3l2.4 11h10.8L21 6H6.2' }), el('circle', { cx: '9', cy: '19', r: '1.6' }),
      el('circle', { cx: '18', cy: '19', r: '1.6' }));
    return svg;
  }

  function itemsOf(cart) {
    return cart && Number.isInteger(cart.items) && cart.items >= 0 ? cart.items : undefined;
  }

  // countOf is what is remembered of a cart for the next page's button: its
  // count, and whether it was an account's (a user cart's id is u_...).
  function countOf(cart) {
    return { items: itemsOf(cart), account: !!(cart && typeof cart.id === 'string' && cart.id.startsWith('u_')) };
  }

  // recall returns what the widget last reported on this device, for this
  // cart server: {items, w, h}, each possibly missing. Storage may be
  // refused (a privacy setting): then nothing is known.
  function recall() {
    try {
      const v = JSON.parse(window.localStorage.getItem(STORE_KEY + serverOrigin) || '{}');
      const n = (x, max) => (Number.isInteger(x) && x >= 0 && x <= max ? x : undefined);
      known = v && typeof v === 'object' ? { items: n(v.items, 1e6), account: v.account === true, w: n(v.w, 4096) || undefined, h: n(v.h, 4096) || undefined } : {};
    } catch (e) {
      known = {};
    }
    return known;
  }

  // remember stores values with what is known, if that changes it: once
  // per edit of the count, not per event.
  function remember(values) {
    if (Object.entries(values).every(([k, v]) => known[k] === v)) return;
    known = { ...known, ...values };
    try {
      window.localStorage.setItem(STORE_KEY + serverOrigin, JSON.stringify(known));
    } catch (e) { /* storage refused or full: the next shell shows no count */ }
  }

  function mark(name) {
    try {
      performance.mark(name);
    } catch (e) { /* no User Timing */ }
  }

  // destroy takes the widget out of the page with every listener and timer
  // embed.js added. Calls not yet sent wait for the next mount().
  function destroy() {
    document.removeEventListener('DOMContentLoaded', autoMount);
    if (!box) return;
    generation++;
    if (idleStart) idleStart();
    for (const t of timers) clearTimeout(t);
    timers.clear();
    if (stopProbe) stopProbe();
    window.removeEventListener('message', onMessage);
    document.removeEventListener('click', onClick);
    document.removeEventListener('keydown', onKey);
    freePage();
    box.remove();
    for (const req of inflight.values()) {
      settle(req, error('interrupted', `cartsync: destroy() removed the cart widget before it answered ${req.method}; it may or may not have been applied`));
    }
    inflight.clear();
    const wasOpen = open;
    frame = box = backdrop = mountEl = shell = null;
    ready = open = shown = false;
    unreachable = null;
    // Nothing is mounted: no cart, status or unreachable server to replay.
    delete latest.ready;
    delete latest.sync;
    if (!broken) delete latest.error;
    if (wasOpen) emit('close');
  }

  // ---- an unreachable cart server -----------------------------------------

  // 404s from /embed.json in a row, in generation missingGen: two make it
  // no cart server.
  let missing = 0;
  let missingGen = -1;

  function probeSoon(ms) {
    const gen = generation;
    later(() => { if (gen === generation && !ready && !broken && !stopProbe) probe(); }, ms);
  }

  // probe asks the cart server for /embed.json. A network error means it
  // cannot be reached: queued calls then reject soon with "unreachable",
  // and once it answers again the frame is loaded anew. A 404 means it is
  // no cart server (a wrong data-server): the embed fails with
  // "not_configured". A fetch refused by the page's own CSP (connect-src)
  // tells nothing, and is ignored. The cart server answers /embed.json to
  // any origin (Access-Control-Allow-Origin: *); an answer without that
  // header is no cart server's either, and counts as none.
  function probe() {
    const gen = generation;
    if (gen !== missingGen) missing = 0;
    missingGen = gen;
    let blocked = false;
    const onViolation = (e) => { if (String(e.blockedURI).startsWith(serverOrigin)) blocked = true; };
    let done = false;
    stopProbe = () => {
      done = true;
      stopProbe = null;
      document.removeEventListener('securitypolicyviolation', onViolation);
    };
    document.addEventListener('securitypolicyviolation', onViolation);
    fetch(serverOrigin + '/embed.json', { cache: 'no-store', credentials: 'omit' })
      .then((r) => (r.status === 404 ? 'missing' : 'ok'), () => 'down')
      .then((got) => new Promise((resolve) => setTimeout(() => resolve(got), 50))) // violation events are queued
      .then((got) => {
        if (done || gen !== generation) return;
        stopProbe();
        if (ready || blocked) return;
        if (got === 'missing' && ++missing < 2) {
          // A deploy or a load balancer can answer 404 for a moment.
          probeSoon(PROBE_CONFIRM);
        } else if (got === 'missing') {
          if (frame) frame.remove();
          frame = null;
          fail('not_configured', `${serverOrigin} is not a cart server (${serverOrigin}/embed.json: 404 Not Found). ` +
            'Give the embed.js script data-server="https://CART-SERVER" (or mount()\'s server option), or load embed.js from the cart server.');
        } else if (got === 'down') {
          missing = 0;
          if (!unreachable) {
            unreachable = error('unreachable', `cartsync: cannot reach the cart server at ${serverOrigin}. The cart appears once ` +
              `it answers; meanwhile calls wait, and reject with code "unreachable" after ${UNREACHABLE_WAIT / 1000} s.`);
            console.error(unreachable.message);
            for (const req of queue) {
              req.deadline = Math.min(req.deadline, Date.now() + UNREACHABLE_WAIT);
              arm(req);
            }
            latest.error = unreachable;
            emit('error', unreachable);
          }
          probeSoon(PROBE_AGAIN);
        } else if (unreachable) {
          // Back: load the widget again (the frame holds an error page).
          const old = frame;
          frame = makeFrame();
          frame.inert = !shown;
          old.replaceWith(frame);
          layout();
        }
      });
  }

  // ---- add-to-cart buttons ------------------------------------------------

  function onClick(e) {
    const el = e.composedPath().find((n) => n instanceof Element && n.hasAttribute('data-cartsync-add'));
    if (!el || !box) return; // not mounted: the element's own action (a form's submit) happens
    e.preventDefault(); // a submit button or a link falls back to the storefront's own cart without JS
    if (el.getAttribute('aria-busy') === 'true') return; // one add per button at a time
    const sku = el.getAttribute('data-cartsync-add');
    const q = el.getAttribute('data-cartsync-quantity');
    const details = {};
    const name = el.getAttribute('data-cartsync-name');
    const price = el.getAttribute('data-cartsync-price');
    const currency = el.getAttribute('data-cartsync-currency');
    const image = el.getAttribute('data-cartsync-image');
    if (name) details.name = name;
    if (price) details.price = Number(price);
    if (currency) details.currency = currency;
    if (image) details.image = image;
    for (const a of el.attributes) {
      if (a.name.startsWith('data-cartsync-option-')) {
        (details.options || (details.options = {}))[a.name.slice('data-cartsync-option-'.length)] = a.value;
      }
    }
    el.setAttribute('aria-busy', 'true');
    const fire = (type, detail) => el.dispatchEvent(new CustomEvent(type, { bubbles: true, composed: true, detail }));
    add(sku, q ? Number(q) : 1, Object.keys(details).length ? details : undefined).then(
      (cart) => fire('cartsync:added', { sku, cart }),
      (err) => {
        console.warn(`cartsync: add ${sku}:`, err.code, err.message);
        fire('cartsync:error', { sku, error: err });
      },
    ).finally(() => el.removeAttribute('aria-busy'));
  }

  // ---- API ----------------------------------------------------------------

  function add(sku, quantity = 1, details) {
    const args = details == null ? [sku, quantity] : [sku, quantity, withAbsoluteImage(details)];
    // The mount that answers decides (an add may wait for the next mount).
    return request('add', args).then((cart) => {
      if (openOnAdd) request('open', []).catch(() => {});
      return cart;
    });
  }

  const api = Object.freeze({
    protocol: PROTOCOL,
    ready: readyPromise,
    add,
    setQuantity: (sku, quantity, options) =>
      request('setQuantity', options == null ? [sku, quantity] : [sku, quantity, options]),
    remove: (sku, options) => request('remove', options == null ? [sku] : [sku, options]),
    clear: () => request('clear', []),
    cart: () => request('cart', []),
    open: () => request('open', []),
    close: () => request('close', []),
    // login and logout resolve with {status, merge, cart} once the cart
    // server answered ('done'), or 'queued' offline (the widget answers
    // within 10 s, before REPLY_TIMEOUT); login rejects with the server's
    // code (token_expired, unauthorized) when it refuses the token.
    login: (token, options) => request('login', [token, options && options.policy != null ? { policy: options.policy } : {}]),
    logout: () => request('logout', []),
    // theme() sends the --cartsync-* properties of the mount element again
    // (after the storefront changed them); theme({accent: 'red'}) overrides,
    // until theme({accent: null}); theme({messages}) gives texts.
    theme,
    on,
    off,
    mount,
    destroy,
    Error: CartsyncError,
  });

  // adopt takes over from the loader snippet's stand-in: the calls it
  // queued whose method pick accepts run now, in order, and settle the
  // promises it gave; the others stay queued. Later calls through the
  // stand-in go to this API.
  function adopt(stub, pick) {
    if (!stub.real) {
      stub.real = api;
      if (Array.isArray(stub.settle)) {
        stub.ready.catch(() => {}); // reported once, as readyPromise is
        readyPromise.then(stub.settle[0], stub.settle[1]);
      }
    }
    const queued = Array.isArray(stub.q) ? stub.q.splice(0) : [];
    for (const call of queued) {
      if (!pick(call[0])) {
        stub.q.push(call);
        continue;
      }
      const [method, args, resolve, reject] = call;
      if (typeof api[method] !== 'function') continue;
      try {
        const result = api[method](...args);
        if (resolve) Promise.resolve(result).then(resolve, reject);
      } catch (err) {
        if (reject) reject(err);
        else console.error(err);
      }
    }
  }

  // data-mount mounts at once if the element is there, else at
  // DOMContentLoaded; without it, the page calls mount().
  function autoMount() {
    try {
      mount(attr('data-mount'));
    } catch (err) {
      const code = err.code || 'no_mount';
      fail(code, err.message.replace(/^cartsync: /, '') + (code === 'no_mount' ? ' (data-mount)' : ''));
    }
  }

  // The loader snippet's stand-in (assets/loader.js), if the page has it.
  const stub = window.cartsync && window.cartsync.stub === 1 ? window.cartsync : null;
  window.cartsync = api;
  // The page's queued listeners first, so that they hear the tag's mount.
  if (stub) adopt(stub, (method) => method === 'on' || method === 'off');
  if (attr('data-mount')) {
    let found = null;
    try {
      found = document.querySelector(attr('data-mount'));
    } catch (e) { /* autoMount reports it */ }
    if (found || document.readyState !== 'loading') autoMount();
    else document.addEventListener('DOMContentLoaded', autoMount, { once: true });
  }
  // The rest after the tag's own mount: the page's queued mount() or
  // destroy() comes later and wins, as it would after a plain tag.
  if (stub) adopt(stub, () => true);

  window.dispatchEvent(new CustomEvent('cartsync:load', { detail: api }));
})();
