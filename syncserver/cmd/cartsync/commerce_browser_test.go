package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"maps"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/cdproto/network"
	"github.com/chromedp/cdproto/page"
	"github.com/chromedp/chromedp"

	"github.com/cartsync/cartsync/shared/cart"
	"github.com/cartsync/cartsync/syncserver"
)

// The end-to-end tests of the storefront's catalog and checkout in the
// widget: the storefront's backend uploads its catalog (PUT
// /v1/backend/catalog/items) while the shopper's cart is open, the widget
// tells what changed with a fix for each, and the review step hands the
// cart over as a checkout of the server's. The helpers are browser_test.go's
// and main_test.go's.

// testAPIKey is the backend API key the tests run the server with.
const testAPIKey = "cartsync-browser-tests-backend-api-key-0123456789"

// shopPage is a storefront page with the cart and no checkout URL, so that
// a checkout event leaves the page where it is.
const shopPage = `<!doctype html>
<html lang="en">
<head><meta charset="utf-8"><meta name="viewport" content="width=device-width, initial-scale=1"><title>Shop</title></head>
<body>
<h1>Fernhill Goods</h1>
<div id="cart"></div>
<script async src="{{CART_SERVER}}/embed.js" data-mount="#cart"></script>
</body>
</html>
`

// thanksPage is where shopGoPage's checkout goes.
const thanksPage = `<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>Thanks</title></head><body><p>Checkout</p></body></html>
`

