package syncclient

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/cartsync/cartsync/shared/logkey"
	"github.com/cartsync/cartsync/shared/protocol"
)

func TestRedialBackoff(t *testing.T) {
	const base, hold, ceil = 500 * time.Millisecond, 5 * time.Second, 30 * time.Second
	// The ceiling of each attempt: 0.5, 1, 2, 4 s, then 5 s for 12
	// attempts, then 10, 20, 30 s.
	want := []time.Duration{500 * time.Millisecond, time.Second, 2 * time.Second, 4 * time.Second}
	for range holdTries {
		want = append(want, hold)
	}
	want = append(want, 10*time.Second, 20*time.Second, 30*time.Second, 30*time.Second)
	for n, w := range want {
		if got := redialBackoff(n, base, hold, ceil, func() float64 { return 1 }); got != w {
			t.Errorf("ceiling of attempt %d = %v, want %v", n, got, w)
		}
		if got := redialBackoff(n, base, hold, ceil, func() float64 { return 0.5 }); got != w/2 {
			t.Errorf("attempt %d with rand 0.5 = %v, want %v", n, got, w/2)
		}
	}
	if got := redialBackoff(1000, base, hold, ceil, func() float64 { return 0.999 }); got != 29970*time.Millisecond {
		t.Errorf("attempt 1000 with rand 0.999 = %v, want 29.97s", got)
	}
	if got := redialBackoff(0, 0, hold, ceil, func() float64 { return 0.5 }); got != 0 {
		t.Errorf("no base: %v, want 0", got)
	}
	// A hold above the cap is the cap.
	if got := redialBackoff(20, base, time.Minute, ceil, func() float64 { return 1 }); got != ceil {
		t.Errorf("hold above the cap: ceiling %v, want %v", got, ceil)
	}
}

// Run, the driver, on connections that need no server: a Dial that fails,
// and tinyConn, which hears what it was given, then ends or hears nothing
// more. Run logs the wait before each redial; retryLog reads it there, so
// that no test measures time.

// retryLog is a slog.Handler that keeps the waits Run logs before its
// redials.
type retryLog struct {
	mu    sync.Mutex
	waits []time.Duration
	ended chan struct{} // if not nil, gets a value for each wait
}

func (l *retryLog) Enabled(context.Context, slog.Level) bool { return true }
func (l *retryLog) WithAttrs([]slog.Attr) slog.Handler       { return l }
func (l *retryLog) WithGroup(string) slog.Handler            { return l }

func (l *retryLog) Handle(_ context.Context, r slog.Record) error {
	if r.Message != "sync connection ended" {
		return nil
	}
	r.Attrs(func(a slog.Attr) bool {
		if a.Key != logkey.RetryIn {
			return true
		}
		l.mu.Lock()
		d, _ := time.ParseDuration(a.Value.String()) // logged as a duration string
		l.waits = append(l.waits, d)
		l.mu.Unlock()
		if l.ended != nil {
			select {
			case l.ended <- struct{}{}:
			default:
			}
		}
		return false
	})
	return nil
}

func (l *retryLog) logged() []time.Duration {
	l.mu.Lock()
	defer l.mu.Unlock()
	return slices.Clone(l.waits)
}

var errTinyClosed = errors.New("tinyConn: closed")

// tinyConn is a connection to no server. Once the engine has written (its
// hello), reads return the messages of says, then io.EOF (hangUp) or
// nothing until the engine closes it. It records what the engine writes
// and whether it closed it.
type tinyConn struct {
	hangUp bool
	wrote  chan struct{} // closed at the first write
	closed chan struct{}
	wOnce  sync.Once
	cOnce  sync.Once

	mu   sync.Mutex
	says []*protocol.Message
	sent []string // the types of the messages written
}

func newTinyConn(hangUp bool, says ...*protocol.Message) *tinyConn {
	return &tinyConn{hangUp: hangUp, says: says, wrote: make(chan struct{}), closed: make(chan struct{})}
}

func (c *tinyConn) Read(ctx context.Context) ([]byte, error) {
	select {
	case <-c.wrote:
	case <-c.closed:
		return nil, errTinyClosed
	case <-ctx.Done():
		return nil, ctx.Err()
	}
	c.mu.Lock()
	if len(c.says) > 0 {
		m := c.says[0]
		c.says = c.says[1:]
		c.mu.Unlock()
		return protocol.Encode(m)
	}
	c.mu.Unlock()
	if c.hangUp {
		return nil, io.EOF
	}
	select {
	case <-c.closed:
		return nil, errTinyClosed
	case <-ctx.Done():
		return nil, ctx.Err()
	}
}

