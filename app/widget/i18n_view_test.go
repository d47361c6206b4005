//go:build !js || !wasm

// The widget in German and Arabic, the storefront's messages and the direct
// checkout, through go-app's test engine (natively only).

package widget

import (
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/maxence-charriere/go-app/v10/pkg/app"

	"github.com/cartsync/cartsync/shared/cart"
	"github.com/cartsync/cartsync/shared/protocol"
	"github.com/cartsync/cartsync/shared/syncclient"
)

// matchRoot checks the widget's root, closed: its language and direction.
func matchRoot(t *testing.T, w *Widget, lang, dir string) {
	t.Helper()
	match(t, app.Div().ID(rootID).Class("cartsync").Lang(lang).Dir(dir), w, 0)
}

func TestGermanPanel(t *testing.T) {
	useLanguage(t, "de", nil)
	w := &Widget{}
	w.show(testState(syncclient.Offline, 2,
		testLine("TEE", "T-Shirt", 2, 1999, "EUR", nil),
		testLine("MUG", "Tasse", 1, 900, "EUR", nil),
	))
	mount(t, w)
	matchRoot(t, w, "de", "ltr")
	match(t, app.Button().ID(buttonID).Class("cartsync-button").Type("button").
		Aria("label", "Warenkorb, 3 Artikel").Aria("haspopup", "dialog").Aria("expanded", "false").OnClick(noop), w, 0, 0)

	w = &Widget{open: true}
	w.show(testState(syncclient.Offline, 2, testLine("TEE", "T-Shirt", 1, 1999, "EUR", nil)))
	mount(t, w)
	match(t, app.Text("Ihr Warenkorb"), w, 0, 2, panelHead, 0, 0)
	match(t, app.Button().Class("cartsync-close").Type("button").Aria("label", "Warenkorb schließen").OnClick(noop), w, 0, 2, panelHead, 1)
	match(t, app.Text("Offline – 2 Änderungen warten"), w, 0, 2, panelStatus, 0)
	tee := []int{0, 2, panelBody, 0}
	match(t, app.Button().ID(lineControlID("decrease", w.st.Cart.Lines[0].Key)).Class("cartsync-step").Type("button").
		Aria("label", "Menge von T-Shirt verringern").OnClick(noop).Text("−"), w, at(tee, 2, 0)...)
	match(t, app.Button().ID(lineControlID("remove", w.st.Cart.Lines[0].Key)).Class("cartsync-remove").Type("button").
		Aria("label", "T-Shirt aus dem Warenkorb entfernen").OnClick(noop).Text("Entfernen"), w, at(tee, 3)...)
	match(t, app.Text("Zwischensumme"), w, 0, 2, panelFoot, 0, 0, 0)
	match(t, app.Text("Steuern und Versand werden an der Kasse berechnet."), w, 0, 2, panelFoot, 1, 0)
	match(t, app.Button().Class("cartsync-primary").Type("button").OnClick(noop).Text("Bestellung prüfen"), w, 0, 2, panelFoot, 2)
}

func TestArabicPanel(t *testing.T) {
	useLanguage(t, "ar", nil)
	for _, tt := range []struct {
		items int
		label string
	}{
		{0, "السلة، فارغة"},
		{1, "السلة، عنصر واحد"},
		{2, "السلة، عنصران"},
		{5, "السلة، 5 عناصر"},
		{12, "السلة، 12 عنصرًا"},
		{100, "السلة، 100 عنصر"},
	} {
		w := &Widget{}
		var lines []*cart.Line
		if tt.items > 0 {
			lines = append(lines, testLine("TEE", "قميص", tt.items, 1500, "JPY", nil))
		}
		w.show(testState(syncclient.Synced, 0, lines...))
		mount(t, w)
		matchRoot(t, w, "ar", "rtl")
		match(t, app.Button().ID(buttonID).Class("cartsync-button").Type("button").
			Aria("label", tt.label).Aria("haspopup", "dialog").Aria("expanded", "false").OnClick(noop), w, 0, 0)
	}

	w := &Widget{open: true, review: true}
	w.show(testState(syncclient.Synced, 0, testLine("TEE", "قميص", 2, 1500, "JPY", map[string]string{"size": "M"})))
	mount(t, w)
	match(t, app.Text("مراجعة طلبك"), w, 0, 2, panelHead, 0, 0)
	match(t, app.Text("تمت المزامنة"), w, 0, 2, panelStatus, 0)
	match(t, app.Text("2 × قميص (size: M)"), w, 0, 2, panelBody, 0, 0, 0)
	match(t, app.Text("¥3000"), w, 0, 2, panelBody, 0, 1, 0) // natively the plain form; Intl in the browser
	match(t, app.Text("المجموع الفرعي"), w, 0, 2, panelFoot, 0, 0, 0)
	match(t, app.Button().Class("cartsync-secondary").Type("button").OnClick(noop).Text("رجوع"), w, 0, 2, panelFoot, 2, 0)
	match(t, app.Button().Class("cartsync-primary").Type("button").OnClick(noop).Text("الدفع"), w, 0, 2, panelFoot, 2, 1)
}

