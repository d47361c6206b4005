package redis_test

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"math"
	"net"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	goredis "github.com/redis/go-redis/v9"

	"github.com/cartsync/cartsync/shared/cart"
	"github.com/cartsync/cartsync/syncserver"
	cartredis "github.com/cartsync/cartsync/syncserver/redis"
	"github.com/cartsync/cartsync/syncserver/sqlite"
	"github.com/cartsync/cartsync/syncserver/storetest"
)

const wait = 5 * time.Second

func testLogger(t testing.TB) *slog.Logger {
	return slog.New(slog.NewTextHandler(t.Output(), &slog.HandlerOptions{Level: slog.LevelDebug}))
}

// newClient returns a client of the test Redis, closed in cleanup. A
// non-empty name is set on every connection (CLIENT SETNAME).
func newClient(t testing.TB, name string) *goredis.Client {
	t.Helper()
	opt, err := goredis.ParseURL(storetest.RedisURL(t))
	if err != nil {
		t.Fatalf("parse %s: %v", storetest.EnvRedisURL, err)
	}
	opt.ClientName = name
	opt.ContextTimeoutEnabled = true
	c := goredis.NewClient(opt)
	t.Cleanup(func() { _ = c.Close() })
	if err := c.Ping(t.Context()).Err(); err != nil {
		t.Fatalf("ping the test Redis: %v", err)
	}
	return c
}

// downClient returns a client of an address where nothing listens.
func downClient(t testing.TB) *goredis.Client {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	if err := ln.Close(); err != nil {
		t.Fatal(err)
	}
	c := goredis.NewClient(&goredis.Options{Addr: addr, DialTimeout: 500 * time.Millisecond, DialerRetries: 1, MaxRetries: -1, ContextTimeoutEnabled: true})
	t.Cleanup(func() { _ = c.Close() })
	return c
}

// openNext returns a fresh durable store for a Cache to wrap.
func openNext(t testing.TB) syncserver.Store {
	t.Helper()
	s, err := sqlite.Open(t.Context(), filepath.Join(t.TempDir(), "carts.db"))
	if err != nil {
		t.Fatalf("open sqlite store: %v", err)
	}
	// Closed by the cache over it, or here when the test ends before
	// it has one (skipped without the test Redis). A second Close is
	// harmless.
	t.Cleanup(func() { _ = s.Close() })
	return s
}

// counting is a Store that counts Loads, to tell cache hits from misses.
// Its Close does not close the wrapped store, so that several caches can
// share one.
type counting struct {
	syncserver.Store
	loads atomic.Int64
}

func (s *counting) Load(ctx context.Context, id string, clients []string) (*syncserver.Record, error) {
	s.loads.Add(1)
	return s.Store.Load(ctx, id, clients)
}

func (s *counting) Close() error { return nil }

// shared returns a durable store closed in cleanup.
func shared(t testing.TB) syncserver.Store {
	t.Helper()
	s := openNext(t)
	t.Cleanup(func() {
		if err := s.Close(); err != nil {
			t.Errorf("close store: %v", err)
		}
	})
	return s
}

// noRedisTypes checks that err carries no go-redis or network type.
func noRedisTypes(t testing.TB, what string, err error) {
	t.Helper()
	var rerr goredis.Error
	if errors.As(err, &rerr) {
		t.Errorf("%s: error %v wraps a go-redis error (%T)", what, err, rerr)
	}
	var operr *net.OpError
	if errors.As(err, &operr) {
		t.Errorf("%s: error %v wraps a *net.OpError", what, err)
	}
}

// add returns a Mutate fn applying one add of sku by client, as the server
// does.
func add(client string, seq uint64) func(*syncserver.Record) error {
	return func(rec *syncserver.Record) error {
		op := cart.Op{Client: client, Seq: seq, Kind: cart.KindAdd, SKU: "sku", Quantity: 1}
		warns, cerr := rec.Cart.Apply(op, client, cart.DefaultLimits)
		if cerr != nil {
			return cerr
		}
		now := time.Now()
		rec.Seqs[client] = seq
		rec.Meta.Kind = syncserver.KindGuest
		rec.Meta.UpdatedAt = now
		rec.Appended = append(rec.Appended, syncserver.Change{Version: rec.Cart.Version, Op: op, Warnings: warns, At: now})
		return nil
	}
}

func mutate(t testing.TB, s syncserver.Store, id string, clients []string, fn func(*syncserver.Record) error) {
	t.Helper()
	if err := s.Mutate(t.Context(), id, clients, fn); err != nil {
		t.Fatalf("Mutate(%s): %v", id, err)
	}
	settle(t, s)
}

// procClient is a client of a test's own redis-server.
func procClient(t testing.TB, rp *storetest.RedisProc) *goredis.Client {
	t.Helper()
	opt, err := goredis.ParseURL(rp.URL())
	if err != nil {
		t.Fatal(err)
	}
	opt.ContextTimeoutEnabled = true
	c := goredis.NewClient(opt)
	t.Cleanup(func() { c.Close() })
	return c
}

// newCache is cartredis.NewCache with the background writer stopped when
// the test ends.
func newCache(t testing.TB, next syncserver.Store, client *goredis.Client, prefix string, ttl time.Duration, log *slog.Logger) *cartredis.Cache {
	c := cartredis.NewCache(next, client, prefix, ttl, log)
	t.Cleanup(c.StopWriter)
	return c
}

// settle waits for a Cache's background writes to land in Redis.
func settle(t testing.TB, s syncserver.Store) {
	t.Helper()
	if c, ok := s.(*cartredis.Cache); ok {
		ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
		defer cancel()
		if err := c.Settle(ctx); err != nil {
			t.Fatal(err)
		}
	}
}

func load(t testing.TB, s syncserver.Store, id string, clients ...string) *syncserver.Record {
	t.Helper()
	rec, err := s.Load(t.Context(), id, clients)
	if err != nil {
		t.Fatalf("Load(%s, %q): %v", id, clients, err)
	}
	settle(t, s) // a fill lands
	return rec
}

// --- Bus ---

func TestBus(t *testing.T) {
	storetest.RunBus(t, func(t testing.TB) (a, b syncserver.Bus) {
		prefix := storetest.KeyPrefix(t)
		ba := cartredis.NewBus(newClient(t, ""), prefix, testLogger(t))
		bb := cartredis.NewBus(newClient(t, ""), prefix, testLogger(t))
		t.Cleanup(func() {
			for _, bus := range []*cartredis.Bus{ba, bb} {
				if err := bus.Close(); err != nil {
					t.Errorf("Close: %v", err)
				}
			}
		})
		return ba, bb
	})
}

// inbox collects deliveries; past its buffer it drops them, which the
// test then notices as a missing message.
type inbox chan []byte

func (in inbox) fn(p []byte) {
	select {
	case in <- append([]byte(nil), p...):
	default:
	}
}

func (in inbox) expect(t testing.TB, want string) {
	t.Helper()
	select {
	case got := <-in:
		if string(got) != want {
			t.Fatalf("got %q, want %q", got, want)
		}
	case <-time.After(wait):
		t.Fatalf("%q not delivered within %s", want, wait)
	}
}

func subscribe(t testing.TB, bus *cartredis.Bus, cartID string) (inbox, func()) {
	t.Helper()
	in := make(inbox, 256)
	ctx, cancel := context.WithTimeout(t.Context(), wait)
	defer cancel()
	stop, err := bus.Subscribe(ctx, cartID, in.fn)
	if err != nil {
		t.Fatalf("Subscribe(%s): %v", cartID, err)
	}
	t.Cleanup(stop)
	return in, stop
}

