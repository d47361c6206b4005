package syncclient

import (
	"context"
	"errors"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"github.com/cartsync/cartsync/shared/cart"
	"github.com/cartsync/cartsync/shared/protocol"
)

// seedUser gives the fake user cart u-NAME the lines, as if edited on
// another device.
func seedUser(srv *fakeServer, name string, skus ...string) {
	srv.do(func() {
		u := srv.newCart("u-" + name)
		for i, sku := range skus {
			op := cart.Op{Client: "phone", Seq: uint64(i + 1), Kind: cart.KindAdd, SKU: sku, Quantity: 1}
			if _, err := u.c.Apply(op, "dev-phone", srv.lim); err != nil {
				srv.t.Fatal(err)
			}
			u.seqs["phone"] = op.Seq
		}
	})
}

// sentTimes counts how often ops with the sku were pushed, and returns the
// cart they were stamped with.
func sentTimes(srv *fakeServer, sku string) (n int, stamped string) {
	srv.do(func() {
		for _, op := range srv.sent {
			if op.SKU == sku {
				n++
				stamped = op.Cart
			}
		}
	})
	return n, stamped
}

func waitState(t testing.TB, e *Engine, what string, ok func(State) bool) State {
	t.Helper()
	waitFor(t, what, func() bool { return ok(e.Snapshot()) })
	return e.Snapshot()
}

// goOffline takes the server down and drops every connection.
func goOffline(t testing.TB, srv *fakeServer, e *Engine) {
	t.Helper()
	srv.do(func() { srv.down = true })
	srv.kill(false)
	waitState(t, e, "offline", func(s State) bool { return s.Status == Offline })
}

// Every op carries the cart shown when it was made: none before the first
// sync.
func TestOpCartStamped(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		srv := newFakeServer(t)
		e := newEngine(t, srv, NewMemStorage(), nil)
		ctx := context.Background()
		must(t, e.Add(ctx, "mug", nil, 1, nil))
		start(t, e)
		flush(t, e)
		must(t, e.Add(ctx, "tea", nil, 1, nil))
		flush(t, e)
		checkConverged(t, srv, e)
		for sku, want := range map[string]string{"mug": "", "tea": "cart-1"} {
			if n, got := sentTimes(srv, sku); n != 1 || got != want {
				t.Errorf("%s sent %d times stamped %q, want once, %q", sku, n, got, want)
			}
		}
	})
}

// A login merges the guest cart at the server: the engine shows the user's
// cart under a new client id, reports the merge, and sends new edits there.
func TestLoginMerge(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		srv := newFakeServer(t)
		seedUser(srv, "ann", "tea")
		var mu sync.Mutex
		var last State
		e := newEngine(t, srv, NewMemStorage(), func(c *Config) {
			c.ClientID = "me"
			c.OnChange = func(s State) { mu.Lock(); last = s; mu.Unlock() }
		})
		start(t, e)
		ctx := context.Background()
		must(t, e.Add(ctx, "mug", nil, 1, nil))
		flush(t, e)
		if err := e.SetUser("user:ann", "sometimes"); err == nil {
			t.Error("SetUser took an unknown policy")
		}
		must(t, e.SetUser("user:ann", ""))
		st := waitState(t, e, "on ann's cart", func(s State) bool { return s.User == "ann" && s.Status == Synced })
		if st.Cart.ID != "u-ann" || summary(st.Cart) != "mug=1 tea=1" {
			t.Errorf("shows %s %q, want u-ann with mug=1 tea=1", st.Cart.ID, summary(st.Cart))
		}
		if st.Merge == nil || st.Merge.Status != protocol.MergeMerged || st.Merge.Result == nil || st.Merge.Result.Added != 1 {
			t.Errorf("Merge = %+v, want merged with one line added", st.Merge)
		}
		if e.ClientID() == "me" {
			t.Error("same client id on the user cart")
		}
		mu.Lock()
		if last.Merge == nil || last.User != "ann" {
			t.Errorf("OnChange last saw %+v, want the merge on ann's cart", last)
		}
		mu.Unlock()
		srv.do(func() {
			h := srv.hellos[len(srv.hellos)-1]
			if srv.dials != 2 || h.UserToken != "user:ann" || h.Protocol != protocol.Version || h.DeviceToken != "dev-1" {
				t.Errorf("%d dials, last hello %+v; want a second one with the user token", srv.dials, h)
			}
		})

		must(t, e.Add(ctx, "jam", nil, 1, nil))
		flush(t, e)
		if got, want := summary(srv.cartOf("u-ann")), "jam=1 mug=1 tea=1"; got != want {
			t.Errorf("server has %q on u-ann, want %q", got, want)
		}
		if n, c := sentTimes(srv, "jam"); n != 1 || c != "u-ann" {
			t.Errorf("jam sent %d times stamped %q, want once on u-ann", n, c)
		}

		must(t, e.SetUser("user:ann", "")) // the same again: no reconnect
		synctest.Wait()
		srv.do(func() {
			if srv.dials != 2 {
				t.Errorf("%d dials after repeating SetUser, want 2", srv.dials)
			}
		})
		e.AckNotices()
		if st := e.Snapshot(); st.Merge != nil {
			t.Errorf("Merge %+v after AckNotices", st.Merge)
		}
	})
}