func (c *tinyConn) Write(ctx context.Context, b []byte) error {
	m, err := protocol.Decode(b)
	if err != nil {
		return err
	}
	c.mu.Lock()
	c.sent = append(c.sent, m.Type)
	c.mu.Unlock()
	c.wOnce.Do(func() { close(c.wrote) })
	return nil
}

func (c *tinyConn) Close() error {
	c.cOnce.Do(func() { close(c.closed) })
	return nil
}

// check reports a connection the engine did not say hello on first, or
// did not close.
func (c *tinyConn) check(t testing.TB, which string) {
	t.Helper()
	c.mu.Lock()
	sent := slices.Clone(c.sent)
	c.mu.Unlock()
	if len(sent) == 0 || sent[0] != protocol.TypeHello {
		t.Errorf("%s: the engine sent %v, want a hello first", which, sent)
	}
	select {
	case <-c.closed:
	default:
		t.Errorf("%s: the engine did not close the connection", which)
	}
}

// Connections that fail, at the dial or before the hello is answered: the
// wait before each redial grows as redialBackoff says, up to the hold for
// holdTries attempts, then up to the cap; the engine shows itself offline
// meanwhile. (A connection that stayed up, or whose pushes were all
// acknowledged, starts the waits over: TestMachineReconnect, and against
// the real server TestReconnectE2EBackoffStartsOver in syncserver.)
func TestRunRedialBackoff(t *testing.T) {
	const base, hold, ceil = time.Millisecond, 4 * time.Millisecond, 16 * time.Millisecond
	const dials = 3 + holdTries + 3 // up to the hold, through it, up to the cap
	tests := []struct {
		name string
		conn func() *tinyConn // nil: the dial fails
	}{
		{"the dial fails", func() *tinyConn { return nil }},
		{"the hello is never answered", func() *tinyConn { return newTinyConn(true) }},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			log := &retryLog{}
			ctx, cancel := context.WithCancel(context.Background())
			defer cancel()
			var e *Engine
			var conns []*tinyConn
			n := 0
			e = newEngine(t, NewMemStorage(), func(c *Config) {
				c.BackoffBase, c.BackoffHold, c.BackoffCap = base, hold, ceil
				c.Logger = slog.New(log)
				c.Dial = func(context.Context) (Conn, error) { // on Run's goroutine: this one
					n++
					if st := e.Snapshot().Status; n > 1 && st != Offline {
						t.Errorf("dial %d: status %v between connections, want offline", n, st)
					}
					if n == dials {
						cancel()
						return nil, context.Canceled
					}
					if c := tt.conn(); c != nil {
						conns = append(conns, c)
						return c, nil
					}
					return nil, errors.New("connection refused")
				}
			})
			if err := e.Run(ctx); !errors.Is(err, context.Canceled) {
				t.Fatalf("Run = %v, want context.Canceled", err)
			}
			waits := log.logged()
			if len(waits) != dials-1 {
				t.Fatalf("%d waits logged for %d dials: %v", len(waits), dials, waits)
			}
			for i, w := range waits {
				if want := redialBackoff(i, base, hold, ceil, func() float64 { return 0.5 }); w != want {
					t.Errorf("wait %d: %v, want %v", i, w, want)
				}
			}
			if waits[3] != hold/2 || waits[len(waits)-1] != ceil/2 {
				t.Errorf("waits %v: want them held at %v, then capped at %v (rand 0.5)", waits, hold/2, ceil/2)
			}
			for i, c := range conns {
				c.check(t, fmt.Sprintf("connection %d", i+1))
			}
		})
	}
}

