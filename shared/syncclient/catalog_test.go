package syncclient

import (
	"context"
	"fmt"
	"maps"
	"reflect"
	"strings"
	"sync"
	"testing"
	"testing/synctest"

	"github.com/cartsync/cartsync/shared/cart"
	"github.com/cartsync/cartsync/shared/protocol"
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
	return cart.Notice{Line: line, Available: &n}
}

// changes records the states OnChange gets.
type changes struct {
	mu     sync.Mutex
	states []State
}

func (c *changes) add(st State) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.states = append(c.states, st)
}

// since returns the states recorded after the first n.
func (c *changes) since(n int) []State {
	c.mu.Lock()
	defer c.mu.Unlock()
	return append([]State(nil), c.states[n:]...)
}

func (c *changes) count() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return len(c.states)
}

// A cart pushed again at the confirmed version (the catalog changed) updates
// the notices and totals shown, and OnChange is told; one at an older
// version is ignored.
func TestSameVersionCartUpdatesNotices(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		sc := newScript(t)
		var seen changes
		store := NewMemStorage()
		e := scriptedEngine(t, sc, func(c *Config) { c.Storage = store; c.OnChange = seen.add })
		p := sc.accept()
		v2 := priced(2, "tee=2", "mug=1")
		p.login(annotated(v2, map[string]int64{"EUR": 3000}), 0)
		if st := e.Snapshot(); st.Confirmed != 2 || st.Notices != nil || !maps.Equal(st.Totals, map[string]int64{"EUR": 3000}) {
			t.Fatalf("after the hello: confirmed %d, notices %+v, totals %v", st.Confirmed, st.Notices, st.Totals)
		}

		steps := []struct {
			name    string
			msg     *cart.Cart
			from    uint64
			notices []cart.Notice
			totals  map[string]int64
			told    bool // OnChange is called
		}{
			{"price and stock changed", annotated(v2, map[string]int64{"EUR": 3400},
				cart.Notice{Line: "tee", PriceChanged: &cart.PriceChange{From: 1000, To: 1200, Currency: "EUR"}, Available: ptr(1)}),
				2, []cart.Notice{{Line: "tee", PriceChanged: &cart.PriceChange{From: 1000, To: 1200, Currency: "EUR"}, Available: ptr(1)}},
				map[string]int64{"EUR": 3400}, true},
			{"an older version is ignored", annotated(priced(1, "tee=2"), nil), 1,
				[]cart.Notice{{Line: "tee", PriceChanged: &cart.PriceChange{From: 1000, To: 1200, Currency: "EUR"}, Available: ptr(1)}},
				map[string]int64{"EUR": 3400}, false},
			{"withdrawn", annotated(v2, map[string]int64{"EUR": 1000}, cart.Notice{Line: "tee", Unavailable: true}),
				2, []cart.Notice{{Line: "tee", Unavailable: true}}, map[string]int64{"EUR": 1000}, true},
			{"back as it was", annotated(v2, map[string]int64{"EUR": 3000}), 2, nil, map[string]int64{"EUR": 3000}, true},
		}
		for _, s := range steps {
			n := seen.count()
			p.send(&protocol.Message{Type: protocol.TypeCart, Cart: s.msg, From: s.from})
			p.quiet() // no sync, no push: nothing is missing
			st := e.Snapshot()
			if st.Confirmed != 2 || summary(st.Cart) != "mug=1 tee=2" || !reflect.DeepEqual(st.Notices, s.notices) || !maps.Equal(st.Totals, s.totals) {
				t.Errorf("%s: confirmed %d %q, notices %s, totals %v; want version 2, notices %s, totals %v",
					s.name, st.Confirmed, summary(st.Cart), noticesText(st.Notices), st.Totals, noticesText(s.notices), s.totals)
			}
			got := seen.since(n)
			if told := len(got) > 0 && reflect.DeepEqual(got[len(got)-1].Notices, s.notices); told != s.told {
				t.Errorf("%s: OnChange told the new notices: %v, want %v", s.name, told, s.told)
			}
			// The storage keeps them: another tab, or the next
			// visit, shows them too.
			stored, err := store.Load(context.Background())
			must(t, err)
			if !reflect.DeepEqual(stored.Cart.Notices, s.notices) || !maps.Equal(stored.Cart.Totals, s.totals) {
				t.Errorf("%s: stored notices %s, totals %v", s.name, noticesText(stored.Cart.Notices), stored.Cart.Totals)
			}
		}
	})
}