// Edits made on the guest cart and not sent before the login are sent on
// the user's connection, where the server applies them to the user cart.
func TestGuestOpsSentAfterLogin(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		srv := newFakeServer(t)
		e := newEngine(t, srv, NewMemStorage(), func(c *Config) { c.ClientID = "me" })
		start(t, e)
		ctx := context.Background()
		must(t, e.Add(ctx, "mug", nil, 1, nil))
		flush(t, e)
		goOffline(t, srv, e)
		must(t, e.Add(ctx, "tea", nil, 1, nil)) // on cart-1
		must(t, e.SetUser("user:ann", cart.PolicyMerge))
		srv.do(func() { srv.down = false })
		st := waitState(t, e, "logged in, all sent", func(s State) bool {
			return s.User == "ann" && s.Pending == 0 && s.Status == Synced
		})
		if got, want := summary(srv.cartOf("u-ann")), "mug=1 tea=1"; got != want || summary(st.Cart) != want {
			t.Errorf("server has %q, engine shows %q; want %q", got, summary(st.Cart), want)
		}
		if n, c := sentTimes(srv, "tea"); n != 1 || c != "cart-1" {
			t.Errorf("tea sent %d times stamped %q, want once, made on cart-1", n, c)
		}
		srv.do(func() {
			if got := srv.opCarts[protocol.OpID{Client: "me", Seq: 2}]; got != "u-ann" {
				t.Errorf("tea applied to %q, want u-ann", got)
			}
			for id, n := range srv.applied {
				if n != 1 {
					t.Errorf("op %v applied %d times", id, n)
				}
			}
		})
	})
}