// going_away ends the connection, and the next dial waits the delay the
// server asked for, plus jitter: half of BackoffBase (500ms) at rand 0.5.
func TestRunWaitsAsAsked(t *testing.T) {
	log := &retryLog{ended: make(chan struct{}, 1)}
	pe := protocol.Errorf(protocol.ErrGoingAway, "restarting")
	pe.RetryAfterMS = 3000
	conn := newTinyConn(false, &protocol.Message{Type: protocol.TypeError, Error: pe})
	dials := 0
	e := newEngine(t, NewMemStorage(), func(c *Config) {
		c.Logger = slog.New(log)
		c.Dial = func(context.Context) (Conn, error) {
			dials++
			return conn, nil
		}
	})
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	done := make(chan error, 1)
	go func() { done <- e.Run(ctx) }()
	select {
	case <-log.ended:
	case <-time.After(time.Minute):
		t.Fatal("the connection did not end within a minute of going_away")
	}
	cancel()
	if err := <-done; !errors.Is(err, context.Canceled) {
		t.Errorf("Run = %v, want context.Canceled", err)
	}
	if waits := log.logged(); !slices.Equal(waits, []time.Duration{3250 * time.Millisecond}) {
		t.Errorf("waits %v after going_away with retry_after_ms 3000, want [3.25s]", waits)
	}
	if dials != 1 {
		t.Errorf("%d dials, want 1: the next waits", dials)
	}
	conn.check(t, "the connection told going_away")
}

// unsupported_version stops Run with the error: reconnecting cannot help.
func TestRunStopsAtUnsupportedVersion(t *testing.T) {
	conn := newTinyConn(false, &protocol.Message{Type: protocol.TypeError, ID: "h1",
		Error: protocol.Errorf(protocol.ErrUnsupportedVersion, "too old")})
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	dials := 0
	e := newEngine(t, NewMemStorage(), func(c *Config) {
		c.Dial = func(context.Context) (Conn, error) { // on Run's goroutine: this one
			dials++
			if dials > 1 { // Run went on: end it, rather than hang the test
				cancel()
				return nil, context.Canceled
			}
			return conn, nil
		}
	})
	err := e.Run(ctx)
	var pe *protocol.Error
	if !errors.As(err, &pe) || pe.Code != protocol.ErrUnsupportedVersion {
		t.Errorf("Run = %v, want unsupported_version", err)
	}
	if st := e.Snapshot(); st.Status != Offline || st.LastError == nil || st.LastError.Code != protocol.ErrUnsupportedVersion {
		t.Errorf("state %+v, want offline with the error", st)
	}
	if dials != 1 {
		t.Errorf("%d dials, want 1", dials)
	}
	conn.check(t, "the connection told unsupported_version")
}

// A second Run while one runs returns ErrRunning; once the first has
// returned, Run runs again.
func TestRunTwice(t *testing.T) {
	dialled := make(chan struct{})
	once := sync.Once{}
	e := newEngine(t, NewMemStorage(), func(c *Config) {
		c.Dial = func(ctx context.Context) (Conn, error) {
			once.Do(func() { close(dialled) })
			<-ctx.Done()
			return nil, ctx.Err()
		}
	})
	stop := run(t, e)
	<-dialled
	if err := e.Run(context.Background()); !errors.Is(err, ErrRunning) {
		t.Errorf("second Run = %v, want ErrRunning", err)
	}
	stop() // checks that the first returns context.Canceled
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if err := e.Run(ctx); !errors.Is(err, context.Canceled) {
		t.Errorf("Run after the first returned = %v, want context.Canceled", err)
	}
}

func TestClientIDGenerated(t *testing.T) {
	a := newEngine(t, NewMemStorage(), nil)
	b := newEngine(t, NewMemStorage(), nil)
	if len(a.ClientID()) != 32 || a.ClientID() == b.ClientID() {
		t.Errorf("client ids %q and %q, want two different 32-digit hex ids", a.ClientID(), b.ClientID())
	}
	if _, err := New(Config{Storage: NewMemStorage(), ClientID: "bad\nid"}); err == nil {
		t.Error("New accepted a client id with a newline")
	}
}

func TestBackoff(t *testing.T) {
	const base, ceil = 500 * time.Millisecond, 30 * time.Second
	tests := []struct {
		name    string
		attempt int
		rnd     float64
		want    time.Duration
	}{
		{"first, low", 0, 0, 0},
		{"first, half", 0, 0.5, 250 * time.Millisecond},
		{"first, high", 0, 0.999, 499500 * time.Microsecond},
		{"third, half", 2, 0.5, time.Second},
		{"sixth, half", 5, 0.5, 8 * time.Second},
		{"capped", 6, 0.5, 15 * time.Second},
		{"far past the cap", 1000, 0.5, 15 * time.Second},
		{"capped, high", 1000, 0.999, 29970 * time.Millisecond},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := backoff(tt.attempt, base, ceil, func() float64 { return tt.rnd })
			if got != tt.want {
				t.Errorf("backoff(%d) with rand %v = %v, want %v", tt.attempt, tt.rnd, got, tt.want)
			}
		})
	}
	for n := range 64 {
		bound := min(ceil, base<<min(n, 20))
		for _, r := range []float64{0, 0.3, 0.9999999} {
			if d := backoff(n, base, ceil, func() float64 { return r }); d < 0 || d >= bound {
				t.Errorf("backoff(%d) with rand %v = %v, want in [0, %v)", n, r, d, bound)
			}
		}
	}
}