// A cart without a request id that arrives before the hello's reply is a
// push (here the catalog's, at the same version), held until the reply:
// it is not taken for the reply, so the ops the reply says the server has
// are not sent again.
func TestSameVersionCartBeforeHelloReply(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		sc := newScript(t)
		e := newEngine(t, nil, NewMemStorage(), func(c *Config) { c.Dial = sc.dial; c.ClientID = "me" })
		must(t, e.Add(context.Background(), "tee", nil, 1, &cart.Details{Name: "Tee", Price: 1000, Currency: "EUR"}))
		start(t, e)
		p := sc.accept()
		h := p.expect(protocol.TypeHello)
		p.send(&protocol.Message{Type: protocol.TypeWelcome, ID: h.ID, DeviceToken: "dev-1", CartID: "cart-1"})
		v1 := priced(1, "tee=1")
		p.send(&protocol.Message{Type: protocol.TypeCart, Cart: annotated(v1, map[string]int64{"EUR": 1200}, priceNotice("tee", 1000, 1200)), From: 1})
		p.quiet() // waits for the reply: no push yet
		p.send(&protocol.Message{Type: protocol.TypeCart, ID: h.ID, Cart: annotated(v1, map[string]int64{"EUR": 1000}), Acked: map[string]uint64{"me": 1}})
		p.quiet() // the op is acked: nothing to send
		st := e.Snapshot()
		want := []cart.Notice{priceNotice("tee", 1000, 1200)}
		if st.Confirmed != 1 || st.Pending != 0 || st.Status != Synced || !reflect.DeepEqual(st.Notices, want) {
			t.Errorf("state: confirmed %d, pending %d, %v, notices %s; want synced at 1 with the held push's notice",
				st.Confirmed, st.Pending, st.Status, noticesText(st.Notices))
		}
	})
}

// An ack at the confirmed version (every op refused) brings its notices.
func TestAckAtSameVersionTakesNotices(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		sc := newScript(t)
		e := scriptedEngine(t, sc, nil)
		p := sc.accept()
		v1 := priced(1, "tee=1")
		p.login(v1, 0)
		must(t, e.Add(context.Background(), "tee", nil, 5, nil))
		push := p.expect(protocol.TypePush)
		refused := protocol.Result{Client: "me", Seq: push.Ops[0].Seq, Status: protocol.StatusRejected, Version: 1, Error: &cart.Error{Code: cart.CodeOutOfStock}}
		p.send(&protocol.Message{Type: protocol.TypeAck, ID: push.ID, Results: []protocol.Result{refused},
			Cart: annotated(v1, map[string]int64{"EUR": 1000}, availableNotice("tee", 0))})
		p.quiet()
		st := e.Snapshot()
		if st.Confirmed != 1 || summary(st.Cart) != "tee=1" || len(st.Notices) != 1 || len(st.Rejected) != 1 {
			t.Errorf("state: confirmed %d %q, notices %s, rejected %d", st.Confirmed, summary(st.Cart), noticesText(st.Notices), len(st.Rejected))
		}
	})
}

// Pending edits that resolve a notice hide it at once, and the totals are
// worked out again from the notices; the server's word comes with the ack.
func TestPendingEditsResolveNotices(t *testing.T) {
	base := priced(3, "tee=2", "mug=1", "cap=1")
	base.Lines = append(base.Lines, &cart.Line{Key: "tee?size=l", SKU: "tee", Options: map[string]string{"size": "l"}, Quantity: 2,
		Details: cart.Details{Name: "tee", Price: 1000, Currency: "EUR"}})
	notices := []cart.Notice{
		{Line: "tee", PriceChanged: &cart.PriceChange{From: 1000, To: 1200, Currency: "EUR"}, Available: ptr(3)},
		{Line: "mug", Unavailable: true},
		{Line: "tee?size=l", PriceChanged: &cart.PriceChange{From: 1000, To: 1200, Currency: "EUR"}, Available: ptr(3)},
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
			e := newEngine(t, nil, store, nil)
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
	e := newEngine(t, nil, store, nil)
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
	e := newEngine(t, nil, store, nil)
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
