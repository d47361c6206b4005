package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/cartsync/cartsync/shared/cart"
)

// The widget in other languages, end to end: a storefront page with
// data-locale gets the panel in that language, right to left for Arabic,
// with prices formatted for the locale (a yen price has no decimals); the
// storefront's own messages through cartsync.theme; the direct checkout.

// i18nSKU is a catalog item priced in yen, a currency without decimals.
const i18nSKU = "CUP-JP"

// i18nShop runs the commerce server with a storefront page at /page whose
// embed.js tag has data-locale=locale, a catalog with i18nSKU at ¥1,500, and
// opens the page with qty of it in the cart.
func i18nShop(t *testing.T, page, locale string, qty int) (*cartServer, *tab, hostCart) {
	t.Helper()
	web := webCopy(t)
	html := strings.Replace(shopPage, `data-mount="#cart"`, `data-mount="#cart" data-locale="`+locale+`"`, 1)
	if err := os.WriteFile(filepath.Join(web, "demo", page), []byte(html), 0o644); err != nil {
		t.Fatal(err)
	}
	m := startMain(t, "-data", t.TempDir(), "-web", web, "-demo-addr", "127.0.0.1:0", "-api-keys", testAPIKey)
	srv := &cartServer{t: t, m: m}
	stock := 20
	srv.putItems(cart.Item{SKU: i18nSKU, Name: "Cup", Image: srv.demo() + "/mug.svg", Price: 1500, Currency: "JPY", Sellable: true, Stock: &stock})
	tb := startBrowser(t, t.TempDir()).first
	tb.navigate(srv.demo() + "/" + page)
	ready(tb)
	call(tb, "add", i18nSKU, qty, map[string]any{"name": "Cup", "price": 1500, "currency": "JPY"})
	c := waitSynced(tb, quantities{i18nSKU: qty})
	eval[bool](tb, `cartsync.open()`)
	waitWidget(tb, srv.origin(), "the open panel", `!!document.querySelector('.cartsync-line')`)
	return srv, tb, c
}

// panelTexts is what the open panel shows, read in the widget.
type panelTexts struct {
	Lang     string `json:"lang"`
	Dir      string `json:"dir"`
	Title    string `json:"title"`
	Button   string `json:"button"` // the cart button's accessible name
	Price    string `json:"price"`
	Total    string `json:"total"` // the line's total
	Subtotal string `json:"subtotal"`
	Review   string `json:"review"`
	// TitleRight: the title is right of the close button, as a
	// right-to-left page has it.
	TitleRight bool `json:"titleRight"`
}

const readPanel = `(() => {
	const q = (s) => document.querySelector(s);
	const text = (s) => (q(s)?.textContent || '');
	const title = q('#cartsync-title').getBoundingClientRect(), close = q('.cartsync-close').getBoundingClientRect();
	return {
		lang: document.documentElement.lang,
		dir: document.documentElement.dir,
		title: text('#cartsync-title'),
		button: q('#cartsync-button').getAttribute('aria-label'),
		price: text('.cartsync-price'),
		total: [...(q('.cartsync-line-total')?.childNodes || [])].filter((n) => n.nodeType === Node.TEXT_NODE).map((n) => n.textContent).join(''),
		subtotal: text('.cartsync-subtotal-amount'),
		review: text('.cartsync-foot > .cartsync-primary'),
		titleRight: title.left > close.right,
	};
})()`

// checkNoDecimals fails the test if a yen amount shows decimals: a
// decimal separator followed by two digits at the end.
func checkNoDecimals(t *testing.T, what, s string) {
	t.Helper()
	for _, sep := range []string{".00", ",00", "٫٠٠"} {
		if strings.Contains(s, sep) {
			t.Errorf("%s %q has decimals", what, s)
		}
	}
}