// otherTabStorage is a MemStorage where another tab stores a device token
// of its own just before each of the first n swaps: the swap then answers
// that token, as two tabs that logged out together and were each given a
// new one find.
type otherTabStorage struct {
	*MemStorage
	n int
}

func (s *otherTabStorage) SwapDeviceToken(ctx context.Context, old, next string) (string, error) {
	if s.n > 0 {
		s.n--
		return s.MemStorage.SwapDeviceToken(ctx, old, fmt.Sprintf("other-tab-%d", s.n))
	}
	return s.MemStorage.SwapDeviceToken(ctx, old, next)
}

// A welcome whose new device token another tab beat to the storage ends
// the connection, to go on with that tab's token: at once, connecting, not
// offline after a wait (nothing failed). Twice in a row, the second waits
// as a failure does, so two tabs can never keep each other redialling.
func TestRunTokenTakenByAnotherTab(t *testing.T) {
	for _, tt := range []struct {
		swaps int
	}{{1}, {2}} {
		t.Run(fmt.Sprintf("%d in a row", tt.swaps), func(t *testing.T) {
			log := &retryLog{}
			ctx, cancel := context.WithCancel(context.Background())
			defer cancel()
			var e *Engine
			var statuses []Status
			n := 0
			e = newEngine(t, &otherTabStorage{MemStorage: NewMemStorage(), n: tt.swaps}, func(c *Config) {
				c.BackoffBase, c.BackoffHold, c.BackoffCap = time.Millisecond, time.Millisecond, time.Millisecond
				c.Logger = slog.New(log)
				c.Dial = func(context.Context) (Conn, error) {
					n++
					statuses = append(statuses, e.Snapshot().Status)
					if n == 4 {
						cancel()
						return nil, context.Canceled
					}
					if n == 3 { // the third fails
						return nil, errors.New("connection refused")
					}
					// One that is not swapped hangs up after its welcome.
					return newTinyConn(n > tt.swaps, welcome(fmt.Sprintf("mine-%d", n), "cart-1")), nil
				}
			})
			if err := e.Run(ctx); !errors.Is(err, context.Canceled) {
				t.Fatalf("Run = %v, want context.Canceled", err)
			}
			// The second connection's end and the third's each wait.
			if got := len(log.logged()); got != 2 {
				t.Errorf("%d waits logged, want 2", got)
			}
			if statuses[1] == Offline {
				t.Errorf("statuses at the dials %v: offline before the second, want it dialled at once", statuses)
			}
			if statuses[2] != Offline {
				t.Errorf("statuses at the dials %v: want offline before the third (a second swap in a row waits, as a hang-up does)", statuses)
			}
		})
	}
}

// statusConn is a tinyConn that notes the engine's status when the engine
// says hello on it.
type statusConn struct {
	*tinyConn
	e     *Engine
	seen  *[]Status
	after func() // if not nil, called after the write
}

func (c statusConn) Write(ctx context.Context, b []byte) error {
	*c.seen = append(*c.seen, c.e.Snapshot().Status)
	err := c.tinyConn.Write(ctx, b)
	if c.after != nil {
		c.after()
	}
	return err
}

// After a connection failed, the next says hello while the status stays
// offline, until the server answers: a network that lets sockets open and
// then fails them made the status flicker between offline and connecting
// at every try. The first connection is connecting.
func TestRunStaysOfflineWhileRetrying(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	var e *Engine
	var seen []Status
	n := 0
	e = newEngine(t, NewMemStorage(), func(c *Config) {
		c.BackoffBase, c.BackoffHold, c.BackoffCap = time.Millisecond, time.Millisecond, time.Millisecond
		c.Dial = func(context.Context) (Conn, error) {
			if n++; n == 4 {
				cancel()
				return nil, context.Canceled
			}
			return statusConn{newTinyConn(true), e, &seen, nil}, nil // hangs up before any answer
		}
	})
	if err := e.Run(ctx); !errors.Is(err, context.Canceled) {
		t.Fatalf("Run = %v, want context.Canceled", err)
	}
	if want := []Status{Connecting, Offline, Offline}; !slices.Equal(seen, want) {
		t.Errorf("statuses at each hello %v, want %v", seen, want)
	}
}

