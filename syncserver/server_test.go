package syncserver_test

import (
	"bytes"
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"reflect"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/coder/websocket"

	"github.com/cartsync/cartsync/shared/cart"
	"github.com/cartsync/cartsync/shared/protocol"
	"github.com/cartsync/cartsync/syncserver"
	"github.com/cartsync/cartsync/syncserver/memstore"
	"github.com/cartsync/cartsync/syncserver/storetest"
)

func newServer(t testing.TB) (*syncserver.Server, *httptest.Server) {
	t.Helper()
	return newServerWith(t, syncserver.Config{})
}

// newServerWith is newServer with cfg (its Store, if nil, in memory).
func newServerWith(t testing.TB, cfg syncserver.Config) (*syncserver.Server, *httptest.Server) {
	t.Helper()
	if cfg.Store == nil {
		cfg.Store = memstore.New()
	}
	srv, err := syncserver.New(context.Background(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	storetest.StopOnCleanup(t, srv)
	hs := httptest.NewServer(srv)
	t.Cleanup(hs.Close)
	return srv, hs
}

// syncURL is the websocket URL of hs's sync endpoint.
func syncURL(hs *httptest.Server) string {
	return "ws" + strings.TrimPrefix(hs.URL, "http") + "/v1/sync"
}

// wsClient speaks raw protocol messages for tests.
type wsClient struct {
	t    testing.TB
	conn *websocket.Conn
}

func dial(t testing.TB, hs *httptest.Server) *wsClient {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	c, _, err := websocket.Dial(ctx, "ws"+strings.TrimPrefix(hs.URL, "http")+"/v1/sync", nil)
	if err != nil {
		t.Fatalf("dial: %v", err)
	}
	c.SetReadLimit(4 * protocol.MaxMessageBytes)
	t.Cleanup(func() { c.CloseNow() })
	return &wsClient{t: t, conn: c}
}

func (c *wsClient) sendRaw(s string) {
	c.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := c.conn.Write(ctx, websocket.MessageText, []byte(s)); err != nil {
		c.t.Fatalf("write: %v", err)
	}
}

func (c *wsClient) send(m *protocol.Message) {
	c.t.Helper()
	b, _ := json.Marshal(m)
	c.sendRaw(string(b))
}

func (c *wsClient) read() *protocol.Message {
	c.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	_, b, err := c.conn.Read(ctx)
	if err != nil {
		c.t.Fatalf("read: %v", err)
	}
	var m protocol.Message
	if err := json.Unmarshal(b, &m); err != nil {
		c.t.Fatalf("server sent bad JSON %q: %v", b, err)
	}
	return &m
}

// expect reads the next message of type typ, skipping pushed carts (they
// arrive whenever the cart changes) unless typ is cart.
func (c *wsClient) expect(typ string) *protocol.Message {
	c.t.Helper()
	m := c.read()
	for typ != protocol.TypeCart && m.Type == protocol.TypeCart && len(m.By) > 0 {
		m = c.read()
	}
	if m.Type != typ {
		c.t.Fatalf("got %s message %+v (error %+v), want %s", m.Type, m, m.Error, typ)
	}
	return m
}

func (c *wsClient) expectError(code protocol.ErrorCode) *protocol.Error {
	c.t.Helper()
	m := c.expect(protocol.TypeError)
	if m.Error == nil || m.Error.Code != code {
		c.t.Fatalf("error = %+v, want code %s", m.Error, code)
	}
	return m.Error
}

// hello says hello and returns the welcome and the first cart.
func (c *wsClient) hello(client, token string) (*protocol.Message, *protocol.Message) {
	c.t.Helper()
	c.send(&protocol.Message{Type: protocol.TypeHello, Protocol: protocol.Version, Client: client, DeviceToken: token})
	w := c.expect(protocol.TypeWelcome)
	return w, c.expect(protocol.TypeCart)
}

func addOp(client string, seq uint64, sku string, q int) cart.Op {
	return cart.Op{Client: client, Seq: seq, Kind: cart.KindAdd, SKU: sku, Quantity: q}
}

func TestHelloIssuesTokenAndEmptyCart(t *testing.T) {
	_, hs := newServer(t)
	c := dial(t, hs)
	w, first := c.hello("tab-1", "")
	if w.DeviceToken == "" || !strings.HasPrefix(w.CartID, "g_") || w.HeartbeatMS <= 0 || w.Limits == nil {
		t.Fatalf("welcome = %+v", w)
	}
	if first.Cart.Version != 0 || len(first.Cart.Lines) != 0 || first.Acked["tab-1"] != 0 {
		t.Fatalf("first cart = %+v acked %v", first.Cart, first.Acked)
	}
	// The same token on a new connection reaches the same cart.
	c2 := dial(t, hs)
	w2, _ := c2.hello("tab-2", w.DeviceToken)
	if w2.CartID != w.CartID || w2.DeviceToken != "" {
		t.Fatalf("second welcome = %+v, want cart %s and no new token", w2, w.CartID)
	}
}

func TestPushAckAndFanOut(t *testing.T) {
	_, hs := newServer(t)
	a := dial(t, hs)
	w, _ := a.hello("tab-a", "")
	b := dial(t, hs)
	b.hello("tab-b", w.DeviceToken)

	a.send(&protocol.Message{Type: protocol.TypePush, ID: "p1", Ops: []cart.Op{addOp("tab-a", 1, "X", 2), addOp("tab-a", 2, "X", 1)}})
	ack := a.expect(protocol.TypeAck)
	if ack.ID != "p1" || len(ack.Results) != 2 || ack.Results[1].Status != protocol.StatusApplied || ack.Results[1].Version != 2 {
		t.Fatalf("ack = %+v", ack)
	}
	if ack.Cart.Version != 2 || ack.Cart.Lines[0].Quantity != 3 || len(ack.Cart.Lines[0].Contribs) != 0 {
		t.Fatalf("ack cart = %+v", ack.Cart)
	}
	push := b.expect(protocol.TypeCart)
	if push.From != 0 || len(push.By) != 2 || push.Cart.Version != 2 || push.Cart.Lines[0].Quantity != 3 {
		t.Fatalf("push = %+v", push)
	}

	// a's ack carried the cart: its push is not echoed back to a, so the
	// next message a gets is the push of b's edit, made after it.
	b.send(&protocol.Message{Type: protocol.TypePush, ID: "p2", Ops: []cart.Op{addOp("tab-b", 1, "Z", 1)}})
	if ack := b.expect(protocol.TypeAck); ack.Cart.Version != 3 {
		t.Fatalf("b's ack = %+v", ack)
	}
	if push := a.expect(protocol.TypeCart); push.From != 2 || push.Cart.Version != 3 || len(push.By) != 1 || push.By[0].Client != "tab-b" {
		t.Fatalf("a's next message: push %+v, want b's edit at version 3 (not a's own push echoed)", push)
	}

	// The same ops again (a replay after reconnect) have no effect.
	a.send(&protocol.Message{Type: protocol.TypePush, Ops: []cart.Op{addOp("tab-a", 1, "X", 2), addOp("tab-a", 2, "X", 1)}})
	ack = a.expect(protocol.TypeAck)
	for _, r := range ack.Results {
		if r.Status != protocol.StatusDuplicate {
			t.Fatalf("replay result = %+v, want duplicate", r)
		}
	}
	if ack.Cart.Version != 3 || ack.Cart.Line(cart.LineKey("X", nil)).Quantity != 3 {
		t.Fatalf("replay changed the cart: %+v", ack.Cart)
	}

	// A gap stops the batch and names the expected seq.
	a.send(&protocol.Message{Type: protocol.TypePush, Ops: []cart.Op{addOp("tab-a", 5, "Y", 1)}})
	e := a.expectError(protocol.ErrOutOfOrder)
	if !e.Retryable || e.Expected == nil || e.Expected.Seq != 3 {
		t.Fatalf("out_of_order = %+v", e)
	}

	// Sync reports acked seqs per client.
	b.send(&protocol.Message{Type: protocol.TypeSync, ID: "s", Since: 0, Clients: []string{"tab-a", "tab-b"}})
	s := b.expect(protocol.TypeCart)
	if s.ID != "s" || s.Acked["tab-a"] != 2 || s.Acked["tab-b"] != 1 || s.Cart.Version != 3 {
		t.Fatalf("sync reply = %+v", s)
	}
}

func TestRejectedOpDoesNotBlockQueue(t *testing.T) {
	_, hs := newServer(t)
	a := dial(t, hs)
	a.hello("tab-a", "")
	a.send(&protocol.Message{Type: protocol.TypePush, Ops: []cart.Op{
		addOp("tab-a", 1, "X", -4),
		{Client: "tab-a", Seq: 2, Kind: cart.KindSet, SKU: "GONE", Quantity: 1},
		addOp("tab-a", 3, "X", 1_000_000),
		addOp("tab-a", 4, "X", 1),
	}})
	ack := a.expect(protocol.TypeAck)
	wantCodes := []cart.Code{cart.CodeInvalidQuantity, cart.CodeLineNotFound, cart.CodeInvalidQuantity}
	for i, code := range wantCodes {
		r := ack.Results[i]
		if r.Status != protocol.StatusRejected || r.Error == nil || r.Error.Code != code || r.Version != 0 {
			t.Fatalf("result %d = %+v, want rejected %s at version 0", i, r, code)
		}
	}
	if r := ack.Results[3]; r.Status != protocol.StatusApplied || r.Version != 1 {
		t.Fatalf("op behind rejections = %+v, want applied at 1", r)
	}
}

func TestBadInputGetsTypedErrorAndChangesNothing(t *testing.T) {
	_, hs := newServer(t)
	a := dial(t, hs)
	w, _ := a.hello("tab-a", "")
	a.send(&protocol.Message{Type: protocol.TypePush, Ops: []cart.Op{addOp("tab-a", 1, "X", 2)}})
	a.expect(protocol.TypeAck)

	tests := []struct {
		name string
		raw  string
		code protocol.ErrorCode
	}{
		{"malformed json", `{"type":"push","ops":[`, protocol.ErrMalformed},
		{"unknown type", `{"type":"teleport"}`, protocol.ErrUnknownType},
		{"oversized", `{"type":"ping","id":"` + strings.Repeat("x", protocol.MaxMessageBytes) + `"}`, protocol.ErrTooLarge},
		{"absurd quantity", `{"type":"push","ops":[{"client":"tab-a","seq":2,"kind":"add","sku":"X","quantity":99999999999999999999}]}`, protocol.ErrMalformed},
		{"second hello", `{"type":"hello","protocol":1,"client":"tab-a"}`, protocol.ErrHelloRequired},
		{"server-only type", `{"type":"ack"}`, protocol.ErrInvalid},
		{"too many ops", `{"type":"push","ops":[` + strings.TrimSuffix(strings.Repeat(`{"client":"tab-a","seq":2,"kind":"clear"},`, protocol.MaxOpsPerPush+1), ",") + `]}`, protocol.ErrTooLarge},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			a.sendRaw(tt.raw)
			a.expectError(tt.code)
			// The connection still works and the cart is as it was.
			a.send(&protocol.Message{Type: protocol.TypeSync, Clients: []string{"tab-a"}})
			s := a.expect(protocol.TypeCart)
			if s.Cart.Version != 1 || s.Cart.Lines[0].Quantity != 2 || s.Acked["tab-a"] != 1 {
				t.Fatalf("cart after bad input = %+v acked %v", s.Cart, s.Acked)
			}
		})
	}
	// The HTTP view agrees.
	got := httpCart(t, hs, w.DeviceToken)
	if got.Version != 1 || got.Lines[0].Quantity != 2 {
		t.Fatalf("HTTP cart = %+v", got)
	}
}

