package syncserver_test

import (
	"context"
	"errors"
	"fmt"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	goredis "github.com/redis/go-redis/v9"

	"github.com/cartsync/cartsync/shared/cart"
	"github.com/cartsync/cartsync/shared/protocol"
	"github.com/cartsync/cartsync/shared/syncclient"
	"github.com/cartsync/cartsync/syncserver"
	"github.com/cartsync/cartsync/syncserver/memstore"
	"github.com/cartsync/cartsync/syncserver/redis"
	"github.com/cartsync/cartsync/syncserver/sqlite"
	"github.com/cartsync/cartsync/syncserver/storetest"
)

// The login windows: every edit a shopper makes, whenever they make it
// relative to a login (unsent at login, offline, in another tab, during two
// logins in a row, during a logout that interrupts a login), ends up once
// in the cart shown after the login. Real engines against a real server,
// on each kind of store.

// windowUsers accepts "user:<id>" and "user:<id>/<anything>" (another
// token of the same user).
type windowUsers struct{}

func (windowUsers) VerifyUser(_ context.Context, tok string) (string, error) {
	if u, ok := strings.CutPrefix(tok, "user:"); ok && u != "" {
		u, _, _ = strings.Cut(u, "/")
		return u, nil
	}
	return "", protocol.Errorf(protocol.ErrUnauthorized, "bad user token")
}

// VerifyUserUntil accepts "until:<unix ms>:<id>" as a token of user id
// that expires then, and the tokens of VerifyUser as never expiring.
func (windowUsers) VerifyUserUntil(ctx context.Context, tok string) (string, time.Time, error) {
	rest, ok := strings.CutPrefix(tok, "until:")
	if !ok {
		u, err := windowUsers{}.VerifyUser(ctx, tok)
		return u, time.Time{}, err
	}
	ms, user, _ := strings.Cut(rest, ":")
	n, err := strconv.ParseInt(ms, 10, 64)
	if err != nil || user == "" {
		return "", time.Time{}, protocol.Errorf(protocol.ErrUnauthorized, "bad user token")
	}
	until := time.UnixMilli(n)
	if !time.Now().Before(until) {
		return "", time.Time{}, protocol.Errorf(protocol.ErrTokenExpired, "user token expired: log in again")
	}
	return user, until, nil
}

func untilToken(user string, d time.Duration) string {
	return fmt.Sprintf("until:%d:%s", time.Now().Add(d).UnixMilli(), user)
}

// link is a device's network: it can be cut, which closes its connections
// and fails dials until it is back.
type link struct {
	url   string
	mu    sync.Mutex
	down  bool
	dials int // dial calls, those refused while down included
	conns []syncclient.Conn
}

func (l *link) dial(ctx context.Context) (syncclient.Conn, error) {
	l.mu.Lock()
	l.dials++
	down := l.down
	l.mu.Unlock()
	if down {
		return nil, errors.New("link: offline")
	}
	c, err := syncclient.WebsocketDialer(l.url)(ctx)
	if err != nil {
		return nil, err
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.down {
		c.Close()
		return nil, errors.New("link: offline")
	}
	l.conns = append(l.conns, c)
	return c, nil
}

// dialCount is how many times the engine dialled.
func (l *link) dialCount() int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.dials
}

func (l *link) setDown(down bool) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.down = down
	if down {
		for _, c := range l.conns {
			c.Close()
		}
		l.conns = nil
	}
}

