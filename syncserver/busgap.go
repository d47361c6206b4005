package syncserver

import (
	"context"
	"encoding/json"
	"slices"
	"sync"
	"time"

	"github.com/cartsync/cartsync/shared/cart"
	"github.com/cartsync/cartsync/shared/logkey"
	"github.com/cartsync/cartsync/shared/protocol"
)

// Lossy is implemented by a Bus that can lose publications: Redis Pub/Sub
// while Redis fails or hangs, or when it does not keep up.
type Lossy interface {
	Degradable
	// Losing reports, without waiting, whether publications do not get
	// through now (Redis failing, the subscription down).
	Losing() bool
	// Losses counts the times this instance's subscriptions may have
	// missed publications, of any instance (Redis failed, a subscription
	// went quiet or was made again).
	Losses() uint64
	// TakeLost returns, and forgets, the carts whose publications from
	// this instance were lost on their way out (a publish that failed or
	// was dropped); all says there were too many to list.
	TakeLost() (cartIDs []string, all bool)
}

const (
	// busHealthEvery is how often the server asks a Lossy bus whether it
	// is healthy enough to repair what was lost.
	busHealthEvery = time.Second
	// resendEvery is the shortest time between two rounds of every
	// connected cart sent again (a bus that keeps failing and coming back
	// costs one round of store reads per resendEvery at most).
	resendEvery = 5 * time.Second
	// lostChannel carries the carts an instance lost publications of,
	// once the bus is healthy again: every instance sends those of them
	// that its connections are on again.
	lostChannel = "bus:lost"
)

// lostNotice is a message on lostChannel.
type lostNotice struct {
	Carts []string `json:"carts,omitempty"`
	All   bool     `json:"all,omitempty"`
}

// watchBus keeps the connections of every instance up to date through the
// bus's outages, until ctx ends:
//
//   - (while the bus is losing publications, the pushes of this
//     instance's edits go to its own connections directly as well:
//     publishAcked asks the bus, so that a device next to the editing one
//     hears of the edit although Redis hangs;)
//   - once the bus is healthy again: if this instance's subscriptions may
//     have missed publications, every cart with connections here is sent
//     to them again (the resender); and the carts whose publications this
//     instance lost on their way out are named on lostChannel, so that
//     every instance sends those to its connections again.
func (s *Server) watchBus(ctx context.Context, bus Lossy) {
	t := time.NewTicker(busHealthEvery)
	defer t.Stop()
	seen := bus.Losses()
	var resent time.Time
	var notice lostNotice // the last one published
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		n := bus.Losses()
		if bus.Losing() || bus.Degraded() != nil {
			continue // not yet: a notice or a round could be lost too
		}
		if carts, all := bus.TakeLost(); len(carts) > 0 || all {
			if i := slices.Index(carts, lostChannel); i >= 0 {
				// The last notice was lost itself (its channel is
				// named like a cart's): its carts go in this one.
				carts = append(slices.Delete(carts, i, i+1), notice.Carts...)
				slices.Sort(carts)
				carts = slices.Compact(carts)
				all = all || notice.All
			}
			notice = lostNotice{Carts: carts, All: all}
			b, _ := json.Marshal(notice)
			if err := s.bus.Publish(ctx, lostChannel, b); err != nil {
				s.log.Warn("publish the carts whose updates were lost", logkey.Carts, len(carts), logkey.Err, err)
			}
		}
		if n != seen && time.Since(resent) >= resendEvery {
			seen, resent = n, time.Now()
			s.log.Info("bus healthy again after it may have missed updates; sending each connected cart again")
			s.resend.want(true, nil)
		}
	}
}

// watchLost subscribes to lostChannel and starts the resender, both until
// ctx ends.
func (s *Server) watchLost(ctx context.Context) (stop func(), err error) {
	cancel, err := s.bus.Subscribe(ctx, lostChannel, func(p []byte) {
		var n lostNotice
		if json.Unmarshal(p, &n) == nil {
			s.resend.want(n.All, n.Carts)
		}
	})
	if err != nil {
		return nil, err
	}
	rctx, stopResend := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); s.resend.run(rctx, s) }()
	return func() { cancel(); stopResend(); <-done }, nil
}

// resender sends carts to this instance's connections again, one at a
// time, off the paths that ask for it: requests that come meanwhile are
// merged into the next round.
type resender struct {
	mu    sync.Mutex
	all   bool
	carts map[string]bool
	kick  chan struct{}
}

func newResender() *resender {
	return &resender{carts: map[string]bool{}, kick: make(chan struct{}, 1)}
}

// want asks for every connected cart (all) or for carts.
func (r *resender) want(all bool, carts []string) {
	r.mu.Lock()
	r.all = r.all || all
	for _, id := range carts {
		r.carts[id] = true
	}
	r.mu.Unlock()
	select {
	case r.kick <- struct{}{}:
	default:
	}
}

func (r *resender) run(ctx context.Context, s *Server) {
	for {
		select {
		case <-ctx.Done():
			return
		case <-r.kick:
		}
		r.mu.Lock()
		all, carts := r.all, r.carts
		r.all, r.carts = false, map[string]bool{}
		r.mu.Unlock()
		var ids []string
		if all {
			ids = s.hub.cartIDs()
		} else {
			for id := range carts {
				if s.hub.has(id) {
					ids = append(ids, id)
				}
			}
		}
		for _, id := range ids {
			if ctx.Err() != nil {
				return
			}
			s.resendCart(ctx, id)
		}
	}
}

// resendCart sends cartID, as the store has it (past the cache, whose
// entry may be older), to its connections on this instance at its
// version, as a catalog update is: a device that missed a push sees the
// gap and syncs.
func (s *Server) resendCart(ctx context.Context, cartID string) {
	rec, err := s.freshStore().Load(ctx, cartID, nil)
	c, _, err := snapshotOf(cartID, nil, rec, err)
	if err != nil || c.Version == 0 {
		return // gone, or never written: nothing a device missed
	}
	s.annotate(ctx, c)
	s.pushCart(cartID, c)
}

// pushCart sends c to its connections on this instance at its version,
// without a change (from = version): a device at that version takes its
// notices and totals, one behind sees the gap and syncs.
func (s *Server) pushCart(cartID string, c *cart.Cart) {
	msg, err := protocol.Encode(&protocol.Message{Type: protocol.TypeCart, Cart: c, From: c.Version})
	if err != nil {
		return
	}
	s.hub.deliver(cartID, msg)
}