func TestHandshakeRefusals(t *testing.T) {
	_, hs := newServer(t)
	tests := []struct {
		name string
		raw  string
		code protocol.ErrorCode
	}{
		{"push before hello", `{"type":"push","ops":[{"client":"c","seq":1,"kind":"clear"}]}`, protocol.ErrHelloRequired},
		{"unknown protocol version", `{"type":"hello","protocol":42,"client":"c"}`, protocol.ErrUnsupportedVersion},
		{"forged device token", `{"type":"hello","protocol":1,"client":"c","device_token":"AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA"}`, protocol.ErrUnauthorized},
		{"garbage device token", `{"type":"hello","protocol":1,"client":"c","device_token":"not a token"}`, protocol.ErrUnauthorized},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := dial(t, hs)
			c.sendRaw(tt.raw)
			c.expectError(tt.code)
		})
	}
}

func TestGarbageStreamIsDisconnected(t *testing.T) {
	_, hs := newServer(t)
	c := dial(t, hs)
	c.hello("tab", "")
	for i := 0; i < 10; i++ {
		c.sendRaw("garbage")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	for {
		_, _, err := c.conn.Read(ctx)
		if err != nil {
			if ctx.Err() != nil {
				t.Fatal("server kept the connection open")
			}
			return
		}
	}
}

func httpDo(t testing.TB, method, url, token string, body any) (*http.Response, []byte) {
	t.Helper()
	var rd *bytes.Reader
	switch b := body.(type) {
	case nil:
		rd = bytes.NewReader(nil)
	case string:
		rd = bytes.NewReader([]byte(b))
	default:
		j, _ := json.Marshal(b)
		rd = bytes.NewReader(j)
	}
	req, _ := http.NewRequest(method, url, rd)
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var buf bytes.Buffer
	buf.ReadFrom(resp.Body)
	return resp, buf.Bytes()
}

func httpCart(t testing.TB, hs *httptest.Server, token string) *cart.Cart {
	t.Helper()
	resp, body := httpDo(t, "GET", hs.URL+"/v1/cart", token, nil)
	if resp.StatusCode != 200 {
		t.Fatalf("GET /v1/cart = %d %s", resp.StatusCode, body)
	}
	var cr syncserver.CartResponse
	if err := json.Unmarshal(body, &cr); err != nil {
		t.Fatal(err)
	}
	return cr.Cart
}

func TestHTTPEndpoints(t *testing.T) {
	_, hs := newServer(t)
	resp, body := httpDo(t, "POST", hs.URL+"/v1/devices", "", nil)
	var dev syncserver.DeviceResponse
	if resp.StatusCode != 201 || json.Unmarshal(body, &dev) != nil || dev.DeviceToken == "" {
		t.Fatalf("POST /v1/devices = %d %s", resp.StatusCode, body)
	}
	tok := dev.DeviceToken

	resp, body = httpDo(t, "POST", hs.URL+"/v1/cart/ops", tok, syncserver.OpsRequest{Ops: []cart.Op{addOp("app-1", 1, "X", 2), addOp("app-1", 2, "Y", 1)}})
	var ops syncserver.OpsResponse
	if resp.StatusCode != 200 || json.Unmarshal(body, &ops) != nil || ops.Cart.Version != 2 {
		t.Fatalf("POST ops = %d %s", resp.StatusCode, body)
	}
	resp, body = httpDo(t, "POST", hs.URL+"/v1/cart/ops", tok, syncserver.OpsRequest{Ops: []cart.Op{addOp("app-1", 9, "X", 1)}})
	if resp.StatusCode != http.StatusConflict || !strings.Contains(string(body), `"out_of_order"`) {
		t.Fatalf("gap = %d %s, want 409 out_of_order", resp.StatusCode, body)
	}

	resp, body = httpDo(t, "GET", hs.URL+"/v1/cart/changes?since=1", tok, nil)
	var ch syncserver.ChangesResponse
	if resp.StatusCode != 200 || json.Unmarshal(body, &ch) != nil || len(ch.Changes) != 1 || ch.Changes[0].Version != 2 || ch.Changes[0].Op.SKU != "Y" {
		t.Fatalf("changes = %d %s", resp.StatusCode, body)
	}

	refusals := []struct {
		name, method, path, token string
		body                      any
		status                    int
		code                      protocol.ErrorCode
	}{
		{"no token", "GET", "/v1/cart", "", nil, 401, protocol.ErrUnauthorized},
		{"forged token", "GET", "/v1/cart", "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA", nil, 401, protocol.ErrUnauthorized},
		{"malformed body", "POST", "/v1/cart/ops", tok, "{not json", 400, protocol.ErrMalformed},
		{"empty ops", "POST", "/v1/cart/ops", tok, `{"ops":[]}`, 400, protocol.ErrInvalid},
		{"oversized body", "POST", "/v1/cart/ops", tok, `{"ops":[],"pad":"` + strings.Repeat("x", protocol.MaxMessageBytes) + `"}`, 413, protocol.ErrTooLarge},
		{"bad since", "GET", "/v1/cart/changes?since=-1", tok, nil, 400, protocol.ErrInvalid},
	}
	for _, tt := range refusals {
		t.Run(tt.name, func(t *testing.T) {
			resp, body := httpDo(t, tt.method, hs.URL+tt.path, tt.token, tt.body)
			var er syncserver.ErrorResponse
			if resp.StatusCode != tt.status || json.Unmarshal(body, &er) != nil || er.Error == nil || er.Error.Code != tt.code {
				t.Fatalf("%s %s = %d %s, want %d %s", tt.method, tt.path, resp.StatusCode, body, tt.status, tt.code)
			}
		})
	}
	if c := httpCart(t, hs, tok); c.Version != 2 {
		t.Fatalf("refusals changed the cart: version %d", c.Version)
	}
}

func TestShutdownAcknowledgesInFlightAndCloses(t *testing.T) {
	srv, hs := newServer(t)
	a := dial(t, hs)
	a.hello("tab", "")
	a.send(&protocol.Message{Type: protocol.TypePush, Ops: []cart.Op{addOp("tab", 1, "X", 1)}})
	a.expect(protocol.TypeAck)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	done := make(chan error, 1)
	go func() { done <- srv.Shutdown(ctx) }()
	for {
		if _, _, err := a.conn.Read(ctx); err != nil {
			if ctx.Err() != nil {
				t.Fatal("connection not closed by shutdown")
			}
			break
		}
	}
	if err := <-done; err != nil {
		t.Fatalf("Shutdown: %v", err)
	}
	resp, _ := httpDo(t, "GET", hs.URL+"/v1/sync", "", nil)
	if resp.StatusCode != http.StatusServiceUnavailable {
		t.Fatalf("new connection after shutdown = %d, want 503", resp.StatusCode)
	}
}

// Unknown endpoints and wrong methods get the typed JSON error, like every
// other refusal, not the router's plain text.
func TestUnknownEndpointsTyped(t *testing.T) {
	srv, err := syncserver.New(context.Background(), syncserver.Config{Store: memstore.New()})
	if err != nil {
		t.Fatal(err)
	}
	storetest.StopOnCleanup(t, srv)
	hs := httptest.NewServer(srv)
	t.Cleanup(hs.Close)
	for _, tt := range []struct {
		method, path string
		status       int
		allow        string
	}{
		{http.MethodGet, "/v1/nope", http.StatusNotFound, ""},
		{http.MethodDelete, "/v1/cart", http.StatusMethodNotAllowed, "GET"},
		{http.MethodGet, "/v1/devices", http.StatusMethodNotAllowed, "POST"},
		{http.MethodDelete, "/v1/backend/carts/g_1", http.StatusMethodNotAllowed, "GET"},
		{http.MethodGet, "/v1/backend/checkouts/co_1/complete", http.StatusMethodNotAllowed, "POST"},
		{http.MethodGet, "/v1/backend/events/evt_1/retry", http.StatusMethodNotAllowed, "POST"},
		{http.MethodPut, "/v1/backend/users/alice/cart", http.StatusMethodNotAllowed, "GET, DELETE"},
		{http.MethodGet, "/v1/backend/checkouts/", http.StatusNotFound, ""},
		// The mux would redirect these to another path (another
		// user's cart, for the second).
		{http.MethodPost, "/v1/backend/users//cart/ops", http.StatusNotFound, ""},
		{http.MethodPost, "/v1/backend/users/x//cart/ops", http.StatusNotFound, ""},
		{http.MethodGet, "/v1/cart/./changes", http.StatusNotFound, ""},
		{http.MethodGet, "/v1/backend/carts/g_1/..", http.StatusNotFound, ""},
	} {
		req, _ := http.NewRequest(tt.method, hs.URL+tt.path, nil)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		var body syncserver.ErrorResponse
		derr := json.NewDecoder(resp.Body).Decode(&body)
		resp.Body.Close()
		if resp.StatusCode != tt.status || derr != nil || body.Error == nil || body.Error.Code != protocol.ErrInvalid {
			t.Errorf("%s %s: %d %+v (%v), want %d with a typed invalid error", tt.method, tt.path, resp.StatusCode, body.Error, derr, tt.status)
		}
		if got := resp.Header.Get("Allow"); got != tt.allow {
			t.Errorf("%s %s: Allow %q, want %q", tt.method, tt.path, got, tt.allow)
		}
	}
}

// notingStore records the carts it is told are new.
type notingStore struct {
	*memstore.Store
	mu  sync.Mutex
	new []string
}

func (s *notingStore) NoteNewCart(_ context.Context, cartID string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.new = append(s.new, cartID)
}

func (s *notingStore) noted() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]string(nil), s.new...)
}