// With the policy choose the server shows both carts and waits: guest ops
// are held until the shopper picks, then the merge and the ops go through.
func TestLoginChoose(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		srv := newFakeServer(t)
		seedUser(srv, "ann", "tea")
		e := newEngine(t, srv, NewMemStorage(), nil)
		ctx := context.Background()
		if err := e.Choose(ctx, cart.PolicyMerge); !errors.Is(err, ErrNotConnected) {
			t.Errorf("Choose before running = %v, want ErrNotConnected", err)
		}
		start(t, e)
		must(t, e.Add(ctx, "mug", nil, 1, nil))
		flush(t, e)
		goOffline(t, srv, e)
		must(t, e.Add(ctx, "jam", nil, 1, nil)) // a guest op, not sent yet
		must(t, e.SetUser("user:ann", cart.PolicyChoose))
		srv.do(func() { srv.down = false })
		st := waitState(t, e, "the choice", func(s State) bool { return s.Choice != nil && s.Status == Synced })
		if summary(st.Choice.Guest) != "mug=1" || summary(st.Choice.User) != "tea=1" || st.Merge == nil || st.Merge.Status != protocol.MergeChoose {
			t.Errorf("Choice %+v, Merge %+v; want both carts to choose from", st.Choice, st.Merge)
		}
		if st.User != "ann" || summary(st.Cart) != "jam=1 tea=1" {
			t.Errorf("shows %q for %q, want ann's cart with the pending jam", summary(st.Cart), st.User)
		}
		if n, _ := sentTimes(srv, "jam"); n != 0 {
			t.Error("a guest op was sent before the choice")
		}
		if err := e.Choose(ctx, cart.PolicyChoose); err == nil {
			t.Error("Choose took the policy choose")
		}
		must(t, e.Choose(ctx, cart.PolicyMerge))
		st = waitState(t, e, "merged", func(s State) bool { return s.Choice == nil && s.Pending == 0 && s.Status == Synced })
		if got, want := summary(srv.cartOf("u-ann")), "jam=1 mug=1 tea=1"; got != want || summary(st.Cart) != want {
			t.Errorf("server has %q, engine shows %q; want %q", got, summary(st.Cart), want)
		}
		if st.Merge == nil || st.Merge.Status != protocol.MergeMerged || st.Confirmed != srv.cartOf("u-ann").Version {
			t.Errorf("state %+v, want merged at the server's version", st)
		}
		srv.do(func() {
			if len(srv.chooses) != 1 || srv.chooses[0] != cart.PolicyMerge {
				t.Errorf("chooses %v, want [merge]", srv.chooses)
			}
		})
		if err := e.Choose(ctx, cart.PolicyKeep); !errors.Is(err, ErrNoChoice) {
			t.Errorf("Choose after the merge = %v, want ErrNoChoice", err)
		}
	})
}

// An expired user token stops the engine dialling until SetUser; edits are
// kept for the user's cart, shown, and sent once after the next login.
func TestTokenExpired(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		srv := newFakeServer(t)
		store := NewMemStorage()
		e := newEngine(t, srv, store, nil)
		must(t, e.SetUser("user:ann", ""))
		start(t, e)
		ctx := context.Background()
		must(t, e.Add(ctx, "mug", nil, 1, nil))
		flush(t, e)

		srv.do(func() { srv.expireUsers = true })
		srv.kill(false)
		st := waitState(t, e, "needs login", func(s State) bool { return s.NeedsLogin })
		if st.LastError == nil || st.LastError.Code != protocol.ErrTokenExpired {
			t.Errorf("LastError %v, want token_expired", st.LastError)
		}
		var dials int
		srv.do(func() { dials = srv.dials })
		time.Sleep(10 * time.Minute)
		synctest.Wait()
		srv.do(func() {
			if srv.dials != dials {
				t.Errorf("%d dials in 10 minutes with an expired token, want none", srv.dials-dials)
			}
		})
		must(t, e.Add(ctx, "tea", nil, 1, nil))
		st = e.Snapshot()
		if st.Status != Offline || summary(st.Cart) != "mug=1 tea=1" || st.Pending != 1 || st.Waiting != 0 || st.User != "ann" {
			t.Errorf("state %+v (%q), want offline on ann's cart with the tea pending", st, summary(st.Cart))
		}
		stored, err := store.Load(ctx)
		must(t, err)
		if len(stored.Pending) != 1 || stored.Pending[0].Cart != "u-ann" {
			t.Errorf("stored outbox %+v, want the tea for u-ann", stored.Pending)
		}

		srv.do(func() { srv.expireUsers = false })
		must(t, e.SetUser("user:ann", "")) // the host page's fresh token
		flush(t, e)
		if got, want := summary(srv.cartOf("u-ann")), "mug=1 tea=1"; got != want {
			t.Errorf("server has %q, want %q", got, want)
		}
		if n, c := sentTimes(srv, "tea"); n != 1 || c != "u-ann" {
			t.Errorf("tea sent %d times stamped %q, want once for u-ann", n, c)
		}
		if st := e.Snapshot(); st.NeedsLogin {
			t.Error("still NeedsLogin after SetUser")
		}
	})
}

