package widget

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"reflect"
	"testing"

	"github.com/cartsync/cartsync/shared/cart"
	"github.com/cartsync/cartsync/shared/protocol"
	"github.com/cartsync/cartsync/shared/syncclient"
)

// TestPlainPrice checks the form without Intl (native builds, and an
// invalid currency code in the browser).
func TestPlainPrice(t *testing.T) {
	tests := []struct {
		minor    int64
		currency string
		want     string
	}{
		{1999, "EUR", "€19.99"},
		{5, "EUR", "€0.05"},
		{0, "USD", "$0.00"},
		{100000, "GBP", "£1000.00"},
		{1999, "CHF", "19.99 CHF"},
		{1999, "", "19.99"},
		{500, "JPY", "¥500"},
		{1500, "KRW", "1500 KRW"},
		{12345, "KWD", "12.345 KWD"},
		{7, "BHD", "0.007 BHD"},
		{-250, "EUR", "−€2.50"},
	}
	for _, tt := range tests {
		if got := plainPrice(tt.minor, tt.currency); got != tt.want {
			t.Errorf("plainPrice(%d, %q) = %q, want %q", tt.minor, tt.currency, got, tt.want)
		}
	}
}

func TestSubtotals(t *testing.T) {
	c := &cart.Cart{Lines: []*cart.Line{
		testLine("A", "a", 2, 1000, "USD", nil),
		testLine("B", "b", 1, 250, "EUR", nil),
		testLine("C", "c", 3, 0, "EUR", nil),
		testLine("D", "d", 1, 99, "USD", nil),
	}}
	if got, want := subtotals(c), []string{"€2.50", "$20.99"}; !reflect.DeepEqual(got, want) {
		t.Errorf("subtotals = %q, want %q", got, want)
	}
	if got := subtotals(nil); got != nil {
		t.Errorf("subtotals(nil) = %q", got)
	}
}

func TestLabels(t *testing.T) {
	tests := []struct {
		got, want string
	}{
		{cartLabel(false, 3), "Cart"},
		{cartLabel(true, 0), "Cart, empty"},
		{cartLabel(true, 1), "Cart, 1 item"},
		{cartLabel(true, 3), "Cart, 3 items"},
		{badgeText(7), "7"},
		{badgeText(100), "99+"},
		{optionsText(map[string]string{"size": "M", "color": "red"}), "color: red, size: M"},
		{optionsText(nil), ""},
		{statusText(true, syncclient.State{Status: syncclient.Synced, Pending: 2}), "Syncing…"},
		{rejectedText("", cart.CodeLineNotFound), "Couldn't update your cart: it's no longer in your cart."},
		{rejectedText("Mug", "some_new_code"), "Couldn't update Mug: the change couldn't be applied."},
		{editFailedText("Mug", fmt.Errorf("queue set: %w", &cart.Error{Code: cart.CodeInvalidQuantity})), "Couldn't update Mug: that quantity isn't possible."},
		{editFailedText("Mug", errors.New("quota exceeded")), "Couldn't update Mug: the change couldn't be saved on this device."},
		{stoppedText(&protocol.Error{Code: protocol.ErrUnsupportedVersion}), "This page is out of date. Reload it to keep your cart in sync."},
		{stoppedText(fmt.Errorf("run: %w", &protocol.Error{Code: protocol.ErrForbidden})), "This cart can no longer be changed here."},
		{stoppedText(errors.New("?")), "Your cart stopped syncing. Reload the page to try again."},
		{syncURL("https:", "cart.example"), "wss://cart.example/v1/sync"},
		{syncURL("http:", "localhost:8080"), "ws://localhost:8080/v1/sync"},
		{imageURL("https://cdn.example/a.png", "https://shop.example"), "https://cdn.example/a.png"},
		{imageURL("/a.png", "https://shop.example"), "https://shop.example/a.png"},
		{imageURL("/a.png", ""), ""},
		{imageURL("//cdn.example/a.png", "https://shop.example"), ""},
		{imageURL("javascript:alert(1)", "https://shop.example"), ""},
		{imageURL("", "https://shop.example"), ""},
	}
	for i, tt := range tests {
		if tt.got != tt.want {
			t.Errorf("%d: got %q, want %q", i, tt.got, tt.want)
		}
	}
}