// TestArabicLiveRegion: what the live region says follows the language,
// with Arabic's plural forms.
func TestArabicLiveRegion(t *testing.T) {
	useLanguage(t, "ar", nil)
	w := &Widget{}
	w.show(testState(syncclient.Synced, 0, testLine("MUG", "كوب", 2, 0, "", nil)))
	w.added("كوب", "")
	if want := "أُضيف كوب. في السلة عنصران."; w.said != want {
		t.Errorf("said %q, want %q", w.said, want)
	}
	w.show(testState(syncclient.Synced, 0, testLine("MUG", "كوب", 11, 0, "", nil)))
	w.added("كوب", "")
	if want := "أُضيف كوب. في السلة 11 عنصرًا."; w.said != want {
		t.Errorf("said %q, want %q", w.said, want)
	}
}

// theme sends the bridge's theme method with the given argument (JSON) and
// returns the reply.
func theme(t *testing.T, c *client, e app.TestEngine, id int, arg string) string {
	t.Helper()
	r := request1(t, `{"cartsync":1,"id":`+strconv.Itoa(id)+`,"method":"theme","args":[`+arg+`]}`)
	result, err := c.exec(context.Background(), r)
	e.ConsumeAll()
	return string(encodeReply(r.id, result, err))
}

// TestThemeLanguageAndMessages: the theme's locale picks the texts'
// language and the document's direction; the storefront's messages change
// or add texts, and a bad one refuses the whole theme.
func TestThemeLanguageAndMessages(t *testing.T) {
	t.Cleanup(func() { setLanguage(language{tag: defaultLanguage}, "") })
	c, w, e := newTestClient(t)
	w.open = true
	w.show(testState(syncclient.Synced, 0, testLine("TEE", "Tee", 3, 1200, "EUR", nil)))

	ok := func(id int) string { return `{"cartsync":1,"id":` + strconv.Itoa(id) + `,"result":true}` }
	if got := theme(t, c, e, 1, `{"locale":"ar-EG","messages":{"panel.title":"سلتي","cart.items#few":"{count} قطع"}}`); got != ok(1) {
		t.Fatalf("theme: %s", got)
	}
	if active.tag != "ar" || active.dir() != "rtl" || priceLocale != "ar-EG" {
		t.Errorf("language %q (%s), prices in %q; want ar (rtl), ar-EG", active.tag, active.dir(), priceLocale)
	}
	mount(t, w)
	match(t, app.Text("سلتي"), w, 0, 2, panelHead, 0, 0)
	match(t, app.Button().Class("cartsync-close").Type("button").Aria("label", "إغلاق السلة").OnClick(noop), w, 0, 2, panelHead, 1)
	if got, want := trn("cart.items", 3), "3 قطع"; got != want {
		t.Errorf("cart.items of 3 = %q, want the storefront's %q", got, want)
	}

	// Refused: an unknown id, a placeholder English does not have. Nothing
	// changes, not even the locale given with them.
	for i, arg := range []string{
		`{"locale":"de","messages":{"panel.title":"Korb","no.such.id":"x"}}`,
		`{"locale":"de","messages":{"line.remove.label":"{item} entfernen"}}`,
		`{"messages":["not","an","object"]}`,
		`{"messages":{"panel.title":1}}`,
		`{"checkout":"fast"}`,
	} {
		got := theme(t, c, e, 10+i, arg)
		if !strings.Contains(got, `"error":{"code":"bad_request"`) {
			t.Errorf("theme %s: %s, want bad_request", arg, got)
		}
		if active.tag != "ar" || tr("panel.title") != "سلتي" || w.checkoutMode != "" {
			t.Errorf("after the refused theme %s: language %q, title %q, checkout %q", arg, active.tag, tr("panel.title"), w.checkoutMode)
		}
	}
	if got := theme(t, c, e, 20, `{"messages":{"no.such.id":"x"}}`); !strings.Contains(got, `theme messages: \"no.such.id\": unknown message id`) {
		t.Errorf("the refusal does not name the id: %s", got)
	}
	if got := theme(t, c, e, 21, `{"messages":{"line.remove.label":"{item} entfernen"}}`); !strings.Contains(got, `\"line.remove.label\": placeholders {item}, want {name} as in English`) {
		t.Errorf("the refusal does not name the placeholders: %s", got)
	}

	// German by the locale's language subtag; the Arabic messages stay
	// with Arabic.
	if got := theme(t, c, e, 30, `{"locale":"de-CH","checkout":"direct"}`); got != ok(30) {
		t.Fatalf("theme: %s", got)
	}
	if active.tag != "de" || active.dir() != "ltr" || w.checkoutMode != checkoutDirect || tr("panel.title") != "Ihr Warenkorb" {
		t.Errorf("language %q (%s), checkout %q, title %q; want de (ltr), direct, Ihr Warenkorb", active.tag, active.dir(), w.checkoutMode, tr("panel.title"))
	}
	de := &Widget{}
	mount(t, de)
	matchRoot(t, de, "de", "ltr")

	// A language the widget has no catalog of, from the storefront's
	// messages; what they leave out is English.
	if got := theme(t, c, e, 40, `{"locale":"fr-FR","messages":{"panel.title":"Votre panier","cart.items#other":"{count} articles"}}`); got != ok(40) {
		t.Fatalf("theme: %s", got)
	}
	if active.tag != "fr" || tr("panel.title") != "Votre panier" || tr("panel.close") != "Close cart" || trn("cart.items", 3) != "3 articles" {
		t.Errorf("fr: language %q, title %q, close %q, items %q", active.tag, tr("panel.title"), tr("panel.close"), trn("cart.items", 3))
	}
	// Without messages, fr has no texts: English.
	if got := theme(t, c, e, 41, `{"messages":{}}`); got != ok(41) {
		t.Fatalf("theme: %s", got)
	}
	if active.tag != "en" || tr("panel.title") != "Your cart" {
		t.Errorf("fr without messages: language %q, title %q; want en", active.tag, tr("panel.title"))
	}
	// Back to Arabic: its messages are still there.
	if got := theme(t, c, e, 42, `{"locale":"ar","checkout":"review"}`); got != ok(42) {
		t.Fatalf("theme: %s", got)
	}
	if tr("panel.title") != "سلتي" || w.checkoutMode != checkoutReview {
		t.Errorf("ar again: title %q, checkout %q", tr("panel.title"), w.checkoutMode)
	}
}

