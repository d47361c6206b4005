package webui

import (
	"bytes"
	"cmp"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"sync"
	"testing"

	"github.com/cartsync/cartsync/shared/cart"
)

const testAPIKey = "demo-test-api-key-0123456789abcdef"

// apiCall is a request the fake cart server received.
type apiCall struct {
	Method, Path, Auth string
	Body               string
}

func (c apiCall) String() string { return c.Method + " " + c.Path }

// fakeCartServer plays the cart server's backend API, enough for the demo:
// checkouts, carts and the catalog, held in memory.
type fakeCartServer struct {
	mu        sync.Mutex
	calls     []apiCall
	checkouts map[string]*cart.Checkout
	carts     map[string]*cart.Cart
	// current is the cart a checkout lives in now, by checkout id, when
	// that is not its cart_id (a guest's checkout after a login).
	current map[string]string
	items   []cart.Item
	// fail, when set, answers a request before the fake does.
	fail func(r *http.Request) (status int, ok bool)
	srv  *httptest.Server
}

func newFakeCartServer(tb testing.TB) *fakeCartServer {
	tb.Helper()
	f := &fakeCartServer{checkouts: map[string]*cart.Checkout{}, carts: map[string]*cart.Cart{}, current: map[string]string{}}
	mux := http.NewServeMux()
	mux.HandleFunc("GET /v1/backend/checkouts/{id}", f.getCheckout)
	mux.HandleFunc("POST /v1/backend/checkouts/{id}/complete", f.complete)
	mux.HandleFunc("POST /v1/backend/checkouts/{id}/cancel", f.cancel)
	mux.HandleFunc("GET /v1/backend/carts/{id}", f.getCart)
	mux.HandleFunc("GET /v1/backend/catalog/items", f.listItems)
	mux.HandleFunc("PUT /v1/backend/catalog/items", f.putItems)
	f.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		r.Body = io.NopCloser(bytes.NewReader(b))
		f.mu.Lock()
		f.calls = append(f.calls, apiCall{Method: r.Method, Path: r.URL.RequestURI(), Auth: r.Header.Get("Authorization"), Body: string(b)})
		fail := f.fail
		f.mu.Unlock()
		if fail != nil {
			if status, ok := fail(r); ok {
				fakeError(w, status, "failing", "the fake fails this request")
				return
			}
		}
		if r.Header.Get("Authorization") != "Bearer "+testAPIKey {
			fakeError(w, http.StatusUnauthorized, "unauthorized", "bad API key")
			return
		}
		f.mu.Lock()
		defer f.mu.Unlock()
		mux.ServeHTTP(w, r)
	}))
	tb.Cleanup(f.srv.Close)
	return f
}

// takeCalls returns the requests received since the last call.
func (f *fakeCartServer) takeCalls() []apiCall {
	f.mu.Lock()
	defer f.mu.Unlock()
	out := f.calls
	f.calls = nil
	return out
}

func fakeError(w http.ResponseWriter, status int, code, msg string) {
	writeDemoJSON(w, status, demoError{Error: errorBody{Code: code, Message: msg}})
}

func (f *fakeCartServer) getCheckout(w http.ResponseWriter, r *http.Request) {
	co, ok := f.checkouts[r.PathValue("id")]
	if !ok {
		fakeError(w, http.StatusNotFound, "not_found", "no checkout "+r.PathValue("id"))
		return
	}
	writeDemoJSON(w, http.StatusOK, checkoutRead{Checkout: *co, CurrentCartID: f.current[co.ID]})
}

// complete removes the checked-out quantities from the cart, once.
func (f *fakeCartServer) complete(w http.ResponseWriter, r *http.Request) {
	co, ok := f.checkouts[r.PathValue("id")]
	if !ok {
		fakeError(w, http.StatusNotFound, "not_found", "no checkout")
		return
	}
	var req struct{ Order string }
	json.NewDecoder(r.Body).Decode(&req)
	switch co.Status {
	case cart.CheckoutCompleted:
	case cart.CheckoutOpen:
		co.Status, co.Order = cart.CheckoutCompleted, req.Order
		c := f.carts[cmp.Or(f.current[co.ID], co.CartID)]
		for _, l := range co.Lines {
			if cl := c.Line(l.Key); cl != nil {
				cl.Quantity -= l.Quantity
			}
		}
		var kept []*cart.Line
		for _, l := range c.Lines {
			if l.Quantity > 0 {
				kept = append(kept, l)
			}
		}
		c.Lines = kept
		c.Version++
	default:
		fakeError(w, http.StatusConflict, "checkout_ended", "the checkout ended")
		return
	}
	writeDemoJSON(w, http.StatusOK, co)
}

func (f *fakeCartServer) cancel(w http.ResponseWriter, r *http.Request) {
	co, ok := f.checkouts[r.PathValue("id")]
	if !ok {
		fakeError(w, http.StatusNotFound, "not_found", "no checkout")
		return
	}
	if co.Status != cart.CheckoutOpen && co.Status != cart.CheckoutCancelled {
		fakeError(w, http.StatusConflict, "checkout_ended", "the checkout ended")
		return
	}
	co.Status = cart.CheckoutCancelled
	writeDemoJSON(w, http.StatusOK, co)
}