func TestThemeProps(t *testing.T) {
	good := map[string]string{
		"accent":     "#0a7",
		"background": "rgb(255 255 255 / 90%)",
		"foreground": "DarkSlateGray",
		"font":       `"Helvetica Neue", Arial, sans-serif`,
		"radius":     "0.5rem",
	}
	got, err := themeProps(good)
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]string{
		"--cartsync-accent":     "#0a7",
		"--cartsync-background": "rgb(255 255 255 / 90%)",
		"--cartsync-foreground": "DarkSlateGray",
		"--cartsync-font":       `"Helvetica Neue", Arial, sans-serif`,
		"--cartsync-radius":     "0.5rem",
	}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("themeProps = %v, want %v", got, want)
	}
	if got, err := themeProps(map[string]string{"radius": " ", "accent": "oklch(70% 0.1 200)"}); err != nil ||
		!reflect.DeepEqual(got, map[string]string{"--cartsync-radius": "", "--cartsync-accent": "oklch(70% 0.1 200)"}) {
		t.Errorf("reset and oklch: %v, %v", got, err)
	}

	bad := []map[string]string{
		{"accent": "url(https://evil.example/x.png)"},
		{"accent": "red; background: url(x)"},
		{"accent": "#12"},
		{"accent": "#ggg"},
		{"accent": "rgb(0 0 0"},
		{"accent": "var(--x)"},
		{"accent": "rgb(calc(1) 0 0)"},
		{"accent": "expression(alert(1))"},
		{"background": "#fff !important"},
		{"foreground": "red}"},
		{"radius": "8"},
		{"radius": "8px 8px"},
		{"radius": "-1px"},
		{"radius": "1.px"},
		{"radius": "calc(1px + 2px)"},
		{"radius": "99999999999999px"},
		{"font": "Arial; color: red"},
		{"font": `"Arial`},
		{"font": "x\\26 y"},
		{"font": "local(Arial)"},
		{"font": string(make([]byte, maxFontLen+1))},
		{"accent": "#fff", "shadow": "none"},
	}
	for _, theme := range bad {
		if got, err := themeProps(theme); err == nil {
			t.Errorf("themeProps(%q) = %v, want an error", theme, got)
		}
	}
}

func TestOpIndex(t *testing.T) {
	var x opIndex
	s := recordingStorage{Storage: syncclient.NewMemStorage(), ops: &x}
	ctx := context.Background()
	op, err := s.Enqueue(ctx, "tab-a", func(seq uint64) cart.Op {
		return cart.Op{Client: "tab-a", Seq: seq, Kind: cart.KindAdd, SKU: "TEE", Options: map[string]string{"size": "M"}, Quantity: 1, Details: &cart.Details{Name: "T-shirt"}}
	})
	if err != nil {
		t.Fatal(err)
	}
	want := opRef{sku: "TEE", key: "TEE?size=M", name: "T-shirt"}
	if got, ok := x.lookup(protocol.OpID{Client: "tab-a", Seq: op.Seq}); !ok || got != want {
		t.Errorf("after Enqueue: %+v, %v; want %+v", got, ok, want)
	}

	// Another tab's op, seen through Load.
	other := recordingStorage{Storage: s.Storage, ops: &opIndex{}}
	if _, err := other.Enqueue(ctx, "tab-b", func(seq uint64) cart.Op {
		return cart.Op{Client: "tab-b", Seq: seq, Kind: cart.KindSet, SKU: "MUG", Quantity: 2}
	}); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Load(ctx); err != nil {
		t.Fatal(err)
	}
	if got, ok := x.lookup(protocol.OpID{Client: "tab-b", Seq: 1}); !ok || got.sku != "MUG" {
		t.Errorf("after Load: %+v, %v", got, ok)
	}

	// Bounded.
	for i := range maxRemembered + 10 {
		x.remember(cart.Op{Client: "bulk", Seq: uint64(i + 1), Kind: cart.KindSet, SKU: "X"})
	}
	if len(x.refs) != maxRemembered || len(x.order) != maxRemembered {
		t.Errorf("remembers %d ops (%d in order), want %d", len(x.refs), len(x.order), maxRemembered)
	}
	if _, ok := x.lookup(protocol.OpID{Client: "tab-a", Seq: op.Seq}); ok {
		t.Error("the oldest op was not forgotten")
	}
}