// A user token the server refuses is a login to redo, not a bad device
// token: the device token (and guest cart) are kept.
func TestUnauthorizedUserToken(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		srv := newFakeServer(t)
		store := NewMemStorage()
		e := newEngine(t, srv, store, nil)
		start(t, e)
		waitState(t, e, "synced", func(s State) bool { return s.Status == Synced })
		must(t, e.SetUser("forged", ""))
		waitState(t, e, "needs login", func(s State) bool { return s.NeedsLogin && s.Status == Offline })
		time.Sleep(5 * time.Minute)
		synctest.Wait()
		srv.do(func() {
			if srv.dials != 2 {
				t.Errorf("%d dials, want 2", srv.dials)
			}
		})
		stored, err := store.Load(context.Background())
		must(t, err)
		if stored.DeviceToken != "dev-1" {
			t.Errorf("device token %q, want dev-1 kept", stored.DeviceToken)
		}
		must(t, e.SetUser("", "")) // continue as a guest
		waitState(t, e, "synced as a guest", func(s State) bool { return s.Status == Synced && s.Cart.ID == "cart-1" })
	})
}

// After a logout, edits made for the user's cart are held: not shown on the
// fresh guest cart, not sent on the guest connection, and sent after the
// next login.
func TestLogoutHoldsUserOps(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		srv := newFakeServer(t)
		store := NewMemStorage()
		e := newEngine(t, srv, store, nil)
		must(t, e.SetUser("user:ann", ""))
		start(t, e)
		ctx := context.Background()
		must(t, e.Add(ctx, "mug", nil, 1, nil))
		flush(t, e)
		goOffline(t, srv, e)
		must(t, e.Add(ctx, "tea", nil, 1, nil)) // for u-ann
		must(t, e.SetUser("", ""))
		srv.do(func() { srv.down = false })
		st := waitState(t, e, "on a fresh guest cart", func(s State) bool {
			return s.Status == Synced && s.Cart.ID != "u-ann" && s.Cart.ID != ""
		})
		if st.User != "" || st.Cart.ID != "cart-2" || summary(st.Cart) != "" || st.Pending != 1 || st.Waiting != 1 {
			t.Errorf("state %+v (%s %q), want the empty cart-2 with the tea waiting", st, st.Cart.ID, summary(st.Cart))
		}
		stored, err := store.Load(ctx)
		must(t, err)
		if stored.DeviceToken != "dev-2" {
			t.Errorf("device token %q, want the new dev-2", stored.DeviceToken)
		}
		must(t, e.Add(ctx, "jam", nil, 1, nil))
		flush(t, e) // the guest's jam; the tea waits
		if got := summary(srv.cartOf("cart-2")); got != "jam=1" {
			t.Errorf("guest cart has %q, want jam=1", got)
		}
		if n, _ := sentTimes(srv, "tea"); n != 0 {
			t.Errorf("the user's tea was sent %d times as a guest", n)
		}

		must(t, e.SetUser("user:ann", ""))
		st = waitState(t, e, "logged in again", func(s State) bool {
			return s.User == "ann" && s.Pending == 0 && s.Status == Synced
		})
		if got, want := summary(srv.cartOf("u-ann")), "jam=1 mug=1 tea=1"; got != want || summary(st.Cart) != want {
			t.Errorf("server has %q, engine shows %q; want %q", got, summary(st.Cart), want)
		}
		if n, c := sentTimes(srv, "tea"); n != 1 || c != "u-ann" {
			t.Errorf("tea sent %d times stamped %q, want once for u-ann", n, c)
		}
	})
}

