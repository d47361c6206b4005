package redis

import (
	"context"
	"errors"
	"fmt"
	"sync"
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
	// minRoundTrip is the least time a round trip is given.
	minRoundTrip = readTimeout / 4
)

// hashReads batches HMGETs into pipelines (see readPipelines).
type hashReads struct {
	client *goredis.Client
	// report is told how each round trip went, once (Cache.outcome):
	// whether Redis answers is the round trip's business, not that of a
	// caller who may have queued most of its time away.
	report func(error)

	mu     sync.Mutex
	queue  []*hashRead
	active int // goroutines sending pipelines
}

// hashRead is one HMGET waiting for its pipeline.
type hashRead struct {
	ctx    context.Context
	key    string
	fields []string
	done   chan hashReadResult // buffered: the pipeline never waits
}

type hashReadResult struct {
	vals []any
	err  error
}

// Errors of hmget that its round trip has already reported (see report):
// a caller counts neither as a Redis failure.
var (
	// errReadLate is a read whose caller's time ran out first, queued or
	// in flight.
	errReadLate = errors.New("redis: cache read not answered in time")
	// errReadFailed is a read whose round trip failed.
	errReadFailed = errors.New("redis: cache read failed")
)

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
		if res.err != nil {
			return nil, fmt.Errorf("%w: %w", errReadFailed, plain(res.err))
		}
		return res.vals, nil
	case <-ctx.Done():
		return nil, fmt.Errorf("%w: %w", errReadLate, ctx.Err())
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
				batch = append(batch, req)
			}
		}
		r.queue = append(r.queue[:0:0], r.queue[n:]...)
		r.mu.Unlock()
		r.send(batch)
	}
}

// send runs batch as one round trip and reports how it went. The round
// trip lasts until the latest of its reads' deadlines (readTimeout for a
// read without one), and at least minRoundTrip: a read sent late is not
// a round trip cut short, and its caller stops waiting at its own
// deadline anyway.
func (r *hashReads) send(batch []*hashRead) {
	if len(batch) == 0 {
		return
	}
	now := time.Now()
	dl := now.Add(minRoundTrip)
	for _, req := range batch {
		d, ok := req.ctx.Deadline()
		if !ok {
			d = now.Add(readTimeout)
		}
		if d.After(dl) {
			dl = d
		}
	}
	ctx, cancel := context.WithDeadline(context.Background(), dl)
	defer cancel()
	if len(batch) == 1 {
		req := batch[0]
		vals, err := r.client.HMGet(ctx, req.key, req.fields...).Result()
		r.report(plain(err))
		req.done <- hashReadResult{vals, err}
		return
	}
	pipe := r.client.Pipeline()
	cmds := make([]*goredis.SliceCmd, len(batch))
	for i, req := range batch {
		cmds[i] = pipe.HMGet(ctx, req.key, req.fields...)
	}
	_, err := pipe.Exec(ctx) // also each command's own error
	r.report(plain(err))
	for i, req := range batch {
		vals, err := cmds[i].Result()
		req.done <- hashReadResult{vals, err}
	}
}
