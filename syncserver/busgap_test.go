package syncserver_test

import (
	"context"
	"errors"
	"net/http/httptest"
	"sync"
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
// Pub/Sub does while Redis hangs: down, it says it is degraded and loses
// every publication; lose, it loses them without saying so yet (the
// moments before a publish times out).
type lossyBus struct {
	*syncserver.MemBus
	mu     sync.Mutex
	down   bool
	lose   bool
	losses uint64
}

func (b *lossyBus) set(down, lose bool) {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.down, b.lose = down, lose
}

func (b *lossyBus) Publish(ctx context.Context, cartID string, p []byte) error {
	b.mu.Lock()
	lost := b.down || b.lose
	if lost {
		b.losses++
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

func (b *lossyBus) Losses() uint64 {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.losses
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
	editor := dial(t, hs)
	w, _ := editor.hello("ed", "")
	watcher := dial(t, hs)
	watcher.hello("wa", w.DeviceToken)

	bus.set(true, false)
	time.Sleep(300 * time.Millisecond) // the server looks at the bus every 100 ms
	editor.send(&protocol.Message{Type: protocol.TypePush, Ops: []cart.Op{addOp("ed", 1, "A", 1)}})
	editor.expectAck()
	if m := watcher.expectCartAt(1); m.From != 0 || len(m.By) != 1 {
		t.Fatalf("push while the bus is down: %+v, want the edit from version 0", m)
	}

	// Lost without the bus saying so, then healthy again.
	bus.set(false, true)
	time.Sleep(300 * time.Millisecond)
	editor.send(&protocol.Message{Type: protocol.TypePush, Ops: []cart.Op{addOp("ed", 2, "B", 1)}})
	editor.expectAck()
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
