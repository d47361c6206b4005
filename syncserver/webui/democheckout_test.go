package webui

import (
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/cartsync/cartsync/shared/cart"
)

const (
	testCart     = "g_0123456789abcdef0123456789abcdef"
	testCheckout = "co_" + testCart + "_0123456789abcdef01234567"
)

// withCheckout gives f a cart of two mugs and a tee, checked out, plus a
// notebook added during the checkout; and the catalog of those items.
func withCheckout(f *fakeCartServer, status cart.CheckoutStatus) {
	f.mu.Lock()
	defer f.mu.Unlock()
	three := 3
	f.items = []cart.Item{
		{SKU: "MUG-01", Name: "Stoneware mug", Price: 1450, Currency: "EUR", Sellable: true, Stock: &three},
		{SKU: "NOTE-01", Name: "Dot-grid notebook", Price: 1200, Currency: "EUR", Sellable: true},
		{SKU: "TEE-01", Name: "Organic cotton tee", Price: 1999, Currency: "EUR", Sellable: true},
	}
	f.carts[testCart] = &cart.Cart{ID: testCart, Version: 4, Lines: []*cart.Line{
		{Key: "MUG-01", SKU: "MUG-01", Quantity: 2, Details: cart.Details{Name: "Stoneware mug", Price: 1450, Currency: "EUR"}},
		{Key: "TEE-01?size=M", SKU: "TEE-01", Options: map[string]string{"size": "M"}, Quantity: 1, Details: cart.Details{Name: "Organic cotton tee", Price: 1999, Currency: "EUR"}},
		{Key: "NOTE-01", SKU: "NOTE-01", Quantity: 1, Details: cart.Details{Name: "Dot-grid notebook", Price: 1200, Currency: "EUR"}},
	}}
	now := time.Now().UTC()
	f.checkouts[testCheckout] = &cart.Checkout{ID: testCheckout, CartID: testCart, Version: 3, Status: status,
		Lines: []cart.CheckoutLine{
			{Key: "MUG-01", SKU: "MUG-01", Quantity: 2, Name: "Stoneware mug", UnitPrice: 1450, Currency: "EUR", Total: 2900},
			{Key: "TEE-01?size=M", SKU: "TEE-01", Options: map[string]string{"size": "M"}, Quantity: 1, Name: "Organic cotton tee", UnitPrice: 1999, Currency: "EUR", Total: 1999},
		},
		Totals: map[string]int64{"EUR": 4899}, CreatedAt: now, ExpiresAt: now.Add(time.Hour)}
	if status == cart.CheckoutCompleted {
		f.checkouts[testCheckout].Order = "DEMO-7"
	}
}

func TestRedeemReadsTheCheckoutFromTheCartServer(t *testing.T) {
	f := newFakeCartServer(t)
	withCheckout(f, cart.CheckoutOpen)
	h := newTestDemo(t, f, "")
	code, body := call(t, h, "GET", "/demo/checkout/"+testCheckout, "")
	if code != http.StatusOK {
		t.Fatalf("redeem = %d %s", code, body)
	}
	var co cart.Checkout
	if err := json.Unmarshal([]byte(body), &co); err != nil {
		t.Fatal(err)
	}
	if co.ID != testCheckout || co.Status != cart.CheckoutOpen || len(co.Lines) != 2 || co.Totals["EUR"] != 4899 {
		t.Errorf("redeemed %+v, want the open checkout with 2 lines and 48.99 EUR", co)
	}
	calls := f.takeCalls()
	assertKey(t, calls)
	if got, want := callNames(calls), []string{"GET /v1/backend/checkouts/" + testCheckout}; !slices.Equal(got, want) {
		t.Errorf("calls = %q, want %q", got, want)
	}
}

func TestRedeemRelaysTheCartServersRefusals(t *testing.T) {
	f := newFakeCartServer(t)
	for _, tc := range []struct {
		name     string
		fail     int
		wantCode int
		wantText string
	}{
		{"unknown checkout", 0, http.StatusNotFound, "not_found"},
		{"refused key", http.StatusUnauthorized, http.StatusBadGateway, "API key"},
		{"cart server failing", http.StatusInternalServerError, http.StatusBadGateway, "bad_gateway"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f.mu.Lock()
			f.fail = func(*http.Request) (int, bool) { return tc.fail, tc.fail != 0 }
			f.mu.Unlock()
			code, body := call(t, newTestDemo(t, f, ""), "GET", "/demo/checkout/co_nope", "")
			if code != tc.wantCode || !strings.Contains(body, tc.wantText) {
				t.Errorf("redeem = %d %s, want %d with %q", code, body, tc.wantCode, tc.wantText)
			}
		})
	}
}

