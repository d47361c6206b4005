package widget

import (
	"context"
	"sync"
)

// queue runs jobs one at a time in the order they were pushed, so that
// edits asked for in a row (by the host or by clicks) are stored in that
// order. push never blocks: it is called from JavaScript callbacks.
type queue struct {
	mu   sync.Mutex
	jobs []func(context.Context)
	wake chan struct{}
}

func newQueue() *queue { return &queue{wake: make(chan struct{}, 1)} }

func (q *queue) push(job func(context.Context)) {
	q.mu.Lock()
	q.jobs = append(q.jobs, job)
	q.mu.Unlock()
	select {
	case q.wake <- struct{}{}:
	default:
	}
}

// run runs the jobs until ctx ends.
func (q *queue) run(ctx context.Context) {
	for {
		q.mu.Lock()
		var job func(context.Context)
		if len(q.jobs) > 0 {
			job = q.jobs[0]
			q.jobs[0] = nil
			q.jobs = q.jobs[1:]
		}
		q.mu.Unlock()
		if job != nil {
			job(ctx)
			continue
		}
		select {
		case <-q.wake:
		case <-ctx.Done():
			return
		}
	}
}
