package syncserver_test

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/cartsync/cartsync/shared/cart"
	"github.com/cartsync/cartsync/shared/protocol"
	"github.com/cartsync/cartsync/syncserver"
	"github.com/cartsync/cartsync/syncserver/memstore"
	"github.com/cartsync/cartsync/syncserver/storetest"
)

// expiringUsers accepts "user:<id>" and answers token_expired to
// "expired:<id>", as a JWT verifier does.
type expiringUsers struct{}

func (expiringUsers) VerifyUser(ctx context.Context, tok string) (string, error) {
	if strings.HasPrefix(tok, "expired:") {
		return "", protocol.Errorf(protocol.ErrTokenExpired, "user token expired: log in again")
	}
	return testUsers{}.VerifyUser(ctx, tok)
}

type clock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *clock) now() time.Time { c.mu.Lock(); defer c.mu.Unlock(); return c.t }
func (c *clock) add(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = c.t.Add(d)
}

func newLoginServer(t testing.TB, policy cart.Policy) (*syncserver.Server, *httptest.Server, *memstore.Store, *clock) {
	t.Helper()
	st := memstore.New()
	clk := &clock{t: time.Now()}
	srv, err := syncserver.New(context.Background(), syncserver.Config{Store: st, Users: expiringUsers{}, DefaultPolicy: policy, Now: clk.now})
	if err != nil {
		t.Fatal(err)
	}
	storetest.StopOnCleanup(t, srv)
	hs := httptest.NewServer(srv)
	t.Cleanup(hs.Close)
	return srv, hs, st, clk
}

// guestWith makes a guest cart with the given SKU=qty lines and returns the
// device token.
func guestWith(t testing.TB, hs *httptest.Server, client string, lines ...any) string {
	t.Helper()
	c := dial(t, hs)
	w, _ := c.hello(client, "")
	var ops []cart.Op
	for i := 0; i < len(lines); i += 2 {
		ops = append(ops, addOp(client, uint64(len(ops)+1), lines[i].(string), lines[i+1].(int)))
	}
	if len(ops) > 0 {
		c.send(&protocol.Message{Type: protocol.TypePush, Ops: ops})
		c.expect(protocol.TypeAck)
	}
	c.conn.CloseNow()
	return w.DeviceToken
}

// login says hello with a user token; it returns the welcome, the merge
// message (nil if none) and the first cart.
func (c *wsClient) login(client, device, user string, policy cart.Policy) (*protocol.Message, *protocol.Message, *protocol.Message) {
	c.t.Helper()
	c.send(&protocol.Message{Type: protocol.TypeHello, Protocol: protocol.Version, Client: client, DeviceToken: device, UserToken: user, Policy: policy})
	w := c.expect(protocol.TypeWelcome)
	m := c.read()
	var merge *protocol.Message
	if m.Type == protocol.TypeMerge {
		merge, m = m, c.read()
	}
	if m.Type != protocol.TypeCart {
		c.t.Fatalf("got %s after welcome, want cart", m.Type)
	}
	return w, merge, m
}

func qty(c *cart.Cart, sku string) int {
	if l := c.Line(cart.LineKey(sku, nil)); l != nil {
		return l.Quantity
	}
	return 0
}

