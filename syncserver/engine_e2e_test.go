package syncserver_test

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/cartsync/cartsync/shared/cart"
	"github.com/cartsync/cartsync/shared/protocol"
	"github.com/cartsync/cartsync/shared/syncclient"
	"github.com/cartsync/cartsync/syncserver"
	"github.com/cartsync/cartsync/syncserver/memstore"
)

// The client engine's driver end to end: real engines over real websockets
// to a real server. The protocol logic they run is tested input by input in
// shared/syncclient (machine_engine_test.go); these check what only a
// running Engine does: Run's loop over a socket, a socket dropped with a
// push in flight, two running tabs sharing one Storage, a push split to
// fit a message, OnChange callbacks that edit.

// e2eTimeout bounds every wait of the end-to-end tests: generous, for a
// loaded machine.
const e2eTimeout = 20 * time.Second

// e2eEventually polls ok until it holds, and reports whether it did within
// e2eTimeout.
func e2eEventually(ok func() bool) bool {
	deadline := time.Now().Add(e2eTimeout)
	for !ok() {
		if time.Now().After(deadline) {
			return false
		}
		time.Sleep(5 * time.Millisecond)
	}
	return true
}

// e2eEnv is a real server on the in-memory store.
type e2eEnv struct {
	t     testing.TB
	store *memstore.Store
	url   string
}

func newE2EEnv(t testing.TB) *e2eEnv {
	t.Helper()
	store := memstore.New()
	_, hs := newServerWith(t, syncserver.Config{Store: store})
	return &e2eEnv{t: t, store: store, url: syncURL(hs)}
}

// engine makes an engine dialling the server with the real websocket
// dialer (or through wrap, if set); mod may change its config.
func (env *e2eEnv) engine(st syncclient.Storage, mod func(*syncclient.Config)) *syncclient.Engine {
	env.t.Helper()
	cfg := syncclient.Config{
		Storage: st, Dial: syncclient.WebsocketDialer(env.url),
		BackoffBase: 5 * time.Millisecond, BackoffCap: 50 * time.Millisecond,
		Rand:   func() float64 { return 0.5 },
		Logger: slog.New(slog.NewTextHandler(env.t.Output(), &slog.HandlerOptions{Level: slog.LevelWarn})),
	}
	if mod != nil {
		mod(&cfg)
	}
	e, err := syncclient.New(cfg)
	if err != nil {
		env.t.Fatal(err)
	}
	return e
}

// run runs e until the test ends, and checks that Run then returns the
// context's error.
func (env *e2eEnv) run(e *syncclient.Engine) {
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- e.Run(ctx) }()
	env.t.Cleanup(func() {
		cancel()
		if err := <-done; err != context.Canceled {
			env.t.Errorf("Run returned %v, want context.Canceled", err)
		}
	})
}

func (env *e2eEnv) flush(e *syncclient.Engine) {
	env.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), e2eTimeout)
	defer cancel()
	if err := e.Flush(ctx); err != nil {
		env.t.Fatalf("Flush: %v (state %+v)", err, e.Snapshot())
	}
}

// converged waits until every engine shows the server's copy of the cart
// the first one shows, at its version, with nothing pending and synced, and
// returns that cart as the server has it.
func (env *e2eEnv) converged(engines ...*syncclient.Engine) *cart.Cart {
	env.t.Helper()
	var server *cart.Cart
	if e2eEventually(func() bool {
		id := engines[0].Snapshot().Cart.ID
		server = nil
		if id == "" {
			return false
		}
		rec, err := env.store.Load(context.Background(), id, nil)
		if err != nil {
			return false
		}
		server = rec.Cart.Public()
		for _, e := range engines {
			st := e.Snapshot()
			if st.Cart.ID != id || st.Pending != 0 || st.Status != syncclient.Synced ||
				st.Confirmed != server.Version || lineSummary(st.Cart) != lineSummary(server) {
				return false
			}
		}
		return true
	}) {
		return server
	}
	for i, e := range engines {
		st := e.Snapshot()
		env.t.Logf("engine %d: cart %q v%d %q, %d pending, %v, last error %v",
			i, st.Cart.ID, st.Confirmed, lineSummary(st.Cart), st.Pending, st.Status, st.LastError)
	}
	if server != nil {
		env.t.Logf("server: v%d %q", server.Version, lineSummary(server))
	}
	env.t.Fatal("the engines never showed the server's cart")
	return nil
}

