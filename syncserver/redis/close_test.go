package redis_test

import (
	"context"
	"testing"
	"time"

	cartredis "github.com/cartsync/cartsync/syncserver/redis"
	"github.com/cartsync/cartsync/syncserver/storetest"
)

// TestCacheCloseRepairsQueuedWrites: Close repairs (deletes) the entries of
// carts whose cache write was still queued when the writer stopped, when
// Redis answers: otherwise other instances read the cart as it was before
// the commit until its next write or the TTL. (Close's repair waited while
// writes were queued, and those left in the queue never went out.)
func TestCacheCloseRepairsQueuedWrites(t *testing.T) {
	rp := storetest.StartRedis(t)
	client := procClient(t, rp)
	next := &counting{Store: openNext(t)}
	stale := 0
	for i := range 12 {
		x, y := "x"+string(rune('a'+i)), "y"+string(rune('a'+i))
		c := cartredis.NewCache(next, client, "cq:", time.Hour, testLogger(t))
		mutate(t, c, x, []string{"c"}, add("c", 1))
		mutate(t, c, y, []string{"c"}, add("c", 1)) // y cached at version 1
		rp.Pause()
		// x's write is taken by the writer, which waits on Redis; y's
		// queues behind it.
		if err := c.Mutate(t.Context(), x, []string{"c"}, add("c", 2)); err != nil {
			t.Fatal(err)
		}
		time.Sleep(50 * time.Millisecond)
		if err := c.Mutate(t.Context(), y, []string{"c"}, add("c", 2)); err != nil {
			t.Fatal(err)
		}
		rp.Resume() // Redis answers again, well within the write timeout
		c.Close()   // a graceful shutdown right after the last commits
		v, err := client.HGet(t.Context(), "cq:cart:"+y, "v").Result()
		if err == nil && v == "1" {
			stale++
			t.Logf("round %d: after Close, Redis serves cart %s at version 1; the store has 2", i, y)
		}
	}
	if stale > 0 {
		t.Errorf("%d of 12 Closes left a stale entry in a Redis that answers", stale)
	}
}

// TestCacheRepairsWithoutWaitingOutThePause: a cart committed while the
// cache pauses after failures is dirty, and its entry in Redis is older
// than the commit; once Redis answers, the entry goes at the writer's next
// round, not when the pause (up to seconds) ends, since other instances
// read that entry as soon as Redis answers them.
func TestCacheRepairsWithoutWaitingOutThePause(t *testing.T) {
	rp := storetest.StartRedis(t)
	client := procClient(t, rp)
	c := cartredis.NewCache(&counting{Store: openNext(t)}, client, "cp:", time.Hour, testLogger(t))
	t.Cleanup(func() { c.Close() })
	mutate(t, c, "x", []string{"c"}, add("c", 1)) // cached at version 1
	if err := c.Settle(t.Context()); err != nil {
		t.Fatal(err)
	}
	c.PauseFor(time.Hour) // as after failures: no write goes to Redis
	if err := c.Mutate(t.Context(), "x", []string{"c"}, add("c", 2)); err != nil {
		t.Fatal(err)
	}
	if v, _ := client.HGet(t.Context(), "cp:cart:x", "v").Result(); v != "1" {
		t.Fatalf("during the pause Redis holds version %q of x, want the stale 1 (the write is held back)", v)
	}
	ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
	defer cancel()
	if err := c.Settle(ctx); err != nil {
		t.Fatalf("the stale entry was not repaired within the hour's pause: %v", err)
	}
	if n, _ := client.Exists(t.Context(), "cp:cart:x").Result(); n != 0 {
		t.Fatalf("after the repair Redis still holds x at version %s", client.HGet(t.Context(), "cp:cart:x", "v").Val())
	}
}
