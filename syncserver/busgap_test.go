package syncserver_test

import (
	"context"
	"encoding/json"
	"errors"
	"net/http/httptest"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	goredis "github.com/redis/go-redis/v9"

	"github.com/cartsync/cartsync/shared/cart"
	"github.com/cartsync/cartsync/shared/protocol"
	"github.com/cartsync/cartsync/shared/syncclient"
	"github.com/cartsync/cartsync/syncserver"
	"github.com/cartsync/cartsync/syncserver/memstore"
	cartredis "github.com/cartsync/cartsync/syncserver/redis"
	"github.com/cartsync/cartsync/syncserver/storetest"
)

// lossyBus is a MemBus that loses publications on demand, as Redis
// Pub/Sub does: down (Redis hangs), it says it is degraded and losing, and
// loses every publication, its subscriptions missing what others publish;
// lose, it loses its own publications on their way out without being
// degraded (a queue full, a timeout on this instance's link only).
type lossyBus struct {
	*syncserver.MemBus
	mu     sync.Mutex
	down   bool
	lose   bool
	losses uint64
	lost   []string
}

func (b *lossyBus) set(down, lose bool) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if down && !b.down {
		b.losses++
	}
	b.down, b.lose = down, lose
}

func (b *lossyBus) Publish(ctx context.Context, cartID string, p []byte) error {
	b.mu.Lock()
	lost := b.down || b.lose
	if lost {
		b.lost = append(b.lost, cartID)
	}
	b.mu.Unlock()
	if lost {
		return nil // queued, never delivered
	}
	return b.MemBus.Publish(ctx, cartID, p)
}

func (b *lossyBus) Degraded() error {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.down {
		return errors.New("bus down")
	}
	return nil
}

func (b *lossyBus) Losing() bool {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.down
}

func (b *lossyBus) Losses() uint64 {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.losses
}

func (b *lossyBus) TakeLost() ([]string, bool) {
	b.mu.Lock()
	defer b.mu.Unlock()
	lost := b.lost
	b.lost = nil
	return lost, false
}

// flagBus is a MemBus that delivers every publication but says it is
// degraded while degraded is set (as the Redis bus does while a
// subscription waits for its confirmation, or after a dropped publication,
// with PUBLISH and delivery still working).
type flagBus struct {
	*syncserver.MemBus
	degraded atomic.Bool
}

func (b *flagBus) Degraded() error {
	if b.degraded.Load() {
		return errors.New("one subscription not confirmed yet")
	}
	return nil
}
func (b *flagBus) Losing() bool               { return false }
func (b *flagBus) Losses() uint64             { return 0 }
func (b *flagBus) TakeLost() ([]string, bool) { return nil, false }

// cartsFor reads cart messages until none comes for d, and returns them.
func (c *wsClient) cartsFor(d time.Duration) []*protocol.Message {
	var out []*protocol.Message
	for {
		ctx, cancel := context.WithTimeout(context.Background(), d)
		_, b, err := c.conn.Read(ctx)
		cancel()
		if err != nil {
			return out
		}
		var m *protocol.Message
		if err := json.Unmarshal(b, &m); err != nil {
			c.t.Fatalf("decode: %v", err)
		}
		if m.Type == protocol.TypeCart {
			out = append(out, m)
		}
	}
}

// sameCart opens two devices on one guest cart: the editor's on edHS, the
// other (client id wa) on waHS, which may be another instance.
func sameCart(t *testing.T, edHS, waHS *httptest.Server) (editor, other *wsClient) {
	t.Helper()
	editor = dial(t, edHS)
	w, _ := editor.hello("ed", "")
	other = dial(t, waHS)
	other.hello("wa", w.DeviceToken)
	return editor, other
}

// edit pushes one add of the editor's and waits for its ack.
func (c *wsClient) edit(seq uint64, sku string) {
	c.t.Helper()
	c.send(&protocol.Message{Type: protocol.TypePush, Ops: []cart.Op{addOp("ed", seq, sku, 1)}})
	c.expectAck()
}

// expectAck reads until an ack arrives, past carts sent again (watchBus).
func (c *wsClient) expectAck() *protocol.Message {
	c.t.Helper()
	for {
		if m := c.read(); m.Type != protocol.TypeCart {
			if m.Type != protocol.TypeAck {
				c.t.Fatalf("got %s %+v, want ack", m.Type, m.Error)
			}
			return m
		}
	}
}

// expectCartAt reads until a cart message at version v arrives.
func (c *wsClient) expectCartAt(v uint64) *protocol.Message {
	c.t.Helper()
	for {
		m := c.read()
		if m.Type == protocol.TypeCart && m.Cart != nil && m.Cart.Version >= v {
			return m
		}
	}
}

