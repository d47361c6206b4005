//go:build !js || !wasm

// go-app's test engine runs these natively only: in the browser it would
// mount the widget for real (OnMount), and with it the engine.

package widget

import (
	"strings"
	"testing"

	"github.com/maxence-charriere/go-app/v10/pkg/app"

	"github.com/cartsync/cartsync/shared/cart"
	"github.com/cartsync/cartsync/shared/protocol"
	"github.com/cartsync/cartsync/shared/syncclient"
)

// mount renders w in a test engine. OnMount does not run natively: the
// widget shows what it was given.
func mount(t testing.TB, w *Widget) {
	t.Helper()
	e := app.NewTestEngine()
	if err := e.Load(w); err != nil {
		t.Fatalf("load: %v", err)
	}
	e.ConsumeAll()
}

// noop stands for the widget's handlers in expected elements: Match
// compares event names only.
func noop(app.Context, app.Event) {}

// at returns the path base followed by rest, in a new slice.
func at(base []int, rest ...int) []int {
	return append(append([]int(nil), base...), rest...)
}

func match(t testing.TB, expected app.UI, w *Widget, path ...int) {
	t.Helper()
	if err := app.Match(expected, w, path...); err != nil {
		t.Errorf("at %v: %v", path, err)
	}
}

// Paths: the widget's root is at 0; in it, the button at 0, the live
// region at 1 and the panel at 2; in the panel, these.
const (
	panelHead = iota
	panelStatus
	panelNotices
	panelBody
	panelFoot
)

func TestCartButton(t *testing.T) {
	tests := []struct {
		name   string
		loaded bool
		lines  []*cart.Line
		label  string
		badge  string // "" for none
	}{
		{"loading", false, nil, "Cart", ""},
		{"empty", true, nil, "Cart, empty", ""},
		{"one item", true, []*cart.Line{testLine("TEE", "T-shirt", 1, 1999, "EUR", nil)}, "Cart, 1 item", "1"},
		{"three items", true, []*cart.Line{
			testLine("TEE", "T-shirt", 2, 1999, "EUR", nil),
			testLine("MUG", "Mug", 1, 900, "EUR", nil),
		}, "Cart, 3 items", "3"},
		{"many items", true, []*cart.Line{testLine("TEE", "T-shirt", 120, 1999, "EUR", nil)}, "Cart, 120 items", "99+"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			w := &Widget{}
			if tt.loaded {
				w.show(testState(syncclient.Synced, 0, tt.lines...))
			}
			mount(t, w)
			match(t, app.Button().
				ID(buttonID).
				Class("cartsync-button").
				Type("button").
				Aria("label", tt.label).
				Aria("haspopup", "dialog").
				Aria("expanded", "false").
				OnClick(noop), w, 0, 0)
			match(t, app.Span().Class("cartsync-icon").Aria("hidden", "true"), w, 0, 0, 0)
			if tt.badge != "" {
				match(t, app.Text(tt.badge), w, 0, 0, 1, 0)
			} else if err := app.Match(app.Span(), w, 0, 0, 1); err == nil {
				t.Error("badge shown for an empty cart")
			}
			if err := app.Match(app.Div(), w, 0, 2); err == nil {
				t.Error("panel shown while closed")
			}
		})
	}
}

