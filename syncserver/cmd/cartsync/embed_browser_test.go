package main

import (
	"context"
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/cdproto/domdebugger"
	"github.com/chromedp/cdproto/runtime"
	"github.com/chromedp/chromedp"
)

// The browser tests of embed.js for storefront developers: the pinned
// (versioned, Subresource Integrity) script, mount() and destroy() in a
// single-page app, the open and close events, data-open-on-add, a cart
// server that cannot be reached, a misconfigured embed, and the theme
// kept across mounts.

// spaPage loads embed.js from its versioned URL with integrity, and mounts
// nothing by itself.
const spaPage = `<!doctype html>
<html lang="en">
<head><meta charset="utf-8"><title>SPA</title></head>
<body>
<div id="a"></div><div id="b"></div>
<button data-cartsync-add="TEE-01">Add</button>
<script src="{{CART_SERVER}}{{EMBED_URL}}" integrity="{{INTEGRITY}}" crossorigin="anonymous" data-open-on-add></script>
</body>
</html>
`

// listeners counts the event listeners on window and on document, by type
// ("window message": 1), as the browser's debugger sees them.
func listeners(tb *tab) map[string]int {
	tb.t.Helper()
	counts := map[string]int{}
	ctx, cancel := context.WithTimeout(tb.ctx, evalTimeout)
	defer cancel()
	err := func() error {
		for _, target := range []string{"window", "document"} {
			res, err := chromedp.Call(ctx, runtime.Evaluate, runtime.EvaluateParams{Expression: target})
			if err != nil {
				return err
			}
			if res.ExceptionDetails != nil {
				return fmt.Errorf("evaluate %s: %s", target, res.ExceptionDetails.Text)
			}
			ls, err := chromedp.Call(ctx, domdebugger.GetEventListeners, domdebugger.GetEventListenersParams{ObjectID: res.Result.ObjectID})
			if err != nil {
				return err
			}
			for _, l := range ls.Listeners {
				counts[target+" "+l.Type]++
			}
			if _, err := chromedp.Call(ctx, runtime.ReleaseObject, runtime.ReleaseObjectParams{ObjectID: res.Result.ObjectID}); err != nil {
				return err
			}
		}
		return nil
	}()
	if err != nil {
		tb.t.Fatalf("%s: event listeners: %v", tb.name, err)
	}
	return counts
}

// expectEvent subscribes to a cartsync event as window[name], a promise of
// its first occurrence; await it with eval(tb, "window."+name).
func expectEvent(tb *tab, event, name string) {
	tb.t.Helper()
	eval[bool](tb, `(window.`+name+` = new Promise((resolve) => {
		const off = cartsync.on('`+event+`', () => { off(); resolve(true); });
	}), true)`)
}

type embedInfo struct {
	URL       string `json:"url"`
	Integrity string `json:"integrity"`
}

func fetchEmbedInfo(t *testing.T, origin string) embedInfo {
	t.Helper()
	resp, err := http.Get(origin + "/embed.json")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var info embedInfo
	if err := json.NewDecoder(resp.Body).Decode(&info); err != nil || info.URL == "" || !strings.HasPrefix(info.Integrity, "sha384-") {
		t.Fatalf("GET /embed.json: %+v, %v", info, err)
	}
	return info
}