func TestLoginMergePolicies(t *testing.T) {
	tests := []struct {
		policy cart.Policy
		want   map[string]int
	}{
		{cart.PolicyMerge, map[string]int{"A": 5, "B": 1, "C": 4}},
		{cart.PolicyReplace, map[string]int{"A": 3, "B": 0, "C": 4}},
		{cart.PolicyKeep, map[string]int{"A": 2, "B": 1, "C": 0}},
	}
	for _, tt := range tests {
		t.Run(string(tt.policy), func(t *testing.T) {
			_, hs, st, _ := newLoginServer(t, cart.PolicyMerge)
			// Device B already holds the user's cart.
			devB := guestWith(t, hs, "b0")
			b := dial(t, hs)
			b.login("b1", devB, "user:alice", "")
			b.send(&protocol.Message{Type: protocol.TypePush, Ops: []cart.Op{addOp("b1", 1, "A", 2), addOp("b1", 2, "B", 1)}})
			b.expect(protocol.TypeAck)

			// A guest on device A logs in with the policy.
			devA := guestWith(t, hs, "a0", "A", 3, "C", 4)
			a := dial(t, hs)
			w, merge, first := a.login("a1", devA, "user:alice", tt.policy)
			if w.User != "alice" || w.CartID != syncserver.UserCartID("alice") || w.GuestCartID == "" {
				t.Fatalf("welcome = %+v", w)
			}
			if merge == nil || merge.Merge.Status != protocol.MergeMerged || merge.Merge.Result.Policy != tt.policy {
				t.Fatalf("merge message = %+v", merge)
			}
			for sku, q := range tt.want {
				if got := qty(first.Cart, sku); got != q {
					t.Errorf("%s = %d, want %d", sku, got, q)
				}
			}
			// Device B sees the merged cart live (unless nothing changed).
			if tt.policy != cart.PolicyKeep {
				push := b.expect(protocol.TypeCart)
				if push.Cart.Version != first.Cart.Version || push.By[0].Client != syncserver.MergeClient {
					t.Fatalf("push to B = v%d by %v, want v%d by the merge", push.Cart.Version, push.By, first.Cart.Version)
				}
			}
			// The guest cart is a tombstone, not deleted.
			g, err := st.Load(context.Background(), w.GuestCartID, nil)
			if err != nil || g.Meta.MergedInto != w.CartID || len(g.Cart.Lines) != 2 {
				t.Fatalf("guest after merge = %+v, %v", g, err)
			}
		})
	}
}

// A device that once had a guest cart and emptied it changes no account
// at login, whatever the policy: replace does not empty the user's cart,
// choose asks nothing, and no merge is reported. The emptied guest cart is
// still bound to the user cart, so its late edits follow the login.
func TestEmptyGuestCartChangesNoAccount(t *testing.T) {
	for _, policy := range []cart.Policy{cart.PolicyMerge, cart.PolicyReplace, cart.PolicyKeep, cart.PolicyChoose} {
		t.Run(string(policy), func(t *testing.T) {
			_, hs, st, _ := newLoginServer(t, cart.PolicyMerge)
			devB := guestWith(t, hs, "b0")
			b := dial(t, hs)
			b.login("b1", devB, "user:alice", "")
			b.send(&protocol.Message{Type: protocol.TypePush, Ops: []cart.Op{addOp("b1", 1, "A", 2)}})
			b.expect(protocol.TypeAck)

			devA := guestWith(t, hs, "a0", "C", 1)
			g := dial(t, hs)
			g.hello("a0", devA)
			g.send(&protocol.Message{Type: protocol.TypePush, Ops: []cart.Op{{Client: "a0", Seq: 2, Kind: cart.KindRemove, SKU: "C", Base: 1}}})
			g.expect(protocol.TypeAck)
			g.conn.CloseNow()

			a := dial(t, hs)
			w, merge, first := a.login("a1", devA, "user:alice", policy)
			if merge != nil {
				t.Errorf("login of an empty guest cart: merge message %+v, want none", merge.Merge)
			}
			if first.Cart.Version != 1 || qty(first.Cart, "A") != 2 || len(first.Cart.Lines) != 1 {
				t.Errorf("user cart after the login = v%d %+v, want v1 with A=2 only", first.Cart.Version, first.Cart.Lines)
			}
			// A late edit of the guest cart follows it into the user cart.
			late := addOp("a0", 3, "D", 1)
			late.Cart = w.GuestCartID
			a.send(&protocol.Message{Type: protocol.TypePush, ID: "p", Ops: []cart.Op{late}})
			ack := a.expect(protocol.TypeAck)
			if ack.Results[0].Status != protocol.StatusApplied || qty(ack.Cart, "D") != 1 || qty(ack.Cart, "A") != 2 {
				t.Errorf("late guest edit: %+v, cart %+v", ack.Results[0], ack.Cart.Lines)
			}
			rec, err := st.Load(context.Background(), w.GuestCartID, nil)
			if err != nil || rec.Meta.MergedInto != w.CartID {
				t.Errorf("guest cart after the login: merged into %q (%v), want %s", rec.Meta.MergedInto, err, w.CartID)
			}
		})
	}
}

