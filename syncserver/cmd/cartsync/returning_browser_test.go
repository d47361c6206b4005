package main

import (
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/chromedp/cdproto/cdp"
	"github.com/chromedp/cdproto/network"
	"github.com/chromedp/chromedp"
)

// A returning shopper when the cart server is down: what loads depends on
// where the page gets embed.js from. The widget itself comes from its
// service worker; embed.js is the page's script, which the widget's worker
// cannot serve (a worker answers only its own origin's pages and their
// requests).

// returningPage is a storefront page that loads embed.js from EMBED_SRC
// with data-server naming the cart server.
const returningPage = `<!doctype html>
<html lang="en">
<head><meta charset="utf-8"><title>Returning shopper</title></head>
<body>
<header><div id="cart"></div></header>
<script async src="{{EMBED_SRC}}" data-server="{{CART_SERVER}}" data-mount="#cart"></script>
</body>
</html>
`

// TestBrowserEmbedReturningShopperServerDown: a shopper has visited the
// storefront (the widget's service worker has cached the widget) and comes
// back while the cart server is down.
//
//   - embed.js still in the browser's HTTP cache (the cart server's
//     /embed.js: fresh 5 minutes, then usable stale for 30 days, see
//     TestBrowserEmbedStaleWhileDown): the cart button shows the last count at once,
//     the widget loads from its service worker with the stored cart, and
//     edits are kept on the device;
//   - embed.js not cached (the cache cleared): a page loading it from the
//     cart server with a plain tag gets no window.cartsync at all, since
//     nothing can serve the script (the loader snippet gives one that
//     queues: TestBrowserEmbedLoaderWhileDown); a page with its own copy
//     of embed.js (data-server) gets the whole cart, from the worker, as
//     above.
func TestBrowserEmbedReturningShopperServerDown(t *testing.T) {
	web := webCopy(t)
	embed, err := os.ReadFile(filepath.Join(web, "embed.js"))
	if err != nil {
		t.Fatal(err)
	}
	var cartOrigin string
	shop := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch r.URL.Path {
		case "/embed.js": // the storefront's own copy
			w.Header().Set("Content-Type", "text/javascript")
			w.Write(embed)
		case "/cdn.html", "/own.html":
			src := cartOrigin + "/embed.js"
			if r.URL.Path == "/own.html" {
				src = "/embed.js"
			}
			w.Header().Set("Content-Type", "text/html; charset=utf-8")
			w.Header().Set("Cache-Control", "no-store")
			fmt.Fprint(w, strings.NewReplacer("{{EMBED_SRC}}", src, "{{CART_SERVER}}", cartOrigin).Replace(returningPage))
		default:
			http.NotFound(w, r)
		}
	}))
	t.Cleanup(shop.Close)
	m := startMain(t, "-data", t.TempDir(), "-web", web, "-allowed-origins", shop.URL)
	cartOrigin = m.URL()

	b := startBrowser(t, t.TempDir())
	tb := b.first
	tb.navigate(shop.URL + "/own.html")
	ready(tb)
	call(tb, "add", "TEE-01", 2)
	want := quantities{"TEE-01": 2}
	id := waitSynced(tb, want).ID
	waitPrecached(tb, cartOrigin)
	tb.navigate(shop.URL + "/cdn.html") // the cart server's embed.js, now in the HTTP cache
	if c := ready(tb); c.ID != id {
		t.Fatalf("the page with the cart server's embed.js: %s", c)
	}

	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := m.Close(ctx); err != nil {
		t.Fatalf("stop the cart server: %v", err)
	}
	if _, err := http.Get(cartOrigin + "/embed.js"); err == nil {
		t.Fatal("the cart server still answers")
	}

	// embed.js cached: the widget from its worker.
	checkFromWorker := func(page string, items int) {
		t.Helper()
		tb.navigate(shop.URL + page)
		label := eval[string](tb, `document.querySelector('#cart .cartsync-shell').shadowRoot.querySelector('button').getAttribute('aria-label')`)
		if wantLabel := fmt.Sprintf("Cart, %d items", items); label != wantLabel {
			t.Errorf("%s: the shell's button says %q, want %q", page, label, wantLabel)
		}
		c := ready(tb)
		if c.ID != id || c.Items != items {
			t.Fatalf("%s with the cart server down: %s, want cart %s with %d items", page, c, id, items)
		}
		if !evalInWidget[bool](tb, cartOrigin, `!!navigator.serviceWorker.controller`) {
			t.Errorf("%s: the widget did not come from its service worker", page)
		}
		c = call(tb, "add", "MUG-01", 1)
		if c.Pending == 0 || c.Items != items+1 {
			t.Errorf("%s: an add with the cart server down: %s, want it kept on the device, pending", page, c)
		}
	}
	checkFromWorker("/cdn.html", 2)

	// No embed.js in the cache: the cart server's cannot load, the
	// storefront's own copy can.
	cctx, ccancel := context.WithTimeout(tb.ctx, evalTimeout)
	defer ccancel()
	if _, err := chromedp.Call(cctx, network.ClearBrowserCache, cdp.Empty{}); err != nil {
		t.Fatalf("clear the HTTP cache: %v", err)
	}
	tb.navigate(shop.URL + "/cdn.html")
	if eval[bool](tb, `typeof window.cartsync !== 'undefined'`) {
		t.Error("window.cartsync exists although embed.js could come from nowhere")
	}
	checkFromWorker("/own.html", 3)
	if got := call(tb, "cart").quantities(); got["TEE-01"] != 2 || got["MUG-01"] != 2 {
		t.Errorf("the cart after both offline adds: %s", got)
	}
}

