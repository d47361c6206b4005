package syncclient

import (
	"context"
	"slices"
	"testing"
	"testing/synctest"

	"github.com/cartsync/cartsync/shared/cart"
	"github.com/cartsync/cartsync/shared/protocol"
)

// Device tokens and client ids: a refused token, tabs that start at once,
// lost ops of the engine's own client id.

// A refused device token is forgotten with the cart it granted; the engine
// starts over on a new cart, under a new client id. The ops made on the lost
// cart are dropped and reported; those made before any sync are applied.
func TestUnauthorizedForgetsToken(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		srv := newFakeServer(t)
		store := NewMemStorage()
		ctx := context.Background()
		_, err := store.Enqueue(ctx, "early", func(seq uint64) cart.Op { // made before any sync
			return cart.Op{Client: "early", Seq: seq, Kind: cart.KindAdd, SKU: "jam", Quantity: 1}
		})
		must(t, err)
		_, err = store.SwapDeviceToken(ctx, "", "forged")
		must(t, err)
		must(t, store.Confirm(ctx, &cart.Cart{ID: "cart-old", Version: 5, Lines: []*cart.Line{{Key: "old", SKU: "old", Quantity: 1}}}, nil))
		e := newEngine(t, srv, store, func(c *Config) { c.ClientID = "me" })
		must(t, e.Add(ctx, "mug", nil, 1, nil))
		start(t, e)
		waitFor(t, "synced", func() bool { return e.Snapshot().Status == Synced })
		flush(t, e)
		checkConverged(t, srv, e)
		if got, want := srv.summary(), "jam=1"; got != want {
			t.Errorf("server has %q, want %q", got, want)
		}
		if d := e.Snapshot().Dropped; len(d) != 1 || d[0].SKU != "mug" || d[0].Cart != "cart-old" {
			t.Errorf("Dropped = %+v, want the mug made on cart-old", d)
		}
		stored, err := store.Load(ctx)
		must(t, err)
		if stored.DeviceToken != "dev-1" || stored.Cart.ID != "cart-1" {
			t.Errorf("stored token %q and cart %q, want dev-1 and cart-1", stored.DeviceToken, stored.Cart.ID)
		}
		if e.ClientID() == "me" {
			t.Error("the client id did not change with the cart")
		}
		srv.do(func() {
			if len(srv.hellos) != 2 || srv.hellos[1].DeviceToken != "" {
				t.Errorf("hellos %+v, want a second one without a token", srv.hellos)
			}
		})
	})
}

// Two tabs that start at once without a token end up on one token.
func TestTabsAgreeOnToken(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		srv := newFakeServer(t)
		store := NewMemStorage()
		tabA := newEngine(t, srv, store, nil)
		tabB := newEngine(t, srv, store, nil)
		start(t, tabA)
		start(t, tabB)
		waitFor(t, "both synced", func() bool {
			return tabA.Snapshot().Status == Synced && tabB.Snapshot().Status == Synced
		})
		stored, err := store.Load(context.Background())
		must(t, err)
		if got, want := srv.devices(), []string{stored.DeviceToken, stored.DeviceToken}; !slices.Equal(got, want) {
			t.Errorf("sessions use tokens %v, want both the stored %q", got, stored.DeviceToken)
		}
	})
}

// When the server can take no more ops of the engine's own client id, new
// edits go under a new one.
func TestLostOwnOpsNewClientID(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		srv := newFakeServer(t)
		store := NewMemStorage()
		ctx := context.Background()
		e := newEngine(t, srv, store, func(c *Config) { c.ClientID = "me" })
		stop := run(t, e)
		must(t, e.Add(ctx, "mug", nil, 1, nil))
		flush(t, e)
		stop()
		must(t, e.Add(ctx, "tea", nil, 1, nil))
		must(t, e.Add(ctx, "jam", nil, 1, nil))
		must(t, store.Confirm(ctx, nil, []protocol.OpID{{Client: "me", Seq: 2}})) // lost
		start(t, e)
		flush(t, e)
		if e.ClientID() == "me" {
			t.Fatal("still client id me")
		}
		must(t, e.Add(ctx, "cake", nil, 1, nil))
		flush(t, e)
		checkConverged(t, srv, e)
		if got, want := srv.summary(), "cake=1 mug=1"; got != want {
			t.Errorf("server has %q, want %q", got, want)
		}
		if rej := e.Snapshot().Rejected; len(rej) != 1 || rej[0].Seq != 3 {
			t.Errorf("Rejected = %+v, want me/3", rej)
		}
	})
}
