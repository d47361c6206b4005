package syncserver

import (
	"context"
	"time"

	"github.com/cartsync/cartsync/shared/logkey"
	"github.com/cartsync/cartsync/shared/protocol"
)

// Lossy is implemented by a Bus that can lose publications: Redis Pub/Sub
// while Redis fails or hangs, or when it does not keep up. Losses counts
// the times it may have lost some (a publish that failed or was dropped, a
// subscription that went quiet or was made again); Degraded says whether
// it still may.
type Lossy interface {
	Degradable
	Losses() uint64
}

// busWatchEvery is how often the server looks at a Lossy bus;
// resendEvery is the shortest time between two rounds of carts sent again
// (a bus that keeps failing and coming back costs one round of store
// reads per resendEvery at most).
const (
	busWatchEvery = 100 * time.Millisecond
	resendEvery   = 5 * time.Second
)

// watchBus keeps the connections of this instance up to date through the
// bus's outages, until ctx ends:
//
//   - while the bus is degraded, the pushes of this instance's edits go to
//     its own connections directly as well (publishAcked): a device next
//     to the editing one hears of the edit although Redis hangs;
//   - once the bus is healthy after it may have lost publications, every
//     cart with connections here is read from the store (past the cache,
//     whose entries may be older) and sent to them at its version, as a
//     catalog update is: a device that missed a push sees the gap and
//     syncs, where it would otherwise wait for its five-minute resync.
func (s *Server) watchBus(ctx context.Context, bus Lossy) {
	t := time.NewTicker(busWatchEvery)
	defer t.Stop()
	seen := bus.Losses()
	var resent time.Time
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		degraded := bus.Degraded() != nil
		s.busDegraded.Store(degraded)
		if degraded {
			continue
		}
		if n := bus.Losses(); n != seen && time.Since(resent) >= resendEvery {
			seen, resent = n, time.Now()
			s.resendCarts(ctx)
		}
	}
}

// resendCarts sends every cart with connections on this instance, as the
// store has it, to those connections.
func (s *Server) resendCarts(ctx context.Context) {
	carts := s.hub.cartIDs()
	s.log.Info("bus healthy again after it may have lost updates; sending each connected cart again", logkey.Carts, len(carts))
	store := s.freshStore()
	for _, id := range carts {
		if ctx.Err() != nil {
			return
		}
		rec, err := store.Load(ctx, id, nil)
		c, _, err := snapshotOf(id, nil, rec, err)
		if err != nil || c.Version == 0 {
			continue // gone, or never written: nothing a device missed
		}
		s.annotate(ctx, c)
		msg, err := protocol.Encode(&protocol.Message{Type: protocol.TypeCart, Cart: c, From: c.Version})
		if err != nil {
			continue
		}
		s.hub.deliver(id, msg)
	}
}