// e2eConn counts the pushes written on a connection and can lose the
// first ack it reads, dropping the connection there: the server applied
// the push, the engine never heard.
type e2eConn struct {
	syncclient.Conn
	pushes  *atomic.Int32
	loseAck *atomic.Bool // swapped to false by the connection that loses it
	biggest *atomic.Int64
}

func (c *e2eConn) Write(ctx context.Context, b []byte) error {
	if m, err := protocol.Decode(b); err == nil && m.Type == protocol.TypePush {
		c.pushes.Add(1)
		for n := int64(len(b)); ; {
			old := c.biggest.Load()
			if n <= old || c.biggest.CompareAndSwap(old, n) {
				break
			}
		}
	}
	return c.Conn.Write(ctx, b)
}

func (c *e2eConn) Read(ctx context.Context) ([]byte, error) {
	b, err := c.Conn.Read(ctx)
	if err != nil {
		return b, err
	}
	if m, derr := protocol.Decode(b); derr == nil && m.Type == protocol.TypeAck && c.loseAck.CompareAndSwap(true, false) {
		c.Conn.Close()
		return nil, fmt.Errorf("e2e: connection dropped before the ack of %s", m.ID)
	}
	return b, nil
}

// e2eCounter dials the server with the real websocket dialer and counts
// dials and pushes.
type e2eCounter struct {
	url     string
	dials   atomic.Int32
	pushes  atomic.Int32
	loseAck atomic.Bool
	biggest atomic.Int64
}

func (d *e2eCounter) dial(ctx context.Context) (syncclient.Conn, error) {
	d.dials.Add(1)
	c, err := syncclient.WebsocketDialer(d.url)(ctx)
	if err != nil {
		return nil, err
	}
	return &e2eConn{Conn: c, pushes: &d.pushes, loseAck: &d.loseAck, biggest: &d.biggest}, nil
}

// One engine over the real websocket dialer: its edits reach the server's
// cart, and the cart shown is the server's, through adds, a set and a clear.
func TestE2EEngineEdits(t *testing.T) {
	env := newE2EEnv(t)
	store := syncclient.NewMemStorage()
	e := env.engine(store, nil)
	env.run(e)
	ctx := t.Context()
	must := func(err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
	}
	must(e.Add(ctx, "mug", map[string]string{"size": "L"}, 2, nil))
	must(e.Add(ctx, "mug", map[string]string{"size": "L"}, 1, nil))
	must(e.Add(ctx, "tea", nil, 1, &cart.Details{Name: "Tea", Price: 450, Currency: "EUR"}))
	env.flush(e)
	server := env.converged(e)
	if got, want := lineSummary(server), "mug?size=L=3 tea=1"; got != want {
		t.Errorf("server has %q, want %q", got, want)
	}
	if l := server.Line(cart.LineKey("tea", nil)); l == nil || l.Details.Price != 450 || l.Details.Name != "Tea" {
		t.Errorf("the server's tea line %+v, want its details", l)
	}
	stored, err := store.Load(ctx)
	must(err)
	if stored.DeviceToken == "" || stored.Cart == nil || stored.Cart.ID != server.ID || stored.Cart.Version != server.Version {
		t.Errorf("stored token %q and cart %+v, want a token and the server's cart at v%d", stored.DeviceToken, stored.Cart, server.Version)
	}

	must(e.SetQuantity(ctx, "mug", map[string]string{"size": "L"}, 5))
	must(e.Clear(ctx))
	env.flush(e)
	if server := env.converged(e); len(server.Lines) != 0 {
		t.Errorf("server has %q after clear, want nothing", lineSummary(server))
	}
	if st := e.Snapshot(); st.LastError != nil || len(st.Rejected) != 0 {
		t.Errorf("LastError %v, Rejected %v; want none", st.LastError, st.Rejected)
	}
}