// repoFile reads a file of the repository, by its path from the root.
func repoFile(t *testing.T, path string) string {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("../../..", path))
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// The loader snippet that docs/embedding.md tells storefronts to paste is
// assets/loader.js, word for word.
func TestLoaderSnippetInDocs(t *testing.T) {
	loader := repoFile(t, "assets/loader.js")
	if !strings.Contains(repoFile(t, "docs/embedding.md"), "<script>\n"+loader+"</script>\n") {
		t.Error("docs/embedding.md does not hold assets/loader.js as it is, in a <script> element")
	}
}

// TestBrowserEmbedLoaderWhileDown: a page with the loader snippet whose
// embed.js cannot be fetched (the cart server unreachable, nothing cached)
// still has window.cartsync: calls queue, the console says why, and once
// embed.js can be fetched the queued calls run in order and their promises
// settle with the real answers; the snippet's object then forwards.
func TestBrowserEmbedLoaderWhileDown(t *testing.T) {
	shop := startEdgeShop(t, "")
	shop.down.Store(true)

	tb := startBrowser(t, t.TempDir()).first
	tb.navigate(shop.url + "/loader.html")
	if !eval[bool](tb, `window.cartsync.stub === 1 && typeof cartsync.add === 'function'`) {
		t.Fatal("no stand-in window.cartsync while embed.js cannot load")
	}
	// Calls made while down: an add, a listener, and the ready promise.
	eval[bool](tb, `(() => {
		window.seen = [];
		window.kept = window.cartsync;
		cartsync.on('change', (c) => seen.push(c.items));
		window.added = null;
		cartsync.add('TEE-01', 2).then((c) => { window.added = c; });
		cartsync.ready.then(() => { window.wasReady = true; });
		return true;
	})()`)
	waitUntil(t, "the console message", 20*time.Second, func() bool {
		tb.mu.Lock()
		defer tb.mu.Unlock()
		for _, line := range tb.console {
			if strings.Contains(line, "cartsync: cannot load /edge/embed.js (the cart server is unreachable); cart calls are queued") {
				return true
			}
		}
		return false
	})
	if eval[bool](tb, `window.added !== null || window.wasReady === true`) {
		t.Fatal("a queued call settled while embed.js could not load")
	}

	shop.down.Store(false)
	waitUntil(t, "the queued add to resolve", 30*time.Second, func() bool {
		return eval[bool](tb, `window.added !== null`)
	})
	added := eval[hostCart](tb, `window.added`)
	if added.quantities()["TEE-01"] != 2 {
		t.Errorf("the queued add resolved with %s, want TEE-01 × 2", added)
	}
	if !eval[bool](tb, `window.cartsync.protocol === 1 && window.cartsync !== window.kept && window.wasReady === true`) {
		t.Error("after embed.js loaded: window.cartsync is not the real API, or ready did not settle")
	}
	// The stand-in kept by the page forwards to the real API.
	if c := eval[hostCart](tb, `window.kept.add('MUG-01', 1)`); c.quantities()["MUG-01"] != 1 || c.quantities()["TEE-01"] != 2 {
		t.Errorf("an add through the kept stand-in: %s", c)
	}
	waitUntil(t, "the listener queued while down to see a change", 20*time.Second, func() bool {
		return eval[bool](tb, `seen.includes(3)`)
	})
	if n := shop.fetches.Load(); n < 2 {
		t.Errorf("embed.js fetched %d times, want a retry after the failure", n)
	}
}

// edgeShop is a storefront for the loader and caching tests: /edge/embed.js
// serves embed.js (with cacheControl, or no-store) unless down, counting
// the requests; /loader.html is a page with assets/loader.js inline,
// loading /edge/embed.js for the cart server that started with the shop
// (edits, old and new pairs, rewrite the snippet first); /page.html loads
// /edge/embed.js with a plain tag; /slow.png answers after 3 s.
type edgeShop struct {
	url, cart string
	down      atomic.Bool
	fetches   atomic.Int32
}

