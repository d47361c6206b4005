//go:build !js || !wasm

package widget

import (
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"sync/atomic"
	"testing"

	"github.com/maxence-charriere/go-app/v10/pkg/app"

	"github.com/cartsync/cartsync/shared/cart"
	"github.com/cartsync/cartsync/shared/protocol"
	"github.com/cartsync/cartsync/shared/syncclient"
)

// The catalog's notices in the panel and on the review step, their fixes,
// and the checkout handoff.

func avail(n int) *int { return &n }

// noticeState is a cart whose catalog changed: the T-shirt (two sizes) costs
// more and only 3 are left, the mug was withdrawn, the cap is sold out.
func noticeState() syncclient.State {
	teeM := testLine("TEE", "T-shirt", 2, 1200, "EUR", map[string]string{"size": "M"})
	teeL := testLine("TEE", "T-shirt", 2, 1200, "EUR", map[string]string{"size": "L"})
	mug := testLine("MUG", "Mug", 1, 900, "EUR", nil)
	cap := testLine("CAP", "Cap", 3, 1500, "EUR", nil)
	st := testState(syncclient.Synced, 0, teeM, teeL, mug, cap)
	price := &cart.PriceChange{From: 1200, To: 1400, Currency: "EUR"}
	st.Notices = []cart.Notice{
		{Line: teeM.Key, PriceChanged: price, Limit: cart.Limit{Available: avail(3)}},
		{Line: teeL.Key, PriceChanged: price, Limit: cart.Limit{Available: avail(3)}},
		{Line: mug.Key, Unavailable: true},
		{Line: cap.Key, Limit: cart.Limit{Available: avail(0)}},
	}
	st.Totals = map[string]int64{"EUR": 4*1400 + 3*1500}
	return st
}

// matchFix checks the fix button at path: its accessible name and its text
// (Match compares an element without its children).
func matchFix(t *testing.T, w *Widget, path []int, label, text string) {
	t.Helper()
	match(t, app.Button().Class("cartsync-fix").Type("button").Aria("label", label).OnClick(noop), w, path...)
	match(t, app.Text(text), w, at(path, 0)...)
}

func TestLineNotices(t *testing.T) {
	w := &Widget{open: true}
	w.show(noticeState())
	mount(t, w)
	lines := []int{0, 2, panelBody}
	const notice = 4 // after the picture, the text, the stepper and Remove

	teeM := at(lines, 0, notice)
	match(t, app.Div().Class("cartsync-line-notice").Role("group").Aria("label", "Changes to T-shirt"), w, teeM...)
	match(t, app.Div().Class("cartsync-fix-row").DataSet("notice", "price"), w, at(teeM, 0)...)
	match(t, app.Text("Price changed from €12.00 to €14.00"), w, at(teeM, 0, 0, 0)...)
	matchFix(t, w, at(teeM, 0, 1), "Accept new price of T-shirt", "Accept new price")
	match(t, app.Div().Class("cartsync-fix-row").DataSet("notice", "available"), w, at(teeM, 1)...)
	match(t, app.Text("Only 3 available"), w, at(teeM, 1, 0, 0)...)
	// 4 in two sizes, 3 available: this size comes down to 1.
	matchFix(t, w, at(teeM, 1, 1), "Reduce to 1: T-shirt", "Reduce to 1")

	mug := at(lines, 2, notice)
	match(t, app.Text("No longer available"), w, at(mug, 0, 0, 0)...)
	matchFix(t, w, at(mug, 0, 1), "Remove Mug from cart", "Remove")
	if err := app.Match(app.Div(), w, at(mug, 1)...); err == nil {
		t.Error("a withdrawn item is offered another fix than Remove")
	}

	cap := at(lines, 3, notice)
	match(t, app.Text("Out of stock"), w, at(cap, 0, 0, 0)...)
	matchFix(t, w, at(cap, 0, 1), "Remove Cap from cart", "Remove")

	// The subtotal is the server's, at the catalog's prices.
	match(t, app.Text("€101.00"), w, 0, 2, panelFoot, 0, 1, 0)
	// Screen readers are told in the live region.
	match(t, app.P().Class("cartsync-sr"), w, 0, 2, panelNotices, 0)
	match(t, app.Text("4 items in your cart changed since you added them. The notes under them say how."), w, 0, 2, panelNotices, 0, 0)

	// A line without a notice has none.
	st := noticeState()
	st.Notices = st.Notices[2:]
	w = &Widget{open: true}
	w.show(st)
	mount(t, w)
	if err := app.Match(app.Div(), w, at(lines, 0, notice)...); err == nil {
		t.Error("a notice is shown for a line the catalog did not change")
	}
}

