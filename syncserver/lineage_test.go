package syncserver_test

import (
	"context"
	"testing"

	"github.com/cartsync/cartsync/shared/cart"
	"github.com/cartsync/cartsync/shared/protocol"
	"github.com/cartsync/cartsync/syncserver"
)

// A device gets a new token when it says hello as a guest after a login
// merged its guest cart (a logout, another tab's login). Edits it queued
// under the old token and sends at its next login under the new one must
// still count the old token's contributions as its own: a remove takes
// away what the device had added, as it would have under the old token.

// TestReaddressedGuestRemoveAfterLogout: a remove made on the guest cart,
// queued through a login and a logout, re-addressed to the user cart as
// protocol.md says (base 0) and sent at the next login, removes the line.
func TestReaddressedGuestRemoveAfterLogout(t *testing.T) {
	_, hs, st, _ := newLoginServer(t, cart.PolicyMerge)
	dev := guestWith(t, hs, "g0", "A", 2) // g0/1 applied on the guest cart
	a := dial(t, hs)
	aw, _, _ := a.login("t1", dev, "user:alice", "")
	a.conn.CloseNow()
	// g0/2, a remove of A made on the guest cart, is still queued. The
	// device logs out: a guest hello gets a new token.
	g := dial(t, hs)
	w, _ := g.hello("t2", dev)
	if w.DeviceToken == "" || w.PrevCartID != aw.GuestCartID || w.MergedInto != aw.CartID {
		t.Fatalf("welcome after logout: %+v", w)
	}
	g.conn.CloseNow()
	b := dial(t, hs)
	b.login("t3", w.DeviceToken, "user:alice", "")
	b.send(&protocol.Message{Type: protocol.TypePush, Ops: []cart.Op{
		{Client: "g0", Seq: 2, Kind: cart.KindRemove, SKU: "A", Cart: aw.CartID},
	}})
	if ack := b.expect(protocol.TypeAck); ack.Results[0].Status != protocol.StatusApplied {
		t.Fatalf("results = %+v", ack.Results)
	}
	rec, _ := st.Load(context.Background(), syncserver.UserCartID("alice"), nil)
	if n := qty(rec.Cart, "A"); n != 0 {
		t.Fatalf("the shopper's remove of A was applied but A is still in alice's cart with %d", n)
	}
}

// TestQueuedUserRemoveAfterLogout: logged in, the device adds A (acked)
// and removes it before hearing the ack (its base is older than the add);
// the remove waits through a logout for the next login as the same user,
// under the device's new token. It removes what this device added, and
// only that: another device's later add stays, as it would have.
func TestQueuedUserRemoveAfterLogout(t *testing.T) {
	_, hs, st, _ := newLoginServer(t, cart.PolicyMerge)
	dev := guestWith(t, hs, "g0")
	a := dial(t, hs)
	_, _, first := a.login("u1", dev, "user:alice", "")
	base := first.Cart.Version
	a.send(&protocol.Message{Type: protocol.TypePush, Ops: []cart.Op{addOp("u1", 1, "A", 2), addOp("u1", 2, "B", 1)}})
	a.expect(protocol.TypeAck)
	a.conn.CloseNow()
	// Another device of alice's adds one more A.
	phone := dial(t, hs)
	phone.login("p1", guestWith(t, hs, "pg"), "user:alice", "")
	phone.send(&protocol.Message{Type: protocol.TypePush, Ops: []cart.Op{addOp("p1", 1, "A", 1)}})
	phone.expect(protocol.TypeAck)
	phone.conn.CloseNow()
	// Logout: the device's new token.
	g := dial(t, hs)
	w, _ := g.hello("g1", dev)
	if w.DeviceToken == "" {
		t.Fatalf("welcome after logout: %+v", w)
	}
	g.conn.CloseNow()
	// The next login as alice sends the queued removes: A with the base
	// the device had when it made it, B with none (a clear's, say).
	b := dial(t, hs)
	b.login("u2", w.DeviceToken, "user:alice", "")
	b.send(&protocol.Message{Type: protocol.TypePush, Ops: []cart.Op{
		{Client: "u1", Seq: 3, Kind: cart.KindRemove, SKU: "A", Base: base},
		{Client: "u1", Seq: 4, Kind: cart.KindSet, SKU: "B", Quantity: 0, Base: base},
	}})
	ack := b.expect(protocol.TypeAck)
	for _, r := range ack.Results {
		if r.Status != protocol.StatusApplied {
			t.Fatalf("results = %+v", ack.Results)
		}
	}
	rec, _ := st.Load(context.Background(), syncserver.UserCartID("alice"), nil)
	if a, b := qty(rec.Cart, "A"), qty(rec.Cart, "B"); a != 1 || b != 0 {
		t.Fatalf("A = %d, B = %d; want the phone's 1 A and no B", a, b)
	}
}