func startEdgeShop(t *testing.T, cacheControl string, edits ...string) *edgeShop {
	t.Helper()
	web := webCopy(t)
	embed, err := os.ReadFile(filepath.Join(web, "embed.js"))
	if err != nil {
		t.Fatal(err)
	}
	loader := repoFile(t, "assets/loader.js")
	if cacheControl == "" {
		cacheControl = "no-store"
	}
	es := &edgeShop{}
	shop := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch r.URL.Path {
		case "/edge/embed.js":
			es.fetches.Add(1)
			if es.down.Load() {
				http.Error(w, "unreachable", http.StatusBadGateway)
				return
			}
			w.Header().Set("Content-Type", "text/javascript")
			w.Header().Set("Cache-Control", cacheControl)
			w.Write(embed)
		case "/slow.png": // holds the page's load event for 3 s
			select {
			case <-time.After(3 * time.Second):
			case <-r.Context().Done():
			}
			http.NotFound(w, r)
		case "/loader.html":
			snippet := strings.NewReplacer(
				"'https://CART-SERVER/embed.js'", "'/edge/embed.js'",
				"{ 'data-mount': '#cart' }", "{ 'data-mount': '#cart', 'data-server': '"+es.cart+"' }",
			).Replace(strings.NewReplacer(edits...).Replace(loader))
			w.Header().Set("Content-Type", "text/html; charset=utf-8")
			w.Header().Set("Cache-Control", "no-store")
			fmt.Fprintf(w, `<!doctype html><html lang="en"><head><meta charset="utf-8"><title>Loader</title>
<script>%s</script></head><body><header><div id="cart"></div></header></body></html>`, snippet)
		case "/page.html":
			w.Header().Set("Content-Type", "text/html; charset=utf-8")
			w.Header().Set("Cache-Control", "no-store")
			fmt.Fprint(w, strings.NewReplacer("{{EMBED_SRC}}", "/edge/embed.js", "{{CART_SERVER}}", es.cart).Replace(returningPage))
		default:
			http.NotFound(w, r)
		}
	}))
	t.Cleanup(shop.Close)
	es.url = shop.URL
	es.cart = startMain(t, "-data", t.TempDir(), "-web", web, "-allowed-origins", shop.URL).URL()
	return es
}