func TestReduceTarget(t *testing.T) {
	m := testLine("TEE", "T-shirt", 2, 0, "", map[string]string{"size": "M"})
	l := testLine("TEE", "T-shirt", 3, 0, "", map[string]string{"size": "L"})
	c := &cart.Cart{Lines: []*cart.Line{m, l, testLine("MUG", "Mug", 5, 0, "", nil)}}
	tests := []struct {
		line  *cart.Line
		avail int
		want  int
	}{
		{m, 4, 1}, {l, 4, 2}, {m, 3, 0}, {m, 0, 0}, {l, 10, 8},
	}
	for _, tt := range tests {
		if got := reduceTarget(c, tt.line, tt.avail); got != tt.want {
			t.Errorf("reduceTarget(%s, %d) = %d, want %d", tt.line.Key, tt.avail, got, tt.want)
		}
	}
}

func TestReviewWithNotices(t *testing.T) {
	w := &Widget{open: true}
	w.show(noticeState())
	w.startReview()
	mount(t, w)
	match(t, app.Text("2 × T-shirt (size: M)"), w, 0, 2, panelBody, 0, 0, 0)
	// The totals the subtotal counts: at the new price, the old one
	// struck out; none for a withdrawn item.
	match(t, app.Del(), w, 0, 2, panelBody, 0, 1, 0)
	match(t, app.Text("€24.00"), w, 0, 2, panelBody, 0, 1, 0, 0)
	match(t, app.Text(" €28.00"), w, 0, 2, panelBody, 0, 1, 1)
	match(t, app.Text("€9.00"), w, 0, 2, panelBody, 2, 1, 0, 0)
	match(t, app.Text("Price changed from €12.00 to €14.00"), w, 0, 2, panelBody, 0, 2, 0, 0, 0)
	matchFix(t, w, []int{0, 2, panelBody, 0, 2, 0, 1}, "Accept new price of T-shirt", "Accept new price")
	matchFix(t, w, []int{0, 2, panelBody, 2, 2, 0, 1}, "Remove Mug from cart", "Remove")

	// Checkout waits until every notice is settled, and says so.
	foot := []int{0, 2, panelFoot}
	match(t, app.P().ID(blockedID).Class("cartsync-checkout-blocked"), w, at(foot, 2)...)
	match(t, app.Text(tr(checkoutBlocked)), w, at(foot, 2, 0)...)
	match(t, app.Button().Class("cartsync-primary").Type("button").Disabled(true).Aria("describedby", blockedID).OnClick(noop), w, at(foot, 3, 1)...)
	match(t, app.Text("Checkout"), w, at(foot, 3, 1, 0)...)

	// Settled: Checkout is back, and the note of a refused handover is
	// shown above it.
	st := noticeState()
	st.Notices = nil
	w = &Widget{open: true}
	w.show(st)
	w.startReview()
	w.checkoutNote = reviewChanged
	mount(t, w)
	match(t, app.P().Class("cartsync-checkout-note").Role("alert"), w, at(foot, 2)...)
	match(t, app.Text(tr(reviewChanged)), w, at(foot, 2, 0)...)
	match(t, app.Button().Class("cartsync-primary").Type("button").OnClick(noop), w, at(foot, 3, 1)...)
	if err := app.Match(app.Button().Class("cartsync-primary").Type("button").Disabled(true).OnClick(noop), w, at(foot, 3, 1)...); err == nil {
		t.Error("Checkout still disabled once the notices are settled")
	}
}

