package syncserver_test

import (
	"context"
	"sync"
	"testing"
	"time"

	"github.com/cartsync/cartsync/shared/cart"
	"github.com/cartsync/cartsync/syncserver"
	"github.com/cartsync/cartsync/syncserver/memstore"
)

// staleLoads is a Store whose Load answers for one cart as a cache behind
// another instance's commit can: the cart is missing, or as it was. Mutate,
// under the cart's lock, sees the cart as it is.
type staleLoads struct {
	*memstore.Store
	mu     sync.Mutex
	cartID string
	rec    *syncserver.Record // nil: missing
}

func (s *staleLoads) Load(ctx context.Context, cartID string, clients []string) (*syncserver.Record, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if cartID != s.cartID {
		return s.Store.Load(ctx, cartID, clients)
	}
	if s.rec == nil {
		return nil, syncserver.ErrCartNotFound
	}
	return s.rec, nil
}

func (s *staleLoads) stale(cartID string, rec *syncserver.Record) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.cartID, s.rec = cartID, rec
}

// A checkout is made on the cart as locked, with the catalog's word on
// every line of it, whatever a read before the lock said: a cart read as
// missing is not refused as empty, and a line the read did not have is
// priced by the catalog, not taken at the price the line carries.
func TestCheckoutWithAStaleRead(t *testing.T) {
	st := &staleLoads{Store: memstore.New()}
	s := newShop(t, st, func(c *syncserver.Config) { c.CheckoutTTL = time.Hour })
	s.upsert(mug(1200, 50), cart.Item{SKU: "TEE", Name: "Tee", Price: 1999, Currency: "EUR", Sellable: true})
	tok := s.device()
	s.push(tok, cart.Op{Client: "c", Seq: 1, Kind: cart.KindAdd, SKU: "MUG", Quantity: 2})
	before := httpCart(t, s.hs, tok)

	// Read as missing.
	st.stale(before.ID, nil)
	code, out := s.checkout(tok, 1)
	if code != 201 || out.Checkout == nil || len(out.Checkout.Lines) != 1 || out.Checkout.Lines[0].PricedBy != "catalog" {
		t.Fatalf("checkout of a cart read as missing: %d %+v", code, out)
	}

	// Read without a line the locked cart has: the shopper's client put
	// a price of 1 cent on it.
	st.stale("", nil)
	s.push(tok, cart.Op{Client: "c", Seq: 2, Kind: cart.KindAdd, SKU: "PEN", Quantity: 1, Details: &cart.Details{Name: "Pen", Price: 300, Currency: "EUR"}})
	st.stale(before.ID, &syncserver.Record{Exists: true, Cart: before})
	s.upsert(cart.Item{SKU: "PEN", Name: "Pen", Price: 450, Currency: "EUR", Sellable: true})
	st.stale("", nil)
	now := httpCart(t, s.hs, tok)
	st.stale(before.ID, &syncserver.Record{Exists: true, Cart: before})
	code, out = s.checkout(tok, now.Version)
	if code != 409 || out.Error == nil || out.Error.Code != "cart_changed" {
		t.Fatalf("checkout with the catalog's new price for a line the read missed: %d %+v, want 409 cart_changed", code, out)
	}
	// Once the shopper accepted the catalog's price, the same.
	st.stale("", nil)
	s.push(tok, cart.Op{Client: "c", Seq: 3, Kind: cart.KindDetails, SKU: "PEN", Details: &cart.Details{Name: "Pen"}})
	now = httpCart(t, s.hs, tok)
	st.stale(before.ID, &syncserver.Record{Exists: true, Cart: before})
	code, out = s.checkout(tok, now.Version)
	if code != 201 || out.Checkout == nil || len(out.Checkout.Lines) != 2 {
		t.Fatalf("checkout: %d %+v", code, out)
	}
	for _, l := range out.Checkout.Lines {
		if l.PricedBy != "catalog" {
			t.Errorf("line %s priced by %s at %d, want the catalog's", l.SKU, l.PricedBy, l.UnitPrice)
		}
	}
}
