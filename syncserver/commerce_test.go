package syncserver_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"maps"
	"net/http"
	"net/http/httptest"
	"net/url"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	goredis "github.com/redis/go-redis/v9"

	"github.com/cartsync/cartsync/shared/cart"
	"github.com/cartsync/cartsync/shared/protocol"
	"github.com/cartsync/cartsync/syncserver"
	"github.com/cartsync/cartsync/syncserver/memstore"
	"github.com/cartsync/cartsync/syncserver/postgres"
	"github.com/cartsync/cartsync/syncserver/redis"
	"github.com/cartsync/cartsync/syncserver/sqlite"
	"github.com/cartsync/cartsync/syncserver/storetest"
)

// testAPIKey is the backend API key of the commerce tests.
const testAPIKey = "test-api-key-0123456789abcdef0123456789"

// commerceStores are the stores the storefront-backend tests run on: the
// embedded SQLite default and Postgres behind the Redis cache (both
// required under CI), and memstore.
func commerceStores() map[string]func(t *testing.T) syncserver.Store {
	return map[string]func(t *testing.T) syncserver.Store{
		"memstore": func(t *testing.T) syncserver.Store { return memstore.New() },
		"sqlite": func(t *testing.T) syncserver.Store {
			st, err := sqlite.Open(t.Context(), filepath.Join(t.TempDir(), "carts.db"))
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { st.Close() })
			return st
		},
		"postgres+redis": func(t *testing.T) syncserver.Store {
			// Both services first: without one the test is skipped
			// before anything is opened.
			opt, err := goredis.ParseURL(storetest.RedisURL(t))
			if err != nil {
				t.Fatal(err)
			}
			pg, err := postgres.Open(t.Context(), storetest.SchemaURL(t))
			if err != nil {
				t.Fatal(err)
			}
			opt.ContextTimeoutEnabled = true
			client := goredis.NewClient(opt)
			c := redis.NewCache(pg, client, storetest.KeyPrefix(t), time.Hour, nil)
			t.Cleanup(func() { c.Close(); client.Close() })
			return c
		},
	}
}

// shop is a server with a storefront backend: API key, catalog, events.
type shop struct {
	t     *testing.T
	srv   *syncserver.Server
	hs    *httptest.Server
	clock *clock
}