func newBus(t testing.TB, client *goredis.Client, prefix string) *cartredis.Bus {
	t.Helper()
	bus := cartredis.NewBus(client, prefix, testLogger(t))
	t.Cleanup(func() {
		if err := bus.Close(); err != nil {
			t.Errorf("Close: %v", err)
		}
	})
	return bus
}

// numSub is how many connections Redis has subscribed to channel.
func numSub(t testing.TB, admin *goredis.Client, channel string) int64 {
	t.Helper()
	m, err := admin.PubSubNumSub(t.Context(), channel).Result()
	if err != nil {
		t.Fatalf("PUBSUB NUMSUB: %v", err)
	}
	return m[channel]
}

// The first local subscriber of a cart SUBSCRIBEs, the last cancel
// UNSUBSCRIBEs, and a later subscriber SUBSCRIBEs again.
func TestBusSubscriptionCounted(t *testing.T) {
	admin := newClient(t, "")
	prefix := storetest.KeyPrefix(t)
	bus := newBus(t, newClient(t, ""), prefix)
	channel := prefix + "cart:cart-1"

	_, cancel1 := subscribe(t, bus, "cart-1")
	in2, cancel2 := subscribe(t, bus, "cart-1")
	if n := numSub(t, admin, channel); n != 1 {
		t.Fatalf("with two local subscribers: %d Redis subscriptions to %s, want 1", n, channel)
	}
	cancel1()
	if err := bus.Publish(t.Context(), "cart-1", []byte("one left")); err != nil {
		t.Fatal(err)
	}
	in2.expect(t, "one left")
	if n := numSub(t, admin, channel); n != 1 {
		t.Fatalf("with one local subscriber left: %d Redis subscriptions, want 1", n)
	}

	cancel2()
	deadline := time.Now().Add(wait)
	for numSub(t, admin, channel) != 0 {
		if time.Now().After(deadline) {
			t.Fatalf("still subscribed to %s %s after the last cancel", channel, wait)
		}
		time.Sleep(10 * time.Millisecond)
	}

	in3, _ := subscribe(t, bus, "cart-1")
	if n := numSub(t, admin, channel); n != 1 {
		t.Fatalf("after subscribing again: %d Redis subscriptions, want 1", n)
	}
	if err := bus.Publish(t.Context(), "cart-1", []byte("again")); err != nil {
		t.Fatal(err)
	}
	in3.expect(t, "again")
}

// When the Pub/Sub connection breaks, go-redis reconnects and subscribes
// again; messages published meanwhile may be lost, later ones arrive.
func TestBusResubscribesAfterDisconnect(t *testing.T) {
	admin := newClient(t, "")
	name := strings.ReplaceAll(storetest.UniqueName(t), "_", "-")
	bus := newBus(t, newClient(t, name), storetest.KeyPrefix(t))
	in, _ := subscribe(t, bus, "cart-1")

	list, err := admin.ClientList(t.Context()).Result()
	if err != nil {
		t.Fatal(err)
	}
	killed := 0
	sc := bufio.NewScanner(strings.NewReader(list))
	for sc.Scan() {
		f := map[string]string{}
		for kv := range strings.FieldsSeq(sc.Text()) {
			k, v, _ := strings.Cut(kv, "=")
			f[k] = v
		}
		if f["name"] != name || f["sub"] == "0" {
			continue
		}
		if err := admin.ClientKillByFilter(t.Context(), "ID", f["id"]).Err(); err != nil {
			t.Fatalf("CLIENT KILL ID %s: %v", f["id"], err)
		}
		killed++
	}
	if killed != 1 {
		t.Fatalf("killed %d Pub/Sub connections named %s, want 1", killed, name)
	}

	// Probe until one gets through the new connection.
	probe(t, bus, in, "cart-1", false)
}

// probe publishes "probe" on cartID every 50 ms until in gets one, for up
// to 3 waits: publications while a subscription comes back may be lost (at
// most once). Anything else in is a failure, unless others may come.
func probe(t *testing.T, bus *cartredis.Bus, in inbox, cartID string, others bool) {
	t.Helper()
	deadline := time.After(3 * wait)
	tick := time.NewTicker(50 * time.Millisecond)
	defer tick.Stop()
	for {
		select {
		case got := <-in:
			if string(got) == "probe" {
				return
			}
			if !others {
				t.Fatalf("got %q, want probe", got)
			}
		case <-tick.C:
			_ = bus.Publish(t.Context(), cartID, []byte("probe"))
		case <-deadline:
			t.Fatalf("nothing delivered on %s within %s", cartID, 3*wait)
		}
	}
}

// A subscription that Redis closes and refuses to take back, while
// PUBLISH still works, leaves the instance deaf to other instances: the
// bus says so through its heartbeat, and is healthy again once the
// subscription is back.
func TestBusDegradedWhileItsSubscriptionIsDown(t *testing.T) {
	rp := storetest.StartRedis(t)
	admin := procClient(t, rp)
	bus := cartredis.NewBus(procClient(t, rp), "beat:", testLogger(t))
	t.Cleanup(func() { bus.Close() })
	bus.SetBeat(50*time.Millisecond, 400*time.Millisecond)
	in, _ := subscribe(t, bus, "cart-1")

	degraded := func(want bool) error {
		t.Helper()
		var err error
		for deadline := time.Now().Add(3 * wait); ; time.Sleep(20 * time.Millisecond) {
			if err = bus.Degraded(); (err != nil) == want {
				return err
			}
			if time.Now().After(deadline) {
				t.Fatalf("Degraded = %v, want degraded %v", err, want)
			}
		}
	}
	degraded(false)

	ctx := t.Context()
	if err := admin.Do(ctx, "ACL", "SETUSER", "default", "-subscribe").Err(); err != nil {
		t.Fatalf("ACL SETUSER: %v", err)
	}
	if err := admin.ClientKillByFilter(ctx, "TYPE", "pubsub").Err(); err != nil {
		t.Fatalf("CLIENT KILL TYPE pubsub: %v", err)
	}
	err := degraded(true)
	if !strings.Contains(err.Error(), "no message through Pub/Sub") {
		t.Errorf("Degraded = %q, want it to say no message came through Pub/Sub", err)
	}
	if err := bus.Publish(ctx, "cart-1", []byte("lost")); err != nil {
		t.Errorf("Publish while the subscription is down: %v", err)
	}
	// The bus subscribes again every 400 ms meanwhile, in vain: it stays
	// degraded through those attempts.
	time.Sleep(time.Second)
	if err := bus.Degraded(); err == nil {
		t.Error("Degraded = nil a second later, with the subscription still refused")
	}

	if err := admin.Do(ctx, "ACL", "SETUSER", "default", "+subscribe").Err(); err != nil {
		t.Fatalf("ACL SETUSER: %v", err)
	}
	degraded(false)
	// And the cart's subscription is back too ("lost" may come first).
	probe(t, bus, in, "cart-1", true)
}

