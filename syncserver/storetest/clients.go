package storetest

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/cartsync/cartsync/shared/cart"
	"github.com/cartsync/cartsync/shared/protocol"
	"github.com/cartsync/cartsync/syncserver"
)

var errProbe = errors.New("storetest: probe only")

// recordedClients lists the client ids s keeps a seq for on cartID, through
// Merge, which hands fn every one of them; fn fails, so nothing is written.
func recordedClients(t testing.TB, s syncserver.Store, cartID string) map[string]uint64 {
	t.Helper()
	var seqs map[string]uint64
	err := s.Merge(t.Context(), cartID, cartID+"-probe", func(from, into *syncserver.Record) error {
		seqs = make(map[string]uint64, len(from.Seqs))
		for c, q := range from.Seqs {
			if q > 0 {
				seqs[c] = q
			}
		}
		return errProbe
	})
	if !errors.Is(err, errProbe) {
		t.Fatalf("Merge probe of %s: %v", cartID, err)
	}
	return seqs
}

// testClientIDsBounded runs the server's reconcile on the store: pushes
// whose ops are all rejected leave no client ids behind (they would
// otherwise grow the store without changing the cart), a cart keeps seqs
// for at most Limits.MaxClients client ids, and a known client id's
// rejected op still records its seq.
func testClientIDsBounded(t *testing.T, s syncserver.Store) {
	lim := cart.DefaultLimits
	lim.MaxClients = 3
	srv, err := syncserver.New(t.Context(), syncserver.Config{Store: s, Limits: lim, IPLimits: syncserver.IPLimits{EditRate: -1}, Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		t.Fatal(err)
	}
	StopOnCleanup(t, srv)
	hs := httptest.NewServer(srv)
	t.Cleanup(hs.Close)
	var dev syncserver.DeviceResponse
	httpJSON(t, hs.URL+"/v1/devices", "", nil, http.StatusCreated, &dev)
	push := func(ops ...cart.Op) []protocol.Result {
		t.Helper()
		var resp syncserver.OpsResponse
		httpJSON(t, hs.URL+"/v1/cart/ops", dev.DeviceToken, syncserver.OpsRequest{Ops: ops}, http.StatusOK, &resp)
		if len(resp.Results) != len(ops) {
			t.Fatalf("%d results for %d ops", len(resp.Results), len(ops))
		}
		return resp.Results
	}

	// 50 pushes of 100 ops, each from a new client id, each rejected.
	for i := range 50 {
		ops := make([]cart.Op, protocol.MaxOpsPerPush)
		for j := range ops {
			id := fmt.Sprintf("junk-%02d-%03d-", i, j)
			id += strings.Repeat("x", cart.MaxClientID-len(id))
			ops[j] = cart.Op{Client: id, Seq: 1, Kind: cart.KindSet, SKU: "NOT-IN-CART", Quantity: 1}
		}
		for _, r := range push(ops...) {
			if r.Status != protocol.StatusRejected || r.Error == nil || r.Error.Code != cart.CodeLineNotFound {
				t.Fatalf("result %+v, want rejected line_not_found", r)
			}
		}
	}
	if got := recordedClients(t, s, dev.CartID); len(got) != 0 {
		t.Fatalf("after 5000 rejected ops from new client ids the cart records %d client ids, want 0", len(got))
	}

	// A new client id whose rejected op is followed by an applied one is
	// recorded at the applied one's seq.
	push(cart.Op{Client: "a", Seq: 1, Kind: cart.KindSet, SKU: "NOT-IN-CART", Quantity: 1},
		addOp("a", 2, "TEE", 1),
		addOp("b", 7, "TEE", 1))
	// A known client id's rejected op records its seq, so the op behind
	// it goes through.
	res := push(cart.Op{Client: "a", Seq: 3, Kind: cart.KindSet, SKU: "NOT-IN-CART", Quantity: 1}, addOp("a", 4, "MUG", 1))
	if res[0].Status != protocol.StatusRejected || res[1].Status != protocol.StatusApplied {
		t.Fatalf("results %+v, want rejected then applied", res)
	}
	if got, want := recordedClients(t, s, dev.CartID), map[string]uint64{"a": 4, "b": 7}; fmt.Sprint(got) != fmt.Sprint(want) {
		t.Fatalf("recorded seqs %v, want %v", got, want)
	}

	// The cap: a third client id is taken, a fourth is refused and left
	// unrecorded; known ones still edit, and their applied ops are still
	// recognized as duplicates.
	push(addOp("c", 1, "TEE", 1))
	res = push(addOp("d", 1, "TEE", 1), addOp("a", 5, "TEE", 1), addOp("b", 7, "TEE", 1))
	if r := res[0]; r.Status != protocol.StatusRejected || r.Error == nil || r.Error.Code != cart.CodeTooManyClients {
		t.Fatalf("fourth client id: %+v, want rejected too_many_clients", r)
	}
	if res[1].Status != protocol.StatusApplied || res[2].Status != protocol.StatusDuplicate {
		t.Fatalf("known client ids: %+v, want applied and duplicate", res[1:])
	}
	if got, want := recordedClients(t, s, dev.CartID), map[string]uint64{"a": 5, "b": 7, "c": 1}; fmt.Sprint(got) != fmt.Sprint(want) {
		t.Fatalf("recorded seqs %v, want %v", got, want)
	}
	rec := load(t, s, dev.CartID)
	if rec.Cart.Clients != 3 || rec.Cart.Items() != 5 {
		t.Fatalf("cart counts %d client ids and holds %d items, want 3 and 5", rec.Cart.Clients, rec.Cart.Items())
	}
}

// httpJSON sends body (GET when nil, else POST) and decodes the answer,
// which must have the status want.
func httpJSON(t testing.TB, url, token string, body any, want int, out any) {
	t.Helper()
	method, rd := http.MethodGet, io.Reader(nil)
	if body != nil || strings.HasSuffix(url, "/v1/devices") {
		b, err := json.Marshal(body)
		if err != nil {
			t.Fatal(err)
		}
		method, rd = http.MethodPost, bytes.NewReader(b)
	}
	req, err := http.NewRequestWithContext(t.Context(), method, url, rd)
	if err != nil {
		t.Fatal(err)
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != want {
		t.Fatalf("%s %s: %d %s, want %d", method, url, resp.StatusCode, b, want)
	}
	if err := json.Unmarshal(b, out); err != nil {
		t.Fatalf("%s %s: %v in %s", method, url, err, b)
	}
}

// StopOnCleanup shuts srv down when the test ends (after the test's
// connections and HTTP servers, which were registered later, are closed),
// so that its background goroutines do not outlive the test.
func StopOnCleanup(tb testing.TB, srv *syncserver.Server) {
	tb.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		if err := srv.Shutdown(ctx); err != nil {
			tb.Errorf("shutdown: %v", err)
		}
	})
}