// With the panel closed, a notice it holds (or a sign-in it asks for)
// shows as a dot on the button and in its name; open, neither.
func TestButtonHintsAtAMessage(t *testing.T) {
	for _, tt := range []struct {
		name  string
		mod   func(*syncclient.State)
		label string
	}{
		{"nothing to tell", func(*syncclient.State) {}, "Cart, 1 item"},
		{"the cart expired", func(st *syncclient.State) { st.CartExpired = true }, "Cart, 1 item, new message"},
		{"a sign-in needed", func(st *syncclient.State) { st.NeedsLogin = true }, "Cart, 1 item, new message"},
		{"an edit refused", func(st *syncclient.State) {
			st.Rejected = []protocol.Result{{Client: "c", Seq: 1, Status: protocol.StatusRejected, Error: &cart.Error{Code: cart.CodeOutOfStock}}}
		}, "Cart, 1 item, new message"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			st := testState(syncclient.Synced, 0, testLine("TEE", "T-shirt", 1, 1999, "EUR", nil))
			tt.mod(&st)
			w := &Widget{}
			w.show(st)
			mount(t, w)
			match(t, app.Button().ID(buttonID).Class("cartsync-button").Type("button").
				Aria("label", tt.label).Aria("haspopup", "dialog").Aria("expanded", "false").OnClick(noop), w, 0, 0)
			dot := app.Match(app.Span().Class("cartsync-dot").Aria("hidden", "true"), w, 0, 0, 2) == nil
			if want := tt.label != "Cart, 1 item"; dot != want {
				t.Errorf("closed: dot shown %v, want %v", dot, want)
			}
			w = &Widget{open: true}
			w.show(st)
			mount(t, w)
			if app.Match(app.Span().Class("cartsync-dot").Aria("hidden", "true"), w, 0, 0, 2) == nil {
				t.Error("open: dot shown, want none")
			}
		})
	}
}

func TestPanelIsAModalDialog(t *testing.T) {
	w := &Widget{open: true}
	w.show(testState(syncclient.Synced, 0, testLine("TEE", "T-shirt", 1, 1999, "EUR", nil)))
	mount(t, w)
	match(t, app.Button().
		ID(buttonID).
		Class("cartsync-button").
		Type("button").
		Aria("label", "Cart, 1 item").
		Aria("haspopup", "dialog").
		Aria("expanded", "true").
		Aria("controls", panelID).
		OnClick(noop), w, 0, 0)
	match(t, app.Div().
		ID(panelID).
		Class("cartsync-panel").
		Role("dialog").
		Aria("modal", "true").
		Aria("labelledby", titleID).
		TabIndex(-1), w, 0, 2)
	match(t, app.Text("Your cart"), w, 0, 2, panelHead, 0, 0)
	match(t, app.Button().Class("cartsync-close").Type("button").Aria("label", "Close cart").OnClick(noop), w, 0, 2, panelHead, 1)
}

func TestPanelLines(t *testing.T) {
	w := &Widget{open: true}
	w.show(testState(syncclient.Synced, 0,
		testLine("TEE-01", "T-shirt", 2, 1999, "EUR", map[string]string{"size": "m", "color": "red"}),
		testLine("MUG-7", "", 1, 1250, "CHF", nil),
		testLine("PIN", "Pin", 3, 0, "", nil),
	))
	mount(t, w)
	lines := []int{0, 2, panelBody}

	tee := at(lines, 0)
	match(t, app.Text("T-shirt"), w, at(tee, 1, 0, 0)...)
	match(t, app.Text("€19.99"), w, at(tee, 1, 1, 0)...)
	match(t, app.Text("color: red, size: m"), w, at(tee, 1, 2, 0)...)
	match(t, app.Button().ID(lineControlID("decrease", w.st.Cart.Lines[0].Key)).Class("cartsync-step").Type("button").Aria("label", "Decrease quantity of T-shirt").OnClick(noop).Text("−"), w, at(tee, 2, 0)...)
	match(t, app.Text("2"), w, at(tee, 2, 1, 0)...)
	match(t, app.Button().Class("cartsync-step").Type("button").Aria("label", "Increase quantity of T-shirt").OnClick(noop).Text("+"), w, at(tee, 2, 2)...)
	match(t, app.Button().ID(lineControlID("remove", w.st.Cart.Lines[0].Key)).Class("cartsync-remove").Type("button").Aria("label", "Remove T-shirt from cart").OnClick(noop).Text("Remove"), w, at(tee, 3)...)

	mug := at(lines, 1)
	match(t, app.Text("MUG-7"), w, at(mug, 1, 0, 0)...) // no name: the SKU
	match(t, app.Text("12.50 CHF"), w, at(mug, 1, 1, 0)...)
	match(t, app.Text("1"), w, at(mug, 2, 1, 0)...)

	pin := at(lines, 2)
	match(t, app.Text("Pin"), w, at(pin, 1, 0, 0)...)
	if err := app.Match(app.P(), w, at(pin, 1, 1)...); err == nil {
		t.Error("a price is shown for a line without one")
	}

	// Subtotal per currency, in currency order.
	match(t, app.Text("Subtotal"), w, 0, 2, panelFoot, 0, 0, 0)
	match(t, app.Text("12.50 CHF"), w, 0, 2, panelFoot, 0, 1, 0)
	match(t, app.Text("€39.98"), w, 0, 2, panelFoot, 0, 2, 0)
	match(t, app.Button().Class("cartsync-primary").Type("button").OnClick(noop).Text("Review order"), w, 0, 2, panelFoot, 2)
}