func TestBusRedisDown(t *testing.T) {
	bus := cartredis.NewBus(downClient(t), "down:", testLogger(t))
	ctx, cancel := context.WithTimeout(t.Context(), wait)
	defer cancel()

	// Off the caller's path: queued, and Degraded says it failed.
	if err := bus.Publish(ctx, "cart-1", []byte("x")); err != nil {
		t.Errorf("Publish with Redis down = %v, want queued", err)
	}
	// The subscription stands, to be confirmed when Redis answers.
	stop, err := bus.Subscribe(ctx, "cart-1", func([]byte) {})
	if err != nil {
		t.Errorf("Subscribe with Redis down = %v, want it to stand", err)
	} else {
		defer stop()
	}
	for deadline := time.Now().Add(wait); bus.Degraded() == nil; {
		if time.Now().After(deadline) {
			t.Fatal("Degraded with Redis down: nil")
		}
		time.Sleep(5 * time.Millisecond)
	}
	noRedisTypes(t, "Degraded", bus.Degraded())

	err = bus.Ping(ctx)
	if err == nil {
		t.Error("Ping with Redis down: no error")
	}
	noRedisTypes(t, "Ping", err)

	closed := make(chan error, 1)
	go func() { closed <- bus.Close() }()
	select {
	case err := <-closed:
		if err != nil {
			t.Errorf("Close: %v", err)
		}
	case <-time.After(wait):
		t.Fatal("Close with Redis down did not return")
	}
	if err := bus.Publish(ctx, "cart-1", []byte("x")); !errors.Is(err, cartredis.ErrClosed) {
		t.Errorf("Publish after Close: %v, want ErrClosed", err)
	}
}

// --- Cache ---

func TestCacheStore(t *testing.T) {
	storetest.RunStore(t, func(t testing.TB) syncserver.Store {
		return newCache(t, openNext(t), newClient(t, ""), storetest.KeyPrefix(t), time.Minute, testLogger(t))
	})
}

// With Redis unreachable the cache is a pass-through: every Store contract
// still holds, except that Ping reports Redis (see TestCacheRedisDown).
func TestCacheStoreRedisDown(t *testing.T) {
	storetest.RunStore(t, func(t testing.TB) syncserver.Store {
		next := openNext(t)
		return pingNext{
			Cache: newCache(t, next, downClient(t), "down:", time.Minute, slog.New(slog.DiscardHandler)),
			next:  next,
		}
	})
}

// pingNext pings only next; everything else, the catalog and the
// outbox included, goes to the cache.
type pingNext struct {
	*cartredis.Cache
	next syncserver.Store
}

func (s pingNext) Ping(ctx context.Context) error { return s.next.Ping(ctx) }

// A cached entry as stored: the version in v and c, the meta kind, the seqs.
type entry struct {
	version uint64
	kind    string
	seqs    map[string]uint64
}

func (e entry) String() string { return fmt.Sprintf("v%d %s %v", e.version, e.kind, e.seqs) }

func (e entry) record(id string) *syncserver.Record {
	return &syncserver.Record{
		Cart:   &cart.Cart{ID: id, Version: e.version},
		Meta:   syncserver.Meta{Kind: e.kind},
		Exists: true,
		Seqs:   maps.Clone(e.seqs),
	}
}

// readEntry reads the hash the cache keeps for id, checking its layout.
func readEntry(t testing.TB, admin *goredis.Client, key string) entry {
	t.Helper()
	h, err := admin.HGetAll(t.Context(), key).Result()
	if err != nil {
		t.Fatalf("HGETALL %s: %v", key, err)
	}
	var e entry
	if e.version, err = strconv.ParseUint(h["v"], 10, 64); err != nil {
		t.Fatalf("%s: field v = %q: %v", key, h["v"], err)
	}
	var c cart.Cart
	if err := json.Unmarshal([]byte(h["c"]), &c); err != nil {
		t.Fatalf("%s: field c = %q: %v", key, h["c"], err)
	}
	if c.Version != e.version {
		t.Errorf("%s: cart JSON at version %d, field v = %d", key, c.Version, e.version)
	}
	var m syncserver.Meta
	if err := json.Unmarshal([]byte(h["m"]), &m); err != nil {
		t.Fatalf("%s: field m = %q: %v", key, h["m"], err)
	}
	e.kind = m.Kind
	e.seqs = map[string]uint64{}
	for f, v := range h {
		client, ok := strings.CutPrefix(f, "s:")
		if !ok {
			if f != "v" && f != "c" && f != "m" {
				t.Errorf("%s: unexpected field %q", key, f)
			}
			continue
		}
		if e.seqs[client], err = strconv.ParseUint(v, 10, 64); err != nil {
			t.Fatalf("%s: field %s = %q: %v", key, f, v, err)
		}
	}
	return e
}

// Every cache write goes through one script: an older version never
// replaces a newer cart, seqs only rise, numbers compare exactly.
func TestCacheWriteIsMonotonic(t *testing.T) {
	const big = 1 << 60 // 1<<60 + 1 is not a float64
	tests := []struct {
		name          string
		first, second entry
		want          entry
	}{
		{"newer replaces",
			entry{1, "guest", map[string]uint64{"a": 1}},
			entry{2, "user", map[string]uint64{"a": 2}},
			entry{2, "user", map[string]uint64{"a": 2}}},
		{"stale write keeps the newer cart",
			entry{5, "user", map[string]uint64{"a": 5, "b": 7}},
			entry{4, "guest", map[string]uint64{"a": 4, "b": 1, "c": 3}},
			entry{5, "user", map[string]uint64{"a": 5, "b": 7, "c": 3}}},
		{"stale write still raises seqs",
			entry{5, "user", map[string]uint64{"a": 2}},
			entry{4, "guest", map[string]uint64{"a": 3}},
			entry{5, "user", map[string]uint64{"a": 3}}},
		{"same version replaces",
			entry{3, "guest", map[string]uint64{"a": 1}},
			entry{3, "user", map[string]uint64{"a": 1}},
			entry{3, "user", map[string]uint64{"a": 1}}},
		{"newer cart never lowers a seq",
			entry{2, "guest", map[string]uint64{"a": 9, "b": 0}},
			entry{3, "user", map[string]uint64{"a": 1, "b": 0}},
			entry{3, "user", map[string]uint64{"a": 9, "b": 0}}},
		{"more digits is newer",
			entry{9, "guest", map[string]uint64{"a": 9}},
			entry{10, "user", map[string]uint64{"a": 10}},
			entry{10, "user", map[string]uint64{"a": 10}}},
		{"exact beyond 2^53",
			entry{big + 1, "user", map[string]uint64{"a": big + 1}},
			entry{big, "guest", map[string]uint64{"a": big}},
			entry{big + 1, "user", map[string]uint64{"a": big + 1}}},
		{"largest uint64",
			entry{math.MaxUint64 - 1, "guest", map[string]uint64{"a": math.MaxUint64 - 1}},
			entry{math.MaxUint64, "user", map[string]uint64{"a": math.MaxUint64}},
			entry{math.MaxUint64, "user", map[string]uint64{"a": math.MaxUint64}}},
	}
	admin := newClient(t, "")
	const ttl = time.Minute
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			prefix := storetest.KeyPrefix(t)
			c := newCache(t, shared(t), newClient(t, ""), prefix, ttl, testLogger(t))
			c.Put(t.Context(), "cart-1", tt.first.record("cart-1"))
			c.Put(t.Context(), "cart-1", tt.second.record("cart-1"))

			key := prefix + "cart:cart-1"
			got := readEntry(t, admin, key)
			if got.version != tt.want.version || got.kind != tt.want.kind || !maps.Equal(got.seqs, tt.want.seqs) {
				t.Errorf("after writing %v then %v: cached %v, want %v", tt.first, tt.second, got, tt.want)
			}
			if d := admin.PTTL(t.Context(), key).Val(); d <= 0 || d > ttl {
				t.Errorf("PTTL = %v, want in (0, %v]", d, ttl)
			}
		})
	}
}