// With Config.PushDelay, a held push goes when its delay is up, with no
// other input to wake the engine: no ping (the server's heartbeat is
// seconds away) and no stable timer (an hour). Each Flush would otherwise
// wait until its 5 s run out.
func TestE2EPushDelay(t *testing.T) {
	env := newE2EEnv(t)
	e := env.engine(syncclient.NewMemStorage(), func(c *syncclient.Config) {
		c.PushDelay = 20 * time.Millisecond
		c.StableAfter = time.Hour
	})
	env.run(e)
	ctx := t.Context()
	if !e2eEventually(func() bool { st := e.Snapshot(); return st.Status == syncclient.Synced && st.Cart.ID != "" }) {
		t.Fatalf("not connected: %+v", e.Snapshot())
	}
	for i, sku := range []string{"mug", "tea", "mug"} {
		if err := e.Add(ctx, sku, nil, 1, nil); err != nil {
			t.Fatal(err)
		}
		fctx, cancel := context.WithTimeout(ctx, 5*time.Second)
		err := e.Flush(fctx)
		cancel()
		if err != nil {
			t.Fatalf("edit %d: Flush: %v (state %+v)", i+1, err, e.Snapshot())
		}
	}
	if got, want := lineSummary(env.converged(e)), "mug=2 tea=1"; got != want {
		t.Errorf("server has %q, want %q", got, want)
	}
}

// A page adds and is closed before its add is sent; the next page of the
// same device clears the cart at once (the storefront's "order placed"
// step). The clear was made after the add and must land after it, whatever
// the two pages' client ids: the cart ends empty, on the server too.
func TestE2EClearAfterAnotherPagesUnsentAdd(t *testing.T) {
	env := newE2EEnv(t)
	shared := syncclient.NewMemStorage()
	first := env.engine(shared, func(c *syncclient.Config) { c.ClientID = "page-1" })
	env.run(first)
	ctx := t.Context()
	if err := first.Add(ctx, "mug", nil, 1, nil); err != nil {
		t.Fatal(err)
	}
	env.flush(first)
	synced := first.Snapshot().Cart
	// The closed page's add, left in the shared outbox; its client id
	// sorts after the next page's.
	if _, err := shared.Enqueue(ctx, "page-2", func(seq uint64) cart.Op {
		return cart.Op{Client: "page-2", Seq: seq, Kind: cart.KindAdd, SKU: "tea", Quantity: 1, Cart: synced.ID, Base: synced.Version}
	}); err != nil {
		t.Fatal(err)
	}
	next := env.engine(shared, func(c *syncclient.Config) { c.ClientID = "page-0" })
	env.run(next)
	if err := next.Clear(ctx); err != nil {
		t.Fatal(err)
	}
	env.flush(next)
	if got := lineSummary(env.converged(next)); got != "" {
		t.Errorf("after the clear the server has %q, want an empty cart", got)
	}
}

