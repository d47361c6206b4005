package syncserver

import (
	"bytes"
	"context"
	"log/slog"
	"sync"
)

// hub subscribes once per cart that has local connections and fans each
// update out to them. Every update, including those made on this instance,
// arrives through the Bus, so there is one delivery path, except while the
// bus may lose them (watchBus): then this instance's own updates are
// delivered directly too, and its carts are sent again when the bus is
// healthy.
type hub struct {
	bus     Bus
	log     *slog.Logger
	metrics *metrics

	mu    sync.Mutex
	carts map[string]*cartSubs
}

type cartSubs struct {
	sessions map[*session]struct{}
	ready    chan struct{} // closed once the bus subscription is settled
	err      error         // the subscription's error, once ready
	cancel   func()
	echoes   []echo // pushes not to send back to the connection acked
}

// echo is a push whose cart one connection already has from its ack: when
// the push comes back through the bus, that connection is skipped. It is
// recognized by its bytes (the bus hands back what was published), so an
// echo that never comes back (the bus lost it) skips nothing else.
type echo struct {
	payload []byte
	acked   *session
}

// all returns the cart's connections but skip; none for a nil cs. The
// hub's lock is held.
func (cs *cartSubs) all(skip *session) []*session {
	if cs == nil {
		return nil
	}
	out := make([]*session, 0, len(cs.sessions))
	for s := range cs.sessions {
		if s != skip {
			out = append(out, s)
		}
	}
	return out
}

// maxEchoes bounds the echoes a cart remembers; past it the oldest is
// forgotten and its push, when it comes, reaches its connection too
// (which ignores a version it has).
const maxEchoes = 8

func newHub(bus Bus, log *slog.Logger, m *metrics) *hub {
	return &hub{bus: bus, log: log, metrics: m, carts: map[string]*cartSubs{}}
}

// join adds s to the cart's local subscribers, subscribing on the bus when
// it is the first. The bus is never called with h.mu held: its delivery
// goroutine takes h.mu to fan out.
func (h *hub) join(ctx context.Context, cartID string, s *session) error {
	h.mu.Lock()
	cs := h.carts[cartID]
	if cs != nil {
		cs.sessions[s] = struct{}{}
		h.mu.Unlock()
		select {
		case <-cs.ready:
		case <-ctx.Done():
			h.leave(cartID, s)
			return ctx.Err()
		}
		if cs.err != nil {
			h.leave(cartID, s)
		}
		return cs.err
	}
	cs = &cartSubs{sessions: map[*session]struct{}{s: {}}, ready: make(chan struct{})}
	h.carts[cartID] = cs
	h.mu.Unlock()

	cancel, err := h.bus.Subscribe(ctx, cartID, func(p []byte) { h.deliver(cartID, p) })

	h.mu.Lock()
	defer h.mu.Unlock()
	cs.cancel, cs.err = cancel, err
	close(cs.ready)
	if err != nil || len(cs.sessions) == 0 {
		if err == nil {
			cancel()
		}
		if h.carts[cartID] == cs {
			delete(h.carts, cartID)
		}
	}
	return err
}

// leave removes s, unsubscribing when it was the last.
func (h *hub) leave(cartID string, s *session) {
	h.mu.Lock()
	defer h.mu.Unlock()
	cs := h.carts[cartID]
	if cs == nil {
		return
	}
	delete(cs.sessions, s)
	if len(cs.sessions) > 0 {
		return
	}
	select {
	case <-cs.ready:
		if cs.cancel != nil {
			cs.cancel()
		}
		delete(h.carts, cartID)
	default:
		// The subscription is still being made; join cancels it when it
		// finds no sessions left.
	}
}

// skipEcho notes that payload, about to be published on cartID, is not to
// be delivered to acked, which has its cart already.
func (h *hub) skipEcho(cartID string, acked *session, payload []byte) {
	h.mu.Lock()
	defer h.mu.Unlock()
	cs := h.carts[cartID]
	if cs == nil {
		return
	}
	if len(cs.echoes) == maxEchoes {
		cs.echoes = append(cs.echoes[:0], cs.echoes[1:]...)
	}
	cs.echoes = append(cs.echoes, echo{payload, acked})
}

// cartIDs lists the carts with connections on this instance.
func (h *hub) cartIDs() []string {
	h.mu.Lock()
	defer h.mu.Unlock()
	ids := make([]string, 0, len(h.carts))
	for id := range h.carts {
		ids = append(ids, id)
	}
	return ids
}

// has reports whether a connection of this instance is on cartID.
func (h *hub) has(cartID string) bool {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.carts[cartID] != nil
}

// tellGone hands msg, the notice that cartID is gone, to the cart's local
// connections (session.tellGone).
func (h *hub) tellGone(cartID string, msg []byte) {
	h.mu.Lock()
	targets := h.carts[cartID].all(nil)
	h.mu.Unlock()
	for _, s := range targets {
		s.tellGone(cartID, msg)
		h.metrics.pushesOut.Inc()
	}
}

// deliverDirect hands payload, a push of this instance's that the bus may
// lose, to the cart's local connections but skip, leaving the echo
// entry for the copy that may come through the bus.
func (h *hub) deliverDirect(cartID string, payload []byte, skip *session) {
	h.mu.Lock()
	targets := h.carts[cartID].all(skip)
	h.mu.Unlock()
	h.sendTo(targets, payload)
}

// sendTo hands payload to each of targets.
func (h *hub) sendTo(targets []*session, payload []byte) {
	for _, s := range targets {
		s.send(payload)
		h.metrics.pushesOut.Inc()
	}
}

func (h *hub) deliver(cartID string, payload []byte) {
	h.mu.Lock()
	cs := h.carts[cartID]
	var skip *session
	if cs != nil {
		for i, e := range cs.echoes {
			if bytes.Equal(e.payload, payload) {
				skip = e.acked
				cs.echoes = append(cs.echoes[:i], cs.echoes[i+1:]...)
				break
			}
		}
	}
	targets := cs.all(skip)
	h.mu.Unlock()
	h.sendTo(targets, payload)
}