// A login merge marks the guest cart merged without a new version. A write
// of the same version without the mark, landing later (the guest's last
// edit, committed just before the merge on another instance, or a fill read
// before it), must not undo it: the device's ops on that guest cart would
// be refused as "the login merge is not finished" until the entry expired.
func TestCacheKeepsTheMergeMarkAtTheSameVersion(t *testing.T) {
	prefix := storetest.KeyPrefix(t)
	c := newCache(t, shared(t), newClient(t, ""), prefix, time.Minute, testLogger(t))
	rec := func(v uint64, mergedInto string) *syncserver.Record {
		return &syncserver.Record{
			Cart:   &cart.Cart{ID: "g_1", Version: v},
			Meta:   syncserver.Meta{Kind: syncserver.KindGuest, MergedInto: mergedInto},
			Exists: true,
		}
	}
	merged := func() string {
		t.Helper()
		m, err := c.Load(t.Context(), "g_1", nil)
		if err != nil {
			t.Fatalf("Load: %v", err)
		}
		return m.Meta.MergedInto
	}
	c.Put(t.Context(), "g_1", rec(8, "u_1"))
	c.Put(t.Context(), "g_1", rec(8, "")) // late, same version
	if got := merged(); got != "u_1" {
		t.Errorf("after a late write of the same version without the mark: merged into %q, want u_1", got)
	}
	c.Put(t.Context(), "g_1", rec(7, "")) // older
	if got := merged(); got != "u_1" {
		t.Errorf("after an older write: merged into %q, want u_1", got)
	}
	// A newer version replaces it as always (a store never writes one
	// after the merge, but the cache does not need to know that).
	c.Put(t.Context(), "g_1", rec(9, ""))
	if got := merged(); got != "" {
		t.Errorf("after a newer write: merged into %q, want none", got)
	}
	// And the mark replaces an unmarked entry of the same version.
	c.Put(t.Context(), "g_1", rec(9, "u_2"))
	if got := merged(); got != "u_2" {
		t.Errorf("after the mark at the same version: merged into %q, want u_2", got)
	}
}

// Concurrent writers of one entry converge on the newest cart and the
// highest seqs, whatever order their writes land in.
func TestCacheConcurrentWritesConverge(t *testing.T) {
	admin := newClient(t, "")
	prefix := storetest.KeyPrefix(t)
	c := newCache(t, shared(t), newClient(t, ""), prefix, time.Minute, testLogger(t))
	const n = 200
	var wg sync.WaitGroup
	for v := range uint64(n) {
		wg.Go(func() {
			c.Put(t.Context(), "cart-1", entry{v + 1, "guest", map[string]uint64{
				"up": v + 1, "down": n - v, fmt.Sprintf("w%d", v%4): v + 1,
			}}.record("cart-1"))
		})
	}
	wg.Wait()
	got := readEntry(t, admin, prefix+"cart:cart-1")
	want := entry{n, "guest", map[string]uint64{"up": n, "down": n, "w0": n - 3, "w1": n - 2, "w2": n - 1, "w3": n}}
	if got.version != want.version || !maps.Equal(got.seqs, want.seqs) {
		t.Errorf("cached %v, want %v", got, want)
	}
}

// Load serves from Redis when the entry has the cart and every asked
// client's seq, and otherwise loads from the next store and fills.
func TestCacheHitsAndMisses(t *testing.T) {
	admin := newClient(t, "")
	prefix := storetest.KeyPrefix(t)
	next := &counting{Store: shared(t)}
	c := newCache(t, next, newClient(t, ""), prefix, time.Minute, testLogger(t))
	key := prefix + "cart:cart-1"

	if _, err := c.Load(t.Context(), "cart-1", []string{"d1"}); !errors.Is(err, syncserver.ErrCartNotFound) {
		t.Fatalf("Load(unknown) = %v, want ErrCartNotFound", err)
	}
	settle(t, c)
	if got := admin.HGetAll(t.Context(), key).Val(); len(got) != 2 || got["x"] != "1" || got["v"] != "0" {
		t.Errorf("unknown cart cached as %v, want only the missing mark", got)
	}
	if _, err := c.Load(t.Context(), "cart-1", []string{"d1"}); !errors.Is(err, syncserver.ErrCartNotFound) {
		t.Fatalf("Load(unknown) again = %v, want ErrCartNotFound", err)
	}

	mutate(t, c, "cart-1", []string{"d1"}, add("d1", 1))
	loads := next.loads.Load()
	steps := []struct {
		name     string
		clients  []string
		wantSeqs map[string]uint64
		wantHit  bool
	}{
		{"written by Mutate", []string{"d1"}, map[string]uint64{"d1": 1}, true},
		{"no clients", nil, map[string]uint64{}, true},
		{"a client not cached", []string{"d1", "d9"}, map[string]uint64{"d1": 1, "d9": 0}, false},
		{"filled by that Load", []string{"d9", "d1"}, map[string]uint64{"d1": 1, "d9": 0}, true},
	}
	for _, st := range steps {
		rec := load(t, c, "cart-1", st.clients...)
		hit := next.loads.Load() == loads
		loads = next.loads.Load()
		if hit != st.wantHit {
			t.Errorf("%s: served from Redis = %v, want %v", st.name, hit, st.wantHit)
		}
		if rec.Cart.Version != 1 || rec.Cart.Items() != 1 || !rec.Exists || rec.Meta.Kind != syncserver.KindGuest {
			t.Errorf("%s: got version %d, %d items, exists %v, meta %+v; want version 1, 1 item, exists, guest",
				st.name, rec.Cart.Version, rec.Cart.Items(), rec.Exists, rec.Meta)
		}
		if !maps.Equal(rec.Seqs, st.wantSeqs) {
			t.Errorf("%s: seqs %v, want %v", st.name, rec.Seqs, st.wantSeqs)
		}
	}

	// An entry that does not decode is a miss, and the fill repairs it.
	if err := admin.HSet(t.Context(), key, "c", "{not json").Err(); err != nil {
		t.Fatal(err)
	}
	for i, wantHit := range []bool{false, true} {
		rec := load(t, c, "cart-1", "d1")
		hit := next.loads.Load() == loads
		loads = next.loads.Load()
		if hit != wantHit || rec.Cart.Version != 1 || rec.Cart.Items() != 1 {
			t.Errorf("Load %d after corrupting the entry: hit %v, version %d, %d items; want hit %v, version 1, 1 item",
				i, hit, rec.Cart.Version, rec.Cart.Items(), wantHit)
		}
	}
}

// A Mutate through one instance's Cache is seen by a Load through
// another's, from Redis.
func TestCacheSharedBetweenInstances(t *testing.T) {
	prefix := storetest.KeyPrefix(t)
	store := shared(t)
	next1, next2 := &counting{Store: store}, &counting{Store: store}
	c1 := newCache(t, next1, newClient(t, ""), prefix, time.Minute, testLogger(t))
	c2 := newCache(t, next2, newClient(t, ""), prefix, time.Minute, testLogger(t))
	clients := []string{"d1", "d2"}

	mutate(t, c1, "cart-1", clients, add("d1", 1))
	if rec := load(t, c2, "cart-1", clients...); rec.Cart.Version != 1 {
		t.Fatalf("instance 2 after instance 1's Mutate: version %d, want 1", rec.Cart.Version)
	}
	mutate(t, c2, "cart-1", clients, add("d2", 1))
	rec := load(t, c1, "cart-1", clients...)
	if rec.Cart.Version != 2 || rec.Cart.Items() != 2 || !maps.Equal(rec.Seqs, map[string]uint64{"d1": 1, "d2": 1}) {
		t.Errorf("instance 1 after instance 2's Mutate: version %d, %d items, seqs %v; want version 2, 2 items, d1:1 d2:1",
			rec.Cart.Version, rec.Cart.Items(), rec.Seqs)
	}
	if n1, n2 := next1.loads.Load(), next2.loads.Load(); n1 != 0 || n2 != 0 {
		t.Errorf("Loads reaching the next store: %d and %d, want none (served from Redis)", n1, n2)
	}
}