// TestHTTPLogoutNewTokenFollowsOld: over HTTP a logout gets its new token
// from POST /v1/devices with the old one; the remove queued before it and
// sent at the next login removes the line. A token the server did not
// issue is ignored there: a new device's token, not a refusal.
func TestHTTPLogoutNewTokenFollowsOld(t *testing.T) {
	_, hs, _, _ := newLoginServer(t, cart.PolicyMerge)
	app := newHTTPApp(t, hs)
	app.user = "user:alice"
	if code, e := app.do("POST", "/v1/login", `{}`, nil); code != 200 {
		t.Fatalf("login = %d %v", code, e)
	}
	code, e, or := app.push(addOp("h1", 1, "A", 2))
	if code != 200 || qty(or.Cart, "A") != 2 {
		t.Fatalf("add = %d %v %+v", code, e, or)
	}
	base := or.Cart.Version - 1 // the remove was made before the add's answer
	// Logout: a new device token in place of the old one.
	app.user = ""
	var dev syncserver.DeviceResponse
	if code, e := app.do("POST", "/v1/devices", "", &dev); code != 201 || dev.DeviceToken == "" {
		t.Fatalf("POST /v1/devices = %d %v", code, e)
	}
	app.dev = dev.DeviceToken
	app.user = "user:alice"
	if code, e := app.do("POST", "/v1/login", `{}`, nil); code != 200 {
		t.Fatalf("second login = %d %v", code, e)
	}
	code, e, or = app.push(cart.Op{Client: "h1", Seq: 2, Kind: cart.KindRemove, SKU: "A", Base: base})
	if code != 200 || or.Results[0].Status != protocol.StatusApplied || qty(or.Cart, "A") != 0 {
		t.Fatalf("queued remove = %d %v %+v, want A gone", code, e, or)
	}

	app.dev = "not a token"
	app.user = ""
	if code, e := app.do("POST", "/v1/devices", "", &dev); code != 201 || dev.DeviceToken == "" {
		t.Fatalf("POST /v1/devices with a foreign token = %d %v", code, e)
	}
}

// TestUnauthorizedNamesTheToken: an unauthorized answer to a hello or a
// request with both tokens says which it refused, so that a client drops
// a device token the server no longer takes (its secret changed) instead
// of asking the shopper to log in again and again.
func TestUnauthorizedNamesTheToken(t *testing.T) {
	_, hs, _, _ := newLoginServer(t, cart.PolicyMerge)
	dev := guestWith(t, hs, "g0")
	forged := "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA"
	for _, tc := range []struct{ device, user, want string }{
		{forged, "user:alice", protocol.TokenDevice},
		{forged, "", protocol.TokenDevice},
		{dev, "nobody", protocol.TokenUser},
	} {
		c := dial(t, hs)
		c.send(&protocol.Message{Type: protocol.TypeHello, ID: "h1", Protocol: protocol.Version, Client: "t1", DeviceToken: tc.device, UserToken: tc.user})
		if pe := c.expectError(protocol.ErrUnauthorized); pe.Token != tc.want {
			t.Errorf("hello with device %.8s… and user %q: token = %q, want %q", tc.device, tc.user, pe.Token, tc.want)
		}
		app := &httpApp{t: t, hs: hs, dev: tc.device, user: tc.user}
		if code, pe := app.do("GET", "/v1/cart", "", nil); code != 401 || pe.Token != tc.want {
			t.Errorf("GET /v1/cart with device %.8s… and user %q = %d %+v, want 401 naming %q", tc.device, tc.user, code, pe, tc.want)
		}
	}
}

// TestGuestRemoveAfterLogoutKeepsAccountLine: a remove made on the guest
// cart the device got at its logout, still queued at its next login, takes
// away what that guest added, not the line the device had added to the
// account while logged in before (which the guest cart never showed).
func TestGuestRemoveAfterLogoutKeepsAccountLine(t *testing.T) {
	_, hs, st, _ := newLoginServer(t, cart.PolicyMerge)
	dev := guestWith(t, hs, "g0")
	a := dial(t, hs)
	a.login("u1", dev, "user:alice", "")
	a.send(&protocol.Message{Type: protocol.TypePush, Ops: []cart.Op{addOp("u1", 1, "A", 1)}})
	a.expect(protocol.TypeAck)
	a.conn.CloseNow()
	g := dial(t, hs)
	w, _ := g.hello("g1", dev) // the logout: a new token, linked to dev
	if w.DeviceToken == "" {
		t.Fatalf("welcome after logout: %+v", w)
	}
	g.send(&protocol.Message{Type: protocol.TypePush, Ops: []cart.Op{addOp("g1", 1, "A", 1)}})
	g.expect(protocol.TypeAck)
	g.conn.CloseNow()
	// The guest's remove of its A is still queued at the login.
	b := dial(t, hs)
	b.login("u2", w.DeviceToken, "user:alice", "")
	b.send(&protocol.Message{Type: protocol.TypePush, Ops: []cart.Op{
		{Client: "g1", Seq: 2, Kind: cart.KindRemove, SKU: "A", Base: 1, Cart: w.CartID},
	}})
	b.expect(protocol.TypeAck)
	rec, _ := st.Load(context.Background(), syncserver.UserCartID("alice"), nil)
	if n := qty(rec.Cart, "A"); n != 1 {
		t.Fatalf("alice's A = %d after the guest undid its own add; want 1 (the A added while logged in)", n)
	}
}
