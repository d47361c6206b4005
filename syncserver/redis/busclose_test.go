package redis_test

import (
	"context"
	"sync"
	"testing"
	"time"

	cartredis "github.com/cartsync/cartsync/syncserver/redis"
	"github.com/cartsync/cartsync/syncserver/storetest"
)

// TestBusCloseSendsQueuedPublications: a publication queued (an
// acknowledged edit's push) when an instance shuts down gracefully still
// reaches the other instances. (Close dropped whatever was queued behind
// a pipeline in flight.)
func TestBusCloseSendsQueuedPublications(t *testing.T) {
	rp := storetest.StartRedis(t)
	recv := cartredis.NewBus(procClient(t, rp), "bq:", testLogger(t))
	t.Cleanup(func() { recv.Close() })
	var mu sync.Mutex
	got := map[string]bool{}
	for i := range 12 {
		id := "cart" + string(rune('a'+i))
		if _, err := recv.Subscribe(t.Context(), id, func(p []byte) { mu.Lock(); got[string(p)] = true; mu.Unlock() }); err != nil {
			t.Fatal(err)
		}
	}
	lost := 0
	for i := range 12 {
		id := "cart" + string(rune('a'+i))
		send := cartredis.NewBus(procClient(t, rp), "bq:", testLogger(t))
		rp.Pause()
		send.Publish(context.Background(), id, []byte(id+"-1")) // taken by the publisher, which waits on Redis
		time.Sleep(50 * time.Millisecond)
		send.Publish(context.Background(), id, []byte(id+"-2")) // queued behind it
		rp.Resume()
		send.Close() // graceful shutdown right after the last acks
		time.Sleep(200 * time.Millisecond)
		mu.Lock()
		if !got[id+"-2"] {
			lost++
			t.Logf("round %d: the last publication (%s-2) never reached the other instance (first: %v)", i, id, got[id+"-1"])
		}
		mu.Unlock()
	}
	if lost > 0 {
		t.Errorf("%d of 12 graceful Closes dropped a queued publication", lost)
	}
}

// TestBusReportsWhatItLost: while Redis hangs a publish fails, the bus
// says it is losing and counts a loss; once Redis answers a publish again
// it is not losing any more, and TakeLost names the cart whose publication
// was lost, once.
func TestBusReportsWhatItLost(t *testing.T) {
	rp := storetest.StartRedis(t)
	bus := cartredis.NewBus(procClient(t, rp), "bl:", testLogger(t))
	t.Cleanup(func() { bus.Close() })
	losses := bus.Losses()
	rp.Pause()
	bus.Publish(context.Background(), "cart-x", []byte("x-1"))
	deadline := time.Now().Add(10 * time.Second)
	for !bus.Losing() {
		if time.Now().After(deadline) {
			t.Fatal("the bus never said it was losing publications while Redis hung")
		}
		time.Sleep(10 * time.Millisecond)
	}
	rp.Resume()
	bus.Publish(context.Background(), "cart-y", []byte("y-1"))
	for bus.Losing() {
		if time.Now().After(deadline) {
			t.Fatal("the bus still says it is losing publications after Redis answered")
		}
		time.Sleep(10 * time.Millisecond)
	}
	if bus.Losses() == losses {
		t.Error("Losses did not move through the hang")
	}
	if lost, all := bus.TakeLost(); all || len(lost) != 1 || lost[0] != "cart-x" {
		t.Fatalf("TakeLost = %q, %v; want cart-x", lost, all)
	}
	if lost, all := bus.TakeLost(); all || len(lost) != 0 {
		t.Fatalf("TakeLost again = %q, %v; want nothing", lost, all)
	}
}