// waitUntil polls ok until it holds or timeout passes.
func waitUntil(t *testing.T, what string, timeout time.Duration, ok func() bool) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for !ok() {
		if time.Now().After(deadline) {
			t.Fatalf("%s: not within %s", what, timeout)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// TestBrowserEmbedStaleWhileDown: the cart server's /embed.js may be used
// stale while it is revalidated (stale-while-revalidate). Once its fresh
// time is over, a page loaded while embed.js cannot be fetched still runs
// the copy the browser has. The server's 5 minutes are shortened to 1 s
// here, served by a stand-in with the same Cache-Control otherwise.
func TestBrowserEmbedStaleWhileDown(t *testing.T) {
	main := startMain(t, "-data", t.TempDir(), "-web", webCopy(t))
	resp, err := http.Get(main.URL() + "/embed.js")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	cc := resp.Header.Get("Cache-Control")
	if !strings.Contains(cc, "max-age=300") || !strings.Contains(cc, "stale-while-revalidate=") {
		t.Fatalf("/embed.js Cache-Control %q, want max-age=300 and stale-while-revalidate", cc)
	}
	shop := startEdgeShop(t, strings.Replace(cc, "max-age=300", "max-age=1", 1))

	tb := startBrowser(t, t.TempDir()).first
	tb.navigate(shop.url + "/page.html")
	ready(tb)
	before := shop.fetches.Load()
	time.Sleep(1500 * time.Millisecond) // let the copy go stale: this test is about time passing
	shop.down.Store(true)
	tb.navigate(shop.url + "/page.html")
	if !eval[bool](tb, `new Promise((resolve) => {
		if (window.cartsync) return resolve(window.cartsync.protocol === 1);
		window.addEventListener('cartsync:load', () => resolve(true), { once: true });
		setTimeout(() => resolve(false), 10000);
	})`) {
		t.Fatal("no window.cartsync from the stale copy while embed.js cannot be fetched")
	}
	ready(tb)
	waitUntil(t, "the background revalidation", 10*time.Second, func() bool { return shop.fetches.Load() > before })
}

// TestBrowserEmbedLoaderGivesUp: a call the loader snippet queued and that
// embed.js did not come to run in time rejects with unreachable, as a
// CartsyncError would (docs/embedding.md, embed.d.ts: name, code, message),
// and is not run when embed.js loads later. The snippet's 60 s are
// shortened to 1 s here.
func TestBrowserEmbedLoaderGivesUp(t *testing.T) {
	if !strings.Contains(repoFile(t, "assets/loader.js"), "}, 60000);") {
		t.Fatal("assets/loader.js no longer gives up after 60000 ms: update this test")
	}
	shop := startEdgeShop(t, "", "}, 60000);", "}, 1000);")
	shop.down.Store(true)

	tb := startBrowser(t, t.TempDir()).first
	tb.navigate(shop.url + "/loader.html")
	type rejection struct {
		Name    string `json:"name"`
		Code    string `json:"code"`
		Message string `json:"message"`
		IsError bool   `json:"isError"`
	}
	got := eval[rejection](tb, `cartsync.add('TEE-01', 1).then(() => ({ code: 'resolved' }),
		(e) => ({ name: e.name, code: e.code, message: e.message, isError: e instanceof Error }))`)
	if got.Name != "CartsyncError" || got.Code != "unreachable" || !got.IsError || !strings.HasPrefix(got.Message, "cartsync: add ") {
		t.Fatalf("a call queued while embed.js cannot load: %+v, want it rejected with an Error named CartsyncError, coded unreachable, with a message on add", got)
	}
	shop.down.Store(false)
	if c := ready(tb); c.Items != 0 {
		t.Errorf("once embed.js loaded, the cart holds %d items: the call that gave up ran after all", c.Items)
	}
}

// TestBrowserEmbedLoaderListenerHearsMount: a listener the page queued in
// the loader snippet hears what the tag's own mount does, even when
// embed.js runs after the page has loaded (the mount then fails at once:
// no element matches data-mount).
func TestBrowserEmbedLoaderListenerHearsMount(t *testing.T) {
	shop := startEdgeShop(t, "",
		"{ 'data-mount': '#cart' }", "{ 'data-mount': '#nowhere' }",
		"w.cartsync = stub;", "w.cartsync = stub; stub.on('error', function (e) { w.heard = e.code; });")
	shop.down.Store(true)
	tb := startBrowser(t, t.TempDir()).first
	tb.navigate(shop.url + "/loader.html")
	waitUntil(t, "a failed load of embed.js", 20*time.Second, func() bool { return shop.fetches.Load() > 0 })
	shop.down.Store(false)
	waitUntil(t, "embed.js to run", 30*time.Second, func() bool {
		return eval[bool](tb, `window.cartsync.protocol === 1`)
	})
	if got := eval[string](tb, `String(window.heard)`); got != "no_mount" {
		t.Errorf("the queued error listener heard %q, want no_mount", got)
	}
}

// TestBrowserEmbedLoaderAfterLoad: the loader snippet loads embed.js after
// the page's load event, so that the page never waits for the cart server;
// on a page whose load takes longer, 1 s after the snippet ran.
func TestBrowserEmbedLoaderAfterLoad(t *testing.T) {
	shop := startEdgeShop(t, "", "w.cartsync = stub;",
		"w.cartsync = stub; if (location.search === '?slow') d.head.appendChild(Object.assign(d.createElement('img'), { src: '/slow.png' }));")
	tb := startBrowser(t, t.TempDir()).first
	// When the fetch of embed.js started and the load event, in ms from
	// navigation start.
	const timesJS = `new Promise((resolve) => {
		const done = () => {
			const nav = performance.getEntriesByType('navigation')[0];
			const res = performance.getEntriesByType('resource').find((e) => e.name.endsWith('/edge/embed.js'));
			resolve({ fetch: res ? res.startTime : -1, load: nav.loadEventStart });
		};
		cartsync.ready.then(() => (document.readyState === 'complete' ? done() : addEventListener('load', () => setTimeout(done), { once: true })));
	})`
	type times struct{ Fetch, Load float64 }

	tb.navigate(shop.url + "/loader.html")
	got := eval[times](tb, timesJS)
	if got.Fetch < 0 || got.Load <= 0 || got.Fetch < got.Load {
		t.Errorf("a light page: embed.js fetched at %.0f ms, the load event at %.0f ms; want the fetch after the load event", got.Fetch, got.Load)
	}

	tb.navigate(shop.url + "/loader.html?slow")
	got = eval[times](tb, timesJS)
	if got.Fetch < 900 || got.Load < 2900 || got.Fetch > got.Load {
		t.Errorf("a page whose load takes 3 s: embed.js fetched at %.0f ms, the load event at %.0f ms; want the fetch about 1 s in, before the load event", got.Fetch, got.Load)
	}
	if c := ready(tb); c.Items != 0 {
		t.Errorf("the cart after the slow load: %s", c)
	}
}