// TestBrowserEmbedMountDestroy loads embed.js pinned with integrity, mounts
// and destroys the widget three times, in two places, opening and closing
// the panel: each destroy leaves no frame, no element and no listener of
// embed.js behind, and the open and close events come.
func TestBrowserEmbedMountDestroy(t *testing.T) {
	web := webCopy(t)
	srv := startCartServer(t, web)
	info := fetchEmbedInfo(t, srv.origin())
	page := strings.NewReplacer("{{EMBED_URL}}", info.URL, "{{INTEGRITY}}", info.Integrity).Replace(spaPage)
	if err := os.WriteFile(filepath.Join(web, "demo", "spa.html"), []byte(page), 0o644); err != nil {
		t.Fatal(err)
	}
	b := startBrowser(t, t.TempDir())
	tb := b.first
	tb.navigate(srv.demo() + "/spa.html")
	if !eval[bool](tb, `typeof window.cartsync === 'object' && typeof cartsync.mount === 'function'`) {
		t.Fatal("the pinned embed.js did not run (integrity refused?)")
	}
	if n := eval[int](tb, `document.querySelectorAll('iframe, .cartsync-embed').length`); n != 0 {
		t.Fatalf("embed.js without data-mount added %d elements", n)
	}
	base := listeners(tb)
	t.Logf("listeners before mounting: %v", base)

	for i, target := range []string{`'#a'`, `document.getElementById('b')`, `'#a'`} {
		eval[bool](tb, `(cartsync.mount(`+target+`), true)`)
		ready(tb)
		call(tb, "cart")
		if n := eval[int](tb, `document.querySelectorAll('iframe').length`); n != 1 {
			t.Fatalf("round %d: %d frames after mount, want 1", i, n)
		}
		mounted := listeners(tb)
		if mounted["window message"] != base["window message"]+1 || mounted["document click"] != base["document click"]+1 {
			t.Errorf("round %d: listeners when mounted %v, want one more message and click listener than %v", i, mounted, base)
		}

		// open and close events; the Escape key listener lives while open.
		expectEvent(tb, "open", "__opened")
		if i == 0 {
			// data-open-on-add: an add opens the panel.
			tb.click(`button[data-cartsync-add="TEE-01"]`)
		} else {
			eval[bool](tb, `cartsync.open()`)
		}
		eval[bool](tb, `window.__opened`)
		if got := listeners(tb)["document keydown"]; got != base["document keydown"]+1 {
			t.Errorf("round %d: %d keydown listeners while open, want %d", i, got, base["document keydown"]+1)
		}
		expectEvent(tb, "close", "__closed")
		eval[bool](tb, `cartsync.close()`)
		eval[bool](tb, `window.__closed`)

		// Destroyed while open: a close event, nothing left.
		expectEvent(tb, "open", "__opened")
		eval[bool](tb, `cartsync.open()`)
		eval[bool](tb, `window.__opened`)
		expectEvent(tb, "close", "__closed")
		eval[bool](tb, `(cartsync.destroy(), true)`)
		eval[bool](tb, `window.__closed`)
		if n := eval[int](tb, `document.querySelectorAll('iframe, .cartsync-embed, .cartsync-backdrop').length`); n != 0 {
			t.Fatalf("round %d: %d elements of embed.js left after destroy", i, n)
		}
		if got := listeners(tb); !equalCounts(got, base) {
			t.Fatalf("round %d: listeners after destroy %v, want those before mounting %v", i, got, base)
		}
		// Nothing is mounted: a late subscriber hears no cart and no
		// status of the destroyed mount.
		for _, event := range []string{"ready", "sync"} {
			got := eval[string](tb, `new Promise((resolve) => {
				const off = cartsync.on('`+event+`', () => { off(); resolve('called'); });
				setTimeout(() => { off(); resolve('not called'); }, 200);
			})`)
			if got != "not called" {
				t.Errorf("round %d: a %s handler subscribed after destroy() was %s, want not called while nothing is mounted", i, event, got)
			}
		}
	}
	// A call made while nothing is mounted waits for the next mount.
	eval[bool](tb, `(window.__waiting = cartsync.add('MUG-01', 2), true)`)
	eval[bool](tb, `(cartsync.mount('#b', { openOnAdd: false }), true)`)
	c := eval[hostCart](tb, `window.__waiting`)
	if got := c.quantities(); got["MUG-01"] != 2 || got["TEE-01"] != 1 {
		t.Errorf("cart after the call made while unmounted: %s", c)
	}
	if eval[bool](tb, `cartsync.cart().then(() => document.querySelector('iframe').style.position === 'fixed')`) {
		t.Error("openOnAdd: false opened the panel on add")
	}
}

func equalCounts(a, b map[string]int) bool {
	for k, v := range a {
		if b[k] != v {
			return false
		}
	}
	for k, v := range b {
		if a[k] != v {
			return false
		}
	}
	return true
}

