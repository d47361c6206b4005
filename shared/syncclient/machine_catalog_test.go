package syncclient

import (
	"context"
	"maps"
	"reflect"
	"testing"

	"github.com/cartsync/cartsync/shared/cart"
	"github.com/cartsync/cartsync/shared/protocol"
)

// The catalog's notices and totals as the machine takes them from the
// server's carts: a cart pushed again at the same version, before the
// hello's reply, and with an ack that applied nothing.

// noticesShown checks the notices and totals shown and stored.
func noticesShown(t testing.TB, h *harness, notices []cart.Notice, totals map[string]int64) {
	t.Helper()
	st := h.m.snapshot()
	if st.Confirmed != 2 || summary(st.Cart) != "mug=1 tee=2" || !reflect.DeepEqual(st.Notices, notices) || !maps.Equal(st.Totals, totals) {
		t.Errorf("shown: confirmed %d %q, notices %s, totals %v; want version 2, notices %s, totals %v",
			st.Confirmed, summary(st.Cart), noticesText(st.Notices), st.Totals, noticesText(notices), totals)
	}
	// The storage keeps them: another tab, or the next visit, shows them
	// too.
	stored, err := h.store.Load(context.Background())
	must(t, err)
	if !reflect.DeepEqual(stored.Cart.Notices, notices) || !maps.Equal(stored.Cart.Totals, totals) {
		t.Errorf("stored notices %s, totals %v; want %s, %v", noticesText(stored.Cart.Notices), stored.Cart.Totals, noticesText(notices), totals)
	}
}