// Merge writes both carts to the cache. Purge deletes the entries of the
// carts it expired, so Redis never serves them; an entry filled again by a
// Load that raced with the purge is dropped by the first write that finds
// the cart expired.
func TestCacheMergeAndPurge(t *testing.T) {
	admin := newClient(t, "")
	prefix := storetest.KeyPrefix(t)
	next := &counting{Store: shared(t)}
	c := newCache(t, next, newClient(t, ""), prefix, time.Minute, testLogger(t))
	key := func(id string) string { return prefix + "cart:" + id }

	mutate(t, c, "guest", []string{"d1"}, add("d1", 1))
	err := c.Merge(t.Context(), "guest", "user", func(from, into *syncserver.Record) error {
		if err := add("d1", 2)(into); err != nil {
			return err
		}
		into.Meta.Kind = syncserver.KindUser
		from.Meta.MergedInto = "user"
		return nil
	})
	if err != nil {
		t.Fatalf("Merge: %v", err)
	}
	settle(t, c)
	loads := next.loads.Load()
	guest, user := load(t, c, "guest", "d1"), load(t, c, "user", "d1")
	if n := next.loads.Load() - loads; n != 0 {
		t.Errorf("Loads after Merge reaching the next store: %d, want none (both carts cached)", n)
	}
	if guest.Meta.MergedInto != "user" || user.Cart.Version != 1 || user.Seqs["d1"] != 2 || user.Meta.Kind != syncserver.KindUser {
		t.Errorf("after Merge: guest meta %+v, user at version %d with seqs %v and meta %+v; want guest merged into user, user at 1 with d1:2",
			guest.Meta, user.Cart.Version, user.Seqs, user.Meta)
	}

	ids, err := c.Purge(t.Context(), syncserver.KindGuest, time.Now().Add(time.Minute), time.Time{}, 10, false)
	if err != nil || len(ids) != 1 || ids[0] != "guest" {
		t.Fatalf("Purge = %q, %v; want [guest]", ids, err)
	}
	settle(t, c)
	if n := admin.Exists(t.Context(), key("guest")).Val(); n != 0 {
		t.Errorf("purged cart still cached (EXISTS = %d)", n)
	}
	if n := admin.Exists(t.Context(), key("user")).Val(); n != 1 {
		t.Errorf("cart of another kind: EXISTS = %d, want it still cached", n)
	}
	if _, err := c.Load(t.Context(), "guest", []string{"d1"}); !errors.Is(err, syncserver.ErrCartExpired) {
		t.Errorf("Load(purged) = %v, want ErrCartExpired", err)
	}

	c.Put(t.Context(), "guest", guest) // a Load that read the cart before the purge fills late
	err = c.Mutate(t.Context(), "guest", []string{"d1"}, func(*syncserver.Record) error {
		t.Error("Mutate on an expired cart called fn")
		return nil
	})
	if !errors.Is(err, syncserver.ErrCartExpired) {
		t.Errorf("Mutate(purged) = %v, want ErrCartExpired", err)
	}
	settle(t, c)
	if n := admin.Exists(t.Context(), key("guest")).Val(); n != 0 {
		t.Errorf("stale entry still cached after a Mutate found the cart expired (EXISTS = %d)", n)
	}
	if _, err := c.Load(t.Context(), "guest", []string{"d1"}); !errors.Is(err, syncserver.ErrCartExpired) {
		t.Errorf("Load(purged) after the stale fill = %v, want ErrCartExpired", err)
	}
}

// A purge takes the carts out of Redis before it returns, and an erasure
// puts the emptied cart there: the server tells the carts' devices at
// once, and one that reconnects to another instance must not read the cart
// as it was (the entries waited for the repair, up to a tick later).
func TestCacheDropsAtOnceWhatDevicesAreToldOf(t *testing.T) {
	admin := newClient(t, "")
	prefix := storetest.KeyPrefix(t)
	store := shared(t)
	c1 := newCache(t, store, newClient(t, ""), prefix, time.Minute, testLogger(t))
	c2 := newCache(t, store, newClient(t, ""), prefix, time.Minute, testLogger(t))
	key := func(id string) string { return prefix + "cart:" + id }
	for _, id := range []string{"guest", "user"} {
		err := c1.Mutate(t.Context(), id, []string{"d1"}, func(rec *syncserver.Record) error {
			if err := add("d1", 1)(rec); err != nil {
				return err
			}
			rec.Meta.Kind = map[string]string{"guest": syncserver.KindGuest, "user": syncserver.KindUser}[id]
			return nil
		})
		if err != nil {
			t.Fatal(err)
		}
	}
	settle(t, c1)
	load(t, c2, "guest", "d1")
	if n := admin.Exists(t.Context(), key("guest"), key("user")).Val(); n != 2 {
		t.Fatalf("EXISTS = %d before, want both carts cached", n)
	}
	if ids, err := c1.Purge(t.Context(), syncserver.KindGuest, time.Now().Add(time.Minute), time.Time{}, 10, false); err != nil || len(ids) != 1 {
		t.Fatalf("Purge = %q, %v", ids, err)
	}
	if n := admin.Exists(t.Context(), key("guest")).Val(); n != 0 {
		t.Errorf("purged cart still in Redis as Purge returned (EXISTS = %d)", n)
	}
	if _, err := c2.Load(t.Context(), "guest", []string{"d1"}); !errors.Is(err, syncserver.ErrCartExpired) {
		t.Errorf("the other instance's Load of the purged cart = %v, want ErrCartExpired", err)
	}
	before := load(t, c2, "user", "d1").Cart.Version
	if ids, err := c1.Erase(t.Context(), "user"); err != nil || len(ids) != 1 {
		t.Fatalf("Erase = %q, %v", ids, err)
	}
	if rec := load(t, c2, "user", "d1"); rec.Cart.Version != before+1 || rec.Cart.Items() != 0 {
		t.Errorf("the other instance reads the erased cart at version %d with %d items, want the emptied cart at %d", rec.Cart.Version, rec.Cart.Items(), before+1)
	}
}

