package redis

import (
	"context"
	"sync"
	"time"

	goredis "github.com/redis/go-redis/v9"
)

// Reads that arrive together share a round trip: when a thousand clients
// come back at once after a restart, their hellos' cache reads go to
// Redis as a few pipelines instead of a thousand calls, which costs
// Redis, the network and this process a fraction of the system calls.
// A read that finds a pipeline free goes out at once, alone, so an idle
// server adds no wait.
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
	active int // pipelines in flight or about to be
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

// hmget reads fields of key, within ctx. The caller bounds ctx: a read
// waits for its turn and its round trip within it.
func (r *hashReads) hmget(ctx context.Context, key string, fields []string) ([]any, error) {
	req := &hashRead{ctx: ctx, key: key, fields: fields, done: make(chan hashReadResult, 1)}
	r.mu.Lock()
	r.queue = append(r.queue, req)
	lead := r.active < readPipelines
	if lead {
		r.active++
	}
	r.mu.Unlock()
	if lead {
		// Send pipelines until this read is answered (or its caller
		// gone); what is still queued then goes on without this caller.
		for {
			empty := r.send()
			select {
			case res := <-req.done:
				r.handOff()
				return res.vals, res.err
			default:
			}
			if empty || ctx.Err() != nil {
				r.handOff()
				break
			}
		}
	}
	select {
	case res := <-req.done:
		return res.vals, res.err
	case <-ctx.Done():
		return nil, ctx.Err()
	}
}

// send takes up to readBatchMax queued reads and runs them as one
// pipeline. It reports whether the queue was empty, so nothing was sent.
func (r *hashReads) send() (empty bool) {
	r.mu.Lock()
	n := min(len(r.queue), readBatchMax)
	batch := make([]*hashRead, 0, n)
	for _, req := range r.queue[:n] {
		if req.ctx.Err() == nil { // its caller is gone: skip it
			batch = append(batch, req)
		}
	}
	r.queue = append(r.queue[:0:0], r.queue[n:]...)
	r.mu.Unlock()
	if n == 0 {
		return true
	}
	if len(batch) == 0 {
		return false
	}
	if len(batch) == 1 {
		req := batch[0]
		vals, err := r.client.HMGet(req.ctx, req.key, req.fields...).Result()
		req.done <- hashReadResult{vals, err}
		return false
	}
	// The pipeline lives as long as the longest-lived of its reads, each
	// of which stops waiting at its own deadline.
	dl := time.Now().Add(readTimeout)
	for _, req := range batch {
		if d, ok := req.ctx.Deadline(); ok && d.After(dl) {
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
	return false
}

// handOff ends a caller's turn at sending: another goroutine goes on while
// reads are queued, or the pipeline slot is given back.
func (r *hashReads) handOff() {
	r.mu.Lock()
	if len(r.queue) == 0 {
		r.active--
		r.mu.Unlock()
		return
	}
	r.mu.Unlock()
	go func() {
		for !r.send() {
		}
		r.handOff()
	}()
}