func newShop(t *testing.T, st syncserver.Store, tweak func(*syncserver.Config)) *shop {
	t.Helper()
	clk := &clock{t: time.Now()}
	cfg := syncserver.Config{Store: st, APIKeys: []string{testAPIKey}, Events: true, Now: clk.now}
	if tweak != nil {
		tweak(&cfg)
	}
	srv, err := syncserver.New(t.Context(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	storetest.StopOnCleanup(t, srv)
	hs := httptest.NewServer(srv)
	t.Cleanup(hs.Close)
	return &shop{t: t, srv: srv, hs: hs, clock: clk}
}

// call makes a request and decodes a JSON answer into out (if not nil).
func (s *shop) call(method, path, token string, body, out any) int {
	s.t.Helper()
	resp, b := httpDo(s.t, method, s.hs.URL+path, token, body)
	if out != nil && len(b) > 0 {
		if err := json.Unmarshal(b, out); err != nil {
			s.t.Fatalf("%s %s: %v in %s", method, path, err, b)
		}
	}
	return resp.StatusCode
}

func (s *shop) device() string {
	s.t.Helper()
	var dev syncserver.DeviceResponse
	if code := s.call("POST", "/v1/devices", "", nil, &dev); code != 201 {
		s.t.Fatalf("new device: %d", code)
	}
	return dev.DeviceToken
}

func (s *shop) upsert(items ...cart.Item) {
	s.t.Helper()
	var errResp syncserver.ErrorResponse
	if code := s.call("PUT", "/v1/backend/catalog/items", testAPIKey, syncserver.CatalogUpsert{Items: items}, &errResp); code != 200 {
		s.t.Fatalf("upsert: %d %+v", code, errResp.Error)
	}
}

func (s *shop) push(token string, ops ...cart.Op) syncserver.OpsResponse {
	s.t.Helper()
	var out syncserver.OpsResponse
	if code := s.call("POST", "/v1/cart/ops", token, syncserver.OpsRequest{Ops: ops}, &out); code != 200 {
		s.t.Fatalf("push: %d %+v", code, out)
	}
	return out
}

func ptr[T any](v T) *T { return &v }

func mug(price int64, stock int) cart.Item {
	return cart.Item{SKU: "MUG", Name: "Mug", Image: "https://shop.example/mug.png", Price: price, Currency: "EUR", Sellable: true, Stock: ptr(stock)}
}

func TestCatalogIsTheAuthority(t *testing.T) {
	for name, open := range commerceStores() {
		t.Run(name, func(t *testing.T) {
			s := newShop(t, open(t), nil)
			s.upsert(mug(1200, 3),
				cart.Item{SKU: "OLD", Name: "Old poster", Price: 500, Currency: "EUR", Sellable: false},
				cart.Item{SKU: "CAP", Name: "Cap", Price: 900, Currency: "EUR", Sellable: true, MaxPerOrder: ptr(2)})
			tok := s.device()
			cl := "c1"
			out := s.push(tok,
				// The browser claims a price of 1 cent and another name.
				cart.Op{Client: cl, Seq: 1, Kind: cart.KindAdd, SKU: "MUG", Quantity: 5, Details: &cart.Details{Name: "Hacked", Price: 1, Currency: "EUR"}},
				cart.Op{Client: cl, Seq: 2, Kind: cart.KindAdd, SKU: "MUG", Quantity: 1},
				cart.Op{Client: cl, Seq: 3, Kind: cart.KindAdd, SKU: "OLD", Quantity: 1},
				cart.Op{Client: cl, Seq: 4, Kind: cart.KindAdd, SKU: "CAP", Quantity: 3},
				cart.Op{Client: cl, Seq: 5, Kind: cart.KindAdd, SKU: "NOT-IN-CATALOG", Quantity: 1, Details: &cart.Details{Name: "Free text", Price: 100, Currency: "EUR"}},
			)
			// Each limit met says which it is, and how many a cart may
			// hold: the cap's is its maximum per order, not its stock.
			want := []struct {
				status    string
				code      cart.Code
				available int
				by        string
			}{
				{protocol.StatusApplied, cart.CodeStockClamped, 3, cart.LimitStock},
				{protocol.StatusRejected, cart.CodeOutOfStock, 3, cart.LimitStock},
				{protocol.StatusRejected, cart.CodeNotSellable, -1, ""},
				{protocol.StatusApplied, cart.CodeStockClamped, 2, cart.LimitPerOrder},
				{protocol.StatusApplied, "", -1, ""},
			}
			for i, w := range want {
				r := out.Results[i]
				got, avail, by := cart.Code(""), -1, ""
				var n *int
				if r.Error != nil {
					got, n, by = r.Error.Code, r.Error.Available, r.Error.LimitBy
				} else if len(r.Warnings) > 0 {
					got, n, by = r.Warnings[0].Code, r.Warnings[0].Available, r.Warnings[0].LimitBy
				}
				if n != nil {
					avail = *n
				}
				if r.Status != w.status || got != w.code || avail != w.available || by != w.by {
					t.Errorf("op %d: %s %s available %d limit_by %q, want %s %s %d %q (%+v)", i+1, r.Status, got, avail, by, w.status, w.code, w.available, w.by, r)
				}
			}
			c := httpCart(t, s.hs, tok)
			m := c.Line("MUG")
			if m == nil || m.Quantity != 3 || m.Details.Name != "Mug" || m.Details.Price != 1200 {
				t.Fatalf("MUG line = %+v, want 3 at the catalog's name and price", m)
			}
			if l := c.Line("CAP"); l == nil || l.Quantity != 2 {
				t.Fatalf("CAP line = %+v, want 2 (max per order)", l)
			}
			if c.Line("NOT-IN-CATALOG") == nil {
				t.Fatal("a SKU the catalog does not know is taken when the server is not catalog-only")
			}
			if len(c.Notices) != 0 || c.Totals["EUR"] != 3*1200+2*900+100 {
				t.Fatalf("fresh cart: notices %+v totals %v", c.Notices, c.Totals)
			}

			// The storefront raises the price and the stock drops.
			s.upsert(mug(1500, 2))
			c = httpCart(t, s.hs, tok)
			if len(c.Notices) != 1 {
				t.Fatalf("notices = %+v, want one for MUG", c.Notices)
			}
			n := c.Notices[0]
			if n.Line != "MUG" || n.PriceChanged == nil || n.PriceChanged.From != 1200 || n.PriceChanged.To != 1500 || n.Available == nil || *n.Available != 2 || n.LimitBy != cart.LimitStock {
				t.Fatalf("notice = %+v", n)
			}
			if m := c.Line("MUG"); m.Quantity != 3 || m.Details.Price != 1200 {
				t.Fatalf("a catalog change changed the shopper's line: %+v", m)
			}
			if c.Totals["EUR"] != 3*1500+2*900+100 {
				t.Fatalf("totals = %v, want the catalog's prices", c.Totals)
			}
			// The shopper's fixes: accept the price, reduce to what is there.
			s.push(tok,
				cart.Op{Client: cl, Seq: 6, Kind: cart.KindDetails, SKU: "MUG", Details: &cart.Details{Name: "whatever"}},
				cart.Op{Client: cl, Seq: 7, Kind: cart.KindSet, SKU: "MUG", Quantity: 2})
			c = httpCart(t, s.hs, tok)
			if len(c.Notices) != 0 || c.Line("MUG").Details.Price != 1500 || c.Line("MUG").Details.Name != "Mug" {
				t.Fatalf("after the fixes: notices %+v, line %+v", c.Notices, c.Line("MUG"))
			}
			// Withdrawn.
			it := mug(1500, 2)
			it.Sellable = false
			s.upsert(it)
			c = httpCart(t, s.hs, tok)
			if len(c.Notices) != 1 || !c.Notices[0].Unavailable || c.Totals["EUR"] != 2*900+100 {
				t.Fatalf("withdrawn: notices %+v totals %v", c.Notices, c.Totals)
			}
		})
	}
}

func TestCatalogOnlyRefusesUnknownSKUs(t *testing.T) {
	s := newShop(t, memstore.New(), func(c *syncserver.Config) { c.CatalogOnly = true })
	s.upsert(mug(1200, 3))
	tok := s.device()
	out := s.push(tok, cart.Op{Client: "c", Seq: 1, Kind: cart.KindAdd, SKU: "NOPE", Quantity: 1},
		cart.Op{Client: "c", Seq: 2, Kind: cart.KindAdd, SKU: "MUG", Quantity: 1})
	if r := out.Results[0]; r.Status != protocol.StatusRejected || r.Error.Code != cart.CodeUnknownSKU {
		t.Fatalf("unknown SKU: %+v", r)
	}
	if r := out.Results[1]; r.Status != protocol.StatusApplied {
		t.Fatalf("known SKU: %+v", r)
	}
}

func TestCatalogBadInputChangesNothing(t *testing.T) {
	s := newShop(t, memstore.New(), nil)
	good := mug(1200, 3)
	many := make([]cart.Item, syncserver.MaxCatalogBatch+1)
	for i := range many {
		many[i] = cart.Item{SKU: fmt.Sprintf("S%d", i), Name: "x", Price: 100, Currency: "EUR", Sellable: true}
	}
	for name, c := range map[string]struct {
		body any
		code protocol.ErrorCode
	}{
		"malformed":        {`{"items": [{"sku": 1}]}`, protocol.ErrMalformed},
		"absurd price":     {syncserver.CatalogUpsert{Items: []cart.Item{good, {SKU: "X", Name: "x", Price: 1 << 60, Currency: "EUR", Sellable: true}}}, protocol.ErrInvalid},
		"negative price":   {syncserver.CatalogUpsert{Items: []cart.Item{good, {SKU: "X", Name: "x", Price: -5, Currency: "EUR", Sellable: true}}}, protocol.ErrInvalid},
		"unknown currency": {syncserver.CatalogUpsert{Items: []cart.Item{good, {SKU: "X", Name: "x", Price: 100, Currency: "XYZ", Sellable: true}}}, protocol.ErrInvalid},
		"negative stock":   {syncserver.CatalogUpsert{Items: []cart.Item{good, {SKU: "X", Name: "x", Price: 100, Currency: "EUR", Sellable: true, Stock: ptr(-1)}}}, protocol.ErrInvalid},
		"control in sku":   {syncserver.CatalogUpsert{Items: []cart.Item{good, {SKU: "A\x00B", Name: "x", Price: 100, Currency: "EUR", Sellable: true}}}, protocol.ErrInvalid},
		"duplicate sku":    {syncserver.CatalogUpsert{Items: []cart.Item{good, good}}, protocol.ErrInvalid},
		"oversized batch":  {syncserver.CatalogUpsert{Items: many}, protocol.ErrTooLarge},
		"empty batch":      {syncserver.CatalogUpsert{}, protocol.ErrInvalid},
		// Left out, it would withdraw the item without a word.
		"no sellable": {`{"items": [{"sku": "MUG-01", "name": "Mug", "price": 1200, "currency": "EUR", "sellable": true},
			{"sku": "NEW7", "name": "N", "price": 5, "currency": "EUR"}]}`, protocol.ErrInvalid},
	} {
		t.Run(name, func(t *testing.T) {
			var e syncserver.ErrorResponse
			code := s.call("PUT", "/v1/backend/catalog/items", testAPIKey, c.body, &e)
			if code < 400 || code >= 500 || e.Error == nil || e.Error.Code != c.code {
				t.Fatalf("answer %d %+v, want a 4xx %s", code, e.Error, c.code)
			}
			if c.code == protocol.ErrInvalid && name != "empty batch" && len(e.Error.Details) == 0 {
				t.Fatalf("no details naming the bad item: %+v", e.Error)
			}
			var page syncserver.CatalogPage
			s.call("GET", "/v1/backend/catalog/items", testAPIKey, nil, &page)
			if len(page.Items) != 0 {
				t.Fatalf("a refused batch stored %d items", len(page.Items))
			}
		})
	}
}

func TestAPIKeysOpenOnlyTheBackend(t *testing.T) {
	s := newShop(t, memstore.New(), func(c *syncserver.Config) { c.Users = testUsers{} })
	dev := s.device()
	co := "co_g_0123456789abcdef0123456789abcdef_0123456789abcdef01234567"
	backend := []struct{ method, path string }{
		{"GET", "/v1/backend/carts/g_0123456789abcdef0123456789abcdef"},
		{"POST", "/v1/backend/carts/g_0123456789abcdef0123456789abcdef/ops"},
		{"GET", "/v1/backend/users/alice/cart"},
		{"POST", "/v1/backend/users/alice/cart/ops"},
		{"PUT", "/v1/backend/catalog/items"},
		{"GET", "/v1/backend/catalog/items"},
		{"POST", "/v1/backend/catalog/items/delete"},
		{"GET", "/v1/backend/checkouts/" + co},
		{"POST", "/v1/backend/checkouts/" + co + "/complete"},
		{"POST", "/v1/backend/checkouts/" + co + "/cancel"},
		{"GET", "/v1/backend/events"},
		{"GET", "/v1/backend/events/dead"},
		{"POST", "/v1/backend/events/evt_x/retry"},
	}
	for _, ep := range backend {
		for who, tok := range map[string]string{"no key": "", "wrong key": "wrong-" + testAPIKey, "device token": dev, "user token": "user:alice"} {
			var e syncserver.ErrorResponse
			if code := s.call(ep.method, ep.path, tok, nil, &e); code != 401 || e.Error == nil || e.Error.Code != protocol.ErrUnauthorized {
				t.Errorf("%s %s with %s: %d %+v, want 401 unauthorized", ep.method, ep.path, who, code, e.Error)
			}
		}
		if code := s.call(ep.method, ep.path, testAPIKey, nil, nil); code == 401 {
			t.Errorf("%s %s with the API key: 401", ep.method, ep.path)
		}
	}
	shopper := []struct{ method, path string }{
		{"GET", "/v1/cart"}, {"POST", "/v1/cart/ops"}, {"GET", "/v1/cart/changes?since=0"},
		{"POST", "/v1/login"}, {"POST", "/v1/login/choose"}, {"POST", "/v1/checkout"},
	}
	for _, ep := range shopper {
		var e syncserver.ErrorResponse
		if code := s.call(ep.method, ep.path, testAPIKey, nil, &e); code != 401 || e.Error == nil || e.Error.Code != protocol.ErrUnauthorized {
			t.Errorf("%s %s with an API key: %d %+v, want 401", ep.method, ep.path, code, e.Error)
		}
	}
	// Nor does a key open the websocket.
	ws := dial(t, s.hs)
	ws.send(&protocol.Message{Type: protocol.TypeHello, Protocol: protocol.Version, Client: "c", DeviceToken: testAPIKey})
	ws.expectError(protocol.ErrUnauthorized)
}

func (s *shop) checkout(token string, version uint64) (int, syncserver.CheckoutResponse) {
	s.t.Helper()
	var out syncserver.CheckoutResponse
	code := s.call("POST", "/v1/checkout", token, syncserver.CheckoutRequest{Version: version}, &out)
	return code, out
}

// A checkout on one instance carries the price another instance set a
// moment before, whose notice has not reached it yet: the checkout reads
// the catalog past the instance's cache (it carried the old price, 5 in
// about 3,500 checkouts made within a millisecond of the change).
func TestCheckoutSeesAnotherInstancesPriceAtOnce(t *testing.T) {
	st := memstore.New()
	a := newShop(t, st, nil)
	b := newShop(t, st, nil) // its own bus: no notice from a arrives
	a.upsert(mug(1200, 50))
	tok := b.device()
	b.push(tok, cart.Op{Client: "c", Seq: 1, Kind: cart.KindAdd, SKU: "MUG", Quantity: 2})
	if c := httpCart(t, b.hs, tok); c.Totals["EUR"] != 2*1200 {
		t.Fatalf("the cart on b before the change: totals %v, want 2400 EUR", c.Totals)
	}
	a.upsert(mug(1500, 50))
	// The shopper reviewed 2,400: told the cart changed, with the new
	// price; checked out at it once they took it (the widget sends the
	// line's new details).
	code, resp := b.checkout(tok, httpCart(t, b.hs, tok).Version)
	if code != 409 || resp.Error == nil || resp.Error.Code != protocol.ErrCartChanged || resp.Cart == nil || resp.Cart.Totals["EUR"] != 2*1500 {
		t.Fatalf("the checkout on b after a's price change: %d %+v, want 409 cart_changed with 3000 EUR", code, resp)
	}
	took := b.push(tok, cart.Op{Client: "c", Seq: 2, Kind: cart.KindDetails, SKU: "MUG", Base: resp.Cart.Version, Details: &cart.Details{Name: "Mug", Price: 1500, Currency: "EUR"}})
	code, resp = b.checkout(tok, took.Cart.Version)
	if code != 201 || resp.Checkout.Totals["EUR"] != 2*1500 {
		t.Fatalf("the checkout after the second review: %d %+v, want 3000 EUR", code, resp)
	}
}

func TestCheckoutHandoff(t *testing.T) {
	for name, open := range commerceStores() {
		t.Run(name, func(t *testing.T) {
			s := newShop(t, open(t), func(c *syncserver.Config) { c.CheckoutTTL = time.Hour })
			s.upsert(mug(1200, 50))
			tok := s.device()
			s.push(tok, cart.Op{Client: "c", Seq: 1, Kind: cart.KindAdd, SKU: "MUG", Quantity: 2},
				cart.Op{Client: "c", Seq: 2, Kind: cart.KindAdd, SKU: "PEN", Quantity: 1, Details: &cart.Details{Name: "Pen", Price: 300, Currency: "EUR"}})
			reviewed := httpCart(t, s.hs, tok)

			// Another device changed the cart after the review.
			s.push(tok, cart.Op{Client: "other", Seq: 1, Kind: cart.KindAdd, SKU: "MUG", Quantity: 1})
			code, resp := s.checkout(tok, reviewed.Version)
			if code != 409 || resp.Error == nil || resp.Error.Code != protocol.ErrCartChanged || resp.Cart == nil || resp.Cart.Line("MUG").Quantity != 3 {
				t.Fatalf("checkout of a changed cart: %d %+v", code, resp)
			}
			reviewed = resp.Cart
			code, resp = s.checkout(tok, reviewed.Version)
			if code != 201 || resp.Checkout == nil {
				t.Fatalf("checkout: %d %+v", code, resp)
			}
			co := resp.Checkout
			if co.Totals["EUR"] != 3*1200+300 || len(co.Lines) != 2 || co.Status != cart.CheckoutOpen {
				t.Fatalf("snapshot = %+v", co)
			}
			var got cart.Checkout
			if code := s.call("GET", "/v1/backend/checkouts/"+co.ID, testAPIKey, nil, &got); code != 200 || got.Totals["EUR"] != co.Totals["EUR"] {
				t.Fatalf("backend read: %d %+v", code, got)
			}

			// During checkout the shopper adds one more mug on a phone.
			s.push(tok, cart.Op{Client: "phone", Seq: 1, Kind: cart.KindAdd, SKU: "MUG", Quantity: 1})
			// The order is placed: 20 completions at once remove once.
			var wg sync.WaitGroup
			var ok atomic.Int32
			for range 20 {
				wg.Add(1)
				go func() {
					defer wg.Done()
					var done cart.Checkout
					if s.call("POST", "/v1/backend/checkouts/"+co.ID+"/complete", testAPIKey, syncserver.CompleteRequest{Order: "A-1"}, &done) == 200 && done.Status == cart.CheckoutCompleted {
						ok.Add(1)
					}
				}()
			}
			wg.Wait()
			if ok.Load() != 20 {
				t.Fatalf("%d of 20 completions answered completed", ok.Load())
			}
			c := httpCart(t, s.hs, tok)
			if len(c.Lines) != 1 || c.Line("MUG") == nil || c.Line("MUG").Quantity != 1 {
				t.Fatalf("after completion the cart holds %+v; want only the mug added during checkout", c.Lines)
			}
			// Completed: cancel is refused; the snapshot stays.
			var e syncserver.ErrorResponse
			if code := s.call("POST", "/v1/backend/checkouts/"+co.ID+"/cancel", testAPIKey, nil, &e); code != 409 || e.Error.Code != protocol.ErrCheckoutEnded {
				t.Fatalf("cancel after completion: %d %+v", code, e.Error)
			}

			// A second checkout expires.
			c = httpCart(t, s.hs, tok)
			code, resp = s.checkout(tok, c.Version)
			if code != 201 {
				t.Fatalf("second checkout: %d %+v", code, resp)
			}
			s.clock.add(2 * time.Hour)
			if code := s.call("POST", "/v1/backend/checkouts/"+resp.Checkout.ID+"/complete", testAPIKey, nil, &e); code != 409 || e.Error.Code != protocol.ErrCheckoutEnded {
				t.Fatalf("complete after expiry: %d %+v", code, e.Error)
			}
			if code := s.call("GET", "/v1/backend/checkouts/"+resp.Checkout.ID, testAPIKey, nil, &got); code != 200 || got.Status != cart.CheckoutExpired {
				t.Fatalf("expired checkout reads %d %+v", code, got.Status)
			}
			if httpCart(t, s.hs, tok).Line("MUG").Quantity != 1 {
				t.Fatal("an expired checkout changed the cart")
			}
			// Cancel.
			c = httpCart(t, s.hs, tok)
			_, resp = s.checkout(tok, c.Version)
			if code := s.call("POST", "/v1/backend/checkouts/"+resp.Checkout.ID+"/cancel", testAPIKey, nil, &got); code != 200 || got.Status != cart.CheckoutCancelled {
				t.Fatalf("cancel: %d %+v", code, got)
			}
			// A catalog change that matters is a conflict too.
			s.upsert(mug(1300, 50))
			if code, resp := s.checkout(tok, c.Version); code != 409 || resp.Error.Code != protocol.ErrCartChanged || len(resp.Cart.Notices) != 1 {
				t.Fatalf("checkout under a price change: %d %+v", code, resp)
			}
		})
	}
}

func (s *shop) feed(after string) syncserver.EventPage {
	s.t.Helper()
	var p syncserver.EventPage
	if code := s.call("GET", "/v1/backend/events?after="+url.QueryEscape(after), testAPIKey, nil, &p); code != 200 {
		s.t.Fatalf("feed: %d", code)
	}
	return p
}

// feedUntil reads the feed after the cursor until done accepts the page,
// for at most 10 s; then it returns the last page read.
func (s *shop) feedUntil(after string, done func(syncserver.EventPage) bool) syncserver.EventPage {
	s.t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		p := s.feed(after)
		if done(p) || time.Now().After(deadline) {
			return p
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func TestEventsAndAbandonedCarts(t *testing.T) {
	for name, open := range commerceStores() {
		t.Run(name, func(t *testing.T) {
			s := newShop(t, open(t), func(c *syncserver.Config) {
				c.AbandonAfter = map[string]time.Duration{syncserver.KindGuest: time.Hour, syncserver.KindUser: -1}
			})
			tok := s.device()
			for i := range 5 {
				s.push(tok, cart.Op{Client: "c", Seq: uint64(i + 1), Kind: cart.KindAdd, SKU: "PEN", Quantity: 1})
			}
			// Postgres's feed shows a transaction's events once no older
			// transaction of the database server runs (other tests share
			// it): wait for the last push's cart.updated.
			p := s.feedUntil("", func(p syncserver.EventPage) bool {
				for _, e := range p.Events {
					var d syncserver.EventData
					if e.Type == syncserver.EventCartUpdated && json.Unmarshal(e.Data, &d) == nil && d.Version == 5 {
						return true
					}
				}
				return false
			})
			var types []string
			for _, e := range p.Events {
				types = append(types, e.Type)
				if e.ID == "" || e.Cursor == "" || len(e.Data) == 0 {
					t.Fatalf("event without id, cursor or data: %+v", e)
				}
			}
			if len(types) == 0 || types[0] != syncserver.EventCartCreated || !strings.Contains(strings.Join(types, ","), syncserver.EventCartUpdated) {
				t.Fatalf("events = %v", types)
			}
			// Not abandoned yet; then an hour without change.
			if n, err := s.srv.Abandon(t.Context(), 10); err != nil || n != 0 {
				t.Fatalf("Abandon early = %d, %v", n, err)
			}
			s.clock.add(2 * time.Hour)
			if n, err := s.srv.Abandon(t.Context(), 10); err != nil || n != 1 {
				t.Fatalf("Abandon = %d, %v; want 1", n, err)
			}
			if n, _ := s.srv.Abandon(t.Context(), 10); n != 0 {
				t.Fatalf("a second scan of the same idle period wrote %d more", n)
			}
			p = s.feedUntil(p.Next, func(p syncserver.EventPage) bool { return len(p.Events) > 0 })
			if len(p.Events) != 1 || p.Events[0].Type != syncserver.EventCartAbandoned {
				t.Fatalf("after the scan: %+v", p.Events)
			}
			var d syncserver.EventData
			if json.Unmarshal(p.Events[0].Data, &d) != nil || d.Items != 5 || d.Kind != syncserver.KindGuest {
				t.Fatalf("abandoned data = %s", p.Events[0].Data)
			}
			// A change starts a new idle period.
			s.push(tok, cart.Op{Client: "c", Seq: 6, Kind: cart.KindAdd, SKU: "PEN", Quantity: 1})
			s.clock.add(2 * time.Hour)
			if n, _ := s.srv.Abandon(t.Context(), 10); n != 1 {
				t.Fatalf("new idle period: %d abandoned events, want 1", n)
			}
			// Bad cursor: typed.
			var e syncserver.ErrorResponse
			if code := s.call("GET", "/v1/backend/events?after=garbage", testAPIKey, nil, &e); code != 400 || e.Error.Code != protocol.ErrInvalid {
				t.Fatalf("bad cursor: %d %+v", code, e.Error)
			}
		})
	}
}

var _ = http.StatusOK

func TestCatalogTakesAFullBatch(t *testing.T) {
	s := newShop(t, memstore.New(), nil)
	items := make([]cart.Item, syncserver.MaxCatalogBatch)
	for i := range items {
		items[i] = cart.Item{SKU: fmt.Sprintf("SKU-%05d", i), Name: fmt.Sprintf("A product with a realistic name, number %d", i),
			Image: fmt.Sprintf("https://cdn.shop.example/images/products/%05d/large.jpg", i), Price: int64(100 + i), Currency: "EUR", Sellable: true}
	}
	s.upsert(items...)
	var page syncserver.CatalogPage
	s.call("GET", "/v1/backend/catalog/items?limit=1000&after=SKU-04499", testAPIKey, nil, &page)
	if len(page.Items) != 500 || page.Items[0].SKU != "SKU-04500" || page.Next != "" {
		t.Fatalf("last page: %d items from %+v, next %q", len(page.Items), page.Items[0], page.Next)
	}
}

func TestDeliveredEventsArePruned(t *testing.T) {
	st := memstore.New()
	s := newShop(t, st, func(c *syncserver.Config) { c.EventRetention = 24 * time.Hour; c.Webhooks = true })
	tok := s.device()
	s.push(tok, cart.Op{Client: "c", Seq: 1, Kind: cart.KindAdd, SKU: "PEN", Quantity: 1})
	before := s.feed("").Events
	if len(before) != 2 {
		t.Fatalf("events = %d, want cart.created and cart.updated", len(before))
	}
	// The first is delivered, the second still pending.
	claimed, err := st.ClaimEvents(t.Context(), s.clock.now(), time.Minute, 1)
	if err != nil || len(claimed) != 1 {
		t.Fatalf("claim: %v, %d", err, len(claimed))
	}
	if err := st.EventDelivered(t.Context(), claimed[0].Seq, s.clock.now()); err != nil {
		t.Fatal(err)
	}
	if n, err := s.srv.PruneEvents(t.Context(), 10); err != nil || n != 0 {
		t.Fatalf("prune within the retention: %d, %v", n, err)
	}
	s.clock.add(25 * time.Hour)
	if n, err := s.srv.PruneEvents(t.Context(), 10); err != nil || n != 1 {
		t.Fatalf("prune past the retention: %d, %v; want the delivered one", n, err)
	}
	after := s.feed("").Events
	if len(after) != 1 || after[0].ID != before[1].ID {
		t.Fatalf("feed after the prune: %+v; want only the pending event", after)
	}
}

func TestFeedOnlyEventsArePruned(t *testing.T) {
	st := memstore.New()
	s := newShop(t, st, func(c *syncserver.Config) { c.EventRetention = 24 * time.Hour })
	tok := s.device()
	s.push(tok, cart.Op{Client: "c", Seq: 1, Kind: cart.KindAdd, SKU: "PEN", Quantity: 1})
	if evs := s.feed("").Events; len(evs) != 2 {
		t.Fatalf("feed = %d events, want 2", len(evs))
	}
	// Without webhooks nothing waits for a delivery.
	if claimed, err := st.ClaimEvents(t.Context(), s.clock.now().Add(time.Hour), time.Minute, 10); err != nil || len(claimed) != 0 {
		t.Fatalf("claimable without webhooks: %d, %v", len(claimed), err)
	}
	s.clock.add(25 * time.Hour)
	if n, err := s.srv.PruneEvents(t.Context(), 10); err != nil || n != 2 {
		t.Fatalf("prune = %d, %v; want both events past the retention", n, err)
	}
}

// Events left pending by a server with webhooks (or by an older version,
// which wrote some pending without them) are pruned after the retention
// once the server runs without webhooks: nobody will deliver them, and
// they stayed pending for ever.
func TestPendingEventsPrunedWithoutWebhooks(t *testing.T) {
	st := memstore.New()
	with := newShop(t, st, func(c *syncserver.Config) { c.EventRetention = 24 * time.Hour; c.Webhooks = true })
	with.push(with.device(), cart.Op{Client: "c", Seq: 1, Kind: cart.KindAdd, SKU: "PEN", Quantity: 1})
	if evs := with.feed("").Events; len(evs) != 2 || evs[0].State != syncserver.EventPending {
		t.Fatalf("feed with webhooks = %+v, want 2 pending events", evs)
	}
	without := newShop(t, st, func(c *syncserver.Config) { c.EventRetention = 24 * time.Hour })
	if n, err := without.srv.PruneEvents(t.Context(), 10); err != nil || n != 0 {
		t.Fatalf("prune within the retention = %d, %v; want none", n, err)
	}
	without.clock.add(25 * time.Hour)
	if n, err := without.srv.PruneEvents(t.Context(), 10); err != nil || n != 2 {
		t.Fatalf("prune past the retention without webhooks = %d, %v; want both pending events", n, err)
	}
}

// With events off (no API keys), the events a purge writes, and those an
// older version wrote pending, are pruned after the retention all the
// same: nothing pruned them, and the table grew for ever.
func TestEventsPrunedWithEventsOff(t *testing.T) {
	st := memstore.New()
	with := newShop(t, st, func(c *syncserver.Config) { c.Webhooks = true })
	with.push(with.device(), cart.Op{Client: "c", Seq: 1, Kind: cart.KindAdd, SKU: "PEN", Quantity: 1}) // two pending events
	clk := &clock{t: time.Now()}
	off, err := syncserver.New(t.Context(), syncserver.Config{Store: st, GuestRetention: 2 * time.Hour, EventRetention: 24 * time.Hour, Now: clk.now})
	if err != nil {
		t.Fatal(err)
	}
	storetest.StopOnCleanup(t, off)
	clk.add(3 * time.Hour)
	if n, err := off.Purge(t.Context(), 10); err != nil || n != 1 {
		t.Fatalf("Purge = %d, %v; want the cart expired", n, err)
	}
	clk.add(25 * time.Hour)
	if n, err := off.PruneEvents(t.Context(), 10); err != nil || n != 3 {
		t.Fatalf("PruneEvents with events off = %d, %v; want the two pending events and the purge's cart.expired", n, err)
	}
}

// login merges the device's guest cart into user's cart over HTTP.
func (s *shop) login(token, user string) {
	s.t.Helper()
	s.loginWith(token, user, cart.PolicyMerge)
}

// loginWith logs in over HTTP under policy.
func (s *shop) loginWith(token, user string, policy cart.Policy) {
	s.t.Helper()
	req, _ := http.NewRequest("POST", s.hs.URL+"/v1/login", strings.NewReader(`{"policy":"`+string(policy)+`"}`))
	req.Header.Set("Authorization", "Bearer "+token)
	req.Header.Set("X-Cartsync-User", "user:"+user)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		s.t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 200 {
		s.t.Fatalf("login: %d", resp.StatusCode)
	}
}

func TestCheckoutEdgeCases(t *testing.T) {
	// A guest's checkout of 2 mugs, then alice's login, which takes it.
	checkoutThenLogin := func(t *testing.T) (*shop, syncserver.CheckoutResponse) {
		s := newShop(t, memstore.New(), func(c *syncserver.Config) { c.Users = testUsers{} })
		s.upsert(mug(1200, 50))
		tok := s.device()
		s.push(tok, cart.Op{Client: "c", Seq: 1, Kind: cart.KindAdd, SKU: "MUG", Quantity: 2})
		_, resp := s.checkout(tok, httpCart(t, s.hs, tok).Version)
		s.login(tok, "alice")
		return s, resp
	}
	t.Run("a guest's checkout completed after the login", func(t *testing.T) {
		s, resp := checkoutThenLogin(t)
		var done cart.Checkout
		if code := s.call("POST", "/v1/backend/checkouts/"+resp.Checkout.ID+"/complete", testAPIKey, nil, &done); code != 200 || done.Status != cart.CheckoutCompleted {
			t.Fatalf("complete after login: %d %+v", code, done)
		}
		var bc syncserver.BackendCart
		s.call("GET", "/v1/backend/users/alice/cart", testAPIKey, nil, &bc)
		if len(bc.Cart.Lines) != 0 {
			t.Fatalf("the user cart still holds %+v after the order", bc.Cart.Lines)
		}
		var got cart.Checkout
		if code := s.call("GET", "/v1/backend/checkouts/"+resp.Checkout.ID, testAPIKey, nil, &got); code != 200 || got.Status != cart.CheckoutCompleted {
			t.Fatalf("read after login: %d %+v", code, got)
		}
	})
	t.Run("a guest cart merged at a login has nothing to check out, and shows no lines", func(t *testing.T) {
		s := newShop(t, memstore.New(), func(c *syncserver.Config) { c.Users = testUsers{} })
		s.upsert(mug(1200, 50))
		tok := s.device()
		s.push(tok, cart.Op{Client: "c", Seq: 1, Kind: cart.KindAdd, SKU: "MUG", Quantity: 2})
		v := httpCart(t, s.hs, tok).Version
		s.login(tok, "alice")
		code, resp := s.checkout(tok, v)
		if code != 409 || resp.Error == nil || resp.Error.Code != protocol.ErrCartEmpty || resp.Cart == nil || len(resp.Cart.Lines) != 0 {
			t.Fatalf("checkout of the merged guest cart: %d %+v cart %+v; want 409 cart_empty with no lines (they are alice's now)", code, resp.Error, resp.Cart)
		}
	})
	t.Run("a checkout taken by the user cart at login shows none of the server's bookkeeping", func(t *testing.T) {
		s, resp := checkoutThenLogin(t)
		for _, req := range []struct{ method, path string }{
			{"GET", "/v1/backend/checkouts/" + resp.Checkout.ID},
			{"GET", "/v1/backend/users/alice/cart"},
			{"POST", "/v1/backend/checkouts/" + resp.Checkout.ID + "/complete"},
			{"GET", "/v1/backend/events"},
		} {
			r, body := httpDo(t, req.method, s.hs.URL+req.path, testAPIKey, nil)
			if r.StatusCode != 200 || !strings.Contains(string(body), resp.Checkout.ID) || strings.Contains(string(body), `"base"`) {
				t.Errorf("%s %s: %d %s; want the checkout without base", req.method, req.path, r.StatusCode, body)
			}
		}
	})
	t.Run("the storefront reads whether the cart moved since the checkout", func(t *testing.T) {
		s := newShop(t, memstore.New(), func(c *syncserver.Config) { c.Users = testUsers{} })
		s.upsert(mug(1200, 50))
		read := func(id string) syncserver.CheckoutView {
			t.Helper()
			var v syncserver.CheckoutView
			if code := s.call("GET", "/v1/backend/checkouts/"+id, testAPIKey, nil, &v); code != 200 {
				t.Fatalf("read %s: %d", id, code)
			}
			return v
		}
		moved := func(v syncserver.CheckoutView) string {
			if v.CartMoved == nil {
				return "absent"
			}
			return fmt.Sprint(*v.CartMoved)
		}
		// A guest's checkout, then a login that takes it into the user
		// cart: the cart it lives in now, not moved by the login itself.
		tok := s.device()
		s.push(tok, cart.Op{Client: "c", Seq: 1, Kind: cart.KindAdd, SKU: "MUG", Quantity: 2})
		_, resp := s.checkout(tok, httpCart(t, s.hs, tok).Version)
		if v := read(resp.Checkout.ID); v.CurrentCartID != "" || moved(v) != "false" {
			t.Fatalf("fresh checkout: current_cart_id %q, cart_moved %s; want none, false", v.CurrentCartID, moved(v))
		}
		s.login(tok, "alice")
		var bc syncserver.BackendCart
		s.call("GET", "/v1/backend/users/alice/cart", testAPIKey, nil, &bc)
		v := read(resp.Checkout.ID)
		if v.User != "alice" {
			t.Errorf("after the login the checkout's user is %q, want alice, who logged in to finish it", v.User)
		}
		if v.CartID != resp.Checkout.CartID || v.Version != resp.Checkout.Version || v.CurrentCartID != bc.Cart.ID || moved(v) != "false" {
			t.Fatalf("after the login: cart_id %s version %d current_cart_id %q cart_moved %s; want the guest's, %d, %s, false",
				v.CartID, v.Version, v.CurrentCartID, moved(v), resp.Checkout.Version, bc.Cart.ID)
		}
		// The shopper, signed in, takes the mugs out: the cart moved,
		// although the guest cart's version is the checkout's.
		var out syncserver.OpsResponse
		s.call("POST", "/v1/backend/users/alice/cart/ops", testAPIKey, syncserver.OpsRequest{Ops: []cart.Op{
			{Client: "shop", Seq: 1, Kind: cart.KindRemove, SKU: "MUG", Base: bc.Cart.Version}}}, &out)
		if v := read(resp.Checkout.ID); moved(v) != "true" {
			t.Fatalf("after the mugs were removed: cart_moved %s, want true", moved(v))
		}
		// An ended checkout says nothing of it.
		s.call("POST", "/v1/backend/checkouts/"+resp.Checkout.ID+"/cancel", testAPIKey, nil, nil)
		if v := read(resp.Checkout.ID); moved(v) != "absent" {
			t.Fatalf("cancelled: cart_moved %s, want absent", moved(v))
		}
		// On a cart of its own, any edit after the review moves it.
		other := s.device()
		s.push(other, cart.Op{Client: "o", Seq: 1, Kind: cart.KindAdd, SKU: "MUG", Quantity: 1})
		_, resp = s.checkout(other, httpCart(t, s.hs, other).Version)
		s.push(other, cart.Op{Client: "o", Seq: 2, Kind: cart.KindAdd, SKU: "PEN", Quantity: 1})
		if v := read(resp.Checkout.ID); v.CurrentCartID != "" || moved(v) != "true" {
			t.Fatalf("after an add: current_cart_id %q, cart_moved %s; want none, true", v.CurrentCartID, moved(v))
		}
	})
	t.Run("a guest's checkout's events are delivered in order after the login", func(t *testing.T) {
		st := memstore.New()
		s := newShop(t, st, func(c *syncserver.Config) { c.Users = testUsers{}; c.Webhooks = true })
		s.upsert(mug(1200, 50))
		tok := s.device()
		s.push(tok, cart.Op{Client: "c", Seq: 1, Kind: cart.KindAdd, SKU: "MUG", Quantity: 2})
		_, resp := s.checkout(tok, httpCart(t, s.hs, tok).Version)
		s.login(tok, "alice")
		if code := s.call("POST", "/v1/backend/checkouts/"+resp.Checkout.ID+"/complete", testAPIKey, nil, nil); code != 200 {
			t.Fatalf("complete: %d", code)
		}
		// Deliver everything, as the deliverer does: each claim takes
		// the first pending event of each cart.
		var order []string
		for range 20 {
			s.clock.add(2 * time.Second) // past any coalescing window
			claimed, err := st.ClaimEvents(t.Context(), s.clock.now(), time.Minute, 100)
			if err != nil {
				t.Fatal(err)
			}
			if len(claimed) == 0 {
				break
			}
			for _, ev := range claimed {
				if strings.HasPrefix(ev.Type, "checkout.") {
					order = append(order, ev.Type+" "+ev.CartID)
				}
				if err := st.EventDelivered(t.Context(), ev.Seq, s.clock.now()); err != nil {
					t.Fatal(err)
				}
			}
		}
		guest := resp.Checkout.CartID
		if want := []string{"checkout.created " + guest, "checkout.completed " + guest}; !slices.Equal(order, want) {
			t.Errorf("checkout events delivered %q, want %q", order, want)
		}
	})
	t.Run("a guest's checkout completed after a login that kept the user's cart", func(t *testing.T) {
		s := newShop(t, memstore.New(), func(c *syncserver.Config) { c.Users = testUsers{} })
		s.upsert(mug(1200, 50))
		saved := s.device()
		s.push(saved, cart.Op{Client: "s", Seq: 1, Kind: cart.KindAdd, SKU: "MUG", Quantity: 2})
		s.login(saved, "frank")
		tok := s.device()
		s.push(tok, cart.Op{Client: "c", Seq: 1, Kind: cart.KindAdd, SKU: "MUG", Quantity: 1})
		_, resp := s.checkout(tok, httpCart(t, s.hs, tok).Version)
		s.loginWith(tok, "frank", cart.PolicyKeep)
		var done cart.Checkout
		if code := s.call("POST", "/v1/backend/checkouts/"+resp.Checkout.ID+"/complete", testAPIKey, nil, &done); code != 200 || done.Status != cart.CheckoutCompleted {
			t.Fatalf("complete after a keep login: %d %+v", code, done)
		}
		// The user cart took nothing of the guest's: the order takes
		// nothing from it.
		var bc syncserver.BackendCart
		s.call("GET", "/v1/backend/users/frank/cart", testAPIKey, nil, &bc)
		if l := bc.Cart.Line("MUG"); l == nil || l.Quantity != 2 {
			t.Fatalf("frank's saved mugs after the guest's order: %+v, want 2", l)
		}
		var got cart.Checkout
		if code := s.call("GET", "/v1/backend/checkouts/"+resp.Checkout.ID, testAPIKey, nil, &got); code != 200 || got.Status != cart.CheckoutCompleted {
			t.Fatalf("read after a keep login: %d %+v", code, got)
		}
	})
	t.Run("a checkout keeps its cart from the retention purge", func(t *testing.T) {
		s := newShop(t, memstore.New(), nil)
		tok := s.device()
		s.push(tok, cart.Op{Client: "c", Seq: 1, Kind: cart.KindAdd, SKU: "PEN", Quantity: 1})
		s.clock.add(30*24*time.Hour - time.Minute) // the cart's last edit is near the end of its 30 days
		_, resp := s.checkout(tok, httpCart(t, s.hs, tok).Version)
		s.clock.add(10 * time.Minute) // the shopper is paying
		if n, err := s.srv.Purge(t.Context(), 10); err != nil || n != 0 {
			t.Fatalf("Purge = %d, %v; want the cart in checkout kept", n, err)
		}
		var done cart.Checkout
		if code := s.call("POST", "/v1/backend/checkouts/"+resp.Checkout.ID+"/complete", testAPIKey, nil, &done); code != 200 || done.Status != cart.CheckoutCompleted {
			t.Fatalf("complete after the cart's 30 days: %d %+v", code, done)
		}
	})
	t.Run("removed and added again during checkout", func(t *testing.T) {
		s := newShop(t, memstore.New(), nil)
		s.upsert(mug(1200, 50))
		tok := s.device()
		s.push(tok, cart.Op{Client: "c", Seq: 1, Kind: cart.KindAdd, SKU: "MUG", Quantity: 2})
		c := httpCart(t, s.hs, tok)
		_, resp := s.checkout(tok, c.Version)
		s.push(tok, cart.Op{Client: "c", Seq: 2, Kind: cart.KindRemove, SKU: "MUG", Base: c.Version},
			cart.Op{Client: "c", Seq: 3, Kind: cart.KindAdd, SKU: "MUG", Quantity: 1})
		s.call("POST", "/v1/backend/checkouts/"+resp.Checkout.ID+"/complete", testAPIKey, nil, nil)
		if l := httpCart(t, s.hs, tok).Line("MUG"); l == nil || l.Quantity != 1 {
			t.Fatalf("the mug added during checkout: %+v, want 1 left", l)
		}
	})
	t.Run("open checkouts are kept", func(t *testing.T) {
		s := newShop(t, memstore.New(), nil)
		tok := s.device()
		s.push(tok, cart.Op{Client: "c", Seq: 1, Kind: cart.KindAdd, SKU: "PEN", Quantity: 1})
		v := httpCart(t, s.hs, tok).Version
		_, first := s.checkout(tok, v)
		if _, again := s.checkout(tok, v); again.Checkout.ID != first.Checkout.ID {
			t.Fatalf("the same review checked out twice: %s and %s", first.Checkout.ID, again.Checkout.ID)
		}
		for i := range cart.MaxCheckouts - 1 {
			s.push(tok, cart.Op{Client: "c", Seq: uint64(i + 2), Kind: cart.KindAdd, SKU: "PEN", Quantity: 1})
			if code, r := s.checkout(tok, httpCart(t, s.hs, tok).Version); code != 201 {
				t.Fatalf("checkout %d: %d %+v", i+2, code, r)
			}
		}
		s.push(tok, cart.Op{Client: "c", Seq: cart.MaxCheckouts + 1, Kind: cart.KindAdd, SKU: "PEN", Quantity: 1})
		if code, r := s.checkout(tok, httpCart(t, s.hs, tok).Version); code != 409 || r.Error.Code != protocol.ErrTooManyCheckouts {
			t.Fatalf("checkout past %d open: %d %+v", cart.MaxCheckouts, code, r)
		}
		var done cart.Checkout
		if code := s.call("POST", "/v1/backend/checkouts/"+first.Checkout.ID+"/complete", testAPIKey, nil, &done); code != 200 || done.Status != cart.CheckoutCompleted {
			t.Fatalf("the first checkout, after %d more: %d %+v", cart.MaxCheckouts, code, done)
		}
	})
	t.Run("a first batch all rejected, then cart.created", func(t *testing.T) {
		s := newShop(t, memstore.New(), nil)
		s.upsert(cart.Item{SKU: "OLD", Name: "Old", Price: 100, Currency: "EUR", Sellable: false})
		tok := s.device()
		s.push(tok, cart.Op{Client: "c", Seq: 1, Kind: cart.KindAdd, SKU: "OLD", Quantity: 1})
		s.push(tok, cart.Op{Client: "c", Seq: 2, Kind: cart.KindAdd, SKU: "PEN", Quantity: 1})
		evs := s.feed("").Events
		if len(evs) == 0 || evs[0].Type != syncserver.EventCartCreated {
			t.Fatalf("events = %+v, want cart.created first", evs)
		}
	})
	t.Run("catalog-only: a deleted SKU is no longer available", func(t *testing.T) {
		s := newShop(t, memstore.New(), func(c *syncserver.Config) { c.CatalogOnly = true })
		s.upsert(mug(1200, 50))
		tok := s.device()
		s.push(tok, cart.Op{Client: "c", Seq: 1, Kind: cart.KindAdd, SKU: "MUG", Quantity: 1})
		// A bad SKU in the batch (empty; another Unicode form, which
		// would match nothing) deletes nothing and says which.
		var e syncserver.ErrorResponse
		bad := syncserver.CatalogDelete{SKUs: []string{"MUG", "", "CAFÉ"}}
		if code := s.call("POST", "/v1/backend/catalog/items/delete", testAPIKey, bad, &e); code != 400 || e.Error == nil ||
			e.Error.Code != protocol.ErrInvalid || len(e.Error.Details) != 2 || e.Error.Details[0].Index != 1 || e.Error.Details[1].Index != 2 {
			t.Fatalf("delete with bad SKUs: %d %+v, want 400 invalid naming items 1 and 2", code, e.Error)
		}
		if c := httpCart(t, s.hs, tok); len(c.Notices) != 0 {
			t.Fatalf("a refused delete changed the cart: notices %+v", c.Notices)
		}
		if code := s.call("POST", "/v1/backend/catalog/items/delete", testAPIKey, syncserver.CatalogDelete{SKUs: []string{"MUG"}}, nil); code != 200 {
			t.Fatalf("delete: %d", code)
		}
		c := httpCart(t, s.hs, tok)
		if len(c.Notices) != 1 || !c.Notices[0].Unavailable || c.Totals["EUR"] != 0 {
			t.Fatalf("after the delete: notices %+v totals %v", c.Notices, c.Totals)
		}
		if code, r := s.checkout(tok, c.Version); code != 409 || r.Error.Code != protocol.ErrCartChanged {
			t.Fatalf("checkout of a deleted SKU: %d %+v", code, r)
		}
	})
}

// Two option keys that are one after normalizing ("Size", "size", " SIZE ")
// are refused as invalid_options and change nothing, with a catalog entry
// for the SKU and without: the server must not pick one of them at random.
func TestOptionKeysThatNormalizeToOneAreRefused(t *testing.T) {
	s := newShop(t, memstore.New(), nil)
	s.upsert(mug(1200, 3))
	tok := s.device()
	for i, sku := range []string{"MUG", "TEE"} {
		out := s.push(tok, cart.Op{Client: "c", Seq: uint64(i + 1), Kind: cart.KindAdd, SKU: sku, Quantity: 1,
			Options: map[string]string{"Size": "M", "size": "L", " SIZE ": "XL"},
			Details: &cart.Details{Name: sku, Price: 500, Currency: "EUR"}})
		if r := out.Results[0]; r.Status != protocol.StatusRejected || r.Error == nil || r.Error.Code != cart.CodeInvalidOptions {
			t.Errorf("%s with the option size three times: %+v, want rejected invalid_options", sku, r)
		}
	}
	if c := httpCart(t, s.hs, tok); len(c.Lines) != 0 {
		t.Errorf("the refused adds changed the cart: %+v", c.Lines)
	}
}

// The storefront's remove, set to 0 and clear without a base act on the
// cart as it is when they are applied: every shopper's contribution goes
// (a base of 0 would have seen none, and removed nothing while answering
// applied). A read naming the storefront's client ids says where its seqs
// go on from.
func TestStorefrontOpsWithoutBase(t *testing.T) {
	s := newShop(t, memstore.New(), nil)
	tok := s.device()
	s.push(tok,
		cart.Op{Client: "c", Seq: 1, Kind: cart.KindAdd, SKU: "CAP", Quantity: 2},
		cart.Op{Client: "c", Seq: 2, Kind: cart.KindAdd, SKU: "MUG", Quantity: 1},
		cart.Op{Client: "c", Seq: 3, Kind: cart.KindAdd, SKU: "TEE", Quantity: 1})
	id := httpCart(t, s.hs, tok).ID
	for i, tc := range []struct {
		op   cart.Op
		want string
	}{
		{cart.Op{Kind: cart.KindRemove, SKU: "CAP"}, "MUG=1 TEE=1"},
		{cart.Op{Kind: cart.KindSet, SKU: "MUG", Quantity: 0}, "TEE=1"},
		{cart.Op{Kind: cart.KindClear}, ""},
	} {
		tc.op.Client, tc.op.Seq = "storefront-cleanup", uint64(i+1)
		var out syncserver.OpsResponse
		if code := s.call("POST", "/v1/backend/carts/"+id+"/ops", testAPIKey, syncserver.OpsRequest{Ops: []cart.Op{tc.op}}, &out); code != 200 ||
			len(out.Results) != 1 || out.Results[0].Status != protocol.StatusApplied {
			t.Fatalf("%s: %d %+v", tc.op.Kind, code, out)
		}
		if got := lineSummary(out.Cart); got != tc.want {
			t.Errorf("after the storefront's %s without a base: %q, want %q", tc.op.Kind, got, tc.want)
		}
	}
	var bc syncserver.BackendCart
	if code := s.call("GET", "/v1/backend/carts/"+id+"?clients=storefront-cleanup,storefront-gifts", testAPIKey, nil, &bc); code != 200 ||
		!maps.Equal(bc.Acked, map[string]uint64{"storefront-cleanup": 3, "storefront-gifts": 0}) {
		t.Errorf("read with clients: %d, acked %v; want storefront-cleanup at 3 and storefront-gifts at 0", code, bc.Acked)
	}
	var e syncserver.ErrorResponse
	if code := s.call("GET", "/v1/backend/carts/"+id+"?clients=,", testAPIKey, nil, &e); code != 400 || e.Error == nil || e.Error.Code != protocol.ErrInvalid {
		t.Errorf("read with an empty client id: %d %+v, want 400 invalid", code, e.Error)
	}
	// Empty, as a join of no ids makes it: as if absent.
	bc = syncserver.BackendCart{}
	if code := s.call("GET", "/v1/backend/carts/"+id+"?clients=", testAPIKey, nil, &bc); code != 200 || bc.Acked != nil {
		t.Errorf("read with clients empty: %d, acked %v; want 200 and no acked", code, bc.Acked)
	}
	// The parameter repeated names every client, not only the first.
	bc = syncserver.BackendCart{}
	if code := s.call("GET", "/v1/backend/carts/"+id+"?clients=storefront-cleanup&clients=storefront-gifts", testAPIKey, nil, &bc); code != 200 ||
		!maps.Equal(bc.Acked, map[string]uint64{"storefront-cleanup": 3, "storefront-gifts": 0}) {
		t.Errorf("read with clients repeated: %d, acked %v; want storefront-cleanup at 3 and storefront-gifts at 0", code, bc.Acked)
	}
	// Too many: told as the parameter's fault, not a sync's.
	many := strings.Repeat("c,", protocol.MaxClientsPerSync) + "c"
	e = syncserver.ErrorResponse{}
	if code := s.call("GET", "/v1/backend/carts/"+id+"?clients="+many, testAPIKey, nil, &e); code != 400 || e.Error == nil || e.Error.Code != protocol.ErrInvalid || !strings.HasPrefix(e.Error.Message, "clients names 65 client ids") {
		t.Errorf("read with 65 client ids: %d %+v, want 400 invalid about clients", code, e.Error)
	}
}

// A retention no longer than a checkout's life would let the purge expire
// a cart (and its checkout) while the shopper pays: the server refuses it,
// saying why, and changes nothing.
func TestRetentionMustOutliveACheckout(t *testing.T) {
	for _, cfg := range []syncserver.Config{
		{GuestRetention: 4 * time.Second},
		{GuestRetention: 2 * time.Hour, CheckoutTTL: 2 * time.Hour},
		{UserRetention: 30 * time.Minute},
	} {
		cfg.Store = memstore.New()
		srv, err := syncserver.New(t.Context(), cfg)
		if err == nil {
			storetest.StopOnCleanup(t, srv)
			t.Errorf("New(retention guest %s user %s, checkout %s) started", cfg.GuestRetention, cfg.UserRetention, cfg.CheckoutTTL)
		} else if !strings.Contains(err.Error(), "while its shopper is paying") {
			t.Errorf("New: %v, want why", err)
		}
	}
	srv, err := syncserver.New(t.Context(), syncserver.Config{Store: memstore.New(), GuestRetention: 2 * time.Hour, UserRetention: 3 * time.Hour})
	if err != nil {
		t.Fatalf("New with retentions longer than the checkout's hour: %v", err)
	}
	storetest.StopOnCleanup(t, srv)
}

// A cart edited after its checkout was made is still in checkout while
// that checkout is open (the storefront may still complete it): no
// cart.abandoned until the checkout has ended.
func TestNotAbandonedWhileAnOlderCheckoutIsOpen(t *testing.T) {
	s := newShop(t, memstore.New(), func(c *syncserver.Config) {
		c.AbandonAfter = map[string]time.Duration{syncserver.KindGuest: 5 * time.Minute, syncserver.KindUser: -1}
		c.CheckoutTTL = time.Hour
	})
	s.upsert(mug(1200, 50))
	tok := s.device()
	s.push(tok, cart.Op{Client: "c", Seq: 1, Kind: cart.KindAdd, SKU: "MUG", Quantity: 1})
	if code, resp := s.checkout(tok, httpCart(t, s.hs, tok).Version); code != 201 || resp.Checkout == nil {
		t.Fatalf("checkout: %d %+v", code, resp)
	}
	s.push(tok, cart.Op{Client: "c", Seq: 2, Kind: cart.KindAdd, SKU: "PEN", Quantity: 1})
	s.clock.add(10 * time.Minute)
	if n, err := s.srv.Abandon(t.Context(), 10); err != nil || n != 0 {
		t.Fatalf("Abandon with a checkout open = %d, %v; want none", n, err)
	}
	s.clock.add(time.Hour) // the checkout expired
	if n, err := s.srv.Abandon(t.Context(), 10); err != nil || n != 1 {
		t.Fatalf("Abandon after the checkout expired = %d, %v; want 1", n, err)
	}
}

// Without webhooks every event is written delivered, for the retention to
// prune it: the purge's cart.expired events too (they stayed pending, and
// were never pruned).
func TestExpiredEventsSettledWithoutWebhooks(t *testing.T) {
	s := newShop(t, memstore.New(), nil)
	tok := s.device()
	s.push(tok, cart.Op{Client: "c", Seq: 1, Kind: cart.KindAdd, SKU: "MUG", Quantity: 1})
	s.clock.add(31 * 24 * time.Hour)
	if n, err := s.srv.Purge(t.Context(), 10); err != nil || n != 1 {
		t.Fatalf("Purge = %d, %v; want the cart expired", n, err)
	}
	var p syncserver.EventPage
	if code := s.call("GET", "/v1/backend/events", testAPIKey, nil, &p); code != 200 {
		t.Fatalf("feed: %d", code)
	}
	found := false
	for _, e := range p.Events {
		if e.State != syncserver.EventDelivered {
			t.Errorf("event %s %s is %s, want delivered (no webhooks)", e.Type, e.ID, e.State)
		}
		found = found || e.Type == syncserver.EventCartExpired
	}
	if !found {
		t.Errorf("no cart.expired in the feed: %+v", p.Events)
	}
}

// Over HTTP, a user whose cart expired is told once (410 cart_expired);
// the next request finds a new, empty cart under the same id. The
// storefront's own reads do not start it over.
func TestExpiredUserCartStartsOverHTTP(t *testing.T) {
	s := newRetentionShop(t, memstore.New())
	tok := s.device()
	before := expireAlicesCart(s, tok)
	get := func() (int, syncserver.CartResponse, syncserver.ErrorResponse) {
		return getAsUser(t, s.hs.URL, tok, "alice")
	}
	// The storefront's reads (after the cart.expired event, say) do not
	// start it over: the user is the one to be told.
	for range 2 {
		var e syncserver.ErrorResponse
		if code := s.call("GET", "/v1/backend/users/alice/cart", testAPIKey, nil, &e); code != http.StatusGone {
			t.Fatalf("the backend's read of the expired cart: %d %+v, want 410", code, e.Error)
		}
	}
	if code, _, e := get(); code != http.StatusGone || e.Error == nil || e.Error.Code != protocol.ErrCartExpired {
		t.Fatalf("the first read after the expiry: %d %+v, want 410 cart_expired", code, e.Error)
	}
	code, c, _ := get()
	if code != 200 || c.Cart == nil || c.Cart.ID != syncserver.UserCartID("alice") || len(c.Cart.Lines) != 0 || c.Cart.Version <= before {
		t.Fatalf("the next read: %d %+v, want alice's new, empty cart past v%d", code, c.Cart, before)
	}
}

// A user cart that expired while user retention was on starts over the
// same way after the operator turned retention off: no purge deletes its
// tombstone any more, so without it the user would be refused every edit
// for ever.
func TestExpiredUserCartStartsOverAfterRetentionTurnedOff(t *testing.T) {
	st := memstore.New()
	s := newRetentionShop(t, st)
	tok := s.device()
	before := expireAlicesCart(s, tok)
	s.hs.Close()
	off := newShop(t, st, func(c *syncserver.Config) { c.Users = testUsers{} })
	if code, _, e := getAsUser(t, off.hs.URL, tok, "alice"); code != http.StatusGone || e.Error == nil || e.Error.Code != protocol.ErrCartExpired {
		t.Fatalf("the first read after the expiry, retention off: %d %+v, want 410 cart_expired", code, e.Error)
	}
	code, c, _ := getAsUser(t, off.hs.URL, tok, "alice")
	if code != 200 || c.Cart == nil || len(c.Cart.Lines) != 0 || c.Cart.Version <= before {
		t.Fatalf("the next read: %d %+v, want alice's new, empty cart past v%d", code, c.Cart, before)
	}
	var out syncserver.OpsResponse
	if code := off.call("POST", "/v1/backend/users/alice/cart/ops", testAPIKey, syncserver.OpsRequest{Ops: []cart.Op{{Client: "s", Seq: 2, Kind: cart.KindAdd, SKU: "CAP", Quantity: 1}}}, &out); code != 200 || out.Cart == nil || len(out.Cart.Lines) != 1 {
		t.Fatalf("an add to the started-over cart: %d %+v", code, out)
	}
}

// The storefront's backend has no guest cart: its op naming the cart
// "g_storefront" is refused as made on another cart, and leaves nothing
// behind (it was applied, and left a bogus guest cart merged into the
// user's, which refused the same call for any other user).
func TestBackendOpOnAGuestCartOfItsOwnRefused(t *testing.T) {
	st := memstore.New()
	s := newShop(t, st, nil)
	for _, user := range []string{"carl", "dave"} {
		var e syncserver.ErrorResponse
		op := cart.Op{Client: "s", Seq: 1, Kind: cart.KindAdd, SKU: "MUG", Quantity: 1, Cart: syncserver.GuestCartID(syncserver.StorefrontDevice)}
		if code := s.call("POST", "/v1/backend/users/"+user+"/cart/ops", testAPIKey, syncserver.OpsRequest{Ops: []cart.Op{op}}, &e); code != 400 || e.Error == nil || e.Error.Code != protocol.ErrInvalid {
			t.Errorf("%s: an op on the cart %q: %d %+v, want 400 invalid", user, op.Cart, code, e.Error)
		}
	}
	if _, err := st.Load(t.Context(), syncserver.GuestCartID(syncserver.StorefrontDevice), nil); !errors.Is(err, syncserver.ErrCartNotFound) {
		t.Errorf("Load(g_storefront) = %v, want ErrCartNotFound", err)
	}
}

// An instance without user retention, started before any user cart had
// expired, starts over a user cart another instance expired once it meets
// it: it looked for tombstones only at its start, and refused the user
// every request until it restarted.
func TestUserCartExpiredByAnotherInstanceStartsOver(t *testing.T) {
	st := memstore.New()
	a := newRetentionShop(t, st)
	b := newShop(t, st, func(c *syncserver.Config) { c.Users = testUsers{} }) // no retention, no tombstone yet
	tok := a.device()
	before := expireAlicesCart(a, tok)
	code, c, e := getAsUser(t, b.hs.URL, tok, "alice")
	for i := 0; code == http.StatusGone && i < 3; i++ {
		code, c, e = getAsUser(t, b.hs.URL, tok, "alice")
	}
	if code != 200 || c.Cart == nil || len(c.Cart.Lines) != 0 || c.Cart.Version <= before {
		t.Fatalf("alice's reads on the instance without retention: %d %+v %+v, want her cart started over past v%d", code, c.Cart, e.Error, before)
	}
}

// A user cart's tombstone is kept, however long the user stays away: the
// cart's id is its user's, and a cart made anew under it would start again
// at version 1, giving the versions a device of the user still holds to
// other contents. (Guest tombstones go: a guest cart's id is its device's.)
func TestUserTombstoneKeptForTheUsersReturn(t *testing.T) {
	s := newRetentionShop(t, memstore.New())
	tok := s.device()
	before := expireAlicesCart(s, tok)
	s.clock.add(10 * time.Hour) // five retention periods
	if _, err := s.srv.Purge(t.Context(), 10); err != nil {
		t.Fatal(err)
	}
	if code, _, e := getAsUser(t, s.hs.URL, tok, "alice"); code != http.StatusGone || e.Error == nil || e.Error.Code != protocol.ErrCartExpired {
		t.Fatalf("alice back after five retention periods: %d %+v, want 410 cart_expired", code, e.Error)
	}
	if code, c, _ := getAsUser(t, s.hs.URL, tok, "alice"); code != 200 || c.Cart == nil || c.Cart.Version <= before || c.Cart.Started <= before {
		t.Fatalf("the next read: %d %+v, want a new cart started past v%d", code, c.Cart, before)
	}
}

// The storefront can have a user forgotten: the guest cart merged into the
// user's at login goes, and the user's is left empty, with their
// checkouts, logs and events gone; a device connected to the user's cart is
// told; the user's next request finds the empty cart. Nothing of another user's
// changes. A second erasure finds nothing.
func TestEraseUser(t *testing.T) {
	st := memstore.New()
	s := newShop(t, st, func(c *syncserver.Config) { c.Users = testUsers{} })
	tok := s.device()
	s.push(tok, cart.Op{Client: "c", Seq: 1, Kind: cart.KindAdd, SKU: "MUG", Quantity: 1, Details: &cart.Details{Name: "Mug", Price: 1200, Currency: "EUR"}})
	guest := httpCart(t, s.hs, tok).ID
	s.login(tok, "alice")
	bob := s.device()
	s.login(bob, "bob")
	var out syncserver.OpsResponse
	if code := s.call("POST", "/v1/backend/users/bob/cart/ops", testAPIKey, syncserver.OpsRequest{Ops: []cart.Op{{Client: "s", Seq: 1, Kind: cart.KindAdd, SKU: "CAP", Quantity: 1}}}, &out); code != 200 {
		t.Fatalf("bob's add: %d", code)
	}
	ws := dial(t, s.hs)
	ws.send(&protocol.Message{Type: protocol.TypeHello, Protocol: protocol.Version, Client: "tab", DeviceToken: tok, UserToken: "user:alice"})
	ws.expect(protocol.TypeWelcome)

	var er syncserver.EraseResponse
	if code := s.call("DELETE", "/v1/backend/users/alice/cart", testAPIKey, nil, &er); code != 200 {
		t.Fatalf("erase alice: %d", code)
	}
	slices.Sort(er.Erased)
	want := []string{guest, syncserver.UserCartID("alice")}
	slices.Sort(want)
	if !slices.Equal(er.Erased, want) {
		t.Fatalf("erased %q, want alice's cart and the guest cart merged into it %q", er.Erased, want)
	}
	m := ws.read()
	for i := 0; m.Type != protocol.TypeError && i < 5; i++ { // the hello's merge and cart first
		m = ws.read()
	}
	if m.Error == nil || m.Error.Code != protocol.ErrCartExpired || m.Error.Cart != syncserver.UserCartID("alice") || !m.Error.Erased || m.ID != "" {
		t.Errorf("the connected device was told %+v, want cart_expired of alice's cart, erased, without an id", m.Error)
	}
	var e syncserver.ErrorResponse
	if code := s.call("GET", "/v1/backend/carts/"+guest, testAPIKey, nil, &e); code != 404 {
		t.Errorf("read of the erased guest cart: %d %+v, want 404", code, e.Error)
	}
	var erased syncserver.BackendCart
	if code := s.call("GET", "/v1/backend/users/alice/cart", testAPIKey, nil, &erased); code != 200 || len(erased.Cart.Lines) != 0 || erased.User != "" || len(erased.Checkouts) != 0 {
		t.Errorf("read of alice's erased cart: %d %+v, want it empty, with no user and no checkouts", code, erased)
	}
	for _, ev := range s.feed("").Events {
		if slices.Contains(er.Erased, ev.CartID) {
			t.Errorf("the feed still has %s of erased cart %s", ev.Type, ev.CartID)
		}
	}
	var bc syncserver.BackendCart
	if code := s.call("GET", "/v1/backend/users/bob/cart", testAPIKey, nil, &bc); code != 200 || len(bc.Cart.Lines) != 1 {
		t.Errorf("bob's cart after alice's erasure: %d %+v", code, bc.Cart)
	}
	if code, c, _ := getAsUser(t, s.hs.URL, tok, "alice"); code != 200 || c.Cart == nil || len(c.Cart.Lines) != 0 {
		t.Errorf("alice's next request: %d %+v, want an empty cart", code, c.Cart)
	}
	var after syncserver.BackendCart
	s.call("GET", "/v1/backend/users/alice/cart", testAPIKey, nil, &after)
	er = syncserver.EraseResponse{}
	if code := s.call("DELETE", "/v1/backend/users/alice/cart", testAPIKey, nil, &er); code != 200 || !slices.Equal(er.Erased, []string{syncserver.UserCartID("alice")}) {
		t.Errorf("erase alice again, her cart not changed since: %d %+v, want 200 and her cart", code, er)
	}
	if code := s.call("GET", "/v1/backend/users/alice/cart", testAPIKey, nil, &erased); code != 200 || erased.Cart.Version != after.Cart.Version {
		t.Errorf("alice's cart after a second erasure: %d, version %d; want the first one's %d", code, erased.Cart.Version, after.Cart.Version)
	}
	er = syncserver.EraseResponse{}
	if code := s.call("DELETE", "/v1/backend/users/carol/cart", testAPIKey, nil, &er); code != 200 || er.Erased == nil || len(er.Erased) != 0 {
		t.Errorf("erase a user without a cart: %d %+v, want 200 and none", code, er)
	}
	if code := s.call("DELETE", "/v1/backend/users/alice/cart", "", nil, nil); code != 401 {
		t.Errorf("erase without the API key: %d, want 401", code)
	}
}

// eraseOutcomeLost is a memstore whose first Erase commits and then
// fails, as a Postgres commit whose answer was lost does.
type eraseOutcomeLost struct {
	*memstore.Store
	calls atomic.Int32
}

func (s *eraseOutcomeLost) Erase(ctx context.Context, cartID string) ([]string, error) {
	ids, err := s.Store.Erase(ctx, cartID)
	if err == nil && s.calls.Add(1) == 1 {
		return nil, errors.New("commit: connection reset")
	}
	return ids, err
}

// The storefront retries an erasure whose first call failed after the
// store had committed it (nobody was told then): the retry tells the
// devices connected to the cart, at the first call's version. It told
// none, having found the cart already erased.
func TestErasureRetriedAfterAnUnknownOutcome(t *testing.T) {
	s := newShop(t, &eraseOutcomeLost{Store: memstore.New()}, func(c *syncserver.Config) { c.Users = testUsers{} })
	tok := s.device()
	s.login(tok, "alice")
	if code := s.call("POST", "/v1/backend/users/alice/cart/ops", testAPIKey, syncserver.OpsRequest{Ops: []cart.Op{{Client: "s", Seq: 1, Kind: cart.KindAdd, SKU: "CAP", Quantity: 1}}}, nil); code != 200 {
		t.Fatalf("alice's add: %d", code)
	}
	ws := dial(t, s.hs)
	ws.send(&protocol.Message{Type: protocol.TypeHello, ID: "h1", Protocol: protocol.Version, Client: "tab", DeviceToken: tok, UserToken: "user:alice"})
	ws.expect(protocol.TypeWelcome)
	if code := s.call("DELETE", "/v1/backend/users/alice/cart", testAPIKey, nil, nil); code != 500 {
		t.Fatalf("the first erasure: %d, want 500 (its outcome lost)", code)
	}
	var er syncserver.EraseResponse
	if code := s.call("DELETE", "/v1/backend/users/alice/cart", testAPIKey, nil, &er); code != 200 || !slices.Equal(er.Erased, []string{syncserver.UserCartID("alice")}) {
		t.Fatalf("the retry: %d %+v, want alice's cart", code, er)
	}
	m := ws.read()
	for i := 0; m.Type != protocol.TypeError && i < 5; i++ {
		m = ws.read()
	}
	if m.Error == nil || m.Error.Code != protocol.ErrCartExpired || !m.Error.Erased {
		t.Errorf("the connected device was told %+v, want cart_expired, erased", m.Error)
	}
}

// A user's request reads the cart once when no user cart can have
// expired (no user retention, no user tombstone in the store at the
// start); it read it twice, the first time for a tombstone to start over.
func TestUserRequestReadsOnceWithoutTombstones(t *testing.T) {
	for _, tt := range []struct {
		name      string
		retention time.Duration
		want      int64
	}{{"without user retention", 0, 1}, {"with user retention", 2 * time.Hour, 2}} {
		t.Run(tt.name, func(t *testing.T) {
			st := &countingStore{Store: memstore.New()}
			s := newShop(t, st, func(c *syncserver.Config) { c.Users = testUsers{}; c.UserRetention = tt.retention })
			tok := s.device()
			s.login(tok, "alice")
			before := st.loads.Load()
			if code, _, _ := getAsUser(t, s.hs.URL, tok, "alice"); code != 200 {
				t.Fatalf("alice's read: %d", code)
			}
			if n := st.loads.Load() - before; n != tt.want {
				t.Errorf("alice's read loaded the cart %d times, want %d", n, tt.want)
			}
		})
	}
}

// countingStore counts a memstore's loads; it tells its tombstones.
type countingStore struct {
	*memstore.Store
	loads atomic.Int64
}

func (c *countingStore) Load(ctx context.Context, cartID string, clients []string) (*syncserver.Record, error) {
	c.loads.Add(1)
	return c.Store.Load(ctx, cartID, clients)
}

// newRetentionShop is a shop on st whose users log in with testUsers and
// whose user carts expire after 2 h (expireAlicesCart's clock moves 3 h).
func newRetentionShop(t *testing.T, st syncserver.Store) *shop {
	t.Helper()
	return newShop(t, st, func(c *syncserver.Config) {
		c.Users = testUsers{}
		c.UserRetention = 2 * time.Hour
	})
}

// expireAlicesCart logs tok in as alice, adds a mug to her cart through
// the backend and lets the cart expire (the shop's UserRetention must be
// under 3 h); it returns the version the cart had.
func expireAlicesCart(s *shop, tok string) uint64 {
	s.t.Helper()
	s.login(tok, "alice")
	var out syncserver.OpsResponse
	if code := s.call("POST", "/v1/backend/users/alice/cart/ops", testAPIKey, syncserver.OpsRequest{Ops: []cart.Op{{Client: "s", Seq: 1, Kind: cart.KindAdd, SKU: "MUG", Quantity: 1}}}, &out); code != 200 {
		s.t.Fatalf("add to alice's cart: %d %+v", code, out)
	}
	s.clock.add(3 * time.Hour)
	if n, err := s.srv.Purge(s.t.Context(), 10); err != nil || n < 1 {
		s.t.Fatalf("Purge = %d, %v", n, err)
	}
	return out.Cart.Version
}

// getAsUser reads the cart over HTTP as user on the device tok.
func getAsUser(t *testing.T, base, tok, user string) (int, syncserver.CartResponse, syncserver.ErrorResponse) {
	t.Helper()
	req, _ := http.NewRequest("GET", base+"/v1/cart", nil)
	req.Header.Set("Authorization", "Bearer "+tok)
	req.Header.Set("X-Cartsync-User", "user:"+user)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	var c syncserver.CartResponse
	var e syncserver.ErrorResponse
	json.Unmarshal(b, &c)
	json.Unmarshal(b, &e)
	return resp.StatusCode, c, e
}