// An expired guest cart: the notice, the new device token and fresh cart,
// and the ops made on the purged cart dropped and reported; ops made before
// any sync go to the fresh cart. Also for an engine that starts after the
// expiry and never saw the old cart's welcome.
func TestCartExpired(t *testing.T) {
	for _, reload := range []bool{false, true} {
		t.Run(map[bool]string{false: "running", true: "reloaded"}[reload], func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				srv := newFakeServer(t)
				store := NewMemStorage()
				ctx := context.Background()
				e := newEngine(t, srv, store, nil)
				stop := run(t, e)
				must(t, e.Add(ctx, "mug", nil, 1, nil))
				flush(t, e)
				goOffline(t, srv, e)
				must(t, e.Add(ctx, "tea", nil, 1, nil)) // on cart-1
				_, err := store.Enqueue(ctx, "early", func(seq uint64) cart.Op {
					return cart.Op{Client: "early", Seq: seq, Kind: cart.KindAdd, SKU: "jam", Quantity: 1}
				})
				must(t, err)
				if reload {
					stop()
					e = newEngine(t, srv, store, nil)
					stop = run(t, e)
				}
				t.Cleanup(stop)
				srv.expire("cart-1")
				srv.do(func() { srv.down = false })
				st := waitState(t, e, "the fresh cart", func(s State) bool {
					return s.CartExpired && s.Status == Synced && s.Pending == 0
				})
				if st.Cart.ID != "cart-2" || summary(st.Cart) != "jam=1" || summary(srv.cartOf("cart-2")) != "jam=1" {
					t.Errorf("shows %s %q, server %q; want cart-2 with the early jam", st.Cart.ID, summary(st.Cart), summary(srv.cartOf("cart-2")))
				}
				if len(st.Dropped) != 1 || st.Dropped[0].SKU != "tea" || st.Dropped[0].Cart != "cart-1" {
					t.Errorf("Dropped = %+v, want the tea of cart-1", st.Dropped)
				}
				if n, _ := sentTimes(srv, "tea"); n != 0 {
					t.Errorf("the tea of the expired cart was sent %d times", n)
				}
				stored, err := store.Load(ctx)
				must(t, err)
				if stored.DeviceToken != "dev-2" || stored.Cart.ID != "cart-2" {
					t.Errorf("stored %q and %s, want dev-2 and cart-2", stored.DeviceToken, stored.Cart.ID)
				}
				e.AckNotices()
				if st := e.Snapshot(); st.CartExpired || st.Dropped != nil {
					t.Errorf("after AckNotices: %+v", st)
				}
			})
		})
	}
}

// forbidden no longer stops Run: the engine reconnects after the backoff.
func TestForbiddenReconnects(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		sc := newScript(t)
		e := scriptedEngine(t, sc, nil)
		p := sc.accept()
		p.login(cartAt(0), 0)
		must(t, e.Add(context.Background(), "mug", nil, 1, nil))
		push := p.expect(protocol.TypePush)
		p.send(&protocol.Message{Type: protocol.TypeError, ID: push.ID, Error: protocol.Errorf(protocol.ErrForbidden, "merged")})
		if st := e.Snapshot(); st.LastError == nil || st.LastError.Code != protocol.ErrForbidden {
			t.Errorf("LastError %v, want forbidden", st.LastError)
		}
		p2 := sc.accept()
		p2.expect(protocol.TypeHello)
	})
}

