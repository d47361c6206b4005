package syncserver

import (
	"context"
	"math/rand/v2"
	"time"

	"github.com/cartsync/cartsync/shared/protocol"
)

// helloWait is how long a hello waits for a slot before it is answered
// overloaded: a waiting hello costs little, a refused one costs the client
// a new connection and the server a new handshake.
const helloWait = 10 * time.Second

// helloRetry is the range of the retry delay an overloaded hello is given:
// random, so that the refused clients do not come back together.
const helloRetryMin, helloRetryMax = time.Second, 3 * time.Second

// helloGate bounds the hellos handled at once. A hello costs a token check,
// perhaps a login, a subscription and a snapshot load; after a restart every
// client says hello within a few seconds, and thousands at once would make
// every one of them wait on the store, the cache and the bus until they all
// time out. Past the bound a hello waits briefly, then the client is told
// to come back a little later.
type helloGate struct {
	slots chan struct{}
	wait  time.Duration
	rnd   func() float64
}

func newHelloGate(n int) *helloGate {
	return &helloGate{slots: make(chan struct{}, n), wait: helloWait, rnd: rand.Float64}
}

// enter takes a slot, waiting up to g.wait; false if none came free.
func (g *helloGate) enter(ctx context.Context) bool {
	select {
	case g.slots <- struct{}{}:
		return true
	default:
	}
	t := time.NewTimer(g.wait)
	defer t.Stop()
	select {
	case g.slots <- struct{}{}:
		return true
	case <-t.C:
		return false
	case <-ctx.Done():
		return false
	}
}

// leave gives the slot back.
func (g *helloGate) leave() { <-g.slots }

// busy is the answer to a hello that found no slot.
func (g *helloGate) busy() *protocol.Error {
	e := protocol.Errorf(protocol.ErrOverloaded, "too many connections arriving at once; retry after retry_after_ms")
	d := helloRetryMin + time.Duration(g.rnd()*float64(helloRetryMax-helloRetryMin))
	e.RetryAfterMS = int(d / time.Millisecond)
	return e
}

// admitHello takes a hello slot for the session, or answers the hello
// (request id reqID) overloaded and returns false. The caller calls
// s.hellos.leave when it returns true.
func (ss *session) admitHello(ctx context.Context, reqID string) bool {
	if ss.srv.hellos.enter(ctx) {
		return true
	}
	ss.srv.metrics.overloaded.Inc()
	ss.fail(reqID, ss.srv.hellos.busy())
	return false
}