func TestChooseChangesNothingUntilPicked(t *testing.T) {
	_, hs, st, _ := newLoginServer(t, cart.PolicyChoose)
	devB := guestWith(t, hs, "b0")
	b := dial(t, hs)
	b.login("b1", devB, "user:alice", "")
	b.send(&protocol.Message{Type: protocol.TypePush, Ops: []cart.Op{addOp("b1", 1, "A", 2)}})
	b.expect(protocol.TypeAck)

	devA := guestWith(t, hs, "a0", "A", 1, "C", 1)
	a := dial(t, hs)
	_, merge, first := a.login("a1", devA, "user:alice", "") // the server default: choose
	if merge == nil || merge.Merge.Status != protocol.MergeChoose || len(merge.Merge.Guest.Lines) != 2 || len(merge.Merge.User.Lines) != 1 {
		t.Fatalf("merge message = %+v", merge)
	}
	if first.Cart.Version != 1 || qty(first.Cart, "A") != 2 {
		t.Fatalf("cart changed before the choice: %+v", first.Cart)
	}
	a.send(&protocol.Message{Type: protocol.TypeChoose, ID: "c", Policy: cart.PolicyMerge})
	m := a.expect(protocol.TypeMerge)
	if m.ID != "c" || m.Merge.Status != protocol.MergeMerged {
		t.Fatalf("choose answer = %+v", m.Merge)
	}
	push := a.expect(protocol.TypeCart)
	if qty(push.Cart, "A") != 3 || qty(push.Cart, "C") != 1 || push.Cart.Version != 2 {
		t.Fatalf("after choosing merge: %+v", push.Cart)
	}
	// Choosing again is a no-op.
	a.send(&protocol.Message{Type: protocol.TypeChoose, Policy: cart.PolicyReplace})
	if m := a.expect(protocol.TypeMerge); m.Merge.Status != protocol.MergeAlready {
		t.Fatalf("second choice = %+v", m.Merge)
	}
	rec, _ := st.Load(context.Background(), syncserver.UserCartID("alice"), nil)
	if rec.Cart.Version != 2 {
		t.Fatalf("second choice changed the cart: v%d", rec.Cart.Version)
	}
}

func TestTwentyConcurrentLoginsMergeOnce(t *testing.T) {
	_, hs, st, _ := newLoginServer(t, cart.PolicyMerge)
	devA := guestWith(t, hs, "a0", "A", 3, "C", 1)
	var wg sync.WaitGroup
	statuses := make(chan string, 20)
	for i := range 20 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			c := dial(t, hs)
			_, merge, _ := c.login(fmt.Sprint("tab", i), devA, "user:alice", "")
			if merge != nil {
				statuses <- merge.Merge.Status
			}
		}()
	}
	wg.Wait()
	close(statuses)
	merged := 0
	for s := range statuses {
		if s == protocol.MergeMerged {
			merged++
		}
	}
	rec, err := st.Load(context.Background(), syncserver.UserCartID("alice"), nil)
	if err != nil {
		t.Fatal(err)
	}
	if merged != 1 || rec.Cart.Version != 1 || qty(rec.Cart, "A") != 3 || qty(rec.Cart, "C") != 1 {
		t.Fatalf("%d merges reported; user cart v%d %+v, want one merge", merged, rec.Cart.Version, rec.Cart.Lines)
	}
}

