package syncclient

import (
	"context"
	"fmt"
	"maps"
	"reflect"
	"strings"
	"testing"

	"github.com/cartsync/cartsync/shared/cart"
)

// The storefront's catalog as the engine sees it: the notices and totals
// the server sends with every cart, and the same version sent again when
// the catalog changes.

// priced is cartAt with a price of 1000 EUR on every line.
func priced(v uint64, lines ...string) *cart.Cart {
	c := cartAt(v, lines...)
	for _, l := range c.Lines {
		l.Details = cart.Details{Name: l.SKU, Price: 1000, Currency: "EUR"}
	}
	return c
}

// annotated returns a copy of c with notices and totals.
func annotated(c *cart.Cart, totals map[string]int64, notices ...cart.Notice) *cart.Cart {
	out := cloneCart(c)
	out.Notices, out.Totals = notices, totals
	return out
}

func priceNotice(line string, from, to int64) cart.Notice {
	return cart.Notice{Line: line, PriceChanged: &cart.PriceChange{From: from, To: to, Currency: "EUR"}}
}

func availableNotice(line string, n int) cart.Notice {
	return cart.Notice{Line: line, Limit: cart.Limit{Available: &n}}
}

// Pending edits that resolve a notice hide it at once, and the totals are
// worked out again from the notices; the server's word comes with the ack.
func TestPendingEditsResolveNotices(t *testing.T) {
	base := priced(3, "tee=2", "mug=1", "cap=1")
	base.Lines = append(base.Lines, &cart.Line{Key: "tee?size=l", SKU: "tee", Options: map[string]string{"size": "l"}, Quantity: 2,
		Details: cart.Details{Name: "tee", Price: 1000, Currency: "EUR"}})
	notices := []cart.Notice{
		{Line: "tee", PriceChanged: &cart.PriceChange{From: 1000, To: 1200, Currency: "EUR"}, Limit: cart.Limit{Available: ptr(3)}},
		{Line: "mug", Unavailable: true},
		{Line: "tee?size=l", PriceChanged: &cart.PriceChange{From: 1000, To: 1200, Currency: "EUR"}, Limit: cart.Limit{Available: ptr(3)}},
	}
	// Server: tee 4 × 12 + cap 10, mug withdrawn.
	confirmed := annotated(base, map[string]int64{"EUR": 5800}, notices...)
	newPrice := cart.Details{Name: "tee", Price: 1200, Currency: "EUR"}
	tests := []struct {
		name    string
		edits   func(ctx context.Context, e *Engine) error
		notices string
		totals  int64
	}{
		{"none", func(context.Context, *Engine) error { return nil },
			"tee: price 1000→1200, 3 available; mug: unavailable; tee?size=l: price 1000→1200, 3 available", 5800},
		{"accept the new price", func(ctx context.Context, e *Engine) error {
			return e.SetDetails(ctx, "tee", nil, newPrice)
		}, "tee: 3 available; mug: unavailable; tee?size=l: price 1000→1200, 3 available", 5800},
		{"reduce one option line so the SKU fits", func(ctx context.Context, e *Engine) error {
			return e.SetQuantity(ctx, "tee", nil, 1)
		}, "tee: price 1000→1200; mug: unavailable; tee?size=l: price 1000→1200", 4600},
		{"remove the withdrawn item", func(ctx context.Context, e *Engine) error {
			return e.Remove(ctx, "mug", nil)
		}, "tee: price 1000→1200, 3 available; tee?size=l: price 1000→1200, 3 available", 5800},
		{"an unrelated add", func(ctx context.Context, e *Engine) error {
			return e.Add(ctx, "pen", nil, 2, &cart.Details{Name: "pen", Price: 150, Currency: "EUR"})
		}, "tee: price 1000→1200, 3 available; mug: unavailable; tee?size=l: price 1000→1200, 3 available", 6100},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ctx := context.Background()
			store := NewMemStorage()
			must(t, store.Confirm(ctx, confirmed, nil))
			e := newEngine(t, store, nil)
			must(t, e.Reload(ctx))
			must(t, tt.edits(ctx, e))
			st := e.Snapshot()
			if got := noticesText(st.Notices); got != tt.notices {
				t.Errorf("notices\n %s\nwant\n %s", got, tt.notices)
			}
			if !maps.Equal(st.Totals, map[string]int64{"EUR": tt.totals}) {
				t.Errorf("totals %v, want EUR %d", st.Totals, tt.totals)
			}
			// The notices the server sent are not changed.
			if !reflect.DeepEqual(confirmed.Notices, notices) {
				t.Errorf("the server's notices changed: %s", noticesText(confirmed.Notices))
			}
		})
	}
}

// Without a catalog the server sends neither notices nor totals.
func TestNoCatalogNoTotals(t *testing.T) {
	ctx := context.Background()
	store := NewMemStorage()
	must(t, store.Confirm(ctx, priced(1, "tee=1"), nil))
	e := newEngine(t, store, nil)
	must(t, e.Reload(ctx))
	must(t, e.Add(ctx, "mug", nil, 1, nil))
	if st := e.Snapshot(); st.Notices != nil || st.Totals != nil {
		t.Errorf("notices %s, totals %v, want none", noticesText(st.Notices), st.Totals)
	}
}

// A cart whose only item was withdrawn comes with notices and no totals
// (an empty map is left out of the JSON): the total is nothing, not the
// lines' prices.
func TestNoticesWithoutTotals(t *testing.T) {
	ctx := context.Background()
	store := NewMemStorage()
	must(t, store.Confirm(ctx, annotated(priced(1, "tee=1"), nil, cart.Notice{Line: "tee", Unavailable: true}), nil))
	e := newEngine(t, store, nil)
	must(t, e.Reload(ctx))
	if st := e.Snapshot(); st.Totals == nil || len(st.Totals) != 0 {
		t.Errorf("totals %v, want none (an empty map)", st.Totals)
	}
}

func ptr(n int) *int { return &n }

// noticesText writes notices as "tee: price 1000→1200, 3 available; mug:
// unavailable".
func noticesText(ns []cart.Notice) string {
	var out []string
	for _, n := range ns {
		var parts []string
		if pc := n.PriceChanged; pc != nil {
			parts = append(parts, fmt.Sprintf("price %d→%d", pc.From, pc.To))
		}
		if n.Available != nil {
			parts = append(parts, fmt.Sprintf("%d available", *n.Available))
		}
		if n.Unavailable {
			parts = append(parts, "unavailable")
		}
		out = append(out, n.Line+": "+strings.Join(parts, ", "))
	}
	return strings.Join(out, "; ")
}