// TestDirectCheckoutButton: with checkout direct, the panel has Checkout
// next to Review order, off while a notice stands and busy while the cart
// is handed over.
func TestDirectCheckoutButton(t *testing.T) {
	foot := []int{0, 2, panelFoot}
	w := &Widget{open: true, checkoutMode: checkoutDirect}
	w.show(testState(syncclient.Synced, 0, testLine("TEE", "T-shirt", 2, 1999, "EUR", nil)))
	mount(t, w)
	match(t, app.Div().Class("cartsync-actions"), w, at(foot, 2)...)
	match(t, app.Button().Class("cartsync-secondary").Type("button").OnClick(noop).Text("Review order"), w, at(foot, 2, 0)...)
	match(t, app.Button().ID(directID).Class("cartsync-primary").Type("button").OnClick(noop).Text("Checkout"), w, at(foot, 2, 1)...)
	match(t, app.Text("Checkout"), w, at(foot, 2, 1, 0)...)

	busy := &Widget{open: true, checkoutMode: checkoutDirect, checkingOut: true}
	busy.show(w.st)
	mount(t, busy)
	match(t, app.Button().ID(directID).Class("cartsync-primary").Type("button").Disabled(true).Aria("busy", "true").OnClick(noop), busy, at(foot, 2, 1)...)

	blocked := &Widget{open: true, checkoutMode: checkoutDirect}
	blocked.show(noticeState())
	mount(t, blocked)
	match(t, app.P().ID(blockedID).Class("cartsync-checkout-blocked"), blocked, at(foot, 2)...)
	match(t, app.Button().ID(directID).Class("cartsync-primary").Type("button").Disabled(true).Aria("describedby", blockedID).OnClick(noop), blocked, at(foot, 3, 1)...)

	// The review mode has Review order only.
	review := &Widget{open: true, checkoutMode: checkoutReview}
	review.show(w.st)
	mount(t, review)
	match(t, app.Button().Class("cartsync-primary").Type("button").OnClick(noop).Text("Review order"), review, at(foot, 2)...)
}

