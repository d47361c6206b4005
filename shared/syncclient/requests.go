package syncclient

import (
	"fmt"
	"slices"

	"github.com/cartsync/cartsync/shared/cart"
	"github.com/cartsync/cartsync/shared/protocol"
)

// The machine's requests: which pending ops a connection may send, and the
// pushes and syncs that carry them.

// canSend reports whether op may be sent on this connection: made on its
// cart, before the first sync, or (on a user cart) on this device's guest
// cart, once no choice is pending. The server refuses the batch of any
// other op; those stay in the outbox for a connection on their cart.
func (s *session) canSend(op cart.Op) bool {
	if op.Cart == "" {
		// Made before the first sync, or while an account's cart was
		// hidden: for the cart this connection is on, once it is settled
		// (a choice pending decides what the account's cart becomes).
		return !s.choosing
	}
	return op.Cart == s.cartID ||
		(s.user != "" && s.guest != "" && op.Cart == s.guest && !s.choosing)
}

// sendable returns the pending ops this connection may send, in outbox
// order.
func (m *machine) sendable() []cart.Op {
	s := m.sess
	if s == nil || s.cartID == "" {
		return nil
	}
	var out []cart.Op
	for _, op := range m.pending {
		if s.canSend(op) {
			out = append(out, op)
		}
	}
	return out
}

// pendingClients lists the client ids with sendable ops, each once, in the
// order of their first op in the outbox, at most protocol.MaxClientsPerSync.
func (m *machine) pendingClients() []string {
	var out []string
	for _, op := range m.sendable() {
		if !slices.Contains(out, op.Client) {
			out = append(out, op.Client)
		}
	}
	return out[:min(len(out), protocol.MaxClientsPerSync)]
}

// hasOthers reports whether the sendable ops include ones of client ids
// other than the engine's own.
func (m *machine) hasOthers() bool {
	for _, op := range m.sendable() {
		if op.Client != m.client {
			return true
		}
	}
	return false
}

func (m *machine) sendSync() {
	s := m.sess
	msg := &protocol.Message{Type: protocol.TypeSync, ID: m.newReqID(reqSync), Since: m.confirmed.Version, Clients: m.pendingClients()}
	s.needSync = false
	s.syncID = msg.ID
	m.send(msg)
}

func (m *machine) sendPush() {
	s := m.sess
	for {
		pending := m.sendable()
		if len(pending) == 0 {
			return
		}
		n := min(len(pending), s.maxBatch)
		ok := false
		for {
			var err error
			if ok, err = fits(pending[:n]); err != nil {
				m.end(fmt.Errorf("encode push: %w", err))
				return
			}
			if ok || n == 1 {
				break
			}
			n /= 2
		}
		if !ok {
			m.dropOps(pending[:1], "the operation is too large to send")
			continue
		}
		msg := &protocol.Message{Type: protocol.TypePush, ID: m.newReqID(reqPush), Ops: pending[:n]}
		s.push = &inflight{id: msg.ID, ops: make([]protocol.OpID, n)}
		for i, op := range pending[:n] {
			s.push.ops[i] = opID(op)
		}
		m.send(msg)
		return
	}
}

// fits reports whether a push of ops fits in a message, with room for its
// id.
func fits(ops []cart.Op) (bool, error) {
	b, err := protocol.Encode(&protocol.Message{Type: protocol.TypePush, Ops: ops})
	return len(b) <= protocol.MaxMessageBytes-64, err
}
