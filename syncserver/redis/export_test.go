package redis

import (
	"context"
	"fmt"
	"time"

	goredis "github.com/redis/go-redis/v9"

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

// HashReads is the batcher of the cache's reads, for tests.
type HashReads = hashReads

// NewHashReads returns a batcher of reads on client.
func NewHashReads(client *goredis.Client) *HashReads {
	return &hashReads{client: client, report: func(error) {}}
}

// HMGet reads fields of key through the batcher.
func (r *hashReads) HMGet(ctx context.Context, key string, fields ...string) ([]any, error) {
	return r.hmget(ctx, key, fields)
}

// Queued is how many reads wait for a pipeline.
func (r *hashReads) Queued() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return len(r.queue)
}

// ReadPipelines is the most read pipelines in flight at once.
const ReadPipelines = readPipelines

// SetBeat shortens the heartbeat through Pub/Sub: one every every, the bus
// degraded after stale without one. It must be called before the first
// Subscribe.
func (b *Bus) SetBeat(every, stale time.Duration) {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.beatEvery, b.beatStale = every, stale
}

// PauseFor makes the cache leave Redis alone for d, as after failures.
func (c *Cache) PauseFor(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.pause = time.Now().Add(d)
}