// Two tabs share one Storage and start at once, neither with a device
// token: they settle on one token and one cart, each sends every pending
// op whoever queued it, the server takes each once, and both end showing
// the server's cart.
func TestE2ETwoRunningTabs(t *testing.T) {
	env := newE2EEnv(t)
	shared := syncclient.NewMemStorage()
	tabA, tabB := env.engine(shared, nil), env.engine(shared, nil)
	env.run(tabA)
	env.run(tabB)
	ctx := t.Context()
	for i := range 10 {
		if err := tabA.Add(ctx, fmt.Sprintf("a%d", i%3), nil, 1, nil); err != nil {
			t.Fatal(err)
		}
		if err := tabB.Add(ctx, fmt.Sprintf("b%d", i%2), nil, 1, nil); err != nil {
			t.Fatal(err)
		}
	}
	env.flush(tabA)
	env.flush(tabB)
	server := env.converged(tabA, tabB)
	if got, want := lineSummary(server), "a0=4 a1=3 a2=3 b0=5 b1=5"; got != want {
		t.Errorf("server has %q, want %q (each op once)", got, want)
	}
	stored, err := shared.Load(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if stored.DeviceToken == "" || stored.Cart == nil || stored.Cart.ID != server.ID {
		t.Errorf("stored token %q, cart %+v; want one token, of the cart %q both show", stored.DeviceToken, stored.Cart, server.ID)
	}
}

// The connection drops after the server applied a push and before its ack
// arrived: the engine dials again, and the hello's reply, which says what
// the server has of its client id, settles the push; nothing is sent
// twice, nothing applied twice.
func TestE2EDisconnectMidPush(t *testing.T) {
	env := newE2EEnv(t)
	d := &e2eCounter{url: env.url}
	d.loseAck.Store(true)
	e := env.engine(syncclient.NewMemStorage(), func(c *syncclient.Config) { c.Dial = d.dial })
	ctx := t.Context()
	for range 3 {
		if err := e.Add(ctx, "mug", nil, 1, nil); err != nil {
			t.Fatal(err)
		}
	}
	env.run(e)
	env.flush(e)
	server := env.converged(e)
	if got, want := lineSummary(server), "mug=3"; got != want {
		t.Errorf("server has %q, want %q", got, want)
	}
	if d.loseAck.Load() {
		t.Fatal("no ack was lost: the test did not test")
	}
	if n := d.dials.Load(); n != 2 {
		t.Errorf("%d dials, want 2", n)
	}
	if n := d.pushes.Load(); n != 1 {
		t.Errorf("%d pushes, want 1 (none resent after reconnecting)", n)
	}
}

// More ops than fit in one message: the engine splits its push to fit
// protocol.MaxMessageBytes, and the server takes them all.
func TestE2EPushSplitToFit(t *testing.T) {
	env := newE2EEnv(t)
	d := &e2eCounter{url: env.url}
	e := env.engine(syncclient.NewMemStorage(), func(c *syncclient.Config) { c.Dial = d.dial })
	ctx := t.Context()
	lim := cart.DefaultLimits
	opts := map[string]string{}
	for i := range lim.MaxOptions {
		opts[fmt.Sprintf("%02d%s", i, strings.Repeat("k", lim.MaxOptionLen-2))] = strings.Repeat("v", lim.MaxOptionLen)
	}
	det := &cart.Details{
		Name:  strings.Repeat("n", lim.MaxName),
		Image: "https://img.example/" + strings.Repeat("i", lim.MaxImage-len("https://img.example/")),
	}
	// Adds to one line, so the cart the server sends back stays small.
	one, err := json.Marshal(cart.Op{Kind: cart.KindAdd, SKU: "mug", Options: opts, Quantity: 1, Details: det})
	if err != nil {
		t.Fatal(err)
	}
	n := protocol.MaxMessageBytes/len(one) + 5
	if n > protocol.MaxOpsPerPush {
		t.Fatalf("%d ops of %d bytes would be split by count, not size", n, len(one))
	}
	for range n {
		if err := e.Add(ctx, "mug", opts, 1, det); err != nil {
			t.Fatal(err)
		}
	}
	env.run(e)
	env.flush(e)
	server := env.converged(e)
	if len(server.Lines) != 1 || server.Lines[0].Quantity != n {
		t.Errorf("server has %q, want the mug %d times", lineSummary(server), n)
	}
	if p := d.pushes.Load(); p < 2 {
		t.Errorf("%d pushes for %d ops of this size, want them split", p, n)
	}
	if b := d.biggest.Load(); b > protocol.MaxMessageBytes {
		t.Errorf("a push of %d bytes, over the %d a message may have", b, protocol.MaxMessageBytes)
	}
	if st := e.Snapshot(); st.LastError != nil || len(st.Rejected) != 0 || len(st.Dropped) != 0 {
		t.Errorf("LastError %v, Rejected %v, Dropped %v; want none", st.LastError, st.Rejected, st.Dropped)
	}
}

// OnChange may call the engine, edits included, without deadlocking, and
// its last call shows the newest state.
func TestE2EOnChangeMayEdit(t *testing.T) {
	env := newE2EEnv(t)
	var (
		e    *syncclient.Engine
		once sync.Once
		mu   sync.Mutex
		last syncclient.State
	)
	e = env.engine(syncclient.NewMemStorage(), func(c *syncclient.Config) {
		c.OnChange = func(s syncclient.State) {
			mu.Lock()
			last = s
			mu.Unlock()
			if s.Pending == 1 {
				once.Do(func() {
					if err := e.Add(context.Background(), "spoon", nil, 1, nil); err != nil {
						t.Errorf("Add in OnChange: %v", err)
					}
				})
			}
		}
	})
	env.run(e)
	if err := e.Add(t.Context(), "mug", nil, 1, nil); err != nil {
		t.Fatal(err)
	}
	env.flush(e)
	server := env.converged(e)
	if got, want := lineSummary(server), "mug=1 spoon=1"; got != want {
		t.Errorf("server has %q, want %q", got, want)
	}
	// The last call may still be on its way when the snapshot shows it.
	var s syncclient.State
	if !e2eEventually(func() bool {
		mu.Lock()
		s = last
		mu.Unlock()
		return s.Status == syncclient.Synced && s.Pending == 0 && lineSummary(s.Cart) == "mug=1 spoon=1"
	}) {
		t.Fatalf("last OnChange state: %v, %d pending, %q; want synced with both lines", s.Status, s.Pending, lineSummary(s.Cart))
	}
}
