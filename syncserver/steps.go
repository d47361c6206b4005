package syncserver

import (
	"context"
	"sync"
	"time"
)

// stepWorkerIdle is how long a step worker waits for the next step before
// it ends.
const stepWorkerIdle = 2 * time.Second

// steps runs the sessions' steps (read one message, handle it) on worker
// goroutines that outlive one step. A step then starts on a stack the
// steps before it grew, instead of on a fresh 2 KB one grown again, a copy
// at each doubling, for every message: a new goroutine per message spent
// 7–8% of the server's CPU there. A worker idle for stepWorkerIdle ends,
// so idle connections keep none; so do idle workers once the server shuts
// down.
type steps struct {
	work chan stepJob  // to an idle worker
	quit chan struct{} // closed at shutdown
	once sync.Once
}

type stepJob struct {
	ss   *session
	ctx  context.Context
	done chan stepEnd
}

func newSteps() *steps {
	return &steps{work: make(chan stepJob), quit: make(chan struct{})}
}

// run runs ss.step on a worker and returns its end.
func (p *steps) run(ctx context.Context, ss *session) stepEnd {
	j := stepJob{ss: ss, ctx: ctx, done: make(chan stepEnd, 1)}
	select {
	case p.work <- j:
	default:
		go p.worker(j)
	}
	return <-j.done
}

func (p *steps) worker(j stepJob) {
	idle := time.NewTimer(stepWorkerIdle)
	defer idle.Stop()
	for {
		j.done <- j.ss.step(j.ctx)
		idle.Reset(stepWorkerIdle)
		select {
		case j = <-p.work:
		case <-idle.C:
			return
		case <-p.quit:
			return
		}
	}
}

// close ends the idle workers, and each busy one after its step.
func (p *steps) close() { p.once.Do(func() { close(p.quit) }) }
