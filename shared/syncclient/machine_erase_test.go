package syncclient

import (
	"testing"

	"github.com/cartsync/cartsync/shared/cart"
	"github.com/cartsync/cartsync/shared/protocol"
)

// A user's cart the storefront had erased, as each kind of device learns
// it: one connected at the time is told by the server's cart_expired, one
// that was away by the emptied cart's started and erased. Each is told it
// was cleared (CartErased) with the notice itself (CartExpired), never
// first that it expired, unless the server is too old to say.
func TestErasedCartIsToldAsCleared(t *testing.T) {
	erasedCart := func(v uint64) *cart.Cart {
		c := cartNamed("u-ann", v)
		c.Started, c.Erased = v, true
		return c
	}
	told := func(erased bool) func(h *harness) func(*machine) {
		return serverSays(errMsg("", protocol.ErrCartExpired, func(pe *protocol.Error) { pe.Cart, pe.Erased = "u-ann", erased }))
	}
	backOn := func(h *harness, c *cart.Cart) {
		h.do(reopened(h))
		h.do(got(h, welcomeUser("", "ann", "cart-1")))
		h.do(got(h, reply("h1", c, nil)))
	}
	for _, tt := range []struct {
		name string
		run  func(t *testing.T, h *harness) (first State)
	}{{
		name: "connected: the server says erased",
		run: func(t *testing.T, h *harness) State {
			h.do(told(true)(h))
			first := h.m.snapshot()
			backOn(h, erasedCart(2))
			return first
		},
	}, {
		name: "connected to an older server: the cart that follows says erased",
		run: func(t *testing.T, h *harness) State {
			h.do(told(false)(h))
			first := h.m.snapshot()
			if first.CartErased {
				t.Errorf("told cart_expired without erased: CartErased already set")
			}
			backOn(h, erasedCart(2))
			return State{CartExpired: true, CartErased: true} // only the end counts
		},
	}, {
		name: "away: the cart it comes back to started over, erased",
		run: func(t *testing.T, h *harness) State {
			h.m.stop()
			backOn(h, erasedCart(2))
			return h.m.snapshot()
		},
	}} {
		t.Run(tt.name, func(t *testing.T) {
			h := newHarness(t)
			signedIn(h)
			first := tt.run(t, h)
			if !first.CartExpired || !first.CartErased {
				t.Errorf("first told: CartExpired %v, CartErased %v; want both", first.CartExpired, first.CartErased)
			}
			if st := h.m.snapshot(); !st.CartExpired || !st.CartErased || len(st.Cart.Lines) != 0 {
				t.Errorf("at the end: CartExpired %v, CartErased %v, %d lines; want both and the empty cart", st.CartExpired, st.CartErased, len(st.Cart.Lines))
			}
		})
	}
}

// A cart that was erased long ago and then expired is told as expired:
// erased stays on a cart for its life and says nothing on its own.
func TestOldErasureIsNotTold(t *testing.T) {
	h := newHarness(t)
	h.m.setUser("user:ann", "")
	h.do(opened(h))
	h.do(got(h, welcomeUser("tok", "ann", "cart-1")))
	c := cartNamed("u-ann", 5, "mug=1")
	c.Started, c.Erased = 2, true
	h.do(got(h, reply("h1", c, nil)))
	h.do(serverSays(errMsg("", protocol.ErrCartExpired, func(pe *protocol.Error) { pe.Cart = "u-ann" }))(h))
	if st := h.m.snapshot(); !st.CartExpired || st.CartErased {
		t.Errorf("CartExpired %v, CartErased %v; want expired, not cleared", st.CartExpired, st.CartErased)
	}
}

// A logout takes down the notices about the account's cart: the device's
// own cart shown next is not the one that was cleared or merged into, and
// the account's refused edits are not the next person's to read.
func TestLogoutTakesDownTheAccountsNotices(t *testing.T) {
	h := newHarness(t)
	signedIn(h)
	h.do(got(h, mergeNote(protocol.MergeInfo{Status: protocol.MergeMerged, Version: 1})))
	h.m.addRejected(protocol.Result{Client: "me", Seq: 2, Status: protocol.StatusRejected, Error: &cart.Error{Code: cart.CodeOutOfStock}})
	h.do(serverSays(errMsg("", protocol.ErrCartExpired, func(pe *protocol.Error) { pe.Cart, pe.Erased = "u-ann", true }))(h))
	if st := h.m.snapshot(); !st.CartExpired || !st.CartErased || st.Merge == nil {
		t.Fatalf("told: CartExpired %v, CartErased %v, Merge %+v; want all three", st.CartExpired, st.CartErased, st.Merge)
	}
	h.m.setUser("", "")
	if st := h.m.snapshot(); st.CartExpired || st.CartErased || st.Merge != nil || len(st.Rejected) != 0 {
		t.Errorf("after the logout: CartExpired %v, CartErased %v, Merge %+v, Rejected %v; want no notice", st.CartExpired, st.CartErased, st.Merge, st.Rejected)
	}
}

