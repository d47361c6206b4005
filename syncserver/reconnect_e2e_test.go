package syncserver_test

import (
	"context"
	"errors"
	"log/slog"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/cartsync/cartsync/shared/cart"
	"github.com/cartsync/cartsync/shared/logkey"
	"github.com/cartsync/cartsync/shared/protocol"
	"github.com/cartsync/cartsync/shared/syncclient"
	"github.com/cartsync/cartsync/syncserver"
)

// The engine's driver against the real server: the backoff starting over
// after a healthy connection, the heartbeat the welcome sets and the
// silence limit, and a storage that fails or is slow to store an ack.

// reconnectLink is an engine's network to the server: it counts dials and
// the pings written, and can drop its open connections or make them
// silent (the server's messages no longer arrive).
type reconnectLink struct {
	url   string
	dials atomic.Int64
	pings atomic.Int64
	mu    sync.Mutex
	conns []*reconnectConn
}

type reconnectConn struct {
	syncclient.Conn
	link   *reconnectLink
	silent atomic.Bool
	closed atomic.Bool
}

func (l *reconnectLink) dial(ctx context.Context) (syncclient.Conn, error) {
	c, err := syncclient.WebsocketDialer(l.url)(ctx)
	if err != nil {
		return nil, err
	}
	rc := &reconnectConn{Conn: c, link: l}
	l.mu.Lock()
	l.conns = append(l.conns, rc)
	l.mu.Unlock()
	l.dials.Add(1)
	return rc, nil
}

// open returns the connections the engine has not closed.
func (l *reconnectLink) open() []*reconnectConn {
	l.mu.Lock()
	defer l.mu.Unlock()
	var out []*reconnectConn
	for _, c := range l.conns {
		if !c.closed.Load() {
			out = append(out, c)
		}
	}
	return out
}

func (c *reconnectConn) Read(ctx context.Context) ([]byte, error) {
	for {
		b, err := c.Conn.Read(ctx)
		if err != nil || !c.silent.Load() {
			return b, err
		}
	}
}

func (c *reconnectConn) Write(ctx context.Context, b []byte) error {
	if m, err := protocol.Decode(b); err == nil && m.Type == protocol.TypePing {
		c.link.pings.Add(1)
	}
	return c.Conn.Write(ctx, b)
}

func (c *reconnectConn) Close() error {
	c.closed.Store(true)
	return c.Conn.Close()
}

// reconnectLog is a slog.Handler that keeps the waits the engine logs
// before its redials: the test reads them instead of measuring time.
type reconnectLog struct {
	mu    sync.Mutex
	waits []time.Duration
}

func (l *reconnectLog) Enabled(context.Context, slog.Level) bool { return true }
func (l *reconnectLog) WithAttrs([]slog.Attr) slog.Handler       { return l }
func (l *reconnectLog) WithGroup(string) slog.Handler            { return l }

func (l *reconnectLog) Handle(_ context.Context, r slog.Record) error {
	if r.Message != "sync connection ended" {
		return nil
	}
	r.Attrs(func(a slog.Attr) bool {
		if a.Key == logkey.RetryIn {
			l.mu.Lock()
			d, _ := time.ParseDuration(a.Value.String()) // logged as a duration string
			l.waits = append(l.waits, d)
			l.mu.Unlock()
			return false
		}
		return true
	})
	return nil
}

func (l *reconnectLog) logged() []time.Duration {
	l.mu.Lock()
	defer l.mu.Unlock()
	return slices.Clone(l.waits)
}

// reconnectEngine runs an engine on st over l until the test ends.
func reconnectEngine(t testing.TB, st syncclient.Storage, l *reconnectLink, mod func(*syncclient.Config)) *syncclient.Engine {
	t.Helper()
	cfg := syncclient.Config{Storage: st, Dial: l.dial, Rand: func() float64 { return 0.5 }}
	if mod != nil {
		mod(&cfg)
	}
	e, err := syncclient.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- e.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; !errors.Is(err, context.Canceled) {
			t.Errorf("Run = %v, want context.Canceled", err)
		}
	})
	return e
}