// A device token issued by a hello or by POST /v1/devices is noted as a
// new cart (the cache then answers its loads); a returning device is not.
func TestNewDevicesNoted(t *testing.T) {
	store := &notingStore{Store: memstore.New()}
	srv, err := syncserver.New(context.Background(), syncserver.Config{Store: store})
	if err != nil {
		t.Fatal(err)
	}
	storetest.StopOnCleanup(t, srv)
	hs := httptest.NewServer(srv)
	t.Cleanup(hs.Close)
	w, _ := dial(t, hs).hello("tab-1", "")
	dial(t, hs).hello("tab-2", w.DeviceToken)
	resp, body := httpDo(t, http.MethodPost, hs.URL+"/v1/devices", "", nil)
	if resp.StatusCode != http.StatusCreated {
		t.Fatalf("POST /v1/devices: %d %s", resp.StatusCode, body)
	}
	var dev syncserver.DeviceResponse
	if err := json.Unmarshal(body, &dev); err != nil {
		t.Fatal(err)
	}
	if got, want := store.noted(), []string{w.CartID, dev.CartID}; !reflect.DeepEqual(got, want) {
		t.Fatalf("noted %v, want %v", got, want)
	}
}

// hangingStore is a store whose loads hang until their context ends, as
// on a Postgres that stopped answering.
type hangingStore struct {
	*memstore.Store
	hang atomic.Bool
}