// showsErasedCart brings h to ann's cart as an erasure left it, its notice
// acknowledged, and returns the server's notice of that erasure.
func showsErasedCart(h *harness) *protocol.Message {
	signedIn(h)
	c := cartNamed("u-ann", 2)
	c.Started, c.Erased = 2, true
	h.do(serverSays(pushedCart(1, c))(h))
	h.m.ackNotices()
	return errMsg("", protocol.ErrCartExpired, func(pe *protocol.Error) { pe.Cart, pe.Erased = "u-ann", true })
}

// Told again of an erasure whose emptied cart it shows (the storefront
// retried the call, and the cart kept its version): the device takes no
// notice, and keeps its connection.
func TestErasureToldAgainIsNothingNew(t *testing.T) {
	h := newHarness(t)
	again := showsErasedCart(h)
	if out := h.do(serverSays(again)(h)); len(out) != 0 {
		t.Errorf("effects %q, want none", out)
	}
	if st := h.m.snapshot(); st.CartExpired || st.CartErased || st.Confirmed != 2 || st.Status != Synced {
		t.Errorf("state: CartExpired %v, CartErased %v, confirmed %d, %v; want no notice, the cart at 2, synced", st.CartExpired, st.CartErased, st.Confirmed, st.Status)
	}
}

// With an edit of this device waiting, the same notice is taken: the
// server may have applied the edit and then emptied the cart again, at a
// new version, before acknowledging it.
func TestErasureToldAgainWithAnEditWaiting(t *testing.T) {
	h := newHarness(t)
	again := showsErasedCart(h)
	h.edit(add("tea"))
	h.do(serverSays(again)(h))
	if st := h.m.snapshot(); !st.CartExpired || !st.CartErased {
		t.Errorf("state: CartExpired %v, CartErased %v; want the notice taken", st.CartExpired, st.CartErased)
	}
}

// Another account logs in without a logout: ann's refused edit is not
// bob's to read. A notice about bob's own cart, told before his welcome,
// stays.
func TestAnotherAccountTakesDownTheLastOnesNotices(t *testing.T) {
	for _, bobsExpired := range []bool{false, true} {
		h := newHarness(t)
		signedIn(h)
		h.m.addRejected(protocol.Result{Client: "me", Seq: 2, Status: protocol.StatusRejected, Error: &cart.Error{Code: cart.CodeOutOfStock}})
		h.m.stop()
		h.m.setUser("user:bob", "")
		h.do(opened(h))
		if bobsExpired {
			h.do(got(h, errMsg("h1", protocol.ErrCartExpired, func(pe *protocol.Error) { pe.Cart = "u-bob" })))
		}
		h.do(got(h, welcomeUser("", "bob", "cart-1")))
		if st := h.m.snapshot(); len(st.Rejected) != 0 || st.CartExpired != bobsExpired {
			t.Errorf("bob's expired cart told %v: Rejected %v, CartExpired %v; want none of ann's, and bob's notice %v", bobsExpired, st.Rejected, st.CartExpired, bobsExpired)
		}
	}
}

// A handover on a live connection shows connecting with the emptied cart,
// at once: the page never sees that empty cart as synced.
func TestHandoverShowsConnectingAtOnce(t *testing.T) {
	h := newHarness(t)
	connected(h, 1)
	h.m.setStatus(Synced)
	h.do(serverSays(errMsg("", protocol.ErrCartExpired, func(pe *protocol.Error) { pe.Cart = "cart-1" }))(h))
	if st := h.m.snapshot(); st.Status != Connecting || !st.CartExpired || len(st.Cart.Lines) != 0 {
		t.Errorf("state: %v, CartExpired %v, %d lines; want connecting on the emptied cart", st.Status, st.CartExpired, len(st.Cart.Lines))
	}
}