// A copy of the erased cart that another instance writes to Redis a moment
// late (its last commit's write, or a fill whose read began before) does
// not stand over the erasure: the emptied cart is in Redis at a later
// version, so the late copy is refused, and every instance reads the
// cart as the store has it. (The entry was deleted, the late copy stood,
// and the new cart's writes, at lower versions, were refused under it.)
func TestCacheErasedCartNotRestoredByALateWrite(t *testing.T) {
	prefix := storetest.KeyPrefix(t)
	store := shared(t)
	c1 := newCache(t, store, newClient(t, ""), prefix, time.Minute, testLogger(t))
	c2 := newCache(t, store, newClient(t, ""), prefix, time.Minute, testLogger(t))
	for seq := uint64(1); seq <= 3; seq++ {
		err := c2.Mutate(t.Context(), "user", []string{"d1"}, func(rec *syncserver.Record) error {
			rec.Meta.Kind = syncserver.KindUser
			return add("d1", seq)(rec)
		})
		if err != nil {
			t.Fatal(err)
		}
	}
	settle(t, c2)
	before, err := store.Load(t.Context(), "user", []string{"d1"})
	if err != nil {
		t.Fatal(err)
	}
	if ids, err := c1.Erase(t.Context(), "user"); err != nil || len(ids) != 1 {
		t.Fatalf("Erase = %q, %v", ids, err)
	}
	c2.Put(t.Context(), "user", before) // c2's write of its last commit, late
	mutate(t, c1, "user", []string{"d2"}, add("d2", 1))
	settle(t, c1)
	want, err := store.Load(t.Context(), "user", []string{"d2"})
	if err != nil {
		t.Fatal(err)
	}
	for name, c := range map[string]*cartredis.Cache{"c1": c1, "c2": c2} {
		rec := load(t, c, "user", "d2")
		if rec.Cart.Version != want.Cart.Version || rec.Cart.Items() != want.Cart.Items() || rec.Cart.Version <= before.Cart.Version {
			t.Errorf("%s reads version %d with %d items; the store has %d with %d (the erased cart was at %d)",
				name, rec.Cart.Version, rec.Cart.Items(), want.Cart.Version, want.Cart.Items(), before.Cart.Version)
		}
	}
}

// Writes set the TTL and refresh it; no TTL given means DefaultTTL.
func TestCacheTTL(t *testing.T) {
	admin := newClient(t, "")
	tests := []struct {
		name string
		ttl  time.Duration
		want time.Duration
	}{
		{"given", 90 * time.Second, 90 * time.Second},
		{"default", 0, cartredis.DefaultTTL},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			prefix := storetest.KeyPrefix(t)
			c := newCache(t, shared(t), newClient(t, ""), prefix, tt.ttl, testLogger(t))
			key := prefix + "cart:cart-1"
			checkTTL := func(what string) {
				t.Helper()
				d, err := admin.PTTL(t.Context(), key).Result()
				if err != nil {
					t.Fatal(err)
				}
				if d <= tt.want-10*time.Second || d > tt.want {
					t.Errorf("%s: PTTL = %v, want about %v", what, d, tt.want)
				}
			}
			shorten := func() {
				t.Helper()
				if err := admin.PExpire(t.Context(), key, time.Minute/2).Err(); err != nil {
					t.Fatal(err)
				}
			}

			mutate(t, c, "cart-1", []string{"d1"}, add("d1", 1))
			checkTTL("after Mutate")
			shorten()
			load(t, c, "cart-1", "d1", "d2") // d2 is not cached: a fill
			checkTTL("after a fill")
			shorten()
			mutate(t, c, "cart-1", []string{"d1"}, add("d1", 2))
			checkTTL("after a second Mutate")
		})
	}
}

// With Redis unreachable Load and Mutate work through the next store; Ping
// (readiness) does not fail, and Degraded reports it, without go-redis
// types.
func TestCacheRedisDown(t *testing.T) {
	next := &counting{Store: shared(t)}
	c := newCache(t, next, downClient(t), "down:", time.Minute, slog.New(slog.DiscardHandler))

	for seq := range uint64(2) {
		if err := c.Mutate(t.Context(), "cart-1", []string{"d1"}, add("d1", seq+1)); err != nil {
			t.Fatal(err)
		}
	}
	rec, err := c.Load(t.Context(), "cart-1", []string{"d1"})
	if err != nil {
		t.Fatal(err)
	}
	if rec.Cart.Version != 2 || rec.Seqs["d1"] != 2 || next.loads.Load() != 1 {
		t.Errorf("Load: version %d, seq %d, %d loads from the next store; want 2, 2, 1", rec.Cart.Version, rec.Seqs["d1"], next.loads.Load())
	}
	if _, err := c.Load(t.Context(), "cart-2", nil); !errors.Is(err, syncserver.ErrCartNotFound) {
		t.Errorf("Load(unknown) = %v, want ErrCartNotFound", err)
	}
	if chs, err := c.Changes(t.Context(), "cart-1", 0, 10); err != nil || len(chs) != 2 {
		t.Errorf("Changes = %d changes, %v; want 2", len(chs), err)
	}
	if err := c.Ping(t.Context()); err != nil {
		t.Errorf("Ping with Redis down = %v, want nil: the store answers", err)
	}
	deadline := time.Now().Add(10 * time.Second)
	for c.Degraded() == nil && time.Now().Before(deadline) {
		time.Sleep(5 * time.Millisecond) // the background writer tries Redis
	}
	err = c.Degraded()
	if err == nil {
		t.Error("Degraded with Redis down: nil")
	}
	noRedisTypes(t, "Degraded", err)
}

// A Redis that hangs (SIGSTOP) while edits are committed makes the cache
// write after each commit time out. No read may then go back in time:
// while Redis hangs, during the pause and after it resumes, every Load
// through the instance that committed, and through another instance once
// the entries are repaired, returns the newest version, with the newest
// seqs; and committing never waited on Redis for longer than the store.
func TestCacheNeverServesOlderThanCommittedAfterRedisHangs(t *testing.T) {
	rp := storetest.StartRedis(t)
	store := shared(t)
	c1 := newCache(t, store, procClient(t, rp), "hang:", time.Hour, slog.New(slog.DiscardHandler))
	c2 := newCache(t, store, procClient(t, rp), "hang:", time.Hour, slog.New(slog.DiscardHandler))
	const carts = 5
	id := func(i int) string { return fmt.Sprint("cart-", i) }
	check := func(what string, c *cartredis.Cache, want uint64) {
		t.Helper()
		for i := range carts {
			rec := load(t, c, id(i), "d1")
			if rec.Cart.Version != want || rec.Seqs["d1"] != want {
				t.Errorf("%s: %s at version %d with seq %d, want %d", what, id(i), rec.Cart.Version, rec.Seqs["d1"], want)
			}
		}
	}
	for seq := uint64(1); seq <= 3; seq++ {
		for i := range carts {
			mutate(t, c1, id(i), []string{"d1"}, add("d1", seq))
		}
	}
	check("before the hang, instance 2", c2, 3) // cached in Redis at 3

	rp.Pause()
	for seq := uint64(4); seq <= 12; seq++ {
		for i := range carts {
			if err := c1.Mutate(t.Context(), id(i), []string{"d1"}, add("d1", seq)); err != nil {
				t.Fatalf("Mutate while Redis hangs: %v", err)
			}
		}
	}
	for i := range carts {
		rec, err := c1.Load(t.Context(), id(i), []string{"d1"})
		if err != nil || rec.Cart.Version != 12 {
			t.Fatalf("while Redis hangs: %s = %+v, %v; want version 12", id(i), rec, err)
		}
	}
	for deadline := time.Now().Add(10 * time.Second); c1.Degraded() == nil; {
		if time.Now().After(deadline) {
			t.Fatal("Degraded while Redis hangs: still nil")
		}
		time.Sleep(5 * time.Millisecond) // the queued writes time out
	}
	for i := range carts { // still fresh, now from the store with Redis paused
		if rec, err := c1.Load(t.Context(), id(i), []string{"d1"}); err != nil || rec.Cart.Version != 12 {
			t.Fatalf("while Redis hangs, degraded: %s = %+v, %v; want version 12", id(i), rec, err)
		}
	}

	rp.Resume()
	// The very first read after the resume, before any repair, is fresh.
	for i := range carts {
		rec, err := c1.Load(t.Context(), id(i), []string{"d1"})
		if err != nil || rec.Cart.Version != 12 {
			t.Fatalf("right after the resume: %s = %+v, %v; want version 12", id(i), rec, err)
		}
	}
	settle(t, c1) // repaired
	if err := c1.Degraded(); err != nil {
		t.Errorf("Degraded after the repair: %v", err)
	}
	check("after the repair, instance 1", c1, 12)
	check("after the repair, instance 2", c2, 12)
	check("a minute later, as it were (served from Redis)", c1, 12)
}

