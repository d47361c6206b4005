package redis

import (
	"context"
	"fmt"
	"time"

	"github.com/cartsync/cartsync/syncserver"
)

// Put writes rec to the cache the way Load and Mutate do, so tests can play
// a slow writer.
func (c *Cache) Put(ctx context.Context, cartID string, rec *syncserver.Record) {
	if err := c.put(ctx, cartID, rec); err != nil {
		panic(err)
	}
}

// Settle waits until the background writer has nothing left to do: no
// write queued or in hand, no cart dirty.
func (c *Cache) Settle(ctx context.Context) error {
	for {
		c.mu.Lock()
		idle := c.queued == 0 && !c.busy && len(c.dirty) == 0
		c.mu.Unlock()
		if idle {
			return nil
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("cache not settled: %d dirty: %w", c.Dirty(), ctx.Err())
		case <-time.After(time.Millisecond):
		}
	}
}

// StopWriter stops the background writer without closing the next store,
// for tests that close that store themselves.
func (c *Cache) StopWriter() {
	c.closed.Do(func() {
		close(c.stop)
		<-c.done
	})
}