// A message on a connection whose user token has expired since hello is
// answered token_expired (with its id), applies nothing, and ends the
// connection.
func TestTokenExpiryEnforcedOnMessages(t *testing.T) {
	st := memstore.New()
	clk := &clock{t: time.Now()}
	srv, err := syncserver.New(context.Background(), syncserver.Config{Store: st, Users: windowUsers{}, Now: clk.now})
	if err != nil {
		t.Fatal(err)
	}
	storetest.StopOnCleanup(t, srv)
	hs := httptest.NewServer(srv)
	t.Cleanup(hs.Close)
	dev := guestWith(t, hs, "g0")
	c := dial(t, hs)
	c.login("c1", dev, untilToken("ivy", time.Minute), "")
	c.send(&protocol.Message{Type: protocol.TypePush, ID: "p1", Ops: []cart.Op{addOp("c1", 1, "A", 1)}})
	c.expect(protocol.TypeAck)
	clk.add(2 * time.Minute)
	c.send(&protocol.Message{Type: protocol.TypePush, ID: "p2", Ops: []cart.Op{addOp("c1", 2, "B", 1)}})
	m := c.read()
	for m.Type == protocol.TypeCart { // the push of p1's change
		m = c.read()
	}
	if m.Type != protocol.TypeError || m.Error.Code != protocol.ErrTokenExpired || m.ID != "p2" {
		t.Fatalf("got %s %+v (id %q), want token_expired for p2", m.Type, m.Error, m.ID)
	}
	if _, _, err := c.conn.Read(t.Context()); err == nil {
		t.Error("the connection stayed open after token_expired")
	}
	rec, err := st.Load(context.Background(), syncserver.UserCartID("ivy"), nil)
	if err != nil || qty(rec.Cart, "B") != 0 || qty(rec.Cart, "A") != 1 {
		t.Errorf("user cart = %+v (%v), want A=1 and no B", rec, err)
	}
}

// A login merge counts the client ids it carries over from the guest cart
// against the user cart's cap on client ids.
func TestMergeCountsCarriedClientIDs(t *testing.T) {
	_, hs, st, _ := newLoginServer(t, cart.PolicyMerge)
	dev := guestWith(t, hs, "g1", "A", 1, "B", 1) // one client id on the guest cart
	a := dial(t, hs)
	w, _, _ := a.login("u1", dev, "user:zoe", "")
	a.send(&protocol.Message{Type: protocol.TypePush, Ops: []cart.Op{addOp("u1", 1, "C", 1)}})
	a.expect(protocol.TypeAck)
	rec, err := st.Load(context.Background(), w.CartID, nil)
	if err != nil {
		t.Fatal(err)
	}
	if rec.Cart.Clients != 2 {
		t.Errorf("user cart counts %d client ids, want 2 (g1 carried over, u1)", rec.Cart.Clients)
	}
}

func TestReplayAfterMergeDoesNotDouble(t *testing.T) {
	_, hs, st, _ := newLoginServer(t, cart.PolicyMerge)
	devA := guestWith(t, hs, "a0", "A", 3) // a0 seq 1 applied to the guest cart
	guestID := ""
	a := dial(t, hs)
	w, _, _ := a.login("a1", devA, "user:alice", "")
	guestID = w.GuestCartID
	// The ack of a0/1 was lost: the client resends it, and a0/2 that was
	// never sent, both made on the guest cart.
	a.send(&protocol.Message{Type: protocol.TypePush, Ops: []cart.Op{
		{Client: "a0", Seq: 1, Kind: cart.KindAdd, SKU: "A", Quantity: 3, Cart: guestID},
		{Client: "a0", Seq: 2, Kind: cart.KindAdd, SKU: "B", Quantity: 1, Cart: guestID},
	}})
	ack := a.expect(protocol.TypeAck)
	if ack.Results[0].Status != protocol.StatusDuplicate || ack.Results[1].Status != protocol.StatusApplied {
		t.Fatalf("results = %+v", ack.Results)
	}
	// A second login (another tab) merges nothing more.
	c := dial(t, hs)
	_, merge, _ := c.login("a2", devA, "user:alice", "")
	if merge == nil || merge.Merge.Status != protocol.MergeAlready {
		t.Fatalf("second login merge = %+v", merge)
	}
	rec, _ := st.Load(context.Background(), syncserver.UserCartID("alice"), nil)
	if qty(rec.Cart, "A") != 3 || qty(rec.Cart, "B") != 1 {
		t.Fatalf("user cart = %+v", rec.Cart.Lines)
	}
}