// place places the order of checkout id, which must answer 200.
func place(t *testing.T, h http.Handler, id string) placedOrder {
	t.Helper()
	code, body := call(t, h, "POST", "/demo/checkout/"+id+"/place", "")
	if code != http.StatusOK {
		t.Fatalf("place = %d %s", code, body)
	}
	var placed placedOrder
	if err := json.Unmarshal([]byte(body), &placed); err != nil {
		t.Fatal(err)
	}
	return placed
}

func TestPlaceCompletesTheCheckoutWithAnOrderNumber(t *testing.T) {
	f := newFakeCartServer(t)
	withCheckout(f, cart.CheckoutOpen)
	h := newTestDemo(t, f, "")
	placed := place(t, h, testCheckout)
	if placed.Order != "DEMO-1042" || placed.Checkout.Status != cart.CheckoutCompleted || placed.Checkout.Order != "DEMO-1042" {
		t.Errorf("placed %s with checkout %s/%q, want DEMO-1042 completed", placed.Order, placed.Checkout.Status, placed.Checkout.Order)
	}
	// What was added during the checkout stays in the cart.
	if placed.Cart == nil || len(placed.Cart.Lines) != 1 || placed.Cart.Lines[0].SKU != "NOTE-01" {
		t.Errorf("cart after the order = %+v, want only the notebook added during checkout", placed.Cart)
	}
	calls := f.takeCalls()
	assertKey(t, calls)
	want := []string{
		"GET /v1/backend/checkouts/" + testCheckout,
		"POST /v1/backend/checkouts/" + testCheckout + "/complete",
		"GET /v1/backend/catalog/items?limit=1000&after=",
		"GET /v1/backend/catalog/items?limit=1000&after=NOTE-01",
		"PUT /v1/backend/catalog/items",
		"GET /v1/backend/carts/" + testCart,
	}
	if got := callNames(calls); !slices.Equal(got, want) {
		t.Fatalf("calls =\n%q\nwant\n%q", got, want)
	}
	if got := calls[1].Body; got != `{"order":"DEMO-1042"}` {
		t.Errorf("complete body = %s", got)
	}
	// The mug's stock goes from 3 to 1; the tee has no stock to lower.
	var put struct{ Items []cart.Item }
	if err := json.Unmarshal([]byte(calls[4].Body), &put); err != nil {
		t.Fatal(err)
	}
	if len(put.Items) != 1 || put.Items[0].SKU != "MUG-01" || put.Items[0].Stock == nil || *put.Items[0].Stock != 1 {
		t.Errorf("stock upload = %s, want MUG-01 with a stock of 1", calls[4].Body)
	}

	// A second place (a double click, a reload) is the same order and
	// completes nothing.
	code, body := call(t, h, "POST", "/demo/checkout/"+testCheckout+"/place", "")
	if code != http.StatusOK || !strings.Contains(body, `"order":"DEMO-1042"`) {
		t.Errorf("second place = %d %s, want the same order", code, body)
	}
	want = []string{"GET /v1/backend/checkouts/" + testCheckout, "GET /v1/backend/carts/" + testCart}
	if got := callNames(f.takeCalls()); !slices.Equal(got, want) {
		t.Errorf("second place calls = %q, want %q", got, want)
	}
}

// A guest's checkout placed after the shopper logged in: the order takes
// its lines from the user cart, which took them at the login, and the
// shopper is shown that cart, not the guest cart left behind.
func TestPlaceAfterALoginShowsTheUserCart(t *testing.T) {
	f := newFakeCartServer(t)
	withCheckout(f, cart.CheckoutOpen)
	const userCart = "u_0123456789abcdef0123456789abcdef"
	f.mu.Lock()
	guest := f.carts[testCart]
	user := *guest
	user.ID, user.Lines = userCart, slices.Clone(guest.Lines)
	for i, l := range user.Lines {
		c := *l
		user.Lines[i] = &c
	}
	f.carts[userCart] = &user
	f.current[testCheckout] = userCart
	f.mu.Unlock()
	h := newTestDemo(t, f, "")
	placed := place(t, h, testCheckout)
	if placed.Cart == nil || placed.Cart.ID != userCart || len(placed.Cart.Lines) != 1 || placed.Cart.Lines[0].SKU != "NOTE-01" {
		t.Errorf("cart after the order = %+v, want the user cart with only the notebook", placed.Cart)
	}
	if calls := callNames(f.takeCalls()); calls[len(calls)-1] != "GET /v1/backend/carts/"+userCart {
		t.Errorf("calls %q, want the user cart read last", calls)
	}
}

func TestPlaceNumbersOrders(t *testing.T) {
	f := newFakeCartServer(t)
	h := newTestDemo(t, f, "")
	var orders []string
	for range 2 {
		withCheckout(f, cart.CheckoutOpen)
		_, body := call(t, h, "POST", "/demo/checkout/"+testCheckout+"/place", "")
		var placed placedOrder
		json.Unmarshal([]byte(body), &placed)
		orders = append(orders, placed.Order)
	}
	if want := []string{"DEMO-1042", "DEMO-1043"}; !slices.Equal(orders, want) {
		t.Errorf("orders = %q, want %q", orders, want)
	}
}