// startCommerceServer runs the server like startCartServer, with the
// backend API open to testAPIKey, and on the storefront's origin shopPage
// at /shop.html, the same page with data-checkout-url="/thanks.html" at
// /shop-go.html, and /thanks.html.
func startCommerceServer(t *testing.T) *cartServer {
	t.Helper()
	web := webCopy(t)
	pages := map[string]string{
		"shop.html":    shopPage,
		"shop-go.html": strings.Replace(shopPage, `data-mount="#cart"`, `data-mount="#cart" data-checkout-url="/thanks.html?from=cart"`, 1),
		"thanks.html":  thanksPage,
	}
	for name, page := range pages {
		if err := os.WriteFile(filepath.Join(web, "demo", name), []byte(page), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	m := startMain(t, "-data", t.TempDir(), "-web", web, "-demo-addr", "127.0.0.1:0", "-api-keys", testAPIKey)
	return &cartServer{t: t, m: m}
}

// backendCall calls the backend API as the storefront's backend and
// decodes the answer into out (if not nil); the status must be 200.
func (s *cartServer) backendCall(method, path string, body, out any) {
	s.t.Helper()
	var r io.Reader
	if body != nil {
		b, err := json.Marshal(body)
		if err != nil {
			s.t.Fatal(err)
		}
		r = bytes.NewReader(b)
	}
	req, err := http.NewRequest(method, s.origin()+path, r)
	if err != nil {
		s.t.Fatal(err)
	}
	req.Header.Set("Authorization", "Bearer "+testAPIKey)
	req.Header.Set("Content-Type", "application/json")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		s.t.Fatalf("%s %s: %v", method, path, err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != http.StatusOK {
		s.t.Fatalf("%s %s = %d %s", method, path, resp.StatusCode, b)
	}
	if out != nil {
		if err := json.Unmarshal(b, out); err != nil {
			s.t.Fatalf("%s %s: %v in %s", method, path, err, b)
		}
	}
}

// putItems uploads catalog items.
func (s *cartServer) putItems(items ...cart.Item) {
	s.t.Helper()
	s.backendCall(http.MethodPut, "/v1/backend/catalog/items", syncserver.CatalogUpsert{Items: items}, nil)
}

// item is a sellable catalog item in EUR with stock, pictured by an image
// of the demo storefront.
func (s *cartServer) item(sku, name, image string, price int64, stock int) cart.Item {
	return cart.Item{SKU: sku, Name: name, Image: s.demo() + "/" + image, Price: price, Currency: "EUR", Sellable: true, Stock: &stock}
}

// The items of these tests: SKUs of their own, which the demo storefront's
// catalog (uploaded as the server starts) leaves alone.
const (
	mugSKU  = "MUG-02"
	mugName = "Speckled stoneware mug"
	teeSKU  = "TEE-02"
	teeName = "Linen tee"
)

// putTestItems uploads the mug at €12.00 and the tee at €19.99, 10 of each.
func (s *cartServer) putTestItems() {
	s.t.Helper()
	s.putItems(s.item(mugSKU, mugName, "mug.svg", 1200, 10), s.item(teeSKU, teeName, "tee.svg", 1999, 10))
}

// noticeRows reads the fix rows the widget shows under scope (a selector:
// the panel's lines or the review), in order, as "kind: text | button
// (its accessible name)".
func noticeRows(tb *tab, cartOrigin, scope string) []string {
	tb.t.Helper()
	return evalInWidget[[]string](tb, cartOrigin, `[...document.querySelectorAll(`+jsArgs([]any{scope + " .cartsync-fix-row"})+`)].map((r) => {
		const b = r.querySelector('button');
		return r.dataset.notice + ': ' + r.querySelector('.cartsync-fix-text').textContent + ' | ' + b.textContent + ' (' + b.getAttribute('aria-label') + ')';
	})`)
}

// waitRows waits until the widget shows the fix rows want under scope.
func waitRows(tb *tab, cartOrigin, scope string, want ...string) {
	tb.t.Helper()
	if want == nil {
		want = []string{}
	}
	deadline := time.Now().Add(10 * time.Second)
	for {
		got := noticeRows(tb, cartOrigin, scope)
		if fmt.Sprint(got) == fmt.Sprint(want) {
			return
		}
		if time.Now().After(deadline) {
			tb.t.Fatalf("%s: the widget shows the notices\n%s\nwant\n%s", tb.name, strings.Join(got, "\n"), strings.Join(want, "\n"))
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// clickWidget clicks the first button of the widget matching selector
// whose text is text ("" for any), waiting for it to be there and enabled.
func clickWidget(tb *tab, cartOrigin, selector, text string) {
	tb.t.Helper()
	expr := `(() => {
		const b = [...document.querySelectorAll(` + jsArgs([]any{selector}) + `)].find((b) => ` + jsArgs([]any{text}) + ` === '' || b.textContent === ` + jsArgs([]any{text}) + `);
		if (!b || b.disabled) return false;
		b.click();
		return true;
	})()`
	deadline := time.Now().Add(10 * time.Second)
	for !evalInWidget[bool](tb, cartOrigin, expr) {
		if time.Now().After(deadline) {
			tb.t.Fatalf("%s: no enabled button %s %q in the widget", tb.name, selector, text)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// widgetText returns the text of the first element matching selector in
// the widget, "" if there is none.
func widgetText(tb *tab, cartOrigin, selector string) string {
	tb.t.Helper()
	return evalInWidget[string](tb, cartOrigin, `document.querySelector(`+jsArgs([]any{selector})+`)?.textContent || ''`)
}

// layoutCheck is what the widget's layout looks like at a width.
type layoutCheck struct {
	Panel    int      `json:"panel"`    // the panel's width
	Overflow int      `json:"overflow"` // how far its content overflows it sideways
	Outside  []string `json:"outside"`  // buttons not wholly inside it
	Small    []string `json:"small"`    // buttons smaller than 40 × 40
}

// checkLayout measures the open panel inside the widget.
func checkLayout(tb *tab, cartOrigin string) layoutCheck {
	tb.t.Helper()
	return evalInWidget[layoutCheck](tb, cartOrigin, `(() => {
		const p = document.getElementById('cartsync-panel');
		const r = p.getBoundingClientRect();
		const out = { panel: Math.round(r.width), overflow: p.scrollWidth - p.clientWidth, outside: [], small: [] };
		for (const b of p.querySelectorAll('button')) {
			const q = b.getBoundingClientRect();
			const name = b.getAttribute('aria-label') || b.textContent;
			if (q.left < r.left - 0.5 || q.right > r.right + 0.5) out.outside.push(name);
			if (q.width < 40 || q.height < 40) out.small.push(name);
		}
		return out;
	})()`)
}

// screenshot sets the tab's viewport to width × height, lets the page lay
// itself out again, and saves a PNG of it in /tmp/cartsync-shots/.
func screenshot(tb *tab, width, height int64, name string) string {
	tb.t.Helper()
	dir := "/tmp/cartsync-shots"
	if err := os.MkdirAll(dir, 0o755); err != nil {
		tb.t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(tb.ctx, evalTimeout)
	defer cancel()
	err := chromedp.Do(ctx, chromedp.EmulateViewport(width, height))
	if err == nil {
		_, err = chromedp.Run(ctx, chromedp.Evaluate[bool](`new Promise((r) => setTimeout(() => requestAnimationFrame(() => r(true)), 400))`, chromedp.EvalAwaitPromise))
	}
	var buf []byte
	if err == nil {
		buf, err = chromedp.Run(ctx, chromedp.CaptureScreenshot())
	}
	if err != nil {
		tb.t.Fatalf("%s: screenshot at %d px: %v", tb.name, width, err)
	}
	path := filepath.Join(dir, name)
	if err := os.WriteFile(path, buf, 0o644); err != nil {
		tb.t.Fatal(err)
	}
	tb.t.Logf("screenshot at %d × %d px: %s", width, height, path)
	return path
}

// TestBrowserCatalogNotices: the storefront changes the price and the stock
// of an item in the shopper's open cart, and withdraws another, through the
// backend API; the open widget tells each change with its fix at once, the
// review step holds checkout back until they are settled, and the fixes
// reach the server.
func TestBrowserCatalogNotices(t *testing.T) {
	srv := startCommerceServer(t)
	srv.putTestItems()
	tb := startBrowser(t, t.TempDir()).first
	tb.navigate(srv.demo() + "/shop.html")
	ready(tb)
	const tee = teeSKU + "?size=M"
	// The page's details are its own; the server takes the catalog's.
	call(tb, "add", mugSKU, 3, map[string]any{"name": "Mug", "price": 900, "currency": "EUR"})
	call(tb, "add", teeSKU, 1, map[string]any{"name": "Tee", "price": 100, "currency": "EUR", "options": map[string]string{"size": "M"}})
	c := waitCart(tb, "the catalog's details after the acks", 15*time.Second, func(c hostCart) bool {
		return synced(c) && len(c.Lines) == 2 && c.Lines[0].Details.Price == 1200 && c.Lines[1].Details.Name == teeName
	})
	id := c.ID
	if !eval[bool](tb, `cartsync.open()`) {
		t.Fatal("cartsync.open()")
	}
	waitRows(tb, srv.origin(), ".cartsync-lines")

	// The catalog changes under the open cart.
	withdrawn := srv.item(teeSKU, teeName, "tee.svg", 1999, 10)
	withdrawn.Sellable = false
	srv.putItems(srv.item(mugSKU, mugName, "mug.svg", 1400, 2), withdrawn)
	rows := []string{
		"price: Price changed from €12.00 to €14.00 | Accept new price (Accept new price of " + mugName + ")",
		"available: Only 2 available | Reduce to 2 (Reduce to 2: " + mugName + ")",
		"unavailable: No longer available | Remove (Remove " + teeName + " from cart)",
	}
	waitRows(tb, srv.origin(), ".cartsync-lines", rows...)
	// The catalog changed nothing in the cart: the same version, totals
	// at the new prices without the withdrawn tee.
	if c := call(tb, "cart"); c.Version != 2 || !maps.Equal(c.quantities(), quantities{mugSKU: 3, tee: 1}) {
		t.Errorf("after the catalog change: %s, want version 2 as it was", c)
	}
	if got := widgetText(tb, srv.origin(), ".cartsync-subtotal-amount"); got != "€42.00" {
		t.Errorf("subtotal %q, want €42.00 (3 × €14.00, the withdrawn tee left out)", got)
	}

	// The layout, wide and at 375 px: looked at by eye, and measured.
	screenshot(tb, 1280, 900, "notices-1280.png")
	screenshot(tb, 375, 812, "notices-375.png")
	if l := checkLayout(tb, srv.origin()); l.Panel != 375 || l.Overflow > 0 || len(l.Outside) > 0 || len(l.Small) > 0 {
		t.Errorf("at 375 px: %+v; want a 375 px panel with no sideways overflow and every button inside it, at least 40 × 40", l)
	}

	// The review step shows them too, and holds checkout back.
	clickWidget(tb, srv.origin(), ".cartsync-foot .cartsync-primary", "Review order")
	waitRows(tb, srv.origin(), ".cartsync-review", rows...)
	screenshot(tb, 375, 812, "review-notices-375.png")
	blocked := evalInWidget[bool](tb, srv.origin(), `(() => {
		const b = document.querySelector('.cartsync-actions .cartsync-primary');
		return b.disabled && b.getAttribute('aria-describedby') === 'cartsync-checkout-blocked';
	})()`)
	if why := widgetText(tb, srv.origin(), "#cartsync-checkout-blocked"); !blocked || !strings.HasPrefix(why, "Some items changed") {
		t.Errorf("review step with notices: checkout disabled and described %v, saying %q", blocked, why)
	}
	screenshot(tb, 1280, 900, "review-notices-1280.png")
	clickWidget(tb, srv.origin(), ".cartsync-actions .cartsync-secondary", "Back")

	// The fixes, one click each.
	clickWidget(tb, srv.origin(), ".cartsync-fix", "Accept new price")
	// The button is gone: the focus goes to the line, not the top.
	waitWidget(tb, srv.origin(), "the focus on the mug's Decrease button", `(() => {
		const a = document.activeElement;
		return !!a && a.id.startsWith('cartsync-decrease-') && a.getAttribute('aria-label').includes('`+mugName+`');
	})()`)
	waitRows(tb, srv.origin(), ".cartsync-lines", rows[1:]...)
	clickWidget(tb, srv.origin(), ".cartsync-fix", "Reduce to 2")
	waitRows(tb, srv.origin(), ".cartsync-lines", rows[2:]...)
	clickWidget(tb, srv.origin(), ".cartsync-fix", "Remove")
	waitRows(tb, srv.origin(), ".cartsync-lines")
	want := quantities{mugSKU: 2}
	waitSynced(tb, want)
	srv.checkServer(id, want, 5) // two adds, the new price, the reduction, the removal
	if l := srv.record(id).Cart.Line(mugSKU); l == nil || l.Details.Price != 1400 || l.Details.Name != mugName {
		t.Errorf("the mug on the server: %+v, want the catalog's new price", l)
	}
	if got := widgetText(tb, srv.origin(), ".cartsync-subtotal-amount"); got != "€28.00" {
		t.Errorf("subtotal %q after the fixes, want €28.00", got)
	}

	// The page hears of an add the server refused, and why; the panel
	// says it in words.
	eval[bool](tb, `(window.__rejected = [], cartsync.on('rejected', (d) => window.__rejected.push(d)), true)`)
	call(tb, "add", teeSKU, 1, map[string]any{"name": "Tee", "price": 1999, "currency": "EUR", "options": map[string]string{"size": "M"}})
	refused := eval[[]map[string]string](tb, `new Promise((resolve) => {
		const poll = () => (window.__rejected.length ? resolve(window.__rejected) : setTimeout(poll, 50));
		poll();
	})`)
	if len(refused) != 1 || refused[0]["sku"] != teeSKU || refused[0]["key"] != tee || refused[0]["code"] != "not_sellable" {
		t.Errorf("rejected events %v, want one: the withdrawn tee, not_sellable", refused)
	}
	waitSynced(tb, want)
	waitWidgetText(tb, srv.origin(), "as the refusal", `document.querySelector('.cartsync-message')?.textContent`,
		"Couldn't update Tee: it's no longer for sale.")
	clickWidget(tb, srv.origin(), ".cartsync-foot .cartsync-primary", "Review order")
	clickWidget(tb, srv.origin(), ".cartsync-actions .cartsync-primary", "Checkout") // enabled again
}

// checkoutEvent is the data of the bridge's checkout event.
type checkoutEvent struct {
	Cart       hostCart `json:"cart"`
	Version    uint64   `json:"version"`
	CheckoutID string   `json:"checkout_id"`
}

// recordCheckouts makes the page keep every checkout event.
func recordCheckouts(tb *tab) {
	tb.t.Helper()
	eval[bool](tb, `(window.__checkouts = [], cartsync.on('checkout', (d) => window.__checkouts.push(d)), true)`)
}

// shopWithCart opens page on a server whose catalog has the mug, adds 2
// mugs and opens the panel on the review step.
func shopWithCart(t *testing.T, page string) (*cartServer, *tab, hostCart) {
	t.Helper()
	srv := startCommerceServer(t)
	srv.putTestItems()
	tb := startBrowser(t, t.TempDir()).first
	tb.navigate(srv.demo() + "/" + page)
	ready(tb)
	call(tb, "add", mugSKU, 2, map[string]any{"name": "Mug", "price": 1200, "currency": "EUR"})
	c := waitSynced(tb, quantities{mugSKU: 2})
	recordCheckouts(tb)
	eval[bool](tb, `cartsync.open()`)
	clickWidget(tb, srv.origin(), ".cartsync-foot .cartsync-primary", "Review order")
	return srv, tb, c
}

// TestBrowserCheckoutHandsOver: confirming the review step creates the
// server's checkout of the reviewed version; the checkout event carries its
// id, and so does the checkout URL the page then goes to.
func TestBrowserCheckoutHandsOver(t *testing.T) {
	srv, tb, c := shopWithCart(t, "shop.html")
	clickWidget(tb, srv.origin(), ".cartsync-actions .cartsync-primary", "Checkout")
	ev := eval[checkoutEvent](tb, `new Promise((resolve) => {
		const poll = () => (window.__checkouts.length ? resolve(window.__checkouts[0]) : setTimeout(poll, 50));
		poll();
	})`)
	if !strings.HasPrefix(ev.CheckoutID, "co_"+c.ID+"_") || ev.Version != c.Version || ev.Cart.Version != c.Version || ev.Cart.Items != 2 {
		t.Fatalf("checkout event %+v, want the checkout of cart %s at version %d", ev, c.ID, c.Version)
	}
	var co cart.Checkout
	srv.backendCall(http.MethodGet, "/v1/backend/checkouts/"+ev.CheckoutID, nil, &co)
	if co.Status != cart.CheckoutOpen || co.Version != c.Version || co.CartID != c.ID || len(co.Lines) != 1 ||
		co.Lines[0].Quantity != 2 || co.Lines[0].UnitPrice != 1200 || co.Totals["EUR"] != 2400 {
		t.Errorf("the server's checkout %+v, want an open checkout of 2 mugs at €12.00", co)
	}
	if note := widgetText(tb, srv.origin(), ".cartsync-checkout-note"); note != "" {
		t.Errorf("the widget says %q after a handover", note)
	}
	if n := eval[int](tb, `window.__checkouts.length`); n != 1 {
		t.Errorf("%d checkout events, want 1", n)
	}

	// With a checkout URL the page goes there, with the checkout's id:
	// the same review, so the same checkout.
	tb.navigate(srv.demo() + "/shop-go.html")
	ready(tb)
	eval[bool](tb, `cartsync.open()`)
	clickWidget(tb, srv.origin(), ".cartsync-foot .cartsync-primary", "Review order")
	clickWidget(tb, srv.origin(), ".cartsync-actions .cartsync-primary", "Checkout")
	deadline := time.Now().Add(10 * time.Second)
	for {
		loc, err := tryEval[string](tb, "", `location.pathname + location.search`)
		if err == nil && loc == "/thanks.html?from=cart&checkout="+ev.CheckoutID {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the page is at %q (%v), want /thanks.html with checkout %s (the same review's)", loc, err, ev.CheckoutID)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// TestBrowserCheckoutConflict: another device changes the cart after the
// review (an HTTP client with this device's token). The review shows the
// cart as it is now and why, and hands nothing over until the shopper
// confirms again. The widget either sees the change (pushed to it: the
// review says so at once) or learns it from the server's refusal when the
// shopper confirms (its connection is down).
func TestBrowserCheckoutConflict(t *testing.T) {
	for _, tt := range []struct {
		name      string
		connected bool
	}{{"Pushed", true}, {"RefusedByServer", false}} {
		t.Run(tt.name, func(t *testing.T) {
			srv, tb, c := shopWithCart(t, "shop.html")
			if !tt.connected {
				// Drop the websocket and keep it down; HTTP stays up.
				tb.setOffline(true, "")
				waitStatus(tb, "offline")
				blockWebsocket(tb, srv.origin())
			}
			tok := readStorage(tb, srv.origin()).Token
			postOps(t, srv.origin(), tok, cart.Op{Client: "phone", Seq: 1, Kind: cart.KindAdd, SKU: teeSKU, Quantity: 1})
			if tt.connected {
				waitCart(tb, "the other device's edit", 10*time.Second, func(h hostCart) bool { return h.Items == 3 })
			} else if h := call(tb, "cart"); h.Items != 2 {
				t.Fatalf("the widget saw the other device's edit: %s", h)
			}
			if !tt.connected {
				clickWidget(tb, srv.origin(), ".cartsync-actions .cartsync-primary", "Checkout")
			}
			waitWidgetText(tb, srv.origin(), "as the checkout note", `document.querySelector('.cartsync-checkout-note')?.textContent`,
				"Your cart changed on another device. Please review it again.")
			waitWidgetText(tb, srv.origin(), "as the panel's title", `document.getElementById('cartsync-title')?.textContent`, "Review your order")
			screenshot(tb, 375, 812, "conflict-"+strings.ToLower(tt.name)+"-375.png")
			lines := evalInWidget[[]string](tb, srv.origin(), `[...document.querySelectorAll('.cartsync-review .cartsync-review-what')].map((e) => e.textContent)`)
			if want := []string{"2 × " + mugName, "1 × " + teeName}; fmt.Sprint(lines) != fmt.Sprint(want) {
				t.Errorf("the review shows %q, want %q", lines, want)
			}
			if h := call(tb, "cart"); !tt.connected && (h.Status == "synced" || h.Status == "syncing") {
				t.Errorf("the widget is %s: its websocket came back, so the server's refusal may not be what told it", h.Status)
			}
			// A round trip through the bridge: the widget posts events
			// and answers in order, so a checkout event of the refused
			// handover, shown above, would arrive before this answer.
			call(tb, "cart")
			if n := eval[int](tb, `window.__checkouts.length`); n != 0 {
				t.Errorf("%d checkout events after a refused handover", n)
			}
			var bc syncserver.BackendCart
			srv.backendCall(http.MethodGet, "/v1/backend/carts/"+c.ID, nil, &bc)
			if len(bc.Checkouts) != 0 || bc.Cart.Version != c.Version+1 {
				t.Errorf("the server's cart: version %d, %d checkouts; want version %d and none", bc.Cart.Version, len(bc.Checkouts), c.Version+1)
			}

			// Reviewed again, it goes through.
			clickWidget(tb, srv.origin(), ".cartsync-actions .cartsync-primary", "Checkout")
			ev := eval[checkoutEvent](tb, `new Promise((resolve) => {
				const poll = () => (window.__checkouts.length ? resolve(window.__checkouts[0]) : setTimeout(poll, 50));
				poll();
			})`)
			if ev.Version != c.Version+1 || ev.CheckoutID == "" || ev.Cart.Items != 3 {
				t.Errorf("checkout event after the second review: %+v", ev)
			}
		})
	}
}

// blockWebsocket keeps the tab online but makes the cart server's
// websocket unreachable; its HTTP endpoints stay reachable. It does not
// close a websocket already open (setOffline does). unblock is
// setOffline(false, "").
func blockWebsocket(tb *tab, cartOrigin string) {
	tb.t.Helper()
	conds := []*network.Conditions{{
		URLPattern: "ws://" + strings.TrimPrefix(cartOrigin, "http://") + "/v1/*", Offline: true, DownloadThroughput: -1, UploadThroughput: -1,
	}}
	ctx, cancel := context.WithTimeout(tb.ctx, evalTimeout)
	defer cancel()
	no := false
	if _, err := chromedp.Call(ctx, network.EmulateNetworkConditionsByRule, network.EmulateNetworkConditionsByRuleParams{
		EmulateOfflineServiceWorker: &no,
		MatchedNetworkConditions:    conds,
	}); err != nil {
		tb.t.Fatalf("%s: emulate network conditions: %v", tb.name, err)
	}
	if _, err := chromedp.Call(ctx, network.OverrideNetworkState, network.OverrideNetworkStateParams{
		Offline: false, DownloadThroughput: -1, UploadThroughput: -1,
	}); err != nil {
		tb.t.Fatalf("%s: override network state: %v", tb.name, err)
	}
}

// Any connected tab sends the device's shared outbox, so the server's
// refusal of an edit made in one tab may come to another: each tab says
// it, the one where the shopper made the edit included (its page's
// rejected event and its panel).
func TestBrowserRefusalReachesTheTabThatMadeTheEdit(t *testing.T) {
	srv := startCommerceServer(t)
	withdrawn := srv.item(teeSKU, teeName, "tee.svg", 1999, 10)
	withdrawn.Sellable = false
	srv.putItems(withdrawn)
	br := startBrowser(t, t.TempDir())
	one := br.first
	one.navigate(srv.demo() + "/shop.html")
	ready(one)
	two := br.newTab("tab 2")
	two.navigate(srv.demo() + "/shop.html")
	ready(two)
	const record = `(window.__rejected = [], cartsync.on('rejected', (d) => window.__rejected.push(d)), true)`
	eval[bool](one, record)
	eval[bool](two, record)

	// Tab 2 is offline: tab 1 sends its edit from the shared outbox.
	two.setOffline(true, srv.demo())
	call(two, "add", teeSKU, 1, map[string]any{"name": "Tee", "price": 1999, "currency": "EUR"})
	const refusals = `new Promise((resolve) => {
		const poll = () => (window.__rejected.length ? resolve(window.__rejected) : setTimeout(poll, 50));
		poll();
	})`
	for _, tb := range []*tab{one, two} {
		refused := eval[[]map[string]string](tb, refusals)
		if len(refused) != 1 || refused[0]["sku"] != teeSKU || refused[0]["code"] != "not_sellable" {
			t.Errorf("%s: rejected events %v, want one: the withdrawn tee, not_sellable", tb.name, refused)
		}
	}
	// Still offline, tab 2 shows the cart without it.
	waitCart(two, "tab 2 without the refused tee", 10*time.Second, func(c hostCart) bool { return len(c.Lines) == 0 })
	eval[bool](two, `cartsync.open()`)
	waitWidgetText(two, srv.origin(), "as the refusal in tab 2", `document.querySelector('.cartsync-message')?.textContent`,
		"Couldn't update Tee: it's no longer for sale.")
	two.setOffline(false, "")
	waitSynced(two, quantities{})
}

// An add past what the catalog has is applied reduced (stock_clamped): the
// page hears of it (reduced) and the panel says it, instead of showing a
// smaller quantity without a word.
func TestBrowserReducedAddIsTold(t *testing.T) {
	srv := startCommerceServer(t)
	srv.putTestItems() // 10 mugs
	tb := startBrowser(t, t.TempDir()).first
	tb.navigate(srv.demo() + "/shop.html")
	ready(tb)
	eval[bool](tb, `(window.__reduced = [], cartsync.on('reduced', (d) => window.__reduced.push(d)), true)`)
	call(tb, "add", mugSKU, 12, map[string]any{"name": "Mug", "price": 1200, "currency": "EUR"})
	reduced := eval[[]map[string]any](tb, `new Promise((resolve) => {
		const poll = () => (window.__reduced.length ? resolve(window.__reduced) : setTimeout(poll, 50));
		poll();
	})`)
	if len(reduced) != 1 || reduced[0]["sku"] != mugSKU || reduced[0]["code"] != "stock_clamped" || reduced[0]["name"] != "Mug" ||
		reduced[0]["available"] != 10.0 || reduced[0]["limit_by"] != "stock" {
		t.Errorf("reduced events %v, want one: the mug, stock_clamped, 10 available by the stock", reduced)
	}
	waitSynced(tb, quantities{mugSKU: 10})
	eval[bool](tb, `cartsync.open()`)
	waitWidgetText(tb, srv.origin(), "as the reduction", `document.querySelector('.cartsync-message')?.textContent`,
		mugName+": the quantity was lowered to what is available.")
	screenshot(tb, 375, 812, "reduced-375.png")

	// A maximum per order is told as such, with its number, reduced and
	// then refused, to the page and in the panel: not as "no more in
	// stock" while the shop has plenty.
	tee := srv.item(teeSKU, teeName, "tee.svg", 1999, 50)
	tee.MaxPerOrder = new(2)
	srv.putItems(tee)
	eval[bool](tb, `(window.__limits = [], ['reduced', 'rejected'].forEach((e) => cartsync.on(e, (d) => window.__limits.push(e + ' ' + d.code + ' ' + d.available + ' ' + d.limit_by))), true)`)
	call(tb, "add", teeSKU, 3, map[string]any{"name": "Tee", "price": 1999, "currency": "EUR"})
	waitSynced(tb, quantities{mugSKU: 10, teeSKU: 2})
	waitWidgetText(tb, srv.origin(), "as the reduction to the maximum per order", `[...document.querySelectorAll('.cartsync-message')].pop()?.textContent`,
		teeName+": the quantity was lowered to 2, the most the shop sells per order.")
	call(tb, "add", teeSKU, 1, map[string]any{"name": "Tee", "price": 1999, "currency": "EUR"})
	waitSynced(tb, quantities{mugSKU: 10, teeSKU: 2})
	waitWidgetText(tb, srv.origin(), "as the refusal at the maximum per order", `[...document.querySelectorAll('.cartsync-message')].pop()?.textContent`,
		"Couldn't update "+teeName+": the shop sells at most 2 per order.")
	limits := eval[[]string](tb, `window.__limits`)
	if fmt.Sprint(limits) != "[reduced stock_clamped 2 per_order rejected out_of_stock 2 per_order]" {
		t.Errorf("the page heard %q, want the reduction and the refusal, each at 2 per order", limits)
	}
	screenshot(tb, 375, 812, "per-order-375.png")
}

// The demo storefront shows and takes prices in the minor units the cart
// server counts (ISO 4217), not in the browser's idea of a currency's
// decimals: HUF has 2 (Intl shows none), IQD 3 (Intl shows none), JPY 0.
func TestBrowserDemoMoneyInISOMinorUnits(t *testing.T) {
	srv := startCommerceServer(t)
	tb := startBrowser(t, t.TempDir()).first
	tb.navigate(srv.demo() + "/")
	got := eval[[]string](tb, `[[150000, 'HUF'], [12345, 'IQD'], [1500, 'JPY'], [1999, 'EUR']].map(([m, c]) => money(m, c))`)
	for i, want := range []string{"1,500.00", "12.345", "1,500", "19.99"} {
		if i >= len(got) || !strings.Contains(got[i], want) {
			t.Errorf("money %d: %q, want the amount %s", i, got, want)
		}
	}
}

// A storefront page with the cart goes into the back/forward cache and
// comes back from it working: the widget reads nothing from IndexedDB as
// the page is left and listens on no channel while it is cached (either
// kept it out, and Back reloaded the page). What another tab added while
// the page was cached shows once it is back, and an edit made then syncs.
func TestBrowserBackForwardCache(t *testing.T) {
	srv := startCommerceServer(t)
	b := startBrowser(t, t.TempDir())
	tb := b.first
	tb.navigate(srv.demo() + "/shop.html")
	ready(tb)
	call(tb, "add", "LINE-1", 1, map[string]any{"name": "Line 1", "price": 1000, "currency": "EUR"})
	waitSynced(tb, quantities{"LINE-1": 1})
	other := b.newTab("tab 2")
	other.navigate(srv.demo() + "/shop.html")
	ready(other)
	keepForBack(tb)
	tb.navigate(srv.demo() + "/thanks.html")
	call(other, "add", "LINE-2", 1, map[string]any{"name": "Line 2", "price": 1000, "currency": "EUR"})
	waitSynced(other, quantities{"LINE-1": 1, "LINE-2": 1})
	backFromCache(tb, "/shop.html")
	waitCart(tb, "the other tab's add, after Back", 10*time.Second, func(c hostCart) bool { return len(c.Lines) == 2 })
	call(tb, "add", "LINE-3", 1, map[string]any{"name": "Line 3", "price": 1000, "currency": "EUR"})
	waitSynced(tb, quantities{"LINE-1": 1, "LINE-2": 1, "LINE-3": 1})
	waitSynced(other, quantities{"LINE-1": 1, "LINE-2": 1, "LINE-3": 1})

	// Away to another page with the cart and Back, three times: each
	// cached page's connection was closed as it went into the cache, so
	// the server holds one per tab, not one more for every Back.
	for range 3 {
		tb.navigate(srv.demo() + "/shop-go.html")
		ready(tb)
		backFromCache(tb, "/shop.html")
		waitSynced(tb, quantities{"LINE-1": 1, "LINE-2": 1, "LINE-3": 1})
	}
	deadline := time.Now().Add(10 * time.Second)
	for n := srv.connections(); n != 2; n = srv.connections() {
		if time.Now().After(deadline) {
			t.Fatalf("the server holds %d connections for 2 tabs after 3 Backs", n)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// A guest cart that expires while its page is open: the page hears an
// expired event, then the change with the new, empty cart, and the live
// region tells the notice, not going offline and back online (the server
// ends the connection to hand over the new cart).
func TestBrowserExpiredCartTold(t *testing.T) {
	m := startMain(t, "-data", t.TempDir(), "-web", webCopy(t), "-demo-addr", "127.0.0.1:0",
		"-guest-retention", "3s", "-checkout-ttl", "1s", "-purge-interval", "500ms")
	srv := &cartServer{t: t, m: m}
	tb := startBrowser(t, t.TempDir()).first
	tb.navigate(srv.demo() + "/")
	ready(tb)
	call(tb, "add", "TEE-01", 1)
	before := waitSynced(tb, quantities{"TEE-01": 1})
	eval[bool](tb, `(window.__expired = 0, cartsync.on('expired', () => window.__expired++), true)`)
	recordLive(tb, srv.origin())
	after := waitCart(tb, "the new cart", 15*time.Second, func(c hostCart) bool { return c.ID != "" && c.ID != before.ID && synced(c) })
	if len(after.Lines) != 0 {
		t.Errorf("the new cart: %s, want it empty", after)
	}
	if n := eval[int](tb, `window.__expired`); n != 1 {
		t.Errorf("the page heard %d expired events, want 1", n)
	}
	said := liveSaid(tb, srv.origin())
	if !slices.ContainsFunc(said, func(s string) bool { return strings.HasPrefix(s, "Your previous cart expired") }) ||
		slices.ContainsFunc(said, func(s string) bool { return strings.HasPrefix(s, "Offline.") || s == "Back online." }) {
		t.Errorf("the live region said %q; want the notice, and nothing of going offline or back online", said)
	}
}

// A page shown again from the back/forward cache while the network is
// down tells screen readers it is offline, and back online once it is.
// The widget keeps quiet about the connection it closed itself as the page
// was cached, and kept quiet about the outage too, until it connected.
func TestBrowserOfflineAfterBackForwardCacheIsTold(t *testing.T) {
	srv := startCommerceServer(t)
	tb := startBrowser(t, t.TempDir()).first
	tb.navigate(srv.demo() + "/shop.html")
	ready(tb)
	call(tb, "add", "LINE-1", 1, map[string]any{"name": "Line 1", "price": 1000, "currency": "EUR"})
	waitSynced(tb, quantities{"LINE-1": 1})
	keepForBack(tb)
	tb.navigate(srv.demo() + "/thanks.html")
	tb.setOffline(true, "")
	backFromCache(tb, "/shop.html")
	waitWidget(tb, srv.origin(), "offline told after Back", liveText+` === `+jsArgs([]any{"Offline. Your changes are kept and sent when you're back online."}))
	tb.setOffline(false, "")
	waitWidget(tb, srv.origin(), "back online told", liveText+` === 'Back online.'`)
	waitSynced(tb, quantities{"LINE-1": 1})
}

// backFromCache goes Back, as the shopper's button does, to the page at
// path that tb left, and waits until it is shown again from the
// back/forward cache; it fails the test if the page was loaded again
// instead (keepForBack marked it before it was left). (A
// restore from the cache fires no load event to wait for, and chromedp's
// NavigateBack waits for one.)
func backFromCache(tb *tab, path string) {
	tb.t.Helper()
	eval[bool](tb, `(setTimeout(() => history.back(), 0), true)`)
	deadline := time.Now().Add(10 * time.Second)
	for {
		// A page kept in the cache still has what its scripts set; one
		// loaded again has not.
		at, err := tryEval[string](tb, "", `location.pathname + ' ' + document.readyState + ' ' + (window.__kept === true)`)
		if err != nil { // between pages
			at = err.Error()
		}
		if at == path+" complete true" {
			break
		}
		if strings.HasPrefix(at, path+" complete false") || time.Now().After(deadline) {
			tb.t.Fatalf("%s: after Back: %s; the page was not kept in the back/forward cache (loaded again, or not back)", tb.name, at)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// keepForBack marks the page tb is on, for backFromCache to tell it from
// the same page loaded again.
func keepForBack(tb *tab) {
	tb.t.Helper()
	eval[bool](tb, `(window.__kept = true, true)`)
}

// connections is the server's count of open websocket connections.
func (s *cartServer) connections() int {
	s.t.Helper()
	resp, err := http.Get(s.m.URL() + "/metrics")
	if err != nil {
		s.t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	for line := range strings.Lines(string(b)) {
		if v, ok := strings.CutPrefix(line, "cartsync_connections "); ok {
			n, err := strconv.Atoi(strings.TrimSpace(v))
			if err != nil {
				s.t.Fatalf("cartsync_connections %q: %v", v, err)
			}
			return n
		}
	}
	s.t.Fatal("/metrics has no cartsync_connections")
	return 0
}

// A tab hidden and frozen at once (as the browser freezes a background
// tab) holds no IndexedDB transaction: the store's other tabs go on
// editing at once, not after the browser gives up on the frozen one's
// (about a minute, their calls failing meanwhile).
func TestBrowserFrozenTabDoesNotBlockTheOthers(t *testing.T) {
	srv := startCommerceServer(t)
	b := startBrowser(t, t.TempDir())
	one, two := b.first, b.newTab("tab 2")
	for _, tb := range []*tab{one, two} {
		tb.navigate(srv.demo() + "/shop.html")
		ready(tb)
	}
	call(one, "add", "LINE-1", 1, map[string]any{"name": "Line 1", "price": 1000, "currency": "EUR"})
	waitSynced(one, quantities{"LINE-1": 1})
	waitSynced(two, quantities{"LINE-1": 1})
	// Let the tabs' own work on the add end (the acknowledgement stored,
	// each tab reading what the other stored): what is caught by the
	// freeze is then only what the hiding starts.
	time.Sleep(time.Second)
	lifecycle := func(tb *tab, state page.SetWebLifecycleStateState) {
		t.Helper()
		ctx, cancel := context.WithTimeout(tb.ctx, evalTimeout)
		defer cancel()
		if _, err := chromedp.Call(ctx, page.SetWebLifecycleState, page.SetWebLifecycleStateParams{State: state}); err != nil {
			t.Fatalf("%s: %s: %v", tb.name, state, err)
		}
	}
	lifecycle(one, page.SetWebLifecycleStateStateFrozen)
	call(two, "add", "LINE-2", 1, map[string]any{"name": "Line 2", "price": 1000, "currency": "EUR"})
	waitSynced(two, quantities{"LINE-1": 1, "LINE-2": 1})
	lifecycle(one, page.SetWebLifecycleStateStateActive)
	waitSynced(one, quantities{"LINE-1": 1, "LINE-2": 1})
}