func TestReviewAgain(t *testing.T) {
	reviewed := &cart.Cart{Lines: []*cart.Line{testLine("TEE", "T-shirt", 2, 1200, "EUR", nil), testLine("MUG", "Mug", 1, 900, "EUR", nil)}}
	with := func(f func(c *cart.Cart)) *cart.Cart {
		c := reviewed.Clone()
		f(c)
		return c
	}
	tests := []struct {
		name    string
		now     *cart.Cart
		notices []cart.Notice
		want    string
	}{
		{"as reviewed", reviewed.Clone(), nil, ""},
		{"a quantity changed", with(func(c *cart.Cart) { c.Lines[0].Quantity = 3 }), nil, reviewChanged},
		{"a line added", with(func(c *cart.Cart) { c.Lines = append(c.Lines, testLine("CAP", "Cap", 1, 0, "", nil)) }), nil, reviewChanged},
		{"a price changed", with(func(c *cart.Cart) { c.Lines[1].Details.Price = 950 }), nil, reviewNotices},
		{"a notice", reviewed.Clone(), []cart.Notice{{Line: "MUG", Unavailable: true}}, reviewNotices},
		{"emptied", &cart.Cart{}, nil, reviewEmpty},
	}
	for _, tt := range tests {
		if got := reviewAgain(tt.now, tt.notices, reviewed); got != tt.want {
			t.Errorf("%s: %q, want %q", tt.name, got, tt.want)
		}
	}
}

// runJobs runs the client's queued jobs.
func runJobs(c *client) {
	ctx, cancel := context.WithCancel(context.Background())
	c.jobs.push(func(context.Context) { cancel() })
	c.jobs.run(ctx)
}

// clientOn returns a test client whose engine has confirmed c (with its
// notices) and has the device token "dev-1", and talks HTTP to base.
func clientOn(t *testing.T, c *cart.Cart, base string) (*client, *Widget, app.TestEngine) {
	t.Helper()
	cl, w, e := newTestClient(t)
	ctx := context.Background()
	store := syncclient.NewMemStorage()
	if err := store.Confirm(ctx, c, nil); err != nil {
		t.Fatal(err)
	}
	if _, err := store.SwapDeviceToken(ctx, "", "dev-1"); err != nil {
		t.Fatal(err)
	}
	eng, err := syncclient.New(syncclient.Config{
		Storage: recordingStorage{Storage: store, ops: w.ops}, Logger: discardLogger(), OnChange: cl.onChange, BaseURL: base,
	})
	if err != nil {
		t.Fatal(err)
	}
	if err := eng.Reload(ctx); err != nil {
		t.Fatal(err)
	}
	cl.eng.Store(eng)
	e.ConsumeAll()
	return cl, w, e
}

// annotatedCart is noticeState's cart as the server sends it.
func annotatedCart() *cart.Cart {
	st := noticeState()
	c := st.Cart.Clone()
	c.Notices, c.Totals = st.Notices, st.Totals
	return c
}

func TestFixesQueueEdits(t *testing.T) {
	c, w, e := clientOn(t, annotatedCart(), "")
	st := noticeState()
	teeM, teeL, mug, cap := st.Cart.Lines[0], st.Cart.Lines[1], st.Cart.Lines[2], st.Cart.Lines[3]
	c.acceptPrice(teeM.Key)
	c.acceptPrice(teeL.Key)
	c.reduce(teeM.Key)
	c.remove(mug.Key)
	c.remove(cap.Key)
	runJobs(c)
	e.ConsumeAll()

	got := c.eng.Load().Snapshot()
	if len(got.Notices) != 0 {
		t.Errorf("notices left after the fixes: %+v", got.Notices)
	}
	if m := got.Cart.Line(teeM.Key); m == nil || m.Quantity != 1 || m.Details.Price != 1400 || m.Details.Name != "T-shirt" {
		t.Errorf("T-shirt M after the fixes: %+v", m)
	}
	if got.Cart.Line(mug.Key) != nil || got.Cart.Line(cap.Key) != nil {
		t.Error("the withdrawn and the sold-out items are still in the cart")
	}
	if got.Pending != 5 || w.st.Pending != 5 {
		t.Errorf("%d edits queued (the widget shows %d), want 5", got.Pending, w.st.Pending)
	}
	// A fix asked again once settled queues nothing.
	c.acceptPrice(teeM.Key)
	c.reduce(teeL.Key)
	runJobs(c)
	if n := c.eng.Load().Snapshot().Pending; n != 5 {
		t.Errorf("%d edits queued after settled fixes, want still 5", n)
	}
}