func TestPlaceRefusesAnEndedCheckout(t *testing.T) {
	for _, status := range []cart.CheckoutStatus{cart.CheckoutCancelled, cart.CheckoutExpired} {
		t.Run(string(status), func(t *testing.T) {
			f := newFakeCartServer(t)
			withCheckout(f, status)
			code, body := call(t, newTestDemo(t, f, ""), "POST", "/demo/checkout/"+testCheckout+"/place", "")
			if code != http.StatusConflict || !strings.Contains(body, "checkout_ended") {
				t.Errorf("place = %d %s, want 409 checkout_ended", code, body)
			}
			for _, c := range f.takeCalls() {
				if c.Method != "GET" {
					t.Errorf("placing a %s checkout sent %s", status, c)
				}
			}
		})
	}
}

func TestCancelCancelsTheCheckout(t *testing.T) {
	f := newFakeCartServer(t)
	withCheckout(f, cart.CheckoutOpen)
	h := newTestDemo(t, f, "")
	code, body := call(t, h, "POST", "/demo/checkout/"+testCheckout+"/cancel", "")
	if code != http.StatusOK || !strings.Contains(body, `"status":"cancelled"`) {
		t.Fatalf("cancel = %d %s, want the cancelled checkout", code, body)
	}
	calls := f.takeCalls()
	assertKey(t, calls)
	if got, want := callNames(calls), []string{"POST /v1/backend/checkouts/" + testCheckout + "/cancel"}; !slices.Equal(got, want) {
		t.Errorf("calls = %q, want %q", got, want)
	}
	if code, body := call(t, h, "POST", "/demo/checkout/"+testCheckout+"/place", ""); code != http.StatusConflict {
		t.Errorf("place after cancel = %d %s, want 409", code, body)
	}
}

func TestCheckoutPostsFromAnotherSiteAreRefused(t *testing.T) {
	f := newFakeCartServer(t)
	withCheckout(f, cart.CheckoutOpen)
	h := newTestDemo(t, f, "")
	for _, target := range []string{"/demo/checkout/" + testCheckout + "/place", "/demo/checkout/" + testCheckout + "/cancel", "/demo/admin/items"} {
		req, _ := http.NewRequest("POST", target, strings.NewReader(`{"sku":"MUG-01","price":1}`))
		req.Header.Set("Sec-Fetch-Site", "cross-site")
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, req)
		if rec.Code != http.StatusForbidden {
			t.Errorf("cross-site POST %s = %d, want 403", target, rec.Code)
		}
	}
	if calls := f.takeCalls(); len(calls) != 0 {
		t.Errorf("cross-site posts reached the cart server: %q", callNames(calls))
	}
}

// Two orders placed at once lower the stock one after the other: each
// reads the catalog's stock and writes it back lowered, and two at once
// both wrote what was left after their own order alone.
func TestPlaceSellsTheStockOneOrderAtATime(t *testing.T) {
	f := newFakeCartServer(t)
	withCheckout(f, cart.CheckoutOpen) // 3 mugs in stock; 2 in the checkout
	const otherCart = "g_fedcba9876543210fedcba9876543210"
	const otherCheckout = "co_" + otherCart + "_fedcba9876543210fedcba98"
	f.mu.Lock()
	co := *f.checkouts[testCheckout]
	co.ID, co.CartID, co.Lines = otherCheckout, otherCart, co.Lines[:1] // 2 mugs
	f.checkouts[otherCheckout] = &co
	c := *f.carts[testCart]
	c.ID, c.Lines = otherCart, nil
	for _, l := range f.carts[testCart].Lines {
		cl := *l
		c.Lines = append(c.Lines, &cl)
	}
	f.carts[otherCart] = &c
	// Each order's read of the catalog is slow: both read before
	// either writes, unless they take turns.
	f.fail = func(r *http.Request) (int, bool) {
		if r.Method == http.MethodGet && strings.HasPrefix(r.URL.Path, "/v1/backend/catalog/items") {
			time.Sleep(50 * time.Millisecond)
		}
		return 0, false
	}
	f.mu.Unlock()
	h := newTestDemo(t, f, "")
	var wg sync.WaitGroup
	for _, id := range []string{testCheckout, otherCheckout} {
		wg.Go(func() {
			if code, body := call(t, h, "POST", "/demo/checkout/"+id+"/place", ""); code != http.StatusOK {
				t.Errorf("place %s = %d %s", id, code, body)
			}
		})
	}
	wg.Wait()
	f.mu.Lock()
	defer f.mu.Unlock()
	for _, it := range f.items {
		if it.SKU == "MUG-01" && it.Stock != nil && *it.Stock != 0 {
			t.Errorf("mugs in stock after 2 orders of 2 from 3: %d, want 0", *it.Stock)
		}
	}
}