func TestTokenExpiryKeepsEditsForTheNextLogin(t *testing.T) {
	_, hs, st, _ := newLoginServer(t, cart.PolicyMerge)
	dev := guestWith(t, hs, "g0")
	a := dial(t, hs)
	w, _, _ := a.login("t1", dev, "user:alice", "")
	userID := w.CartID
	a.conn.CloseNow()
	// The token expired: the server takes nothing under it.
	b := dial(t, hs)
	b.send(&protocol.Message{Type: protocol.TypeHello, Protocol: protocol.Version, Client: "t1", DeviceToken: dev, UserToken: "expired:alice"})
	b.expectError(protocol.ErrTokenExpired)
	b.send(&protocol.Message{Type: protocol.TypePush, Ops: []cart.Op{{Client: "t1", Seq: 1, Kind: cart.KindAdd, SKU: "X", Quantity: 1, Cart: userID}}})
	b.expectError(protocol.ErrHelloRequired)
	// After logging in again, the edits made meanwhile land once, in the
	// user's cart.
	c := dial(t, hs)
	c.login("t1", dev, "user:alice", "")
	pending := []cart.Op{
		{Client: "t1", Seq: 1, Kind: cart.KindAdd, SKU: "X", Quantity: 1, Cart: userID},
		{Client: "t1", Seq: 2, Kind: cart.KindAdd, SKU: "Y", Quantity: 2, Cart: userID},
	}
	for range 2 { // sent twice: a reconnect replays
		c.send(&protocol.Message{Type: protocol.TypePush, Ops: pending})
		c.expect(protocol.TypeAck)
	}
	rec, _ := st.Load(context.Background(), userID, nil)
	if qty(rec.Cart, "X") != 1 || qty(rec.Cart, "Y") != 2 || rec.Cart.Version != 2 {
		t.Fatalf("user cart = v%d %+v", rec.Cart.Version, rec.Cart.Lines)
	}
	if g, err := st.Load(context.Background(), w.GuestCartID, nil); err == nil && len(g.Cart.Lines) != 0 {
		t.Fatalf("edits reached the guest cart: %+v", g.Cart.Lines)
	}
}

func TestRefusalsSeeNothing(t *testing.T) {
	_, hs, st, _ := newLoginServer(t, cart.PolicyMerge)
	devA := guestWith(t, hs, "a0", "A", 1)
	devB := guestWith(t, hs, "b0", "B", 1)
	bob := dial(t, hs)
	bw, _, _ := bob.login("b1", devB, "user:bob", "")
	bobCart := bw.CartID
	before := map[string]uint64{}
	for _, id := range []string{bobCart, syncserver.GuestCartID("x")} {
		if rec, err := st.Load(context.Background(), id, nil); err == nil {
			before[id] = rec.Cart.Version
		}
	}
	tests := []struct {
		name  string
		hello *protocol.Message
		push  *cart.Op // sent after a successful hello
		code  protocol.ErrorCode
	}{
		{"forged user token", &protocol.Message{UserToken: "forged", DeviceToken: devA}, nil, protocol.ErrUnauthorized},
		{"expired user token", &protocol.Message{UserToken: "expired:alice", DeviceToken: devA}, nil, protocol.ErrTokenExpired},
		{"forged device token", &protocol.Message{DeviceToken: "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA"}, nil, protocol.ErrUnauthorized},
		{"edit another user's cart", &protocol.Message{UserToken: "user:alice", DeviceToken: devA},
			&cart.Op{Client: "x1", Seq: 1, Kind: cart.KindClear, Cart: bobCart}, protocol.ErrInvalid},
		{"edit another device's guest cart", &protocol.Message{DeviceToken: devA},
			&cart.Op{Client: "x2", Seq: 1, Kind: cart.KindClear, Cart: bw.GuestCartID}, protocol.ErrInvalid},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := dial(t, hs)
			h := tt.hello
			h.Type, h.Protocol, h.Client = protocol.TypeHello, protocol.Version, "x"
			c.send(h)
			if tt.push == nil {
				c.expectError(tt.code)
				// Nothing was sent besides the error: the next
				// message is refused for want of a hello.
				c.send(&protocol.Message{Type: protocol.TypeSync})
				c.expectError(protocol.ErrHelloRequired)
				return
			}
			for m := c.read(); m.Type != protocol.TypeCart; m = c.read() {
			}
			c.send(&protocol.Message{Type: protocol.TypePush, Ops: []cart.Op{*tt.push}})
			c.expectError(tt.code)
		})
	}
	rec, err := st.Load(context.Background(), bobCart, nil)
	if err != nil || rec.Cart.Version != before[bobCart] || qty(rec.Cart, "B") != 1 {
		t.Fatalf("bob's cart changed: %+v %v", rec, err)
	}
}