func TestMessagesNameTheItem(t *testing.T) {
	tee := testLine("TEE", "T-shirt", 1, 1999, "EUR", nil)
	w := &Widget{ops: &opIndex{}}
	w.ops.remember(
		cart.Op{Client: "a", Seq: 1, Kind: cart.KindSet, SKU: "TEE", Quantity: 4},   // named by the line
		cart.Op{Client: "a", Seq: 2, Kind: cart.KindSet, SKU: "GONE", Quantity: 4},  // only the SKU is known
		cart.Op{Client: "a", Seq: 3, Kind: cart.KindAdd, SKU: "MUG", Quantity: 999}, // warned
	)
	st := testState(syncclient.Synced, 0, tee)
	st.Rejected = []protocol.Result{
		{Client: "a", Seq: 1, Status: protocol.StatusRejected, Version: 1, Error: &cart.Error{Code: cart.CodeInvalidQuantity}},
		{Client: "a", Seq: 2, Status: protocol.StatusRejected, Version: 1, Error: &cart.Error{Code: cart.CodeLineNotFound}},
		{Client: "z", Seq: 9, Status: protocol.StatusRejected, Version: 1, Error: &cart.Error{Code: cart.CodeLineNotFound}}, // unknown op
	}
	st.Reduced = []protocol.Result{
		{Client: "a", Seq: 3, Status: protocol.StatusApplied, Version: 2, Warnings: []cart.Warning{{Code: cart.CodeQuantityClamped}}},
	}
	w.show(st)
	want := []string{ // the most recent maxMessages
		"Couldn't update GONE: it's no longer in your cart.",
		"Couldn't update your cart: it's no longer in your cart.",
		"MUG: the quantity was limited to the most a cart can hold.",
	}
	if got := w.messages(); !reflect.DeepEqual(got, want) {
		t.Errorf("messages =\n%q\nwant\n%q", got, want)
	}

	// In the order the server answered, refused or reduced: an add
	// reduced to version 3, then one refused at 3, then one reduced to 4.
	st.Rejected = []protocol.Result{{Client: "a", Seq: 5, Status: protocol.StatusRejected, Version: 3, Error: &cart.Error{Code: cart.CodeLineNotFound}}}
	st.Reduced = []protocol.Result{
		{Client: "a", Seq: 4, Status: protocol.StatusApplied, Version: 3, Warnings: []cart.Warning{{Code: cart.CodeQuantityClamped}}},
		{Client: "a", Seq: 6, Status: protocol.StatusApplied, Version: 4, Warnings: []cart.Warning{{Code: cart.CodeQuantityClamped}}},
	}
	var order []uint64
	for _, r := range answers(st) {
		order = append(order, r.Seq)
	}
	if !reflect.DeepEqual(order, []uint64{4, 5, 6}) {
		t.Errorf("answers in the order of seqs %v, want 4, 5, 6", order)
	}
}

func TestQueueOrder(t *testing.T) {
	q := newQueue()
	var got []int
	ctx, cancel := context.WithCancel(context.Background())
	for i := range 5 {
		q.push(func(context.Context) {
			got = append(got, i)
			if i == 2 {
				q.push(func(context.Context) { got = append(got, 99) }) // pushed while running
			}
		})
	}
	q.push(func(context.Context) { cancel() })
	q.run(ctx)
	if want := []int{0, 1, 2, 3, 4, 99}; !reflect.DeepEqual(got, want) {
		t.Errorf("ran %v, want %v", got, want)
	}
}

func discardLogger() *slog.Logger { return slog.New(slog.NewTextHandler(io.Discard, nil)) }

func testLine(sku, name string, qty int, price int64, currency string, opts map[string]string) *cart.Line {
	return &cart.Line{
		Key: cart.LineKey(sku, opts), SKU: sku, Options: opts, Quantity: qty,
		Details: cart.Details{Name: name, Price: price, Currency: currency},
	}
}

func testState(status syncclient.Status, pending int, lines ...*cart.Line) syncclient.State {
	if lines == nil {
		lines = []*cart.Line{}
	}
	return syncclient.State{
		Cart:      &cart.Cart{ID: "cart-1", Version: 7, Lines: lines},
		Confirmed: 7,
		Pending:   pending,
		Status:    status,
	}
}

// An edit made in the panel (+ or −) carries no details: once its line is
// gone (the cart it was made on expired), the list of changes that could
// not be kept names it by the line's name the widget showed, not its SKU.
func TestDroppedPanelEditNamedByItsLine(t *testing.T) {
	tote := testLine("TOTE-01", "Canvas tote bag", 2, 2500, "EUR", nil)
	w := &Widget{ops: &opIndex{}}
	w.show(testState(syncclient.Synced, 0, tote))
	set := cart.Op{Client: "a", Seq: 1, Kind: cart.KindSet, SKU: "TOTE-01", Quantity: 3}
	w.ops.remember(set)
	w.show(testState(syncclient.Synced, 0)) // the line gone
	if got, want := droppedText(set, w.ops), "Changing Canvas tote bag to 3"; got != want {
		t.Errorf("droppedText = %q, want %q", got, want)
	}
}

// The same after a reload: the outbox is read before the first cart is
// shown, and the op is named by its line once that is shown.
func TestDroppedPanelEditNamedAfterAReload(t *testing.T) {
	tote := testLine("TOTE-01", "Canvas tote bag", 2, 2500, "EUR", nil)
	w := &Widget{ops: &opIndex{}}
	set := cart.Op{Client: "a", Seq: 1, Kind: cart.KindSet, SKU: "TOTE-01", Quantity: 3}
	w.ops.remember(set) // the outbox, read at the reload
	w.show(testState(syncclient.Synced, 0, tote))
	w.show(testState(syncclient.Synced, 0))
	if got, want := droppedText(set, w.ops), "Changing Canvas tote bag to 3"; got != want {
		t.Errorf("droppedText = %q, want %q", got, want)
	}
}