func (f *fakeCartServer) getCart(w http.ResponseWriter, r *http.Request) {
	c, ok := f.carts[r.PathValue("id")]
	if !ok {
		fakeError(w, http.StatusNotFound, "not_found", "no cart")
		return
	}
	writeDemoJSON(w, http.StatusOK, map[string]any{"cart": c, "kind": "guest"})
}

// listItems pages the catalog in SKU order two items at a time, whatever
// the limit, to make the demo follow next.
func (f *fakeCartServer) listItems(w http.ResponseWriter, r *http.Request) {
	after := r.URL.Query().Get("after")
	items := slices.SortedFunc(slices.Values(f.items), func(a, b cart.Item) int { return strings.Compare(a.SKU, b.SKU) })
	var page []cart.Item
	for _, it := range items {
		if it.SKU > after && len(page) < 2 {
			page = append(page, it)
		}
	}
	next := ""
	if len(page) == 2 {
		next = page[1].SKU
	}
	if page == nil {
		page = []cart.Item{}
	}
	writeDemoJSON(w, http.StatusOK, map[string]any{"items": page, "next": next})
}

func (f *fakeCartServer) putItems(w http.ResponseWriter, r *http.Request) {
	var req struct{ Items []cart.Item }
	if err := json.NewDecoder(r.Body).Decode(&req); err != nil || len(req.Items) == 0 {
		fakeError(w, http.StatusBadRequest, "invalid", "bad upload")
		return
	}
	for _, it := range req.Items {
		if e := cart.ValidateItem(&it, cart.DefaultLimits); e != nil {
			fakeError(w, http.StatusBadRequest, "invalid", e.Message)
			return
		}
		found := false
		for i := range f.items {
			if f.items[i].SKU == it.SKU {
				f.items[i], found = it, true
			}
		}
		if !found {
			f.items = append(f.items, it)
		}
	}
	writeDemoJSON(w, http.StatusOK, map[string]int{"upserted": len(req.Items)})
}

// newTestDemo returns the demo's handler talking to f with the test key.
func newTestDemo(tb testing.TB, f *fakeCartServer, secret string) http.Handler {
	tb.Helper()
	cfg := DemoConfig{WebDir: tb.TempDir(), WebhookSecret: secret, Logger: slog.New(slog.DiscardHandler)}
	if f != nil {
		cfg.CartServer, cfg.APIKey = f.srv.URL, testAPIKey
	}
	h, err := NewDemo(cfg)
	if err != nil {
		tb.Fatal(err)
	}
	return h
}

// call sends a request to h, as the demo's own page does, and returns the
// status and the body.
func call(tb testing.TB, h http.Handler, method, target, body string) (int, string) {
	tb.Helper()
	var rd io.Reader
	if body != "" {
		rd = strings.NewReader(body)
	}
	req := httptest.NewRequest(method, target, rd)
	req.Header.Set("Sec-Fetch-Site", "same-origin")
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, req)
	return rec.Code, rec.Body.String()
}

// assertKey checks that every call carried the API key.
func assertKey(tb testing.TB, calls []apiCall) {
	tb.Helper()
	for _, c := range calls {
		if c.Auth != "Bearer "+testAPIKey {
			tb.Errorf("%s: Authorization = %q, want the API key", c, c.Auth)
		}
	}
}

// callNames lists calls as "METHOD path".
func callNames(calls []apiCall) []string {
	out := make([]string, len(calls))
	for i, c := range calls {
		out[i] = c.String()
	}
	return out
}

func TestDemoWithoutAPIKeyServesNoBackend(t *testing.T) {
	h := Demo(webDir(t), "http://127.0.0.1:8080", nil)
	for _, tc := range []struct{ method, target string }{
		{"GET", "/demo/checkout/co_x"},
		{"POST", "/demo/checkout/co_x/place"},
		{"GET", "/demo/admin/items"},
	} {
		if code, body := call(t, h, tc.method, tc.target, ""); code != http.StatusServiceUnavailable || !strings.Contains(body, "no_api_key") {
			t.Errorf("%s %s = %d %s, want 503 no_api_key", tc.method, tc.target, code, body)
		}
	}
}

func TestNewDemoRefusesABadSecret(t *testing.T) {
	_, err := NewDemo(DemoConfig{WebDir: t.TempDir(), WebhookSecret: "whsec_c2hvcnQ="})
	if err == nil {
		t.Fatal("NewDemo took a secret of 5 bytes")
	}
	if strings.Contains(err.Error(), "c2hvcnQ") {
		t.Fatalf("the error shows the secret: %v", err)
	}
}

func TestNewDemoRefusesACartServerThatIsNotAURL(t *testing.T) {
	if _, err := NewDemo(DemoConfig{WebDir: t.TempDir(), CartServer: "127.0.0.1:8080", APIKey: testAPIKey}); err == nil {
		t.Fatal("NewDemo took a cart server without a scheme")
	}
}