// checkoutFake answers POST /v1/checkout with status and body.
type checkoutFake struct {
	status int
	body   any
	calls  atomic.Int32
}

func (f *checkoutFake) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	f.calls.Add(1)
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(f.status)
	_ = json.NewEncoder(w).Encode(f.body)
}

func TestHandOver(t *testing.T) {
	settled := &cart.Cart{ID: "cart-1", Version: 7, Lines: []*cart.Line{testLine("TEE", "T-shirt", 2, 1400, "EUR", nil)}}
	moved := settled.Clone()
	moved.Version, moved.Lines[0].Quantity = 8, 3
	repriced := settled.Clone()
	repriced.Notices = []cart.Notice{{Line: "TEE", PriceChanged: &cart.PriceChange{From: 1400, To: 1500, Currency: "EUR"}}}
	open := &cart.Checkout{ID: "co_x", CartID: "cart-1", Version: 7, Status: cart.CheckoutOpen}
	tests := []struct {
		name     string
		reviewed *cart.Cart
		status   int
		body     any
		calls    int32
		again    string
		note     string
		event    string // the checkout id posted, "" for no event
		shown    uint64 // the version the engine shows after
	}{
		{"created", settled, http.StatusCreated, map[string]any{"checkout": open}, 1, "", "", "co_x", 7},
		{"changed on another device", settled, http.StatusConflict,
			map[string]any{"error": protocol.Errorf(protocol.ErrCartChanged, "changed"), "cart": moved}, 1, reviewChanged, "", "", 8},
		{"the catalog changed", settled, http.StatusConflict,
			map[string]any{"error": protocol.Errorf(protocol.ErrCartChanged, "catalog"), "cart": repriced}, 1, reviewNotices, "", "", 7},
		{"emptied", settled, http.StatusConflict,
			map[string]any{"error": protocol.Errorf(protocol.ErrCartEmpty, "empty"), "cart": &cart.Cart{ID: "cart-1", Version: 9, Lines: []*cart.Line{}}},
			1, reviewEmpty, "", "", 9},
		{"not the cart reviewed", moved, http.StatusCreated, map[string]any{"checkout": open}, 0, reviewChanged, "", "", 7},
		{"signed out", settled, http.StatusUnauthorized, map[string]any{"error": protocol.Errorf(protocol.ErrTokenExpired, "expired")}, 1, "", checkoutSignIn, "", 7},
		{"server error", settled, http.StatusServiceUnavailable, map[string]any{"error": protocol.Errorf(protocol.ErrOverloaded, "busy")}, 1, "", checkoutFailed, "", 7},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			fake := &checkoutFake{status: tt.status, body: tt.body}
			srv := httptest.NewServer(fake)
			defer srv.Close()
			c, _, _ := clientOn(t, settled, srv.URL)
			c.parent = app.Window()
			again, note, event := c.handOver(context.Background(), c.eng.Load(), tt.reviewed)
			if again != tt.again || note != tt.note || fake.calls.Load() != tt.calls {
				t.Errorf("handOver: again %q, note %q, %d requests; want %q, %q, %d", again, note, fake.calls.Load(), tt.again, tt.note, tt.calls)
			}
			var ev struct {
				Event string `json:"event"`
				Data  struct {
					Version    uint64   `json:"version"`
					CheckoutID string   `json:"checkout_id"`
					Cart       cartData `json:"cart"`
				} `json:"data"`
			}
			switch {
			case tt.event == "" && event != nil:
				t.Errorf("posted %s, want no event", event)
			case tt.event != "" && (json.Unmarshal(event, &ev) != nil || ev.Event != "checkout" || ev.Data.CheckoutID != tt.event ||
				ev.Data.Version != 7 || ev.Data.Cart.Version != 7 || ev.Data.Cart.Items != 2):
				t.Errorf("posted %s, want the checkout event of %s at version 7", event, tt.event)
			}
			if got := c.eng.Load().Snapshot().Confirmed; got != tt.shown {
				t.Errorf("the engine shows version %d, want %d", got, tt.shown)
			}
		})
	}

	t.Run("unreachable", func(t *testing.T) {
		srv := httptest.NewServer(http.NotFoundHandler())
		srv.Close()
		c, _, _ := clientOn(t, settled, srv.URL)
		c.parent = app.Window()
		if again, note, event := c.handOver(context.Background(), c.eng.Load(), settled); again != "" || note != checkoutFailed || event != nil {
			t.Errorf("handOver: %q, %q, %s; want %q", again, note, event, checkoutFailed)
		}
	})
}