func (s *hangingStore) Load(ctx context.Context, cartID string, clients []string) (*syncserver.Record, error) {
	if s.hang.Load() {
		<-ctx.Done()
		return nil, ctx.Err()
	}
	return s.Store.Load(ctx, cartID, clients)
}

// A store that stops answering fails the message that needs it, with a
// retryable error, within the bound: the connection is not held by it and
// goes on taking messages.
func TestHangingStoreFailsTheMessageNotTheConnection(t *testing.T) {
	syncserver.SetHandleWait(t, 300*time.Millisecond)
	store := &hangingStore{Store: memstore.New()}
	_, hs := newServerWith(t, syncserver.Config{Store: store})
	c := dial(t, hs)
	w, _ := c.hello("tab-1", "")

	c2 := dial(t, hs)
	store.hang.Store(true)
	c2.send(&protocol.Message{Type: protocol.TypeHello, ID: "h1", Protocol: protocol.Version, Client: "tab-2", DeviceToken: w.DeviceToken})
	start := time.Now()
	c2.expect(protocol.TypeWelcome)
	if e := c2.expectError(protocol.ErrInternal); !e.Retryable {
		t.Errorf("the hello's cart on a hanging store: %+v, want a retryable error", e)
	}
	if d := time.Since(start); d > 10*time.Second {
		t.Errorf("the hello waited %v for a hanging store", d)
	}
	c.send(&protocol.Message{Type: protocol.TypeSync, ID: "s1"})
	c.expectError(protocol.ErrInternal)
	store.hang.Store(false)
	c.send(&protocol.Message{Type: protocol.TypePing, ID: "p1"})
	c.expect(protocol.TypePong)
	c.send(&protocol.Message{Type: protocol.TypeSync, ID: "s2"})
	c.expect(protocol.TypeCart)
}

