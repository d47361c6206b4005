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