// A login made while the engine waits to try again after a failure starts
// the next connection at once, and it stays offline until the server
// answers: a logout made offline did not flicker to connecting and back.
func TestRunLoginDuringBackoffStaysOffline(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	log := &retryLog{ended: make(chan struct{}, 1)}
	var e *Engine
	var seen []Status
	n := 0
	e = newEngine(t, NewMemStorage(), func(c *Config) {
		c.BackoffBase, c.BackoffHold, c.BackoffCap = time.Hour, time.Hour, time.Hour // only the login ends the wait
		c.Logger = slog.New(log)
		c.Dial = func(context.Context) (Conn, error) {
			switch n++; n {
			case 1:
				go func() {
					<-log.ended
					if err := e.SetUser("user:ann", ""); err != nil {
						t.Error(err)
					}
				}()
				return nil, errors.New("connection refused")
			}
			return statusConn{newTinyConn(false), e, &seen, cancel}, nil // its hello ends the test
		}
	})
	if err := e.Run(ctx); !errors.Is(err, context.Canceled) {
		t.Fatalf("Run = %v, want context.Canceled", err)
	}
	if !slices.Equal(seen, []Status{Offline}) {
		t.Errorf("status at the hello after the login %v, want offline", seen)
	}
}

// Run started again (the page's reconnect when the browser goes offline
// or comes back) stays offline until the server answers: it showed
// connecting, between two offlines when the network was gone. The first
// Run is connecting.
func TestRunAgainStaysOffline(t *testing.T) {
	e := newEngine(t, NewMemStorage(), nil)
	var seen []Status
	for range 2 {
		ctx, cancel := context.WithCancel(context.Background())
		e.cfg.Dial = func(context.Context) (Conn, error) {
			return statusConn{newTinyConn(false), e, &seen, cancel}, nil // its hello ends this Run
		}
		if err := e.Run(ctx); !errors.Is(err, context.Canceled) {
			t.Fatalf("Run = %v, want context.Canceled", err)
		}
	}
	if want := []Status{Connecting, Offline}; !slices.Equal(seen, want) {
		t.Errorf("statuses at the hellos %v, want %v", seen, want)
	}
}

// redialRun runs an engine on store whose connections are conns(1),
// conns(2), ...; the first that conns gives as nil is one whose hello ends
// the run. It returns the waits Run logged before its redials, the status
// at that last hello, and every status the engine published.
func redialRun(t *testing.T, store Storage, mod func(*Config), conns func(n int) (Conn, error)) (waits []time.Duration, atHello, statuses []Status) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	log := &retryLog{}
	var mu sync.Mutex
	var e *Engine
	n := 0
	e = newEngine(t, store, func(c *Config) {
		c.Logger = slog.New(log)
		c.OnChange = func(st State) {
			mu.Lock()
			statuses = append(statuses, st.Status)
			mu.Unlock()
		}
		if mod != nil {
			mod(c)
		}
		c.Dial = func(context.Context) (Conn, error) {
			n++
			if conn, err := conns(n); conn != nil || err != nil {
				return conn, err
			}
			return statusConn{newTinyConn(false), e, &atHello, cancel}, nil
		}
	})
	if err := e.Run(ctx); !errors.Is(err, context.Canceled) {
		t.Fatalf("Run = %v, want context.Canceled", err)
	}
	mu.Lock()
	defer mu.Unlock()
	return log.logged(), atHello, slices.Clone(statuses)
}

// backoffs sets the redial waits to d.
func backoffs(d time.Duration) func(*Config) {
	return func(c *Config) { c.BackoffBase, c.BackoffHold, c.BackoffCap = d, d, d }
}

// expiredNow is the server's cart_expired of cart, unasked (no id) or in
// answer to id.
func expiredNow(id, cart string) *protocol.Message {
	return errMsg(id, protocol.ErrCartExpired, func(pe *protocol.Error) { pe.Cart = cart })
}