// downPage is a storefront page with a copy of embed.js of its own,
// pointed at a cart server by data-server.
const downPage = `<!doctype html>
<html lang="en">
<head><meta charset="utf-8"><title>Cart server down</title></head>
<body>
<div id="cart"></div>
<script src="/embed.js" data-server="{{DOWN}}" data-mount="#cart"></script>
</body>
</html>
`

// TestBrowserEmbedServerDown points embed.js at a closed port: the page
// still gets window.cartsync, calls reject with a CartsyncError coded
// unreachable within a bounded time, an error event fires and the console
// says why. When a cart server starts on that port, the widget appears and
// calls go through. embed.js's timers of 5 s and more are shortened
// fivefold in that page.
func TestBrowserEmbedServerDown(t *testing.T) {
	web := webCopy(t)
	srv := startCartServer(t, web)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	down := "http://" + ln.Addr().String()
	ln.Close()
	embed, err := os.ReadFile(filepath.Join(web, "embed.js"))
	if err != nil {
		t.Fatal(err)
	}
	for name, body := range map[string]string{"embed.js": string(embed), "down.html": strings.ReplaceAll(downPage, "{{DOWN}}", down)} {
		if err := os.WriteFile(filepath.Join(web, "demo", name), []byte(body), 0o644); err != nil {
			t.Fatal(err)
		}
	}

	b := startBrowser(t, t.TempDir())
	tb := b.first
	tb.addScriptOnNewDocument(`if (window === window.top) {
		const realSetTimeout = window.setTimeout.bind(window);
		window.setTimeout = (f, d, ...args) => realSetTimeout(f, d >= 5000 ? d / 5 : d, ...args);
		window.__errors = [];
		window.addEventListener('cartsync:load', (e) => e.detail.on('error', (err) => window.__errors.push(err.code)));
	}`)
	tb.navigate(srv.demo() + "/down.html")
	// The shell's cart button is there at once; the frame comes once the
	// page is idle, or with the first call.
	if !eval[bool](tb, `typeof window.cartsync === 'object' && !!document.querySelector('#cart .cartsync-shell')`) {
		t.Fatal("no window.cartsync or no cart button with the cart server down")
	}
	type rejection struct {
		Code    string `json:"code"`
		Name    string `json:"name"`
		Typed   bool   `json:"typed"`
		Message string `json:"message"`
		Ms      int64  `json:"ms"`
	}
	start := time.Now()
	got := eval[rejection](tb, `(() => {
		const t0 = Date.now();
		return cartsync.add('TEE-01', 1).then(() => ({ code: 'resolved' }),
			(e) => ({ code: e.code, name: e.name, typed: e instanceof cartsync.Error, message: e.message, ms: Date.now() - t0 }));
	})()`)
	t.Logf("rejected after %v: %+v", time.Since(start).Round(time.Millisecond), got)
	if got.Code != "unreachable" || got.Name != "CartsyncError" || !got.Typed || !strings.Contains(got.Message, down) {
		t.Fatalf("add with the cart server down: %+v, want a CartsyncError coded unreachable naming %s", got, down)
	}
	if errs := eval[[]string](tb, `window.__errors`); len(errs) != 1 || errs[0] != "unreachable" {
		t.Errorf("error events %v, want one unreachable", errs)
	}
	if !consoleHas(tb, "cannot reach the cart server at "+down) {
		t.Error("no console message about the unreachable cart server")
	}
	if !eval[bool](tb, `!!document.querySelector('#cart iframe') && !!document.querySelector('#cart .cartsync-shell')`) {
		t.Error("with the cart server down: want the frame created and the shell's button still shown")
	}
	if code := eval[string](tb, `cartsync.cart().then(() => 'resolved', (e) => e.code)`); code != "unreachable" {
		t.Errorf("a later call: %q, want unreachable", code)
	}

	// The cart server comes up on that port: the widget loads.
	startMain(t, "-addr", strings.TrimPrefix(down, "http://"), "-data", t.TempDir(), "-web", web, "-allowed-origins", srv.demo())
	c := eval[hostCart](tb, `window.cartsync.ready.then(() => cartsync.add('MUG-01', 1))`)
	if got := c.quantities(); got["MUG-01"] != 1 {
		t.Fatalf("after the server came up: %s", c)
	}
	if !consoleHas(tb, "the cart server answers again") {
		t.Error("no console message when the cart server answered again")
	}
}

