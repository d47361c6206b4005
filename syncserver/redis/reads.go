package redis

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	goredis "github.com/redis/go-redis/v9"
)

// Reads that arrive together share a round trip: when a thousand clients
// come back at once after a restart, their hellos' cache reads go to
// Redis as a few pipelines instead of a thousand calls, which costs
// Redis, the network and this process a fraction of the system calls.
// A read that finds a sender free goes out at once, alone, so an idle
// server adds no wait. The callers only wait: a goroutine of the batcher
// sends, so no caller is held past its own deadline by others' reads.
const (
	// readPipelines bounds the read pipelines in flight at once;
	// readBatchMax is the most reads one of them carries.
	readPipelines = 2
	readBatchMax  = 256
)

// hashReads batches HMGETs into pipelines (see readPipelines).
type hashReads struct {
	client *goredis.Client

	mu     sync.Mutex
	queue  []*hashRead
	active int // goroutines sending pipelines
}

// hashRead is one HMGET waiting for its pipeline.
type hashRead struct {
	ctx    context.Context
	key    string
	fields []string
	sent   atomic.Bool
	done   chan hashReadResult // buffered: the pipeline never waits
}

type hashReadResult struct {
	vals []any
	err  error
}

// errReadQueued is a read whose caller's time ran out before it was sent:
// it says nothing about Redis (the round trips in flight say it).
var errReadQueued = errors.New("redis: cache read not sent in time")

// hmget reads fields of key, within ctx. The caller bounds ctx: a read
// waits for its turn and its round trip within it, and never longer.
func (r *hashReads) hmget(ctx context.Context, key string, fields []string) ([]any, error) {
	req := &hashRead{ctx: ctx, key: key, fields: fields, done: make(chan hashReadResult, 1)}
	r.mu.Lock()
	r.queue = append(r.queue, req)
	if r.active < readPipelines {
		r.active++
		go r.drain()
	}
	r.mu.Unlock()
	select {
	case res := <-req.done:
		return res.vals, res.err
	case <-ctx.Done():
		if !req.sent.Load() {
			return nil, fmt.Errorf("%w: %w", errReadQueued, ctx.Err())
		}
		return nil, ctx.Err()
	}
}

// drain sends the queued reads, up to readBatchMax per pipeline, until
// none is left.
func (r *hashReads) drain() {
	for {
		r.mu.Lock()
		n := min(len(r.queue), readBatchMax)
		if n == 0 {
			r.active--
			r.mu.Unlock()
			return
		}
		batch := make([]*hashRead, 0, n)
		for _, req := range r.queue[:n] {
			if req.ctx.Err() == nil { // its caller is gone: skip it
				req.sent.Store(true)
				batch = append(batch, req)
			}
		}
		r.queue = append(r.queue[:0:0], r.queue[n:]...)
		r.mu.Unlock()
		r.send(batch)
	}
}

// send runs batch as one round trip, which lasts until the latest of its
// reads' deadlines (readTimeout for a read without one).
func (r *hashReads) send(batch []*hashRead) {
	if len(batch) == 0 {
		return
	}
	if len(batch) == 1 {
		req := batch[0]
		vals, err := r.client.HMGet(req.ctx, req.key, req.fields...).Result()
		req.done <- hashReadResult{vals, err}
		return
	}
	var dl time.Time
	for _, req := range batch {
		d, ok := req.ctx.Deadline()
		if !ok {
			d = time.Now().Add(readTimeout)
		}
		if d.After(dl) {
			dl = d
		}
	}
	ctx, cancel := context.WithDeadline(context.Background(), dl)
	defer cancel()
	pipe := r.client.Pipeline()
	cmds := make([]*goredis.SliceCmd, len(batch))
	for i, req := range batch {
		cmds[i] = pipe.HMGet(ctx, req.key, req.fields...)
	}
	_, _ = pipe.Exec(ctx) // each command carries its own error
	for i, req := range batch {
		vals, err := cmds[i].Result()
		req.done <- hashReadResult{vals, err}
	}
}