// The server hands over a new cart (cart_expired, unasked, on a connected
// device): the next connection goes at once, connecting, with no wait and
// never offline.
func TestRunHandoverRedialsAtOnce(t *testing.T) {
	waits, atHello, statuses := redialRun(t, NewMemStorage(), backoffs(time.Millisecond), func(n int) (Conn, error) {
		if n == 1 {
			return newTinyConn(false, welcome("tok", "cart-1"), reply("h1", cartAt(1, "mug=1"), nil), expiredNow("", "cart-1")), nil
		}
		return nil, nil
	})
	if len(waits) != 0 {
		t.Errorf("waits %v before the next connection, want none", waits)
	}
	if !slices.Equal(atHello, []Status{Connecting}) {
		t.Errorf("status at the next hello %v, want connecting", atHello)
	}
	if i := slices.Index(statuses, Synced); i < 0 || slices.Contains(statuses[i:len(statuses)-1], Offline) {
		t.Errorf("statuses %v: want synced, then never offline until Run ends", statuses)
	}
}

// slowLast delays its last message (a connection that lives a while).
type slowLast struct {
	*tinyConn
	n     int
	delay time.Duration
}

func (c *slowLast) Read(ctx context.Context) ([]byte, error) {
	c.n++
	c.tinyConn.mu.Lock()
	last := len(c.tinyConn.says) == 1
	c.tinyConn.mu.Unlock()
	if last && c.n > 1 {
		time.Sleep(c.delay)
	}
	return c.tinyConn.Read(ctx)
}

// Two handovers, with a healthy connection between them: the second is
// redialled at once too, connecting. (Once in a row counted across the
// healthy connection, and it waited, offline.)
func TestRunSecondHandoverAfterAHealthyConnection(t *testing.T) {
	waits, atHello, _ := redialRun(t, NewMemStorage(), func(c *Config) {
		backoffs(50 * time.Millisecond)(c)
		c.StableAfter = time.Millisecond
	}, func(n int) (Conn, error) {
		switch n {
		case 1:
			return newTinyConn(false, welcome("tok", "cart-1"), reply("h1", cartAt(1, "mug=1"), nil), expiredNow("", "cart-1")), nil
		case 2:
			return &slowLast{tinyConn: newTinyConn(false, welcome("tok2", "cart-2"), reply("h1", cartNamed("cart-2", 1, "cap=1"), nil),
				expiredNow("", "cart-2")), delay: 200 * time.Millisecond}, nil
		}
		return nil, nil
	})
	if len(waits) != 0 {
		t.Errorf("waits %v before the third connection, want none", waits)
	}
	if !slices.Equal(atHello, []Status{Connecting}) {
		t.Errorf("status at the third hello %v, want connecting", atHello)
	}
}

// Two tabs on one guest cart are told it expired: both redial at once and
// are given new device tokens; the tab whose token came second goes on
// with the other's (errTokenChanged), at once too, connecting: the swap is
// part of the handover. (It waited a backoff, offline.)
func TestRunHandoverThenTokenTakenByAnotherTab(t *testing.T) {
	st := &otherTabStorage{MemStorage: NewMemStorage()}
	waits, atHello, _ := redialRun(t, st, backoffs(50*time.Millisecond), func(n int) (Conn, error) {
		switch n {
		case 1:
			return newTinyConn(false, welcome("tok", "cart-1"), reply("h1", cartAt(1, "mug=1"), nil), expiredNow("", "cart-1")), nil
		case 2:
			st.n = 1 // the other tab stores its new token first
			return newTinyConn(false, expiredNow("h1", "cart-1"), welcome("tok2", "cart-2"), reply("h1", cartNamed("cart-2", 0), nil)), nil
		}
		return nil, nil
	})
	if len(waits) != 0 {
		t.Errorf("waits %v before the third connection, want none", waits)
	}
	if !slices.Equal(atHello, []Status{Connecting}) {
		t.Errorf("status at the third hello %v, want connecting", atHello)
	}
}

// Told cart_expired after the welcome at every hello (a user cart that
// cannot start over): the second is waited for, and from then on the
// status stays offline; it flickered offline, connecting, offline at
// every try.
func TestRunExpiredAtEveryHelloStaysOffline(t *testing.T) {
	_, _, statuses := redialRun(t, NewMemStorage(), backoffs(5*time.Millisecond), func(n int) (Conn, error) {
		if n < 6 {
			return newTinyConn(false, welcome("tok", "cart-1"), expiredNow("h1", "cart-1")), nil
		}
		return nil, nil
	})
	statuses = slices.Compact(statuses)
	if i := slices.Index(statuses, Offline); i >= 0 && slices.Contains(statuses[i:], Connecting) {
		t.Errorf("connecting after offline: %v", statuses)
	}
}
