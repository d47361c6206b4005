package syncclient

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"testing"

	"github.com/cartsync/cartsync/shared/cart"
	"github.com/cartsync/cartsync/shared/protocol"
)

// checkoutServer answers POST /v1/checkout with status and body, and
// records what it was asked.
type checkoutServer struct {
	status int
	body   any

	auth, user string
	version    uint64
}

func (s *checkoutServer) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodPost || r.URL.Path != "/v1/checkout" {
		http.Error(w, "wrong endpoint", http.StatusNotFound)
		return
	}
	s.auth, s.user = r.Header.Get("Authorization"), r.Header.Get("X-Cartsync-User")
	b, _ := io.ReadAll(r.Body)
	var req struct {
		Version uint64 `json:"version"`
	}
	_ = json.Unmarshal(b, &req)
	s.version = req.Version
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(s.status)
	_ = json.NewEncoder(w).Encode(s.body)
}

// handlerTransport serves requests with a handler, in process: httptest's
// servers do not listen under js/wasm.
type handlerTransport struct{ h http.Handler }

func (t handlerTransport) RoundTrip(r *http.Request) (*http.Response, error) {
	w := httptest.NewRecorder()
	t.h.ServeHTTP(w, r)
	resp := w.Result()
	resp.Request = r
	return resp, nil
}

func TestCheckout(t *testing.T) {
	v3 := priced(3, "tee=2")
	v4 := priced(4, "tee=1")
	open := &cart.Checkout{ID: "co_1", CartID: "cart-1", Version: 3, Status: cart.CheckoutOpen,
		Lines: []cart.CheckoutLine{{Key: "tee", SKU: "tee", Quantity: 2, UnitPrice: 1000, Currency: "EUR", Total: 2000}}}
	tests := []struct {
		name      string
		user      string // SetUser's token
		pending   bool   // an edit is pending when the answer comes
		status    int
		body      any
		wantID    string
		wantCode  protocol.ErrorCode // of the error, "" for none
		conflict  bool               // the error is a *CheckoutConflict
		confirmed uint64             // the engine's confirmed version after
	}{
		{"created", "", false, http.StatusCreated, map[string]any{"checkout": open}, "co_1", "", false, 3},
		{"created for a user", "user-token", false, http.StatusCreated, map[string]any{"checkout": open}, "co_1", "", false, 3},
		{"changed on another device", "", false, http.StatusConflict,
			map[string]any{"error": protocol.Errorf(protocol.ErrCartChanged, "the cart changed"), "cart": v4}, "", protocol.ErrCartChanged, true, 4},
		{"changed, with edits pending", "", true, http.StatusConflict,
			map[string]any{"error": protocol.Errorf(protocol.ErrCartChanged, "the cart changed"), "cart": v4}, "", protocol.ErrCartChanged, true, 3},
		{"the catalog changed", "", false, http.StatusConflict,
			map[string]any{"error": protocol.Errorf(protocol.ErrCartChanged, "the catalog changed"),
				"cart": annotated(v3, nil, priceNotice("tee", 1000, 1100))}, "", protocol.ErrCartChanged, true, 3},
		{"empty", "", false, http.StatusConflict,
			map[string]any{"error": protocol.Errorf(protocol.ErrCartEmpty, "the cart is empty"), "cart": priced(5)}, "", protocol.ErrCartEmpty, true, 5},
		{"unauthorized", "", false, http.StatusUnauthorized,
			map[string]any{"error": protocol.Errorf(protocol.ErrUnauthorized, "no")}, "", protocol.ErrUnauthorized, false, 3},
		{"not JSON", "", false, http.StatusBadGateway, "<html>", "", "", false, 3},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ctx := context.Background()
			srv := &checkoutServer{status: tt.status, body: tt.body}
			store := NewMemStorage()
			must(t, store.Confirm(ctx, v3, nil))
			if _, err := store.SwapDeviceToken(ctx, "", "dev-1"); err != nil {
				t.Fatal(err)
			}
			e := newEngine(t, store, func(c *Config) {
				c.BaseURL, c.HTTPClient = "https://cart.example/", &http.Client{Transport: handlerTransport{srv}}
			})
			if tt.user != "" {
				must(t, e.SetUser(tt.user, ""))
			}
			if tt.pending {
				must(t, e.Add(ctx, "mug", nil, 1, nil))
			}
			co, err := e.Checkout(ctx, 3)
			if srv.auth != "Bearer dev-1" || srv.user != tt.user || srv.version != 3 {
				t.Errorf("asked with Authorization %q, X-Cartsync-User %q, version %d", srv.auth, srv.user, srv.version)
			}
			switch {
			case tt.wantID != "":
				if err != nil || co == nil || co.ID != tt.wantID {
					t.Fatalf("Checkout = %+v, %v; want checkout %s", co, err, tt.wantID)
				}
			case err == nil:
				t.Fatalf("Checkout = %+v, want an error", co)
			}
			var pe *protocol.Error
			if tt.wantCode != "" && (!errors.As(err, &pe) || pe.Code != tt.wantCode) {
				t.Errorf("error %v, want code %s", err, tt.wantCode)
			}
			var conflict *CheckoutConflict
			if got := errors.As(err, &conflict); got != tt.conflict {
				t.Errorf("error %v: a conflict %v, want %v", err, got, tt.conflict)
			}
			st := e.Snapshot()
			if st.Confirmed != tt.confirmed {
				t.Errorf("confirmed version %d after, want %d", st.Confirmed, tt.confirmed)
			}
			if want := tt.name == "the catalog changed"; (len(st.Notices) == 1) != want {
				t.Errorf("notices after: %s", noticesText(st.Notices))
			}
		})
	}
}

func TestCheckoutNeedsDeviceAndURL(t *testing.T) {
	ctx := context.Background()
	e := newEngine(t, NewMemStorage(), func(c *Config) { c.BaseURL = "https://cart.example" })
	if _, err := e.Checkout(ctx, 1); !errors.Is(err, ErrNoDevice) {
		t.Errorf("without a device token: %v, want ErrNoDevice", err)
	}
	e = newEngine(t, NewMemStorage(), nil)
	if _, err := e.Checkout(ctx, 1); err == nil {
		t.Error("without a BaseURL: no error")
	}
}