// windowStores are the stores the login windows run on: memstore, the
// embedded SQLite default, and SQLite behind the Redis cache (Redis is
// required under CI).
func windowStores(t testing.TB) map[string]func(t *testing.T) syncserver.Store {
	return map[string]func(t *testing.T) syncserver.Store{
		"memstore": func(t *testing.T) syncserver.Store { return memstore.New() },
		"sqlite": func(t *testing.T) syncserver.Store {
			st, err := sqlite.Open(t.Context(), filepath.Join(t.TempDir(), "carts.db"))
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { st.Close() })
			return st
		},
		"sqlite+redis": func(t *testing.T) syncserver.Store {
			// Redis first: without it the test is skipped before a
			// store is opened.
			opt, err := goredis.ParseURL(storetest.RedisURL(t))
			if err != nil {
				t.Fatal(err)
			}
			st, err := sqlite.Open(t.Context(), filepath.Join(t.TempDir(), "carts.db"))
			if err != nil {
				t.Fatal(err)
			}
			opt.ContextTimeoutEnabled = true
			client := goredis.NewClient(opt)
			c := redis.NewCache(st, client, storetest.KeyPrefix(t), time.Hour, nil)
			t.Cleanup(func() { c.Close(); client.Close() })
			return c
		},
	}
}

type windowEnv struct {
	t     *testing.T
	srv   *syncserver.Server
	store syncserver.Store
	url   string
	ctx   context.Context
}

func newWindowEnv(t *testing.T, st syncserver.Store) *windowEnv {
	return newWindowEnvWith(t, syncserver.Config{Store: st, DefaultPolicy: cart.PolicyMerge})
}

// newWindowEnvWith is newWindowEnv with cfg, whose users are windowUsers
// (its Store, if nil, in memory).
func newWindowEnvWith(t *testing.T, cfg syncserver.Config) *windowEnv {
	if cfg.Store == nil {
		cfg.Store = memstore.New()
	}
	cfg.Users = windowUsers{}
	srv, hs := newServerWith(t, cfg)
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	return &windowEnv{t: t, srv: srv, store: cfg.Store, url: syncURL(hs), ctx: ctx}
}

// tab starts an engine on storage over l.
func (w *windowEnv) tab(st syncclient.Storage, l *link) *syncclient.Engine {
	w.t.Helper()
	e, err := syncclient.New(syncclient.Config{
		Storage: st, Dial: l.dial,
		BackoffBase: 5 * time.Millisecond, BackoffCap: 50 * time.Millisecond,
		Heartbeat: 500 * time.Millisecond, Rand: func() float64 { return 0.5 },
	})
	if err != nil {
		w.t.Fatal(err)
	}
	done := make(chan struct{})
	ctx, cancel := context.WithCancel(w.ctx)
	go func() { defer close(done); e.Run(ctx) }()
	w.t.Cleanup(func() { cancel(); <-done })
	return e
}

func (w *windowEnv) add(e *syncclient.Engine, sku string) {
	w.t.Helper()
	if err := e.Add(w.ctx, sku, nil, 1, nil); err != nil {
		w.t.Fatalf("Add(%s): %v", sku, err)
	}
}