func TestLineImage(t *testing.T) {
	l := testLine("TEE", "T-shirt", 1, 1999, "EUR", nil)
	l.Details.Image = "/img/tee.png"
	w := &Widget{open: true, host: "https://shop.example"}
	w.show(testState(syncclient.Synced, 0, l))
	mount(t, w)
	match(t, app.Img().Src("https://shop.example/img/tee.png").Alt("").Loading("lazy").Width(56).Height(56), w, 0, 2, panelBody, 0, 0, 0)
}

func TestRemoveConfirmation(t *testing.T) {
	tee := testLine("TEE", "T-shirt", 1, 1999, "EUR", nil)
	w := &Widget{open: true, confirm: tee.Key}
	w.show(testState(syncclient.Synced, 0, tee))
	mount(t, w)
	confirm := []int{0, 2, panelBody, 0, 4}
	match(t, app.Text("Remove T-shirt from your cart?"), w, at(confirm, 0, 0)...)
	match(t, app.Button().Class("cartsync-confirm-remove").Type("button").OnClick(noop).Text("Remove"), w, at(confirm, 1)...)
	match(t, app.Button().ID(keepID).Class("cartsync-confirm-keep").Type("button").OnClick(noop).Text("Keep"), w, at(confirm, 2)...)

	// The question goes when the line does.
	w.show(testState(syncclient.Synced, 0))
	if w.confirm != "" {
		t.Errorf("confirm = %q after the line was removed", w.confirm)
	}
}

func TestEmptyCart(t *testing.T) {
	w := &Widget{open: true}
	w.show(testState(syncclient.Synced, 0))
	mount(t, w)
	match(t, app.P().Class("cartsync-empty").Text("Your cart is empty."), w, 0, 2, panelBody)
	match(t, app.Div().Class("cartsync-foot"), w, 0, 2, panelFoot)
}

func TestLoading(t *testing.T) {
	w := &Widget{open: true}
	mount(t, w)
	match(t, app.Text("Loading…"), w, 0, 2, panelStatus, 0)
	match(t, app.Text("Loading your cart…"), w, 0, 2, panelBody, 0)
}

func TestReview(t *testing.T) {
	w := &Widget{open: true, review: true}
	w.show(testState(syncclient.Synced, 0,
		testLine("TEE", "T-shirt", 2, 1999, "EUR", map[string]string{"size": "M"}),
		testLine("MUG", "Mug", 1, 900, "EUR", nil),
	))
	mount(t, w)
	match(t, app.Text("Review your order"), w, 0, 2, panelHead, 0, 0)
	match(t, app.Text("2 × T-shirt (size: M)"), w, 0, 2, panelBody, 0, 0, 0)
	match(t, app.Text("€39.98"), w, 0, 2, panelBody, 0, 1, 0)
	match(t, app.Text("1 × Mug"), w, 0, 2, panelBody, 1, 0, 0)
	match(t, app.Text("Subtotal"), w, 0, 2, panelFoot, 0, 0, 0)
	match(t, app.Text("€48.98"), w, 0, 2, panelFoot, 0, 1, 0)
	match(t, app.Button().Class("cartsync-secondary").Type("button").OnClick(noop).Text("Back"), w, 0, 2, panelFoot, 2, 0)
	match(t, app.Button().Class("cartsync-primary").Type("button").OnClick(noop).Text("Checkout"), w, 0, 2, panelFoot, 2, 1)

	w2 := &Widget{open: true, review: true, checkingOut: true}
	w2.show(w.st)
	mount(t, w2)
	match(t, app.Button().Class("cartsync-primary").Type("button").Disabled(true).Aria("busy", "true").OnClick(noop).Text("Saving your cart…"), w2, 0, 2, panelFoot, 2, 1)
}

