package syncclient

import (
	"context"
	"errors"
	"log/slog"
	"sync"
	"testing"
	"time"

	"github.com/cartsync/cartsync/shared/cart"
	"github.com/cartsync/cartsync/shared/protocol"
)

func testLogger(t testing.TB) *slog.Logger {
	return slog.New(slog.NewTextHandler(t.Output(), &slog.HandlerOptions{Level: slog.LevelWarn}))
}

// newEngine makes an engine on store with no Dial unless mod sets one.
func newEngine(t testing.TB, store Storage, mod func(*Config)) *Engine {
	t.Helper()
	cfg := Config{Storage: store, Logger: testLogger(t), Rand: func() float64 { return 0.5 }}
	if mod != nil {
		mod(&cfg)
	}
	e, err := New(cfg)
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	return e
}

// start runs e until the test ends.
func start(t testing.TB, e *Engine) {
	t.Cleanup(run(t, e))
}

// run runs e until the returned stop is called.
func run(t testing.TB, e *Engine) (stop func()) {
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- e.Run(ctx) }()
	var once sync.Once
	return func() {
		once.Do(func() {
			cancel()
			if err := <-done; !errors.Is(err, context.Canceled) {
				t.Errorf("Run returned %v, want context.Canceled", err)
			}
		})
	}
}

func must(t testing.TB, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

func TestEditValidation(t *testing.T) {
	store := NewMemStorage()
	e := newEngine(t, store, nil)
	ctx := context.Background()
	tests := []struct {
		name string
		edit func() error
		code cart.Code
	}{
		{"zero add", func() error { return e.Add(ctx, "mug", nil, 0, nil) }, cart.CodeInvalidQuantity},
		{"huge add", func() error { return e.Add(ctx, "mug", nil, 1000, nil) }, cart.CodeInvalidQuantity},
		{"empty sku", func() error { return e.SetQuantity(ctx, " ", nil, 1) }, cart.CodeInvalidSKU},
		{"bad image", func() error {
			return e.SetDetails(ctx, "mug", nil, cart.Details{Image: "javascript:alert(1)"})
		}, cart.CodeInvalidDetails},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := tt.edit()
			var ce *cart.Error
			if !errors.As(err, &ce) || ce.Code != tt.code {
				t.Fatalf("err = %v, want a *cart.Error %s", err, tt.code)
			}
		})
	}
	st, err := store.Load(ctx)
	must(t, err)
	if len(st.Pending) != 0 {
		t.Errorf("invalid edits queued %d ops", len(st.Pending))
	}
}

func TestEditsShowAtOnce(t *testing.T) {
	store := NewMemStorage()
	var mu sync.Mutex
	var seen []State
	e := newEngine(t, store, func(c *Config) {
		c.ClientID = "tab-1"
		c.OnChange = func(s State) { mu.Lock(); seen = append(seen, s); mu.Unlock() }
	})
	ctx := context.Background()
	must(t, e.Add(ctx, "mug", map[string]string{"Color": "red"}, 2, &cart.Details{Name: "Mug"}))
	must(t, e.Add(ctx, "mug", map[string]string{" color ": "red"}, 1, nil))
	must(t, e.Add(ctx, "tea", nil, 1, nil))
	must(t, e.Remove(ctx, "tea", nil))
	st := e.Snapshot()
	if got, want := summary(st.Cart), "mug?color=red=3"; got != want {
		t.Errorf("shown cart %q, want %q", got, want)
	}
	if st.Pending != 4 || st.Confirmed != 0 || st.Status != Offline {
		t.Errorf("state = pending %d, confirmed %d, %v; want 4, 0, offline", st.Pending, st.Confirmed, st.Status)
	}
	stored, err := store.Load(ctx)
	must(t, err)
	for i, op := range stored.Pending {
		if op.Client != "tab-1" || op.Seq != uint64(i+1) {
			t.Errorf("stored op %d is %s/%d, want tab-1/%d", i, op.Client, op.Seq, i+1)
		}
	}
	mu.Lock()
	defer mu.Unlock()
	if len(seen) == 0 || seen[len(seen)-1].Pending != 4 {
		t.Errorf("OnChange saw %d states, the last not with 4 pending ops", len(seen))
	}
}

// pausingStorage holds an Enqueue after the op is stored until resume is
// closed, telling stored when it got there.
type pausingStorage struct {
	*MemStorage
	stored, resume chan struct{}
}

func (s pausingStorage) Enqueue(ctx context.Context, client string, build func(seq uint64) cart.Op) (cart.Op, error) {
	op, err := s.MemStorage.Enqueue(ctx, client, build)
	close(s.stored)
	<-s.resume
	return op, err
}