func consoleHas(tb *tab, s string) bool {
	tb.mu.Lock()
	defer tb.mu.Unlock()
	for _, line := range tb.console {
		if strings.Contains(line, s) {
			return true
		}
	}
	return false
}

// TestBrowserEmbedCheckoutModeTheme: the script's data-checkout-mode goes
// to the widget as the theme's checkout key, with the theme sent at ready
// and with every theme() call.
func TestBrowserEmbedCheckoutModeTheme(t *testing.T) {
	web := webCopy(t)
	page := strings.Replace(earlyPage, `data-mount="#cart"`, `data-mount="#cart" data-checkout-mode="direct"`, 1)
	if err := os.WriteFile(filepath.Join(web, "demo", "mode.html"), []byte(page), 0o644); err != nil {
		t.Fatal(err)
	}
	srv := startCartServer(t, web)
	b := startBrowser(t, t.TempDir())
	tb := b.first
	tb.navigate(srv.demo() + "/mode.html")
	ready(tb)
	evalInWidget[bool](tb, srv.origin(), `(window.__themes = [], window.addEventListener('message', (e) => {
		if (e.data && e.data.method === 'theme') window.__themes.push(e.data.args[0]);
	}, true), true)`)
	// The widget may refuse a key it does not know yet: only what is sent
	// matters here.
	eval[string](tb, `cartsync.theme({ accent: '#b00020' }).then(() => 'ok', (e) => e.code)`)
	type theme struct {
		Accent   string `json:"accent"`
		Checkout string `json:"checkout"`
	}
	got := evalInWidget[theme](tb, srv.origin(), `window.__themes[0] || {}`)
	if got.Checkout != "direct" || got.Accent != "#b00020" {
		t.Errorf("theme sent %+v, want checkout direct and the accent given", got)
	}
}

// themePage is a French storefront page: the widget has no French texts,
// the page gives them with theme().
const themePage = `<!doctype html>
<html lang="fr">
<head><meta charset="utf-8"><title>Panier</title></head>
<body>
<div id="cart"></div>
<script async src="{{CART_SERVER}}/embed.js" data-mount="#cart" data-locale="fr-FR"></script>
</body>
</html>
`

// TestBrowserEmbedThemeKeptOnRemount: what the page gave theme() (French
// messages, an accent) is kept by embed.js and sent again to the frame of
// the next mount() after destroy(); a later theme() call keeps the earlier
// overrides it does not name.
func TestBrowserEmbedThemeKeptOnRemount(t *testing.T) {
	web := webCopy(t)
	if err := os.WriteFile(filepath.Join(web, "demo", "theme.html"), []byte(themePage), 0o644); err != nil {
		t.Fatal(err)
	}
	srv := startCartServer(t, web)
	tb := startBrowser(t, t.TempDir()).first
	tb.navigate(srv.demo() + "/theme.html")
	ready(tb)
	if !eval[bool](tb, `cartsync.theme({
		accent: '#b00020',
		messages: { 'cart.label.empty': 'Panier, vide', 'panel.title': 'Votre panier' },
	})`) {
		t.Fatal("theme() did not resolve with true")
	}
	check := func(when string) {
		t.Helper()
		waitWidgetText(tb, srv.origin(), "the language "+when, `document.documentElement.lang`, "fr")
		waitWidgetText(tb, srv.origin(), "the cart button's name "+when, `document.querySelector('#cartsync-button')?.getAttribute('aria-label')`, "Panier, vide")
		waitWidgetText(tb, srv.origin(), "the accent "+when, `(document.documentElement.style.cssText.match(/#b00020/) || [])[0]`, "#b00020")
	}
	check("after theme()")

	eval[bool](tb, `(cartsync.destroy(), cartsync.mount('#cart'), true)`)
	call(tb, "cart") // sent after the theme of the new frame's ready
	check("after destroy() and mount()")

	if !eval[bool](tb, `cartsync.theme({ radius: '4px' })`) {
		t.Fatal("theme({radius}) did not resolve with true")
	}
	check("after a theme() call that names neither")
}