// A subscription made while Redis is away is confirmed when it comes, and
// then carries other instances' updates; Degraded clears.
func TestBusSubscriptionStandsWhileRedisIsAway(t *testing.T) {
	rp := storetest.StartRedis(t)
	rp.Stop()
	a, b := cartredis.NewBus(procClient(t, rp), "away:", testLogger(t)), cartredis.NewBus(procClient(t, rp), "away:", testLogger(t))
	t.Cleanup(func() { a.Close(); b.Close() })
	got := make(chan string, 16)
	stop, err := a.Subscribe(t.Context(), "cart-1", func(p []byte) { got <- string(p) })
	if err != nil {
		t.Fatalf("Subscribe with Redis away: %v", err)
	}
	defer stop()
	if a.Degraded() == nil {
		t.Error("Degraded with the subscription unconfirmed: nil")
	}
	rp.Start()
	deadline := time.Now().Add(30 * time.Second)
	for a.Degraded() != nil {
		if time.Now().After(deadline) {
			t.Fatalf("never confirmed after Redis came: %v", a.Degraded())
		}
		time.Sleep(20 * time.Millisecond)
	}
	for {
		if err := b.Publish(t.Context(), "cart-1", []byte("v2")); err != nil {
			t.Fatal(err)
		}
		select {
		case p := <-got:
			if p != "v2" {
				t.Fatalf("got %q, want v2", p)
			}
			return
		case <-time.After(100 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			t.Fatal("no update from the other instance after Redis came")
		}
	}
}

// A cart the store does not have is remembered as missing: the next Load
// does not reach the store. A commit through another instance replaces
// the mark, and so does a commit that wrote only meta (a repair deletes
// it): the cart is never hidden.
func TestCacheRemembersMissingCarts(t *testing.T) {
	prefix := storetest.KeyPrefix(t)
	store := shared(t)
	next1 := &counting{Store: store}
	c1 := newCache(t, next1, newClient(t, ""), prefix, time.Minute, testLogger(t))
	c2 := newCache(t, store, newClient(t, ""), prefix, time.Minute, testLogger(t))
	for i := range 2 {
		if _, err := c1.Load(t.Context(), "cart-1", []string{"d1"}); !errors.Is(err, syncserver.ErrCartNotFound) {
			t.Fatalf("Load %d of a missing cart = %v, want ErrCartNotFound", i, err)
		}
		settle(t, c1)
	}
	if n := next1.loads.Load(); n != 1 {
		t.Errorf("Loads of a missing cart reaching the store: %d, want 1", n)
	}
	mutate(t, c2, "cart-1", []string{"d1"}, add("d1", 1))
	if rec := load(t, c1, "cart-1", "d1"); rec.Cart.Version != 1 || rec.Seqs["d1"] != 1 {
		t.Errorf("after another instance created it: version %d, seq %d; want 1, 1", rec.Cart.Version, rec.Seqs["d1"])
	}

	// A commit that creates a cart without a version (a meta-only write)
	// is not copied to Redis: the mark is deleted instead.
	if _, err := c1.Load(t.Context(), "cart-2", nil); !errors.Is(err, syncserver.ErrCartNotFound) {
		t.Fatal(err)
	}
	settle(t, c1)
	mutate(t, c1, "cart-2", nil, func(rec *syncserver.Record) error {
		rec.Meta.Kind = syncserver.KindGuest
		rec.Meta.MergedInto = "user-9"
		return nil
	})
	if rec := load(t, c1, "cart-2"); rec.Meta.MergedInto != "user-9" {
		t.Errorf("after a meta-only commit: meta %+v, want merged into user-9", rec.Meta)
	}
	if rec := load(t, c2, "cart-2"); rec.Meta.MergedInto != "user-9" {
		t.Errorf("another instance after a meta-only commit: meta %+v, want merged into user-9", rec.Meta)
	}
}

// quietRedis drops go-redis's own log lines ("failed to dial"), which the
// tests of a Redis that is down or paused provoke by the hundred; the
// packages' own logging goes through slog as usual.
type quietRedis struct{}

func (quietRedis) Printf(context.Context, string, ...any) {}

func init() { goredis.SetLogger(quietRedis{}) }

// A cart id just issued to a new device is remembered as missing: the
// device's loads until its first edit do not reach the store, and the
// first commit (here through another instance) replaces the mark.
func TestCacheNoteNewCart(t *testing.T) {
	prefix := storetest.KeyPrefix(t)
	store := shared(t)
	next1 := &counting{Store: store}
	c1 := newCache(t, next1, newClient(t, ""), prefix, time.Minute, testLogger(t))
	c2 := newCache(t, store, newClient(t, ""), prefix, time.Minute, testLogger(t))
	var _ syncserver.NewCartNoter = c1
	c1.NoteNewCart(t.Context(), "new-cart")
	for i := range 3 {
		if _, err := c1.Load(t.Context(), "new-cart", []string{"d1"}); !errors.Is(err, syncserver.ErrCartNotFound) {
			t.Fatalf("Load %d of a new cart = %v, want ErrCartNotFound", i, err)
		}
	}
	if n := next1.loads.Load(); n != 0 {
		t.Errorf("Loads of a new cart reaching the store: %d, want 0", n)
	}
	mutate(t, c2, "new-cart", []string{"d1"}, add("d1", 1))
	if rec := load(t, c1, "new-cart", "d1"); rec.Cart.Version != 1 || rec.Seqs["d1"] != 1 {
		t.Errorf("after the first commit: version %d, seq %d; want 1, 1", rec.Cart.Version, rec.Seqs["d1"])
	}

	// Noted after a commit of the same id (a clash that cannot happen
	// with random ids, but must not hide a cart): the mark is not written.
	mutate(t, c2, "old-cart", []string{"d1"}, add("d1", 1))
	settle(t, c2)
	c1.NoteNewCart(t.Context(), "old-cart")
	settle(t, c1)
	if rec := load(t, c1, "old-cart", "d1"); rec.Cart.Version != 1 {
		t.Errorf("a noted cart that exists: version %d, want 1", rec.Cart.Version)
	}
}

// The mark is written before NoteNewCart returns: a commit that leaves no
// entry in Redis (a login binding the guest cart, at version 0) on another
// instance afterwards deletes it, and the cart is never hidden.
func TestCacheNoteNewCartThenUncachedCommit(t *testing.T) {
	prefix := storetest.KeyPrefix(t)
	store := shared(t)
	c1 := newCache(t, store, newClient(t, ""), prefix, time.Minute, testLogger(t))
	c2 := newCache(t, store, newClient(t, ""), prefix, time.Minute, testLogger(t))
	c1.NoteNewCart(t.Context(), "g-bound")
	mutate(t, c2, "g-bound", nil, func(rec *syncserver.Record) error {
		rec.Meta.Kind = syncserver.KindGuest
		rec.Meta.MergedInto = "u-1"
		return nil
	})
	settle(t, c2)
	settle(t, c1)
	for _, c := range []*cartredis.Cache{c1, c2} {
		rec, err := c.Load(t.Context(), "g-bound", nil)
		if err != nil || rec.Meta.MergedInto != "u-1" {
			t.Fatalf("Load after the binding = %+v, %v; want the bound guest cart", rec, err)
		}
	}
}

// roundTrips counts a client's round trips to Redis with HMGETs in them
// (not the commands that set up a new connection): single commands and
// pipelines, with the HMGETs the pipelines carried. Until release is
// closed, the first hold single HMGETs wait before going out.
type roundTrips struct {
	mu        sync.Mutex
	singles   int
	pipelines int
	piped     int
	hold      int
	held      chan struct{} // one send per held command
	release   chan struct{}
}

func (h *roundTrips) DialHook(next goredis.DialHook) goredis.DialHook { return next }

func (h *roundTrips) ProcessHook(next goredis.ProcessHook) goredis.ProcessHook {
	return func(ctx context.Context, cmd goredis.Cmder) error {
		if cmd.Name() != "hmget" {
			return next(ctx, cmd)
		}
		h.mu.Lock()
		h.singles++
		wait := h.singles <= h.hold
		h.mu.Unlock()
		if wait {
			h.held <- struct{}{}
			<-h.release
		}
		return next(ctx, cmd)
	}
}

func (h *roundTrips) ProcessPipelineHook(next goredis.ProcessPipelineHook) goredis.ProcessPipelineHook {
	return func(ctx context.Context, cmds []goredis.Cmder) error {
		n := 0
		for _, cmd := range cmds {
			if cmd.Name() == "hmget" {
				n++
			}
		}
		if n > 0 {
			h.mu.Lock()
			h.pipelines++
			h.piped += n
			h.mu.Unlock()
		}
		return next(ctx, cmds)
	}
}

// Reads that arrive while every read pipeline is busy go out together, in
// one round trip, and each caller gets its own key's answer; a caller that
// left before its turn is skipped without holding up the others.
func TestCacheReadsShareRoundTrips(t *testing.T) {
	admin := newClient(t, "")
	prefix := storetest.KeyPrefix(t)
	const keys = 100
	for i := range keys {
		if err := admin.HSet(t.Context(), fmt.Sprintf("%sk%d", prefix, i), "v", strconv.Itoa(i)).Err(); err != nil {
			t.Fatal(err)
		}
	}
	client := newClient(t, "")
	hook := &roundTrips{hold: cartredis.ReadPipelines, held: make(chan struct{}), release: make(chan struct{})}
	client.AddHook(hook)
	reads := cartredis.NewHashReads(client)

	read := func(ctx context.Context, i int, errs chan<- error) {
		vals, err := reads.HMGet(ctx, fmt.Sprintf("%sk%d", prefix, i), "v", "absent")
		switch {
		case err != nil:
			errs <- fmt.Errorf("read %d: %w", i, err)
		case len(vals) != 2 || vals[0] != strconv.Itoa(i) || vals[1] != nil:
			errs <- fmt.Errorf("read %d: got %v, want [%d <nil>]", i, vals, i)
		default:
			errs <- nil
		}
	}
	errs := make(chan error, keys)
	// Every pipeline slot taken by a read that Redis has not answered.
	for i := range cartredis.ReadPipelines {
		go read(t.Context(), i, errs)
		<-hook.held
	}
	// The rest queue behind them; one of them leaves before its turn.
	gone, leave := context.WithCancel(t.Context())
	goneErr := make(chan error, 1)
	go func() {
		_, err := reads.HMGet(gone, prefix+"k0", "v")
		goneErr <- err
	}()
	for i := cartredis.ReadPipelines; i < keys; i++ {
		go read(t.Context(), i, errs)
	}
	deadline := time.Now().Add(wait)
	for reads.Queued() < keys-cartredis.ReadPipelines+1 {
		if time.Now().After(deadline) {
			t.Fatalf("%d reads queued after %s, want %d", reads.Queued(), wait, keys-cartredis.ReadPipelines+1)
		}
		time.Sleep(time.Millisecond)
	}
	leave()
	if err := <-goneErr; !errors.Is(err, context.Canceled) {
		t.Fatalf("the read whose caller left: %v, want context.Canceled", err)
	}
	close(hook.release)
	for range keys {
		if err := <-errs; err != nil {
			t.Error(err)
		}
	}
	hook.mu.Lock()
	defer hook.mu.Unlock()
	if hook.singles != cartredis.ReadPipelines || hook.pipelines != 1 || hook.piped != keys-cartredis.ReadPipelines {
		t.Errorf("round trips: %d single commands and %d pipelines carrying %d commands; want %d, 1 and %d",
			hook.singles, hook.pipelines, hook.piped, cartredis.ReadPipelines, keys-cartredis.ReadPipelines)
	}
}

// A thousand carts subscribed at once are confirmed by Redis and each
// gets what is published on it.
func TestBusManySubscriptionsAtOnce(t *testing.T) {
	prefix := storetest.KeyPrefix(t)
	bus := newBus(t, newClient(t, ""), prefix)
	const carts = 1000
	ins := make([]inbox, carts)
	var wg sync.WaitGroup
	for i := range carts {
		wg.Go(func() {
			in := make(inbox, 4)
			ctx, cancel := context.WithTimeout(t.Context(), wait)
			defer cancel()
			stop, err := bus.Subscribe(ctx, fmt.Sprintf("cart-%d", i), in.fn)
			if err != nil {
				t.Errorf("Subscribe(cart-%d): %v", i, err)
				return
			}
			t.Cleanup(stop)
			ins[i] = in
		})
	}
	wg.Wait()
	if t.Failed() {
		return
	}
	if err := bus.Degraded(); err != nil {
		t.Fatalf("after subscribing: %v", err)
	}
	for i := range carts {
		if err := bus.Publish(t.Context(), fmt.Sprintf("cart-%d", i), []byte(strconv.Itoa(i))); err != nil {
			t.Fatal(err)
		}
	}
	for i, in := range ins {
		in.expect(t, strconv.Itoa(i))
	}
}

// afterClose is a log destination that counts what is written once closed
// is set.
type afterClose struct {
	closed atomic.Bool
	late   atomic.Int64
}

func (a *afterClose) Write(p []byte) (int, error) {
	if a.closed.Load() {
		a.late.Add(1)
	}
	return len(p), nil
}

// Close stops the bus's goroutines before it returns: subscriptions
// cancelled just before it, whose UNSUBSCRIBE may be in flight when the
// connection closes, log nothing afterwards (a test's logger would panic).
func TestBusCloseLeavesNothingRunning(t *testing.T) {
	for range 5 {
		out := &afterClose{}
		bus := cartredis.NewBus(newClient(t, ""), storetest.KeyPrefix(t), slog.New(slog.NewTextHandler(out, nil)))
		var stops []func()
		for i := range 300 {
			stop, err := bus.Subscribe(t.Context(), fmt.Sprintf("cart-%d", i), func([]byte) {})
			if err != nil {
				t.Fatal(err)
			}
			stops = append(stops, stop)
		}
		for _, stop := range stops {
			stop()
		}
		if err := bus.Close(); err != nil {
			t.Fatal(err)
		}
		out.closed.Store(true)
		time.Sleep(50 * time.Millisecond) // what would still run
		if n := out.late.Load(); n > 0 {
			t.Fatalf("%d log lines after Close returned", n)
		}
	}
}