func TestLogoutGivesAFreshGuestCartAndSecondAccountMovesNothing(t *testing.T) {
	_, hs, st, _ := newLoginServer(t, cart.PolicyMerge)
	dev := guestWith(t, hs, "g0", "A", 2)
	a := dial(t, hs)
	aw, _, _ := a.login("t1", dev, "user:alice", "")
	// Logout: a guest hello with the same device token gets a new token
	// and an empty cart; alice's cart stays.
	g := dial(t, hs)
	w, first := g.hello("t2", dev)
	if w.DeviceToken == "" || w.CartID == aw.GuestCartID || len(first.Cart.Lines) != 0 {
		t.Fatalf("after logout: welcome %+v cart %+v", w, first.Cart)
	}
	// Logging into bob on the same (old) device token moves nothing.
	b := dial(t, hs)
	bw, merge, bobFirst := b.login("t3", dev, "user:bob", "")
	if (merge != nil && merge.Merge.Status != protocol.MergeAlready) || len(bobFirst.Cart.Lines) != 0 {
		t.Fatalf("bob got alice's guest cart: merge %+v cart %+v", merge, bobFirst.Cart)
	}
	// bob's welcome does not offer that guest cart's ops a way in, so a
	// client keeps them for alice instead of sending them to be refused.
	if bw.GuestCartID != "" {
		t.Errorf("bob's welcome names guest cart %q, which went to alice", bw.GuestCartID)
	}
	// An unsent edit made on that guest cart does not follow it into bob's
	// cart: the guest cart went to alice.
	b.send(&protocol.Message{Type: protocol.TypePush, Ops: []cart.Op{{Client: "g0", Seq: 7, Kind: cart.KindAdd, SKU: "Z", Quantity: 1, Cart: aw.GuestCartID}}})
	b.expectError(protocol.ErrInvalid)
	rec, _ := st.Load(context.Background(), aw.CartID, nil)
	if qty(rec.Cart, "A") != 2 {
		t.Fatalf("alice's cart = %+v", rec.Cart.Lines)
	}
	if bob, err := st.Load(context.Background(), syncserver.UserCartID("bob"), nil); err == nil && len(bob.Cart.Lines) != 0 {
		t.Fatalf("bob's cart = %+v", bob.Cart.Lines)
	}
}

func TestRetentionPurgesOnlyExpiredGuestCarts(t *testing.T) {
	srv, hs, st, clk := newLoginServer(t, cart.PolicyMerge)
	old := guestWith(t, hs, "o0", "A", 1)
	clk.add(2 * 24 * time.Hour)
	recent := guestWith(t, hs, "r0", "B", 1)
	clk.add(29 * 24 * time.Hour) // old is 31 days old, recent 29
	n, err := srv.Purge(context.Background(), 1)
	if err != nil || n != 1 {
		t.Fatalf("Purge = %d, %v; want 1", n, err)
	}
	if n, _ := srv.Purge(context.Background(), 10); n != 0 {
		t.Fatalf("second Purge expired %d more", n)
	}
	c := dial(t, hs)
	_, cur := c.hello("r1", recent)
	if qty(cur.Cart, "B") != 1 {
		t.Fatalf("29-day-old cart lost: %+v", cur.Cart)
	}
	// The expired device is told, and handed a fresh cart and token.
	e := dial(t, hs)
	e.send(&protocol.Message{Type: protocol.TypeHello, Protocol: protocol.Version, Client: "o1", DeviceToken: old})
	e.expectError(protocol.ErrCartExpired)
	w := e.expect(protocol.TypeWelcome)
	fresh := e.expect(protocol.TypeCart)
	if w.DeviceToken == "" || w.DeviceToken == old || len(fresh.Cart.Lines) != 0 {
		t.Fatalf("after expiry: welcome %+v cart %+v", w, fresh.Cart)
	}
	_ = st
}