// reconnectWait waits until ok holds of e's state.
func reconnectWait(t testing.TB, e *syncclient.Engine, what string, ok func(syncclient.State) bool) syncclient.State {
	t.Helper()
	var st syncclient.State
	if !e2eEventually(func() bool { st = e.Snapshot(); return ok(st) }) {
		t.Fatalf("never %s: state %+v", what, st)
	}
	return st
}

func reconnectSynced(st syncclient.State) bool { return st.Status == syncclient.Synced }

func reconnectURL(t testing.TB, cfg syncserver.Config) string {
	t.Helper()
	_, hs := newServerWith(t, cfg)
	return "ws" + strings.TrimPrefix(hs.URL, "http") + "/v1/sync"
}

// A server whose connections drop again and again: each connection was
// healthy (its pushes all acknowledged), so the wait before each redial
// starts over instead of growing towards the cap.
func TestReconnectE2EBackoffStartsOver(t *testing.T) {
	const base = 40 * time.Millisecond
	l := &reconnectLink{url: reconnectURL(t, syncserver.Config{})}
	log := &reconnectLog{}
	e := reconnectEngine(t, syncclient.NewMemStorage(), l, func(c *syncclient.Config) {
		c.BackoffBase, c.Logger = base, slog.New(log)
	})
	const drops = 5
	for i := range drops {
		reconnectWait(t, e, "synced", reconnectSynced)
		ctx, cancel := context.WithTimeout(context.Background(), e2eTimeout)
		if err := e.Add(ctx, "sku"+string(rune('a'+i)), nil, 1, nil); err != nil {
			t.Fatal(err)
		}
		if err := e.Flush(ctx); err != nil {
			t.Fatalf("Flush: %v", err)
		}
		cancel()
		open := l.open()
		if len(open) != 1 {
			t.Fatalf("%d open connections, want 1", len(open))
		}
		open[0].Conn.Close() // the server's end goes away
		reconnectWait(t, e, "redialled", func(syncclient.State) bool { return l.dials.Load() == int64(i+2) })
	}
	st := reconnectWait(t, e, "synced", reconnectSynced)
	if st.Pending != 0 || len(st.Cart.Lines) != drops {
		t.Errorf("state %+v, want the %d lines confirmed", st, drops)
	}
	want := slices.Repeat([]time.Duration{base / 2}, drops) // the first attempt's, at rand 0.5
	if got := log.logged(); !slices.Equal(got, want) {
		t.Errorf("waits before the redials %v, want %v: a healthy connection starts the backoff over", got, want)
	}
}

// The welcome's heartbeat interval is the one used (the engine's own is
// an hour): pings go out on one connection, kept alive by the pongs. A
// connection that falls silent is given up 2.5 heartbeats later and
// redialled. (At 500ms a pong may be 1.25s late before the connection
// counts as silent: room for a loaded machine.)
func TestReconnectE2EHeartbeat(t *testing.T) {
	l := &reconnectLink{url: reconnectURL(t, syncserver.Config{Heartbeat: 500 * time.Millisecond})}
	e := reconnectEngine(t, syncclient.NewMemStorage(), l, func(c *syncclient.Config) {
		c.Heartbeat, c.BackoffBase = time.Hour, 5*time.Millisecond
	})
	reconnectWait(t, e, "synced", reconnectSynced)
	reconnectWait(t, e, "3 pings sent", func(syncclient.State) bool { return l.pings.Load() >= 3 })
	if n := l.dials.Load(); n != 1 {
		t.Errorf("%d dials for 3 heartbeats, want 1", n)
	}

	first := l.open()
	if len(first) != 1 {
		t.Fatalf("%d open connections, want 1", len(first))
	}
	first[0].silent.Store(true)
	reconnectWait(t, e, "redialled", func(syncclient.State) bool { return l.dials.Load() == 2 })
	if !first[0].closed.Load() {
		t.Error("the engine redialled without closing the silent connection")
	}
	reconnectWait(t, e, "synced again", reconnectSynced)
}

// reconnectStorage is a Storage whose Confirm can be made to fail, or to
// wait until released.
type reconnectStorage struct {
	syncclient.Storage
	fail     atomic.Bool
	failures atomic.Int64
	gate     chan struct{} // when not nil, Confirm waits for it to close
	waiting  chan struct{} // closed once a Confirm waits at the gate
}

