package main

import (
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
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
//     /embed.js, 5 minutes): the cart button shows the last count at once,
//     the widget loads from its service worker with the stored cart, and
//     edits are kept on the device;
//   - embed.js not cached (the cache cleared): a page loading it from the
//     cart server gets no window.cartsync at all, since nothing can serve
//     the script; a page with its own copy of embed.js (data-server) gets
//     the whole cart, from the worker, as above.
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