// TestPushesThroughABusOutage: two devices of one cart on one instance.
// While the bus is degraded, an edit's push reaches the other device
// directly; a push the bus lost before it said so reaches it once the bus
// is healthy again, as the cart at its version (the device sees the gap
// and syncs). Before, both waited for the device's five-minute resync.
func TestPushesThroughABusOutage(t *testing.T) {
	bus := &lossyBus{MemBus: syncserver.NewMemBus()}
	_, hs := newServerWith(t, syncserver.Config{Bus: bus})
	editor, watcher := sameCart(t, hs, hs)

	bus.set(true, false)
	time.Sleep(300 * time.Millisecond)
	editor.edit(1, "A")
	if m := watcher.expectCartAt(1); m.From != 0 || len(m.By) != 1 {
		t.Fatalf("push while the bus is down: %+v, want the edit from version 0", m)
	}

	// Lost without the bus saying so, then healthy again.
	bus.set(false, true)
	time.Sleep(300 * time.Millisecond)
	editor.edit(2, "B")
	bus.set(false, false)
	if m := watcher.expectCartAt(2); m.From != 2 || qty(m.Cart, "B") != 1 {
		t.Fatalf("after the bus came back: %+v, want the cart at version 2 (from 2)", m)
	}
}

// TestRedisHangPushesCatchUp: two instances on one Redis, an editing
// device and a watching one on the first, a watching one on the second.
// Redis hangs while the first device edits, then answers again: both
// watchers reach the edit (before, they stayed on the old cart until their
// five-minute resync, the second as the first).
func TestRedisHangPushesCatchUp(t *testing.T) {
	rp := storetest.StartRedis(t)
	st := memstore.New()
	hsFor := func() *httptest.Server {
		opt, _ := goredis.ParseURL(rp.URL())
		opt.ContextTimeoutEnabled = true
		rc := goredis.NewClient(opt)
		t.Cleanup(func() { rc.Close() })
		bus := cartredis.NewBus(rc, "hang:", nil)
		t.Cleanup(func() { bus.Close() })
		_, hs := newServerWith(t, syncserver.Config{Store: st, Bus: bus})
		return hs
	}
	a, b := hsFor(), hsFor()
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	t.Cleanup(func() { cancel(); wg.Wait() })
	var token string
	var first *syncclient.MemStorage
	engine := func(hs *httptest.Server) *syncclient.Engine {
		s := syncclient.NewMemStorage()
		if first == nil {
			first = s
		}
		if token != "" {
			s.SwapDeviceToken(ctx, "", token)
		}
		e, err := syncclient.New(syncclient.Config{Storage: s, Dial: syncclient.WebsocketDialer(syncURL(hs))})
		if err != nil {
			t.Fatal(err)
		}
		wg.Add(1)
		go func() { defer wg.Done(); e.Run(ctx) }()
		return e
	}
	editor := engine(a)
	if err := editor.Add(ctx, "before", nil, 1, nil); err != nil {
		t.Fatal(err)
	}
	if !e2eEventually(func() bool { return editor.Snapshot().Confirmed == 1 }) {
		t.Fatal("the first edit was not acknowledged")
	}
	stored, err := first.Load(ctx)
	if err != nil || stored.DeviceToken == "" {
		t.Fatalf("the editor's device token: %v", err)
	}
	token = stored.DeviceToken
	near, far := engine(a), engine(b)
	if !e2eEventually(func() bool { return near.Snapshot().Confirmed == 1 && far.Snapshot().Confirmed == 1 }) {
		t.Fatal("the watchers did not start on the cart")
	}
	rp.Pause()
	// An edit every 2 s through an 8 s hang: the publishes time out, and
	// go-redis gives up their connections.
	for i := range 4 {
		if err := editor.Add(ctx, "during", nil, 1, nil); err != nil {
			t.Fatal(err)
		}
		if !e2eEventually(func() bool { return editor.Snapshot().Confirmed == uint64(2+i) }) {
			t.Fatal("an edit made while Redis hangs was not acknowledged")
		}
		time.Sleep(2 * time.Second)
	}
	rp.Resume()
	if !e2eEventually(func() bool { return near.Snapshot().Confirmed == 5 && far.Snapshot().Confirmed == 5 }) {
		t.Fatalf("after Redis answered again the watchers show versions %d (same instance) and %d (the other); the cart is at 5",
			near.Snapshot().Confirmed, far.Snapshot().Confirmed)
	}
}