// TestBrowserI18nArabic: data-locale="ar" gives the panel in Arabic, right
// to left, with the yen price formatted for Arabic; the storefront's own
// messages replace texts and a bad one is refused; the direct checkout
// hands the cart over from the panel.
func TestBrowserI18nArabic(t *testing.T) {
	srv, tb, c := i18nShop(t, "shop-ar.html", "ar", 2)
	got := evalInWidget[panelTexts](tb, srv.origin(), readPanel)
	want := panelTexts{
		Lang: "ar", Dir: "rtl", Title: "سلة التسوق", Button: "السلة، عنصران",
		Price: "\u200f1,500\u00a0JP¥\u200e", Total: "\u200f3,000\u00a0JP¥\u200e", Subtotal: "\u200f3,000\u00a0JP¥\u200e",
		Review: "مراجعة الطلب", TitleRight: true,
	}
	if got != want {
		t.Errorf("the panel in Arabic:\n got %+v\nwant %+v", got, want)
	}
	checkNoDecimals(t, "the price", got.Price)
	if dir := evalInWidget[string](tb, srv.origin(), `getComputedStyle(document.getElementById('cartsync-panel')).direction`); dir != "rtl" {
		t.Errorf("the panel's direction is %q, want rtl", dir)
	}
	screenshot(tb, 420, 700, "i18n-ar.png")

	// The storefront's messages: the title changes in place.
	if !eval[bool](tb, `cartsync.theme({ messages: { 'panel.title': 'سلتي', 'cart.label.items#two': 'السلة: قطعتان' } })`) {
		t.Fatal("theme with messages did not resolve with true")
	}
	waitWidget(tb, srv.origin(), "the storefront's title", `document.getElementById('cartsync-title').textContent === 'سلتي'`)
	if label := evalInWidget[string](tb, srv.origin(), `document.getElementById('cartsync-button').getAttribute('aria-label')`); label != "السلة: قطعتان" {
		t.Errorf("the cart button is called %q, want the storefront's plural form", label)
	}
	// An unknown id is refused, naming it, and nothing changes.
	refused := eval[string](tb, `cartsync.theme({ messages: { 'panel.title': 'x', 'panel.titel': 'y' } }).then(() => 'resolved', (e) => e.code + ': ' + e.message)`)
	if !strings.HasPrefix(refused, "bad_request: ") || !strings.Contains(refused, `"panel.titel": unknown message id`) {
		t.Errorf("theme with an unknown message id: %s, want bad_request naming panel.titel", refused)
	}
	refused = eval[string](tb, `cartsync.theme({ messages: { 'line.remove.label': 'إزالة {product}' } }).then(() => 'resolved', (e) => e.code + ': ' + e.message)`)
	if !strings.HasPrefix(refused, "bad_request: ") || !strings.Contains(refused, `"line.remove.label": placeholders {product}, want {name}`) {
		t.Errorf("theme with a wrong placeholder: %s, want bad_request naming line.remove.label", refused)
	}
	if title := widgetText(tb, srv.origin(), "#cartsync-title"); title != "سلتي" {
		t.Errorf("after the refused themes the title is %q", title)
	}

	// The direct checkout: Checkout next to Review order, no review step.
	recordCheckouts(tb)
	if !eval[bool](tb, `cartsync.theme({ checkout: 'direct' })`) {
		t.Fatal("theme checkout direct did not resolve with true")
	}
	clickWidget(tb, srv.origin(), "#cartsync-checkout-direct", "الدفع")
	ev := eval[checkoutEvent](tb, `new Promise((resolve) => {
		const poll = () => (window.__checkouts.length ? resolve(window.__checkouts[0]) : setTimeout(poll, 50));
		poll();
	})`)
	if !strings.HasPrefix(ev.CheckoutID, "co_"+c.ID+"_") || ev.Version != c.Version || ev.Cart.Items != 2 {
		t.Errorf("checkout event %+v, want the checkout of cart %s at version %d", ev, c.ID, c.Version)
	}
	if title := widgetText(tb, srv.origin(), "#cartsync-title"); title != "سلتي" {
		t.Errorf("after the direct checkout the panel's title is %q, want the cart's (no review step)", title)
	}

	// Closed again, twice, the frame is the button's size: right to left,
	// it kept the open panel's width (the button sits at the frame's
	// right edge, which was measured as the width).
	for range 2 {
		eval[bool](tb, `cartsync.close()`)
		waitHost(tb, "the frame closed to the button's size", `(() => { const r = document.querySelector('iframe').getBoundingClientRect(); return r.width <= 80 && r.height <= 80; })()`)
		eval[bool](tb, `cartsync.open()`)
		waitHost(tb, "the frame open", `document.querySelector('iframe').getBoundingClientRect().width > 300`)
	}
}

// TestBrowserI18nGerman: data-locale="de-DE" gives the panel in German by
// the language subtag, left to right, with the yen price formatted for
// de-DE.
func TestBrowserI18nGerman(t *testing.T) {
	srv, tb, _ := i18nShop(t, "shop-de.html", "de-DE", 1)
	got := evalInWidget[panelTexts](tb, srv.origin(), readPanel)
	want := panelTexts{
		Lang: "de", Dir: "ltr", Title: "Ihr Warenkorb", Button: "Warenkorb, 1 Artikel",
		Price: "1.500\u00a0¥", Total: "1.500\u00a0¥", Subtotal: "1.500\u00a0¥",
		Review: "Bestellung prüfen", TitleRight: false,
	}
	if got != want {
		t.Errorf("the panel in German:\n got %+v\nwant %+v", got, want)
	}
	checkNoDecimals(t, "the price", got.Price)
	// The live region speaks German too: an add from the page.
	call(tb, "add", i18nSKU, 2, map[string]any{"name": "Cup", "price": 1500, "currency": "JPY"})
	deadline := time.Now().Add(10 * time.Second)
	for said := ""; said != "Cup hinzugefügt. 3 Artikel im Warenkorb."; said = evalInWidget[string](tb, srv.origin(), liveText) {
		if time.Now().After(deadline) {
			t.Fatalf("the live region says %q, want the add in German", said)
		}
		time.Sleep(50 * time.Millisecond)
	}
}