// settle waits until e shows user's cart with nothing pending.
func (w *windowEnv) settle(e *syncclient.Engine, user string) syncclient.State {
	w.t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for {
		st := e.Snapshot()
		if st.User == user && st.Pending == 0 && st.Status == syncclient.Synced {
			return st
		}
		if time.Now().After(deadline) {
			w.t.Fatalf("engine never settled on %q: user %q, pending %d (waiting %d), status %v, last error %v",
				user, st.User, st.Pending, st.Waiting, st.Status, st.LastError)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// check asserts that the user's cart on the server, and as e shows it, is
// exactly want (sku=qty, sorted), and that e refused or dropped nothing.
func (w *windowEnv) check(e *syncclient.Engine, user, want string) {
	w.t.Helper()
	st := w.settle(e, user)
	rec, err := w.store.Load(w.ctx, syncserver.UserCartID(user), nil)
	if err != nil {
		w.t.Fatalf("load %s's cart: %v", user, err)
	}
	if got := lineSummary(rec.Cart); got != want {
		w.t.Errorf("%s's cart on the server is %q, want %q", user, got, want)
	}
	if got := lineSummary(st.Cart); got != want {
		w.t.Errorf("the engine shows %q, want %q", got, want)
	}
	if len(st.Rejected) > 0 || len(st.Dropped) > 0 {
		w.t.Errorf("edits refused %v or dropped %v", st.Rejected, st.Dropped)
	}
}

// lineSummary describes a cart's lines by key, sorted: "a=1 b?size=m=2".
func lineSummary(c *cart.Cart) string {
	var parts []string
	for _, l := range c.Lines {
		parts = append(parts, fmt.Sprintf("%s=%d", l.Key, l.Quantity))
	}
	slices.Sort(parts)
	return strings.Join(parts, " ")
}

func TestLoginWindows(t *testing.T) {
	for name, open := range windowStores(t) {
		t.Run(name, func(t *testing.T) {
			t.Run("EditsRacingTheLogin", func(t *testing.T) { testEditsRacingTheLogin(t, open(t)) })
			t.Run("Offline", func(t *testing.T) { testLoginOffline(t, open(t)) })
			t.Run("AnotherTab", func(t *testing.T) { testLoginInAnotherTab(t, open(t)) })
			t.Run("TwiceInARow", func(t *testing.T) { testLoginTwiceInARow(t, open(t)) })
			t.Run("LogoutDuringLogin", func(t *testing.T) { testLogoutDuringLogin(t, open(t)) })
		})
	}
}

// A shopper clicks "Log in" and adds items while the login is in flight,
// on devices whose guest cart never reached the server and on devices
// whose guest cart has lines already. Repeated, since the windows are
// narrow.
func testEditsRacingTheLogin(t *testing.T, st syncserver.Store) {
	w := newWindowEnv(t, st)
	for i := range 8 {
		user := fmt.Sprint("racer", i)
		l := &link{url: w.url}
		e := w.tab(syncclient.NewMemStorage(), l)
		want := "b=1 c=1 d=1"
		if i%2 == 1 { // a guest cart with a line on the server already
			w.add(e, "a")
			w.settle(e, "")
			want = "a=1 " + want
		} else {
			w.settle(e, "")
		}
		w.add(e, "b")
		if err := e.SetUser("user:"+user, ""); err != nil {
			t.Fatal(err)
		}
		w.add(e, "c")
		w.add(e, "d")
		w.check(e, user, want)
	}
}

// Edits made offline, then a login while still offline, then the network.
func testLoginOffline(t *testing.T, st syncserver.Store) {
	w := newWindowEnv(t, st)
	l := &link{url: w.url}
	e := w.tab(syncclient.NewMemStorage(), l)
	w.settle(e, "")
	l.setDown(true)
	w.add(e, "a")
	w.add(e, "b")
	if err := e.SetUser("user:olga", ""); err != nil {
		t.Fatal(err)
	}
	w.add(e, "c")
	l.setDown(false)
	w.check(e, "olga", "a=1 b=1 c=1")
}

// Two tabs share the device's storage. One logs in; the other, not told
// yet, goes on adding to the guest cart during and after that login, and
// logs in later (the storefront tells it on its next page view).
func testLoginInAnotherTab(t *testing.T, st syncserver.Store) {
	w := newWindowEnv(t, st)
	shared := syncclient.NewMemStorage()
	l := &link{url: w.url}
	a := w.tab(shared, l)
	w.add(a, "a")
	w.settle(a, "")
	b := w.tab(shared, l)
	w.settle(b, "")
	if err := a.SetUser("user:tara", ""); err != nil {
		t.Fatal(err)
	}
	for _, sku := range []string{"b1", "b2", "b3"} {
		w.add(b, sku)
		time.Sleep(20 * time.Millisecond)
	}
	w.settle(a, "tara")
	w.add(b, "b4") // surely after the merge
	time.Sleep(100 * time.Millisecond)
	if err := b.Reload(w.ctx); err != nil { // as the BroadcastChannel does
		t.Fatal(err)
	}
	if err := b.SetUser("user:tara", ""); err != nil {
		t.Fatal(err)
	}
	if err := a.Reload(w.ctx); err != nil {
		t.Fatal(err)
	}
	w.check(b, "tara", "a=1 b1=1 b2=1 b3=1 b4=1")
	w.check(a, "tara", "a=1 b1=1 b2=1 b3=1 b4=1")
}

// Two logins in a row (the page reloaded, the storefront logs in again with
// a fresh token), edits between and after.
func testLoginTwiceInARow(t *testing.T, st syncserver.Store) {
	w := newWindowEnv(t, st)
	l := &link{url: w.url}
	e := w.tab(syncclient.NewMemStorage(), l)
	w.add(e, "a")
	if err := e.SetUser("user:tim", ""); err != nil {
		t.Fatal(err)
	}
	w.add(e, "b")
	if err := e.SetUser("user:tim/2", ""); err != nil {
		t.Fatal(err)
	}
	w.add(e, "c")
	w.check(e, "tim", "a=1 b=1 c=1")
}

// A logout right after a login, before it finished, with edits around both:
// nothing is lost; what was made before the logout is in the user's cart at
// the next login, what was made after it too (merged from the new guest
// cart).
func testLogoutDuringLogin(t *testing.T, st syncserver.Store) {
	w := newWindowEnv(t, st)
	l := &link{url: w.url}
	e := w.tab(syncclient.NewMemStorage(), l)
	w.add(e, "a")
	w.settle(e, "")
	if err := e.SetUser("user:lou", ""); err != nil {
		t.Fatal(err)
	}
	w.add(e, "b")
	time.Sleep(10 * time.Millisecond) // the login reaches the server
	if err := e.SetUser("", ""); err != nil {
		t.Fatal(err)
	}
	w.add(e, "c")
	deadline := time.Now().Add(20 * time.Second)
	for s := e.Snapshot(); s.User != "" || s.Status != syncclient.Synced || s.Pending > s.Waiting; s = e.Snapshot() {
		if time.Now().After(deadline) {
			t.Fatalf("never settled as a guest: %+v", s)
		}
		time.Sleep(5 * time.Millisecond)
	}
	if err := e.SetUser("user:lou", ""); err != nil {
		t.Fatal(err)
	}
	w.check(e, "lou", "a=1 b=1 c=1")
}

// A connection opened with a user token loses the user's access when the
// token expires, though pings keep it open: the engine is told
// token_expired, keeps the edits made since, and sends them after a fresh
// login.
func TestTokenExpiresOnOpenConnection(t *testing.T) {
	w := newWindowEnv(t, memstore.New())
	l := &link{url: w.url}
	e := w.tab(syncclient.NewMemStorage(), l)
	if err := e.SetUser(untilToken("esme", 400*time.Millisecond), ""); err != nil {
		t.Fatal(err)
	}
	w.add(e, "a")
	w.settle(e, "esme")
	deadline := time.Now().Add(10 * time.Second)
	for !e.Snapshot().NeedsLogin {
		if time.Now().After(deadline) {
			t.Fatalf("the engine was never told its token expired: %+v", e.Snapshot())
		}
		time.Sleep(5 * time.Millisecond)
	}
	if got := e.Snapshot().LastError; got == nil || got.Code != protocol.ErrTokenExpired {
		t.Errorf("last error = %v, want token_expired", got)
	}
	w.add(e, "b") // kept while logged out of the server
	if st := e.Snapshot(); st.Pending != 1 || lineSummary(st.Cart) != "a=1 b=1" {
		t.Errorf("after expiry the engine shows %q with %d pending, want a=1 b=1 with 1", lineSummary(st.Cart), st.Pending)
	}
	if err := e.SetUser(untilToken("esme", time.Hour), ""); err != nil {
		t.Fatal(err)
	}
	w.check(e, "esme", "a=1 b=1")
}