func TestStatusLine(t *testing.T) {
	tests := []struct {
		status  syncclient.Status
		pending int
		want    string
	}{
		{syncclient.Synced, 0, "Synced"},
		{syncclient.Syncing, 1, "Syncing…"},
		{syncclient.Connecting, 0, "Connecting…"},
		{syncclient.Connecting, 1, "Connecting… — 1 change waiting"},
		{syncclient.Offline, 0, "Offline"},
		{syncclient.Offline, 2, "Offline — 2 changes waiting"},
	}
	for _, tt := range tests {
		t.Run(tt.want, func(t *testing.T) {
			w := &Widget{open: true}
			w.show(testState(tt.status, tt.pending))
			mount(t, w)
			match(t, app.P().Class("cartsync-status").Text(tt.want), w, 0, 2, panelStatus)
		})
	}
}

func TestRejectionsAndNotes(t *testing.T) {
	tee := testLine("TEE", "T-shirt", 1, 1999, "EUR", nil)
	w := &Widget{open: true, ops: &opIndex{}}
	w.ops.remember(
		cart.Op{Client: "a", Seq: 1, Kind: cart.KindSet, SKU: "TEE", Quantity: 4},
		cart.Op{Client: "a", Seq: 2, Kind: cart.KindAdd, SKU: "GONE", Quantity: 1, Details: &cart.Details{Name: "Old hat"}},
	)
	st := testState(syncclient.Synced, 0, tee)
	st.Rejected = []protocol.Result{
		{Client: "a", Seq: 1, Status: protocol.StatusRejected, Error: &cart.Error{Code: cart.CodeInvalidQuantity}},
		{Client: "a", Seq: 2, Status: protocol.StatusRejected, Error: &cart.Error{Code: cart.CodeTooManyLines}},
	}
	w.show(st)
	w.addNote(clampedText("Mug", 999))
	w.updateReady = true
	w.storageNote = noteMemory
	mount(t, w)

	notices := []int{0, 2, panelNotices}
	match(t, app.Text(tr(noteMemory)), w, at(notices, 0, 0)...)
	match(t, app.Button().Class("cartsync-update").Type("button").OnClick(noop).Text("Update available — reload"), w, at(notices, 1)...)
	msgs := at(notices, 2)
	match(t, app.Text("Couldn't update T-shirt: that quantity isn't possible."), w, at(msgs, 0, 0)...)
	match(t, app.Text("Couldn't update Old hat: your cart can't hold more different items."), w, at(msgs, 1, 0)...)
	match(t, app.Text("Mug: the quantity was limited to 999, the most a cart can hold."), w, at(msgs, 2, 0)...)
	match(t, app.Button().Class("cartsync-dismiss").Type("button").Aria("label", "Dismiss messages").OnClick(noop).Text("Dismiss"), w, at(msgs, 3)...)

	// Dismissed rejections stay dismissed when the engine reports them
	// again.
	w.dismiss()
	if got := w.messages(); len(got) != 0 {
		t.Errorf("messages after dismiss = %q", got)
	}
}

func TestBlocked(t *testing.T) {
	w := &Widget{blocked: true}
	mount(t, w)
	match(t, app.P().Class("cartsync-blocked").Text("This cart can't be shown on this site."), w, 0, 0)
	if err := app.Match(app.Button(), w, 0, 1); err == nil {
		t.Error("a blocked widget shows controls")
	}
}

func TestServerRendering(t *testing.T) {
	// The server renders the route before the wasm takes over.
	w := &Widget{}
	mount(t, w)
	html := app.HTMLString(w)
	for _, want := range []string{`id="cartsync-button"`, `aria-label="Cart"`, `type="button"`} {
		if !strings.Contains(html, want) {
			t.Errorf("rendered HTML lacks %s:\n%s", want, html)
		}
	}
}