// The choose flow message by message: choose is sent once per answer, an
// error lets the shopper choose again, and the merged cart pushed without
// ops is taken.
func TestChooseScripted(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		sc := newScript(t)
		e := newEngine(t, nil, NewMemStorage(), func(c *Config) { c.Dial = sc.dial; c.ClientID = "me" })
		must(t, e.SetUser("user:ann", cart.PolicyChoose))
		start(t, e)
		ctx := context.Background()
		p := sc.accept()
		h := p.expect(protocol.TypeHello)
		if h.UserToken != "user:ann" || h.Policy != cart.PolicyChoose {
			t.Errorf("hello %+v, want the user token and the policy choose", h)
		}
		p.send(&protocol.Message{Type: protocol.TypeWelcome, ID: h.ID, CartID: "u-ann", User: "ann", GuestCartID: "g-1"})
		user := cartAt(4, "tea=1")
		user.ID = "u-ann"
		guest := cartAt(2, "mug=1")
		guest.ID = "g-1"
		p.send(&protocol.Message{Type: protocol.TypeMerge, Merge: &protocol.MergeInfo{Status: protocol.MergeChoose, Guest: guest, User: user, Version: 4}})
		p.send(&protocol.Message{Type: protocol.TypeCart, ID: h.ID, Cart: user, Acked: map[string]uint64{}})
		if st := e.Snapshot(); st.Choice == nil || st.User != "ann" || st.Status != Synced {
			t.Fatalf("state %+v, want a choice on ann's synced cart", st)
		}
		must(t, e.Choose(ctx, cart.PolicyReplace))
		c := p.expect(protocol.TypeChoose)
		if c.Policy != cart.PolicyReplace {
			t.Errorf("choose %+v, want replace", c)
		}
		if err := e.Choose(ctx, cart.PolicyMerge); !errors.Is(err, ErrNoChoice) {
			t.Errorf("second Choose = %v, want ErrNoChoice while the first is unanswered", err)
		}
		p.send(&protocol.Message{Type: protocol.TypeError, ID: c.ID, Error: protocol.Errorf(protocol.ErrInternal, "try again")})
		if st := e.Snapshot(); st.Choice == nil || st.LastError == nil {
			t.Errorf("state %+v, want the choice still open and the error shown", st)
		}
		must(t, e.Choose(ctx, cart.PolicyReplace))
		p.expect(protocol.TypeChoose)
		merged := cartAt(5, "mug=1")
		merged.ID = "u-ann"
		p.send(&protocol.Message{Type: protocol.TypeMerge, Merge: &protocol.MergeInfo{Status: protocol.MergeMerged,
			Result: &cart.MergeResult{Policy: cart.PolicyReplace, Added: 1, Replaced: 1, Items: 1}, Version: 5}})
		p.send(&protocol.Message{Type: protocol.TypeCart, Cart: merged, From: 4})
		p.quiet()
		st := e.Snapshot()
		if st.Choice != nil || st.Merge == nil || st.Merge.Status != protocol.MergeMerged || st.Confirmed != 5 || summary(st.Cart) != "mug=1" {
			t.Errorf("state %+v (%q), want the merged cart at 5", st, summary(st.Cart))
		}
	})
}

// Config.UserToken logs in until SetUser takes over.
func TestConfigUserToken(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		srv := newFakeServer(t)
		e := newEngine(t, srv, NewMemStorage(), func(c *Config) { c.UserToken = func() string { return "user:ann" } })
		start(t, e)
		waitState(t, e, "on ann's cart", func(s State) bool { return s.User == "ann" && s.Status == Synced })
		must(t, e.SetUser("", ""))
		st := waitState(t, e, "logged out", func(s State) bool { return s.User == "" && s.Status == Synced })
		if st.Cart.ID != "cart-2" {
			t.Errorf("guest cart %q after logging out, want the fresh cart-2", st.Cart.ID)
		}
	})
}

// A push to a cart purged while connected is answered cart_expired: the
// engine reconnects at once for the fresh cart.
func TestCartExpiredOnPush(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		srv := newFakeServer(t)
		e := newEngine(t, srv, NewMemStorage(), nil)
		start(t, e)
		waitState(t, e, "synced", func(s State) bool { return s.Status == Synced })
		srv.expire("cart-1")
		must(t, e.Add(context.Background(), "tea", nil, 1, nil))
		st := waitState(t, e, "the fresh cart", func(s State) bool {
			return s.CartExpired && s.Status == Synced && s.Cart.ID == "cart-2"
		})
		if len(st.Dropped) != 1 || st.Dropped[0].SKU != "tea" || st.Pending != 0 {
			t.Errorf("state %+v, want the tea dropped and reported", st)
		}
		srv.do(func() {
			if srv.dials != 2 {
				t.Errorf("%d dials, want 2", srv.dials)
			}
		})
	})
}