// An edit shows its op from memory once it is stored. If meanwhile the op
// was sent and confirmed (by another tab sharing the storage) and a reload
// came, the op must be shown once, in the confirmed cart, not also again
// as pending: no reload runs between storing an op and showing it.
func TestEditShownOnceWhenConfirmedMeanwhile(t *testing.T) {
	mem := &MemStorage{}
	ps := pausingStorage{MemStorage: mem, stored: make(chan struct{}), resume: make(chan struct{})}
	e := newEngine(t, ps, nil)
	ctx := t.Context()
	if err := e.Reload(ctx); err != nil {
		t.Fatal(err)
	}
	added := make(chan error, 1)
	go func() { added <- e.Add(ctx, "TEE-01", nil, 1, nil) }()
	<-ps.stored

	// Another tab sends the op; the server applies it; that tab confirms.
	st, err := mem.Load(ctx)
	if err != nil || len(st.Pending) != 1 {
		t.Fatalf("storage after the store: %+v, %v", st, err)
	}
	op := st.Pending[0]
	confirmed := &cart.Cart{ID: "g_1", Lines: []*cart.Line{}}
	if _, cerr := confirmed.Apply(op, op.Client, cart.DefaultLimits); cerr != nil {
		t.Fatal(cerr)
	}
	if err := mem.Confirm(ctx, confirmed, []protocol.OpID{{Client: op.Client, Seq: op.Seq}}); err != nil {
		t.Fatal(err)
	}
	reloaded := make(chan error, 1)
	go func() { reloaded <- e.Reload(ctx) }() // as that tab's news would
	// A reload that did not wait for the edit would be done by now; give
	// it the time, since the failure to catch is that it finishes first.
	var rerr error
	done := false
	select {
	case rerr = <-reloaded:
		done = true
	case <-time.After(200 * time.Millisecond):
	}

	close(ps.resume)
	if err := <-added; err != nil {
		t.Fatalf("Add: %v", err)
	}
	if !done {
		rerr = <-reloaded
	}
	if rerr != nil {
		t.Fatalf("Reload: %v", rerr)
	}
	s := e.Snapshot()
	if l := s.Cart.Line(cart.LineKey("TEE-01", nil)); l == nil || l.Quantity != 1 || s.Pending != 0 {
		t.Fatalf("after the edit and the reload: line %+v, %d pending; want quantity 1 (shown once), none pending", l, s.Pending)
	}
}

// A nil Logger, or a nil *slog.Logger in it, means the default; a Logger
// given is used.
func TestConfigLogger(t *testing.T) {
	var nilSlog *slog.Logger
	given := slog.New(slog.DiscardHandler)
	for _, c := range []struct {
		name string
		in   Logger
		want Logger
	}{{"nil", nil, defaultLogger()}, {"nil *slog.Logger", nilSlog, defaultLogger()}, {"given", given, given}} {
		if got := (Config{Logger: c.in}).withDefaults().Logger; got != c.want {
			t.Errorf("%s: Logger %#v, want %#v", c.name, got, c.want)
		}
	}
}

// A refusal another tab heard of joins State.Rejected once, an op it saw
// applied reduced joins State.Reduced once, and each tells the UI; an op
// already there, and a result that is neither, change nothing.
func TestNoteResults(t *testing.T) {
	changes := 0
	e := newEngine(t, NewMemStorage(), func(c *Config) { c.OnChange = func(State) { changes++ } })
	refused := protocol.Result{Client: "tab-b", Seq: 3, Status: protocol.StatusRejected, Version: 4, Error: &cart.Error{Code: cart.CodeOutOfStock, Message: "out of stock"}}
	cut := protocol.Result{Client: "tab-b", Seq: 5, Status: protocol.StatusApplied, Version: 6, Warnings: []cart.Warning{{Code: cart.CodeStockClamped, Message: "only 3"}}}
	e.NoteResults(refused, cut)
	st := e.Snapshot()
	if rej := st.Rejected; len(rej) != 1 || rej[0].Client != "tab-b" || rej[0].Seq != 3 || rej[0].Error.Code != cart.CodeOutOfStock {
		t.Fatalf("Rejected = %+v, want tab-b/3 out_of_stock", rej)
	}
	if red := st.Reduced; len(red) != 1 || red[0].Seq != 5 || red[0].Warnings[0].Code != cart.CodeStockClamped {
		t.Fatalf("Reduced = %+v, want tab-b/5 stock_clamped", red)
	}
	if changes != 1 {
		t.Errorf("OnChange called %d times, want 1", changes)
	}
	e.NoteResults(refused, cut, protocol.Result{Client: "tab-b", Seq: 4, Status: protocol.StatusApplied, Version: 5})
	if st := e.Snapshot(); len(st.Rejected) != 1 || len(st.Reduced) != 1 {
		t.Errorf("after the same results and a plain applied op: Rejected %+v, Reduced %+v; want one each", st.Rejected, st.Reduced)
	}
	if changes != 1 {
		t.Errorf("OnChange called %d times, want still 1", changes)
	}
}

// From Run's start to the first connection, the engine says connecting,
// not offline: an edit made while the first connection opens is not told
// it was made offline. Without a dial it says offline again.
func TestConnectingFromRunsStart(t *testing.T) {
	dialed := make(chan struct{})
	release := make(chan struct{})
	e := newEngine(t, NewMemStorage(), func(c *Config) {
		c.Dial = func(ctx context.Context) (Conn, error) {
			close(dialed)
			select {
			case <-release:
			case <-ctx.Done():
			}
			return nil, errors.New("no server")
		}
	})
	if st := e.Snapshot(); st.Status != Offline {
		t.Fatalf("before Run: status %s, want offline", st.Status)
	}
	stop := run(t, e)
	<-dialed
	must(t, e.Add(context.Background(), "TEE", nil, 1, nil))
	if st := e.Snapshot(); st.Status != Connecting || st.Pending != 1 {
		t.Errorf("while the first dial is open: status %s with %d pending, want connecting with 1", st.Status, st.Pending)
	}
	close(release)
	stop()
	if st := e.Snapshot(); st.Status != Offline {
		t.Errorf("after Run: status %s, want offline", st.Status)
	}
}