// A cart purged on one instance is told to the devices connected to it on
// another, through the bus: one message for the purge's batch, not one per
// cart (a large purge flooded the bus's queue, and live updates were
// dropped from it).
func TestExpiryToldOnAnotherInstance(t *testing.T) {
	clk := &clock{t: time.Now()}
	st, bus := memstore.New(), &countingBus{Bus: syncserver.NewMemBus()}
	cfg := syncserver.Config{Store: st, Bus: bus, GuestRetention: 2 * time.Hour, Now: clk.now}
	a, hsA := newServerWith(t, cfg)
	_, hsB := newServerWith(t, cfg)
	c := dial(t, hsB)
	w, _ := c.hello("tab-1", "")
	c.send(&protocol.Message{Type: protocol.TypePush, ID: "p1", Ops: []cart.Op{{Client: "tab-1", Seq: 1, Kind: cart.KindAdd, SKU: "MUG", Quantity: 1}}})
	c.expect(protocol.TypeAck)
	for range 2 { // two more carts, on instance A, nobody connected
		tok := newDevice(t, hsA)
		resp, body := httpDo(t, "POST", hsA.URL+"/v1/cart/ops", tok, syncserver.OpsRequest{Ops: []cart.Op{{Client: "x", Seq: 1, Kind: cart.KindAdd, SKU: "CAP", Quantity: 1}}})
		if resp.StatusCode != 200 {
			t.Fatalf("an add on instance A: %d %s", resp.StatusCode, body)
		}
	}
	clk.add(3 * time.Hour)
	before := bus.published.Load()
	if n, err := a.Purge(t.Context(), 0); err != nil || n != 3 {
		t.Fatalf("Purge on instance A = %d, %v; want the three carts expired", n, err)
	}
	m := c.read()
	if m.Type != protocol.TypeError || m.ID != "" || m.Error == nil || m.Error.Code != protocol.ErrCartExpired || m.Error.Cart != w.CartID || m.Error.Erased {
		t.Fatalf("the device on instance B got %+v (error %+v), want cart_expired of %s without an id, not erased", m, m.Error, w.CartID)
	}
	if n := bus.published.Load() - before; n != 1 {
		t.Errorf("the purge of three carts published %d bus messages, want 1", n)
	}
}

// countingBus counts what is published on a Bus.
type countingBus struct {
	syncserver.Bus
	published atomic.Int64
}

func (b *countingBus) Publish(ctx context.Context, channel string, payload []byte) error {
	b.published.Add(1)
	return b.Bus.Publish(ctx, channel, payload)
}