// Edits made on a guest cart that then expired, still queued when the
// shopper logs in, are answered cart_expired naming that cart, as at a
// guest hello: the client drops them and says so, and sends the rest again.
// (They had been refused as invalid, which left a client resending the
// same batch for ever.)
func TestExpiredGuestCartEditsAtLoginAreToldExpired(t *testing.T) {
	srv, hs, st, clk := newLoginServer(t, cart.PolicyMerge)
	dev := guestWith(t, hs, "g0", "A", 1)
	clk.add(31 * 24 * time.Hour)
	if n, err := srv.Purge(context.Background(), 10); err != nil || n != 1 {
		t.Fatalf("Purge = %d, %v; want 1", n, err)
	}
	u := dial(t, hs)
	w, merge, first := u.login("t1", dev, "user:alice", "")
	if merge != nil || len(first.Cart.Lines) != 0 {
		t.Fatalf("login after expiry: merge %+v cart %+v", merge, first.Cart)
	}
	if !strings.HasPrefix(w.GuestCartID, "g_") {
		t.Fatalf("welcome guest_cart_id = %q, want the device's guest cart", w.GuestCartID)
	}
	u.send(&protocol.Message{Type: protocol.TypePush, ID: "p1", Ops: []cart.Op{
		{Client: "g0", Seq: 2, Kind: cart.KindAdd, SKU: "B", Quantity: 1, Cart: w.GuestCartID, Base: 1},
		addOp("t1", 1, "C", 2),
	}})
	if m := u.expect(protocol.TypeError); m.ID != "p1" || m.Error.Code != protocol.ErrCartExpired || m.Error.Cart != w.GuestCartID {
		t.Fatalf("error %+v for %q, want cart_expired for p1 naming %s", m.Error, m.ID, w.GuestCartID)
	}
	if rec, err := st.Load(context.Background(), w.CartID, nil); err == nil && len(rec.Cart.Lines) != 0 {
		t.Fatalf("the refused push changed the user cart: %+v", rec.Cart.Lines)
	}
	// The user's own edit, sent again alone, is taken.
	u.send(&protocol.Message{Type: protocol.TypePush, ID: "p2", Ops: []cart.Op{addOp("t1", 1, "C", 2)}})
	if ack := u.expect(protocol.TypeAck); qty(ack.Cart, "C") != 2 || qty(ack.Cart, "B") != 0 {
		t.Fatalf("after the refusal: %+v", ack.Cart)
	}
}

func TestHTTPLogin(t *testing.T) {
	_, hs, _, _ := newLoginServer(t, cart.PolicyMerge)
	dev := guestWith(t, hs, "a0", "A", 2)
	login := func(user, body string) (int, syncserver.LoginResponse) {
		req, _ := http.NewRequest("POST", hs.URL+"/v1/login", strings.NewReader(body))
		req.Header.Set("Authorization", "Bearer "+dev)
		if user != "" {
			req.Header.Set("X-Cartsync-User", user)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		var lr syncserver.LoginResponse
		json.NewDecoder(resp.Body).Decode(&lr)
		return resp.StatusCode, lr
	}
	if code, _ := login("", ""); code != 401 {
		t.Fatalf("login without a user token = %d, want 401", code)
	}
	if code, _ := login("expired:alice", ""); code != 401 {
		t.Fatalf("login with an expired token = %d, want 401", code)
	}
	if code, _ := login("user:alice", `{"policy":"sum"}`); code != 400 {
		t.Fatalf("unknown policy = %d, want 400", code)
	}
	code, lr := login("user:alice", `{"policy":"merge"}`)
	if code != 200 || lr.Merge == nil || lr.Merge.Status != protocol.MergeMerged || qty(lr.Cart, "A") != 2 {
		t.Fatalf("login = %d %+v", code, lr)
	}
	code, lr = login("user:alice", "")
	if code != 200 || lr.Merge.Status != protocol.MergeAlready || qty(lr.Cart, "A") != 2 {
		t.Fatalf("second login = %d %+v", code, lr)
	}
}