func TestMachineCatalog(t *testing.T) {
	v2 := priced(2, "tee=2", "mug=1")
	teeChanged := cart.Notice{Line: "tee", PriceChanged: &cart.PriceChange{From: 1000, To: 1200, Currency: "EUR"}, Limit: cart.Limit{Available: ptr(1)}}
	withdrawn := cart.Notice{Line: "tee", Unavailable: true}
	// told is whether the last input changed the state shown: the driver
	// then publishes it and calls OnChange.
	var told bool
	pushed := func(c *cart.Cart, from uint64) func(h *harness) func(*machine) {
		return func(h *harness) func(*machine) {
			return func(m *machine) {
				m.received(h.now, pushedCart(from, c))
				told = m.changed
			}
		}
	}
	shows := func(wantTold bool, notices []cart.Notice, totals map[string]int64) func(t testing.TB, h *harness) {
		return func(t testing.TB, h *harness) {
			t.Helper()
			noticesShown(t, h, notices, totals)
			if told != wantTold {
				t.Errorf("the state shown changed: %v, want %v", told, wantTold)
			}
		}
	}
	runMachineCases(t, []machineCase{{
		// The catalog changed: the cart is pushed again at the confirmed
		// version, with no op. No sync, no push: nothing is missing.
		name:  "a cart pushed again at the confirmed version updates the notices and totals; an older one is ignored",
		setup: func(h *harness) { connectedOn(h, annotated(v2, map[string]int64{"EUR": 3000})) },
		steps: []machineStep{
			{in: pushed(annotated(v2, map[string]int64{"EUR": 3400}, teeChanged), 2),
				want: []string{"confirm cart-1@2"},
				then: shows(true, []cart.Notice{teeChanged}, map[string]int64{"EUR": 3400})},
			{in: pushed(annotated(priced(1, "tee=2"), nil), 1),
				want: nil,
				then: shows(false, []cart.Notice{teeChanged}, map[string]int64{"EUR": 3400})},
			{in: pushed(annotated(v2, map[string]int64{"EUR": 1000}, withdrawn), 2),
				want: []string{"confirm cart-1@2"},
				then: shows(true, []cart.Notice{withdrawn}, map[string]int64{"EUR": 1000})},
			{in: pushed(annotated(v2, map[string]int64{"EUR": 3000}), 2),
				want: []string{"confirm cart-1@2"},
				then: shows(true, nil, map[string]int64{"EUR": 3000})},
		},
	}, {
		name: "the hello's cart brings the totals, and no notices",
		steps: []machineStep{
			{in: opened, want: []string{`send hello h1 token="" since=0`}},
			{in: serverSays(welcome("tok", "cart-1")), want: []string{`swap "" -> "tok"`}},
			{in: serverSays(reply("h1", annotated(v2, map[string]int64{"EUR": 3000}), nil)),
				want: []string{"confirm cart-1@2", "load"}},
		},
		check: func(t testing.TB, h *harness) {
			if st := h.m.snapshot(); st.Confirmed != 2 || st.Notices != nil || !maps.Equal(st.Totals, map[string]int64{"EUR": 3000}) {
				t.Errorf("confirmed %d, notices %+v, totals %v; want 2, none, EUR 3000", st.Confirmed, st.Notices, st.Totals)
			}
		},
	}, {
		// A cart without a request id that arrives before the hello's
		// reply is a push (here the catalog's, at the same version),
		// held until the reply: it is not taken for the reply, so the
		// ops the reply says the server has are not sent again.
		name: "a same-version cart before the hello's reply is held, not taken for the reply",
		setup: func(h *harness) {
			h.edit(cart.Op{Kind: cart.KindAdd, SKU: "tee", Quantity: 1, Details: &cart.Details{Name: "Tee", Price: 1000, Currency: "EUR"}})
		},
		steps: []machineStep{
			{in: opened, want: []string{`send hello h1 token="" since=0`}},
			{in: serverSays(welcome("tok", "cart-1")), want: []string{`swap "" -> "tok"`}},
			{in: serverSays(pushedCart(1, annotated(priced(1, "tee=1"), map[string]int64{"EUR": 1200}, priceNotice("tee", 1000, 1200)))),
				want: nil}, // waits for the reply: no push yet
			{in: serverSays(reply("h1", annotated(priced(1, "tee=1"), map[string]int64{"EUR": 1000}), map[string]uint64{"me": 1})),
				want: []string{"confirm cart-1@1 done=me/1", "load", "confirm cart-1@1"}}, // the op is acked: nothing to send
		},
		check: func(t testing.TB, h *harness) {
			st := h.m.snapshot()
			want := []cart.Notice{priceNotice("tee", 1000, 1200)}
			if st.Confirmed != 1 || st.Pending != 0 || st.Status != Synced || !reflect.DeepEqual(st.Notices, want) {
				t.Errorf("state: confirmed %d, pending %d, %v, notices %s; want synced at 1 with the held push's notice",
					st.Confirmed, st.Pending, st.Status, noticesText(st.Notices))
			}
		},
	}, {
		name:  "an ack at the confirmed version (every op refused) brings its notices",
		setup: func(h *harness) { connectedOn(h, priced(1, "tee=1")) },
		steps: []machineStep{
			{in: editedOp(cart.Op{Kind: cart.KindAdd, SKU: "tee", Quantity: 5}), want: []string{"send push p2 me/1"}},
			{in: serverSays(ack("p2", annotated(priced(1, "tee=1"), map[string]int64{"EUR": 1000}, availableNotice("tee", 0)),
				protocol.Result{Client: "me", Seq: 1, Status: protocol.StatusRejected, Version: 1, Error: &cart.Error{Code: cart.CodeOutOfStock}})),
				want: []string{"confirm cart-1@1 done=me/1"}},
		},
		check: func(t testing.TB, h *harness) {
			st := h.m.snapshot()
			if st.Confirmed != 1 || summary(st.Cart) != "tee=1" || len(st.Notices) != 1 || len(st.Rejected) != 1 || st.Pending != 0 {
				t.Errorf("state: confirmed %d %q, notices %s, rejected %d, pending %d; want tee=1 at 1, the notice, the op rejected",
					st.Confirmed, summary(st.Cart), noticesText(st.Notices), len(st.Rejected), st.Pending)
			}
		},
	}})
}
