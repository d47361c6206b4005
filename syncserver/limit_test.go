package syncserver_test

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/coder/websocket"

	"github.com/cartsync/cartsync/shared/cart"
	"github.com/cartsync/cartsync/shared/protocol"
	"github.com/cartsync/cartsync/syncserver"
	"github.com/cartsync/cartsync/syncserver/memstore"
	"github.com/cartsync/cartsync/syncserver/storetest"
)

// fakeClock is a clock tests move by hand.
type fakeClock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *fakeClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *fakeClock) Add(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = c.t.Add(d)
}

func newLimitedServer(t testing.TB, clk *fakeClock, cfg syncserver.Config) *httptest.Server {
	t.Helper()
	cfg.Store = memstore.New()
	cfg.Now = clk.Now
	srv, err := syncserver.New(context.Background(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	storetest.StopOnCleanup(t, srv)
	hs := httptest.NewServer(srv)
	t.Cleanup(hs.Close)
	return hs
}

// wantLimited checks a refusal: 429, rate_limited, retryable, with the
// retry delay in the body and in Retry-After.
func wantLimited(t testing.TB, resp *http.Response, body []byte, retryMS int) {
	t.Helper()
	var er syncserver.ErrorResponse
	if err := json.Unmarshal(body, &er); err != nil || er.Error == nil {
		t.Fatalf("status %d, body %s: not an error response (%v)", resp.StatusCode, body, err)
	}
	e := er.Error
	if resp.StatusCode != http.StatusTooManyRequests || e.Code != protocol.ErrRateLimited || !e.Retryable || e.RetryAfterMS != retryMS {
		t.Fatalf("got %d %+v, want 429 rate_limited, retryable, retry after %d ms", resp.StatusCode, e, retryMS)
	}
	if got, want := resp.Header.Get("Retry-After"), fmt.Sprint((retryMS+999)/1000); got != want {
		t.Fatalf("Retry-After = %q, want %q", got, want)
	}
}

func newDevice(t testing.TB, hs *httptest.Server) string {
	t.Helper()
	resp, body := httpDo(t, "POST", hs.URL+"/v1/devices", "", nil)
	if resp.StatusCode != http.StatusCreated {
		t.Fatalf("POST /v1/devices = %d %s", resp.StatusCode, body)
	}
	var d syncserver.DeviceResponse
	if err := json.Unmarshal(body, &d); err != nil {
		t.Fatal(err)
	}
	return d.DeviceToken
}

func TestRequestRateLimitPerAddress(t *testing.T) {
	clk := &fakeClock{t: time.Unix(1_700_000_000, 0)}
	hs := newLimitedServer(t, clk, syncserver.Config{IPLimits: syncserver.IPLimits{Rate: 2, Burst: 3}})
	tok := newDevice(t, hs) // 1 of 3
	httpCart(t, hs, tok)    // 2
	httpCart(t, hs, tok)    // 3
	resp, body := httpDo(t, "GET", hs.URL+"/v1/cart", tok, nil)
	wantLimited(t, resp, body, 500)
	// The websocket upgrade counts too.
	_, resp, err := websocket.Dial(context.Background(), "ws"+strings.TrimPrefix(hs.URL, "http")+"/v1/sync", nil)
	if err == nil || resp == nil {
		t.Fatalf("dial over the rate: %v", err)
	}
	b, _ := io.ReadAll(resp.Body)
	wantLimited(t, resp, b, 500)
	clk.Add(500 * time.Millisecond)
	httpCart(t, hs, tok)
	resp, body = httpDo(t, "GET", hs.URL+"/v1/cart", tok, nil)
	wantLimited(t, resp, body, 500)
}

// The storefront's servers, one address for a whole shop, are not held to
// the per-address request rate when they present a valid API key; a key
// guessed at is.
func TestBackendWithAKeyIsNotRateLimited(t *testing.T) {
	clk := &fakeClock{t: time.Unix(1_700_000_000, 0)}
	hs := newLimitedServer(t, clk, syncserver.Config{APIKeys: []string{testAPIKey}, IPLimits: syncserver.IPLimits{Rate: 2, Burst: 3}})
	for i := range 20 {
		if resp, body := httpDo(t, "GET", hs.URL+"/v1/backend/catalog/items", testAPIKey, nil); resp.StatusCode != http.StatusOK {
			t.Fatalf("backend read %d with the key: %d %s", i+1, resp.StatusCode, body)
		}
	}
	for i := range 3 {
		if resp, body := httpDo(t, "GET", hs.URL+"/v1/backend/catalog/items", "not-the-key-0123456789abcdef0123456789", nil); resp.StatusCode != http.StatusUnauthorized {
			t.Fatalf("backend read %d with a wrong key: %d %s", i+1, resp.StatusCode, body)
		}
	}
	resp, body := httpDo(t, "GET", hs.URL+"/v1/backend/catalog/items", "not-the-key-0123456789abcdef0123456789", nil)
	wantLimited(t, resp, body, 500)
	// The shoppers' endpoints still count.
	resp, body = httpDo(t, "POST", hs.URL+"/v1/devices", "", nil)
	wantLimited(t, resp, body, 500)
}

// Edits are counted per address, op by op, over the websocket and over
// HTTP alike: past the rate a push is refused rate_limited and nothing of
// it applies. (Before, one client could push ops as fast as it could send
// them, each batch a write and an event, and slow the server for everyone.)
// A push needs one edit left, and may take the bucket into debt: a large
// one is not starved by small ones. A sync counts one. The storefront's
// backend, with its key, is not held to it.
func TestEditRateLimitPerAddress(t *testing.T) {
	clk := &fakeClock{t: time.Unix(1_700_000_000, 0)}
	hs := newLimitedServer(t, clk, syncserver.Config{APIKeys: []string{testAPIKey}, IPLimits: syncserver.IPLimits{EditRate: 10, EditBurst: 6}})
	c := dial(t, hs)
	w, _ := c.hello("tab-1", "")
	add := func(seq uint64) cart.Op {
		return cart.Op{Client: "tab-1", Seq: seq, Kind: cart.KindAdd, SKU: fmt.Sprint("SKU-", seq), Quantity: 1}
	}
	c.send(&protocol.Message{Type: protocol.TypePush, ID: "p1", Ops: []cart.Op{add(1), add(2), add(3), add(4), add(5)}})
	if m := c.expect(protocol.TypeAck); m.Cart.Version != 5 {
		t.Fatalf("the first five edits: version %d, want 5", m.Cart.Version)
	}
	// One edit left: a push of three goes, the bucket 2 in debt.
	c.send(&protocol.Message{Type: protocol.TypePush, ID: "p2", Ops: []cart.Op{add(6), add(7), add(8)}})
	if m := c.expect(protocol.TypeAck); m.Cart.Version != 8 {
		t.Fatalf("three edits with one left: version %d, want 8", m.Cart.Version)
	}
	c.send(&protocol.Message{Type: protocol.TypePush, ID: "p3", Ops: []cart.Op{add(9)}})
	if e := c.expectError(protocol.ErrRateLimited); !e.Retryable || e.RetryAfterMS != 300 {
		t.Fatalf("an edit in debt: %+v, want rate_limited, retry after 300 ms", e)
	}
	resp, body := httpDo(t, "POST", hs.URL+"/v1/cart/ops", w.DeviceToken, syncserver.OpsRequest{Ops: []cart.Op{add(9)}})
	wantLimited(t, resp, body, 300)
	c.send(&protocol.Message{Type: protocol.TypeSync, ID: "s1"})
	if e := c.expectError(protocol.ErrRateLimited); !e.Retryable {
		t.Fatalf("a sync in debt: %+v, want rate_limited", e)
	}
	if got := httpCart(t, hs, w.DeviceToken); got.Version != 8 {
		t.Fatalf("after the refused push: version %d, want 8 (nothing applied)", got.Version)
	}
	var out syncserver.OpsResponse
	if resp, body := httpDo(t, "POST", hs.URL+"/v1/backend/users/ann/cart/ops", testAPIKey, syncserver.OpsRequest{Ops: []cart.Op{{Client: "s", Seq: 1, Kind: cart.KindAdd, SKU: "MUG", Quantity: 1}, {Client: "s", Seq: 2, Kind: cart.KindAdd, SKU: "CAP", Quantity: 1}}}); resp.StatusCode != http.StatusOK || json.Unmarshal(body, &out) != nil {
		t.Fatalf("the backend's edits over the address's rate: %d %s", resp.StatusCode, body)
	}
	clk.Add(300 * time.Millisecond)
	c.send(&protocol.Message{Type: protocol.TypePush, ID: "p4", Ops: []cart.Op{add(9)}})
	if m := c.expect(protocol.TypeAck); m.Cart.Version != 9 {
		t.Fatalf("the edit retried: version %d, want 9", m.Cart.Version)
	}
}

func TestDeviceIssuanceLimit(t *testing.T) {
	clk := &fakeClock{t: time.Unix(1_700_000_000, 0)}
	hs := newLimitedServer(t, clk, syncserver.Config{IPLimits: syncserver.IPLimits{DeviceRate: 0.5, DeviceBurst: 2}})
	tok := newDevice(t, hs)
	newDevice(t, hs)
	resp, body := httpDo(t, "POST", hs.URL+"/v1/devices", "", nil)
	wantLimited(t, resp, body, 2000)
	// A hello without a device token asks for one: refused the same way.
	c := dial(t, hs)
	c.send(&protocol.Message{Type: protocol.TypeHello, Protocol: protocol.Version, Client: "tab"})
	if e := c.expectError(protocol.ErrRateLimited); !e.Retryable || e.RetryAfterMS != 2000 {
		t.Fatalf("hello without token: %+v, want retryable after 2000 ms", e)
	}
	// A device that has its token is not held back.
	c = dial(t, hs)
	if w, _ := c.hello("tab", tok); w.DeviceToken != "" {
		t.Fatalf("welcome issued a new token %q to a known device", w.DeviceToken)
	}
	clk.Add(2 * time.Second)
	newDevice(t, hs)
}

func TestConnectionLimitPerAddress(t *testing.T) {
	clk := &fakeClock{t: time.Unix(1_700_000_000, 0)}
	hs := newLimitedServer(t, clk, syncserver.Config{IPLimits: syncserver.IPLimits{MaxConns: 2}})
	tok := newDevice(t, hs)
	a := dial(t, hs)
	a.hello("a", tok)
	b := dial(t, hs)
	b.hello("b", tok)
	url := "ws" + strings.TrimPrefix(hs.URL, "http") + "/v1/sync"
	_, resp, err := websocket.Dial(context.Background(), url, nil)
	if err == nil || resp == nil {
		t.Fatalf("third connection: %v, want refused", err)
	}
	body, _ := io.ReadAll(resp.Body)
	wantLimited(t, resp, body, 2000)
	// Once one closes, its slot is free again (the server notices the
	// close on its own time: retry until it has).
	a.conn.Close(websocket.StatusNormalClosure, "")
	deadline := time.Now().Add(10 * time.Second)
	for {
		c, resp, err := websocket.Dial(context.Background(), url, nil)
		if err == nil {
			c.CloseNow()
			break
		}
		if resp == nil || resp.StatusCode != http.StatusTooManyRequests || time.Now().After(deadline) {
			t.Fatalf("connection after one closed: %v", err)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// TestSlowBodyCutOff: a client sending its body a byte at a time is cut
// off after the body timeout rather than holding the request open.
func TestSlowBodyCutOff(t *testing.T) {
	clk := &fakeClock{t: time.Unix(1_700_000_000, 0)}
	hs := newLimitedServer(t, clk, syncserver.Config{IPLimits: syncserver.IPLimits{BodyTimeout: 100 * time.Millisecond}})
	tok := newDevice(t, hs)
	conn, err := net.Dial("tcp", hs.Listener.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	fmt.Fprintf(conn, "POST /v1/cart/ops HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer %s\r\nContent-Type: application/json\r\nContent-Length: 1000\r\n\r\n{\"ops\"", tok)
	// The guard is far above the timeout; what is checked is that the
	// server ends the request at all, not when.
	conn.SetReadDeadline(time.Now().Add(20 * time.Second))
	resp, err := http.ReadResponse(bufio.NewReader(conn), nil)
	if err != nil {
		t.Fatalf("no answer to a stalled body: %v", err)
	}
	if resp.StatusCode < 400 {
		t.Fatalf("stalled body answered %d", resp.StatusCode)
	}
}

// TestAPIResponsesNotSniffed: every API answer, errors included, is taken
// for JSON only.
func TestAPIResponsesNotSniffed(t *testing.T) {
	_, hs := newServer(t)
	tok := newDevice(t, hs)
	for _, tt := range []struct{ method, path, token string }{
		{"GET", "/v1/cart", tok},
		{"GET", "/v1/cart", ""},
		{"POST", "/v1/devices", ""},
		{"GET", "/v1/sync", ""},
	} {
		resp, _ := httpDo(t, tt.method, hs.URL+tt.path, tt.token, nil)
		if got := resp.Header.Get("X-Content-Type-Options"); got != "nosniff" {
			t.Errorf("%s %s (%d): X-Content-Type-Options = %q, want nosniff", tt.method, tt.path, resp.StatusCode, got)
		}
	}
}