// misconfiguredPage subscribes to the error event as docs/embedding.md
// shows (withCartsync), before the async embed.js tag at SRC runs.
const misconfiguredPage = `<!doctype html>
<html lang="en">
<head><meta charset="utf-8"><title>Misconfigured</title></head>
<body>
<div id="cart"></div>
<script>
  window.__errors = [];
  function withCartsync(fn) {
    if (window.cartsync) fn(window.cartsync);
    else window.addEventListener('cartsync:load', () => fn(window.cartsync), { once: true });
  }
  withCartsync((cartsync) => cartsync.on('error', (err) => window.__errors.push(err.name + ' ' + err.code)));
</script>
<script async src="{{SRC}}" data-mount="{{MOUNT}}"{{ATTRS}}></script>
</body>
</html>
`

// TestBrowserEmbedMisconfigured: an embed that cannot work says so within
// seconds, with a typed error on the console, in cartsync.ready, in calls
// and in an error event that a handler subscribed the documented way hears;
// and it leaves no frame. A copy of embed.js on the storefront's own server
// without data-server is not mistaken for the cart server's; a data-server
// that is no cart server (its /embed.json: 404) is found out once the frame
// has loaded.
func TestBrowserEmbedMisconfigured(t *testing.T) {
	web := webCopy(t)
	embed, err := os.ReadFile(filepath.Join(web, "embed.js"))
	if err != nil {
		t.Fatal(err)
	}
	if err := os.MkdirAll(filepath.Join(web, "demo", "static"), 0o755); err != nil {
		t.Fatal(err)
	}
	for _, name := range []string{"embed.js", "static/embed.js"} {
		if err := os.WriteFile(filepath.Join(web, "demo", name), embed, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	srv := startCartServer(t, web)
	b := startBrowser(t, t.TempDir())
	tests := []struct {
		name, src, mount, attrs string
		code, console           string
	}{
		{"no element matches data-mount", "{{CART_SERVER}}/embed.js", "#nowhere", "", "no_mount", "no element matches"},
		{"a copy in /static/ without data-server", "/static/embed.js", "#cart", "", "not_configured", "data-server"},
		{"a copy at /embed.js without data-server", "/embed.js", "#cart", "", "not_configured", "data-server"},
		{"data-server not a cart server", "/static/embed.js", "#cart", ` data-server="` + srv.demo() + `"`, "not_configured", "is not a cart server"},
	}
	for i, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			page := fmt.Sprintf("misconfigured%d.html", i)
			html := strings.NewReplacer("{{SRC}}", tt.src, "{{MOUNT}}", tt.mount, "{{ATTRS}}", tt.attrs).Replace(misconfiguredPage)
			if err := os.WriteFile(filepath.Join(web, "demo", page), []byte(html), 0o644); err != nil {
				t.Fatal(err)
			}
			tb := b.newTab(tt.name)
			tb.t = t
			tb.navigate(srv.demo() + "/" + page)
			type outcome struct {
				Ready  string   `json:"ready"`
				Cart   string   `json:"cart"`
				Errors []string `json:"errors"`
				Frames int      `json:"frames"`
			}
			got := eval[outcome](tb, `new Promise((resolve) => withCartsync(async (cartsync) => {
				const code = (p) => Promise.race([
					p.then(() => 'resolved', (e) => e.name + ' ' + e.code),
					new Promise((r) => setTimeout(() => r('pending after 10 s'), 10000)),
				]);
				resolve({
					ready: await code(cartsync.ready),
					cart: await code(cartsync.cart()),
					errors: window.__errors,
					frames: document.querySelectorAll('iframe').length,
				});
			}))`)
			want := "CartsyncError " + tt.code
			if got.Ready != want || got.Cart != want {
				t.Errorf("cartsync.ready: %s, cart(): %s; want both rejected with %s", got.Ready, got.Cart, want)
			}
			if len(got.Errors) != 1 || got.Errors[0] != want {
				t.Errorf("error events %q, want one %s", got.Errors, want)
			}
			if got.Frames != 0 {
				t.Errorf("%d frames in the page, want none", got.Frames)
			}
			if !consoleHas(tb, tt.console) {
				t.Errorf("no console message with %q", tt.console)
			}
		})
	}
}