// TestDegradedButDeliveringPushesOnce: while the bus says it is
// degraded but still delivers (PUBLISH works), every push reaches each
// local connection twice, and the editing connection gets its own edit
// echoed back (the direct delivery consumed the echo entry).
func TestDegradedButDeliveringPushesOnce(t *testing.T) {
	bus := &flagBus{MemBus: syncserver.NewMemBus()}
	_, hs := newServerWith(t, syncserver.Config{Bus: bus})
	editor, watcher := sameCart(t, hs, hs)

	bus.degraded.Store(true)
	time.Sleep(300 * time.Millisecond)
	editor.edit(1, "A")
	got := watcher.cartsFor(500 * time.Millisecond)
	echoed := editor.cartsFor(200 * time.Millisecond)
	if len(got) != 1 || len(echoed) != 0 {
		t.Fatalf("one edit while the bus is degraded but delivering: the watcher got %d pushes (want 1), the editor %d echoes of its own edit (want 0)", len(got), len(echoed))
	}
}

// gateStore blocks Load while gate is set, until released.
type gateStore struct {
	*memstore.Store
	gate    atomic.Bool
	release chan struct{}
	once    sync.Once
}

func (s *gateStore) Load(ctx context.Context, id string, clients []string) (*syncserver.Record, error) {
	if s.gate.Load() {
		select {
		case <-s.release:
		case <-ctx.Done():
			return nil, ctx.Err()
		}
	}
	return s.Store.Load(ctx, id, clients)
}

// TestResendKeepsWatchingTheBus: while carts are sent again after an
// outage (one store read each: with 50,000 connections, tens of seconds),
// a push made as the bus loses publications again still reaches a device
// on the same instance. (A first version sent the carts from the loop that
// watched the bus, and stopped noticing it.)
func TestResendKeepsWatchingTheBus(t *testing.T) {
	bus := &lossyBus{MemBus: syncserver.NewMemBus()}
	st := &gateStore{Store: memstore.New(), release: make(chan struct{})}
	t.Cleanup(func() { st.once.Do(func() { close(st.release) }) })
	_, hs := newServerWith(t, syncserver.Config{Bus: bus, Store: st})
	editor, watcher := sameCart(t, hs, hs)
	editor.edit(1, "A")
	watcher.expectCartAt(1)

	// A loss the bus does not report as degraded: watchBus starts a
	// resend, whose store reads are slow (here: held).
	st.gate.Store(true)
	bus.set(false, true)
	editor.edit(2, "B")
	bus.set(false, false)
	time.Sleep(300 * time.Millisecond) // the resend is under way, held in Load

	// Now the bus goes down and says so.
	bus.set(true, false)
	time.Sleep(500 * time.Millisecond)
	editor.edit(3, "C")
	got := watcher.cartsFor(700 * time.Millisecond)
	for _, m := range got {
		if m.Cart != nil && m.Cart.Version >= 3 {
			return
		}
	}
	t.Fatalf("the bus said it was losing publications for 500 ms, yet the watcher on the same instance got no push of version 3 (got %d messages)", len(got))
}

// TestOneSidedLoss: two instances on one bus; only the editing instance's
// publications are lost (its queue full, its link to Redis timing out).
// Once its bus is healthy it names the cart on the bus, and the device on
// the other instance, whose bus lost nothing it knows of, gets the cart
// again (a first version repaired only the instance that counted the
// loss). Also when the notice naming the lost carts is lost too (Redis
// blips again right after the health check): the next notice names them
// again (a first version forgot them).
func TestOneSidedLoss(t *testing.T) {
	for _, noticeLost := range []bool{false, true} {
		shared := syncserver.NewMemBus()
		st := memstore.New()
		busA := &lossyBus{MemBus: shared}
		busB := &lossyBus{MemBus: shared}
		_, hsA := newServerWith(t, syncserver.Config{Bus: busA, Store: st})
		_, hsB := newServerWith(t, syncserver.Config{Bus: busB, Store: st})
		editor, far := sameCart(t, hsA, hsB)
		editor.edit(1, "A")
		far.expectCartAt(1)

		busA.set(false, true) // lost on A's side only
		editor.edit(2, "B")
		if noticeLost {
			time.Sleep(1500 * time.Millisecond) // a health look publishes the notice; it is lost too
		}
		busA.set(false, false)
		got := far.cartsFor(6 * time.Second)
		if !slices.ContainsFunc(got, func(m *protocol.Message) bool { return m.Cart != nil && m.Cart.Version >= 2 }) {
			t.Errorf("notice lost %v: the device on the other instance got nothing of version 2 (%d messages)", noticeLost, len(got))
		}
	}
}