// checkoutServer answers POST /v1/checkout as the cart server would: with
// a checkout if the version asked for is the cart's, else with the
// conflict and the cart as it is.
type checkoutServer struct {
	cart    *cart.Cart
	calls   atomic.Int32
	version atomic.Uint64 // the version last asked for
}

func (s *checkoutServer) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	s.calls.Add(1)
	var req struct {
		Version uint64 `json:"version"`
	}
	_ = json.NewDecoder(r.Body).Decode(&req)
	s.version.Store(req.Version)
	w.Header().Set("Content-Type", "application/json")
	if req.Version != s.cart.Version {
		w.WriteHeader(http.StatusConflict)
		_ = json.NewEncoder(w).Encode(map[string]any{"error": protocol.Errorf(protocol.ErrCartChanged, "changed"), "cart": s.cart})
		return
	}
	w.WriteHeader(http.StatusCreated)
	_ = json.NewEncoder(w).Encode(map[string]any{"checkout": &cart.Checkout{ID: "co_1", CartID: s.cart.ID, Version: s.cart.Version, Status: cart.CheckoutOpen}})
}

// TestDirectCheckout: Checkout in the panel checks out the cart shown at
// its version, without the review step; when the server refuses because
// the cart changed, the review step shows the cart as it is now.
func TestDirectCheckout(t *testing.T) {
	shown := &cart.Cart{ID: "cart-1", Version: 7, Lines: []*cart.Line{testLine("TEE", "T-shirt", 2, 1400, "EUR", nil)}}

	t.Run("handed over", func(t *testing.T) {
		srv := &checkoutServer{cart: shown}
		hs := httptest.NewServer(srv)
		defer hs.Close()
		c, w, e := clientOn(t, shown, hs.URL)
		c.parent, w.c = app.Window(), c
		w.open, w.checkoutMode = true, checkoutDirect
		w.onDirectCheckout(c.ctx, app.Event{})
		if !w.checkingOut || w.review {
			t.Fatalf("after the click: checking out %v, review %v; want true, false", w.checkingOut, w.review)
		}
		runJobs(c)
		e.ConsumeAll()
		if srv.calls.Load() != 1 || srv.version.Load() != 7 {
			t.Errorf("%d checkout requests, at version %d; want 1 at 7", srv.calls.Load(), srv.version.Load())
		}
		if w.checkingOut || w.review || w.checkoutNote != "" {
			t.Errorf("after the checkout: checking out %v, review %v, note %q", w.checkingOut, w.review, w.checkoutNote)
		}
	})

	t.Run("the cart changed", func(t *testing.T) {
		now := shown.Clone()
		now.Version, now.Lines[0].Quantity = 8, 5
		srv := &checkoutServer{cart: now}
		hs := httptest.NewServer(srv)
		defer hs.Close()
		c, w, e := clientOn(t, shown, hs.URL)
		c.parent, w.c = app.Window(), c
		w.open, w.checkoutMode = true, checkoutDirect
		w.onDirectCheckout(c.ctx, app.Event{})
		runJobs(c)
		e.ConsumeAll()
		if srv.calls.Load() != 1 || srv.version.Load() != 7 {
			t.Errorf("%d checkout requests, at version %d; want 1 at 7", srv.calls.Load(), srv.version.Load())
		}
		if !w.review || w.checkoutNote != reviewChanged || w.checkingOut {
			t.Fatalf("after the refusal: review %v, note %q, checking out %v; want the review step, %q", w.review, w.checkoutNote, w.checkingOut, reviewChanged)
		}
		if w.st.Cart.Version != 8 || w.reviewed != w.st.Cart {
			t.Errorf("the review step shows version %d (reviewed the cart shown: %v), want 8", w.st.Cart.Version, w.reviewed == w.st.Cart)
		}
		mount(t, w)
		match(t, app.Text("Review your order"), w, 0, 2, panelHead, 0, 0)
		match(t, app.Text("5 × T-shirt"), w, 0, 2, panelBody, 0, 0, 0)
		match(t, app.Text(tr(reviewChanged)), w, 0, 2, panelFoot, 2, 0)
	})

	t.Run("off while a notice stands", func(t *testing.T) {
		c, w, e := clientOn(t, annotatedCart(), "")
		w.c = c
		w.open, w.checkoutMode = true, checkoutDirect
		w.onDirectCheckout(c.ctx, app.Event{})
		e.ConsumeAll()
		if w.checkingOut {
			t.Error("checking out with notices standing")
		}
	})
}
