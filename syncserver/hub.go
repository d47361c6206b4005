package syncserver

import (
	"context"
	"log/slog"
	"sync"
)

// hub subscribes once per cart that has local connections and fans each
// update out to them. Every update, including those made on this instance,
// arrives through the Bus, so there is one delivery path.
type hub struct {
	bus     Bus
	log     *slog.Logger
	metrics *metrics

	mu    sync.Mutex
	carts map[string]*cartSubs
}

type cartSubs struct {
	sessions map[*session]struct{}
	cancel   func()
}

func newHub(bus Bus, log *slog.Logger, m *metrics) *hub {
	return &hub{bus: bus, log: log, metrics: m, carts: map[string]*cartSubs{}}
}

// join adds s to the cart's local subscribers, subscribing on the bus when
// it is the first.
func (h *hub) join(ctx context.Context, cartID string, s *session) error {
	h.mu.Lock()
	defer h.mu.Unlock()
	cs := h.carts[cartID]
	if cs == nil {
		cs = &cartSubs{sessions: map[*session]struct{}{}}
		cancel, err := h.bus.Subscribe(ctx, cartID, func(p []byte) { h.deliver(cartID, p) })
		if err != nil {
			return err
		}
		cs.cancel = cancel
		h.carts[cartID] = cs
	}
	cs.sessions[s] = struct{}{}
	return nil
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
	if len(cs.sessions) == 0 {
		cs.cancel()
		delete(h.carts, cartID)
	}
}

func (h *hub) deliver(cartID string, payload []byte) {
	h.mu.Lock()
	cs := h.carts[cartID]
	var targets []*session
	if cs != nil {
		targets = make([]*session, 0, len(cs.sessions))
		for s := range cs.sessions {
			targets = append(targets, s)
		}
	}
	h.mu.Unlock()
	for _, s := range targets {
		s.send(payload)
		h.metrics.pushesOut.Inc()
	}
}