var errReconnectConfirm = errors.New("confirm failed")

func (s *reconnectStorage) Confirm(ctx context.Context, c *cart.Cart, done []protocol.OpID) error {
	if s.gate != nil {
		close(s.waiting)
		<-s.gate
	}
	if s.fail.Load() {
		s.failures.Add(1)
		return errReconnectConfirm
	}
	return s.Storage.Confirm(ctx, c, done)
}

// An ack whose storing fails shows nothing of it: the engine shows what is
// stored, the op still pending, until a connection stores the ack.
func TestReconnectE2EFailedConfirmShowsWhatIsStored(t *testing.T) {
	l := &reconnectLink{url: reconnectURL(t, syncserver.Config{})}
	store := &reconnectStorage{Storage: syncclient.NewMemStorage()}
	e := reconnectEngine(t, store, l, func(c *syncclient.Config) { c.BackoffBase = 5 * time.Millisecond })
	before := reconnectWait(t, e, "synced", reconnectSynced).Confirmed
	ctx, cancel := context.WithTimeout(context.Background(), e2eTimeout)
	defer cancel()
	store.fail.Store(true)
	if err := e.Add(ctx, "mug", nil, 1, nil); err != nil {
		t.Fatal(err)
	}
	// The connection ends on the storage's error, and the engine dials
	// again: what it shows meanwhile is what is stored.
	reconnectWait(t, e, "redialled", func(syncclient.State) bool { return l.dials.Load() >= 2 })
	if store.failures.Load() == 0 {
		t.Fatal("no confirm failed")
	}
	if st := e.Snapshot(); st.Pending != 1 || st.Confirmed != before {
		t.Errorf("after a failed confirm: %d pending at version %d, want 1 at %d (what is stored)", st.Pending, st.Confirmed, before)
	}
	store.fail.Store(false)
	if err := e.Flush(ctx); err != nil {
		t.Fatalf("Flush: %v", err)
	}
	if st := e.Snapshot(); st.Pending != 0 || st.Confirmed != before+1 || len(st.Cart.Lines) != 1 {
		t.Errorf("after the next connection: %d pending at version %d, want 0 at %d with the mug", st.Pending, st.Confirmed, before+1)
	}
}

// What a connection's input changed is shown only once stored, even when
// another call publishes meanwhile (AckNotices while the ack is written):
// Flush does not return, and Snapshot shows the op pending, until the ack
// is stored.
func TestReconnectE2ENothingShownBeforeStored(t *testing.T) {
	l := &reconnectLink{url: reconnectURL(t, syncserver.Config{})}
	store := &reconnectStorage{Storage: syncclient.NewMemStorage()}
	e := reconnectEngine(t, store, l, nil)
	reconnectWait(t, e, "synced", reconnectSynced)
	ctx := context.Background()
	store.gate, store.waiting = make(chan struct{}), make(chan struct{})
	release := sync.OnceFunc(func() { close(store.gate) })
	t.Cleanup(release) // before the engine stops, if the test fails
	if err := e.Add(ctx, "mug", nil, 1, nil); err != nil {
		t.Fatal(err)
	}
	flushed := make(chan error, 1)
	go func() { flushed <- e.Flush(ctx) }()
	select {
	case <-store.waiting: // the ack is being stored
	case <-time.After(e2eTimeout):
		t.Fatalf("no ack stored within %v", e2eTimeout)
	}
	acked := make(chan struct{})
	go func() { e.AckNotices(); close(acked) }()
	// Watch for a while: AckNotices once published the ack at once.
	for end := time.Now().Add(200 * time.Millisecond); time.Now().Before(end); time.Sleep(time.Millisecond) {
		select {
		case err := <-flushed:
			t.Fatalf("Flush returned (%v) while the ack was being stored", err)
		default:
		}
		if st := e.Snapshot(); st.Pending != 1 {
			t.Fatalf("shown %d pending while the ack was being stored, want 1", st.Pending)
		}
	}
	release()
	if err := <-flushed; err != nil {
		t.Fatalf("Flush: %v", err)
	}
	<-acked
	if st := e.Snapshot(); st.Pending != 0 {
		t.Errorf("%d pending once the ack is stored, want 0", st.Pending)
	}
}