func TestCheckedOutShowsReviewAgain(t *testing.T) {
	c, w, e := clientOn(t, annotatedCart(), "")
	w.open = true
	c.dispatch(func(ctx app.Context) { w.checkedOut(ctx, reviewChanged, "") })
	e.ConsumeAll()
	if !w.review || w.checkoutNote != reviewChanged || w.reviewed != w.st.Cart || w.checkingOut {
		t.Errorf("after a refused handover: review %v, note %q, reviewed the cart shown %v", w.review, w.checkoutNote, w.reviewed == w.st.Cart)
	}
	c.dispatch(func(ctx app.Context) { w.checkedOut(ctx, "", checkoutOffline) })
	e.ConsumeAll()
	if w.checkoutNote != checkoutOffline {
		t.Errorf("note %q after an offline handover, want %q", w.checkoutNote, checkoutOffline)
	}
	// Leaving the review step forgets it.
	w.onBack(c.ctx, app.Event{})
	if w.checkoutNote != "" {
		t.Errorf("note %q after Back", w.checkoutNote)
	}
}

// A change from elsewhere while the shopper reviews is shown with the note
// that the cart changed, and Checkout then hands over the cart shown.
func TestReviewTellsAChangeFromElsewhere(t *testing.T) {
	st := noticeState()
	st.Notices = nil
	w := &Widget{open: true}
	w.show(st)
	w.startReview()
	if w.checkoutNote != "" {
		t.Fatalf("note %q on a fresh review", w.checkoutNote)
	}
	next := st
	next.Cart = st.Cart.Clone()
	next.Cart.Lines[0].Quantity++
	w.show(next)
	if w.checkoutNote != reviewChanged || w.reviewed != next.Cart {
		t.Errorf("after a change from elsewhere: note %q, reviewed the new cart %v; want %q and true", w.checkoutNote, w.reviewed == next.Cart, reviewChanged)
	}
}

// Everything removed elsewhere while Checkout is under way: the refused
// checkout does not start the review step again over the empty cart
// (titled Review your order, as before a logout ended it).
func TestCheckoutOfAnEmptiedCartReviewsNothing(t *testing.T) {
	c, w, e := clientOn(t, annotatedCart(), "")
	w.open = true
	w.show(testState(syncclient.Synced, 0, testLine("MUG", "Mug", 3, 900, "EUR", nil)))
	w.startReview()
	w.checkingOut = true
	w.show(testState(syncclient.Synced, 0))
	c.dispatch(func(ctx app.Context) { w.checkedOut(ctx, reviewEmpty, "") })
	e.ConsumeAll()
	if w.review {
		t.Error("after a checkout refused for an emptied cart the panel reviews the empty cart")
	}
}
