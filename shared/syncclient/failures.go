package syncclient

import (
	"github.com/cartsync/cartsync/shared/cart"
	"github.com/cartsync/cartsync/shared/logkey"
	"github.com/cartsync/cartsync/shared/protocol"
)

// What the engine does with the server's errors: which end the connection,
// which stop Run, and how a refused push, an expired cart or a refused
// token is handled without losing what can still be sent.

// fatal codes end the connection: the next one may fare better (a new
// token, a new server), after the backoff.
func fatal(code protocol.ErrorCode) bool {
	switch code {
	case protocol.ErrUnsupportedVersion, protocol.ErrHelloRequired, protocol.ErrUnauthorized,
		protocol.ErrTokenExpired, protocol.ErrForbidden, protocol.ErrGoingAway:
		return true
	}
	return false
}

// permanent codes stop Run: reconnecting cannot help. (forbidden is not
// one: a guest cart merged into a user cart by a login elsewhere gets a
// fresh guest cart at the next hello.)
func permanent(code protocol.ErrorCode) bool {
	return code == protocol.ErrUnsupportedVersion
}

func (m *machine) onError(msg *protocol.Message) {
	s := m.sess
	pe := msg.Error
	if pe == nil {
		return
	}
	m.progress()
	if pe.Code == protocol.ErrCartExpired && msg.ID == "" && pe.Erased && m.showsErased(pe.Cart) {
		// Told again of the erasure whose emptied cart this device
		// shows, unchanged (the storefront retried it): nothing new.
		return
	}
	m.log.Warn("error from the server", logkey.Code, pe.Code, logkey.Message, pe.Message)
	m.lastErr = pe
	m.changed = true
	switch {
	case pe.Code == protocol.ErrUnauthorized && pe.Token == protocol.TokenDevice && s.token != "":
		// The device token is refused (the server's secret changed),
		// also on a user's hello: the next hello gets a new one. A
		// logged-in device keeps its user cart; its guest cart's ops go
		// to the cart it has next.
		m.forgetToken(pe)
		return
	case pe.Code == protocol.ErrTokenExpired || (pe.Code == protocol.ErrUnauthorized && s.withUser):
		// The user token is refused. (An older server's unauthorized
		// answer to a user hello does not say which token it refused;
		// the device token is kept then, as losing it would lose the
		// guest cart.) Do not present it again: wait for setUser.
		if m.userGen == s.userGen {
			m.needsLogin = true
		}
		m.endPE(pe)
		return
	case pe.Code == protocol.ErrUnauthorized && s.token != "":
		m.forgetToken(pe)
		return
	case fatal(pe.Code):
		m.endPE(pe)
		return
	case pe.Code == protocol.ErrCartExpired:
		m.cartExpiredOn(pe.Cart, pe.Erased)
		if s.ready || s.cartID != "" {
			// About a request, or the reply to a hello whose welcome
			// came already (a user's cart that expired: no fresh cart
			// follows on this connection): the next hello, at once,
			// gets the fresh cart, or is told again after the backoff
			// (Run). Connecting from now, as the empty cart shows, if
			// the connection was up: an offline one stays so.
			if m.status != Offline {
				m.setStatus(Connecting)
			}
			m.endPE(pe)
		}
		return // before the welcome: the welcome with the fresh cart follows
	}
	m.onRequestError(msg.ID, pe)
}

// onRequestError handles an error about one request: a hello, a choose, a
// sync or a push; id is the request's, or "" when the server could not
// read it.
func (m *machine) onRequestError(id string, pe *protocol.Error) {
	s := m.sess
	var kind reqKind
	if id != "" {
		kind = reqKind(id[0])
	} else { // the server could not read the request's id
		switch {
		case !s.ready:
			kind = reqHello
		case s.push != nil:
			kind = reqPush
		case s.syncID != "":
			kind = reqSync
		}
	}
	switch kind {
	case reqHello:
		m.endPE(pe)
	case reqChoose:
		s.chosen = false // the choice stands; the shopper may try again
	case reqSync:
		if id != "" && id != s.syncID {
			return
		}
		s.syncID = ""
		s.needSync = true
		s.failures++
		m.retryLater(pe)
	case reqPush:
		if s.push == nil || (id != "" && id != s.push.id) {
			return // about a push already settled
		}
		m.onPushError(pe)
	}
}

func (m *machine) onPushError(pe *protocol.Error) {
	s := m.sess
	batch := s.push.ops
	s.push = nil
	switch {
	case pe.Code == protocol.ErrOutOfOrder && pe.Expected != nil:
		m.resendFrom(*pe.Expected)
		s.failures++
		if s.failures > 1 { // resend at once the first time only
			m.retryLater(pe)
		}
		return
	case pe.Retryable:
		s.failures++
		m.retryLater(pe)
		return
	case len(batch) > 1:
		// The batch as a whole was refused (too large, or a field the
		// server does not take): halve it to find the op it is about.
		s.maxBatch = max(1, len(batch)/2)
		return
	}
	// One op the server will never take: drop it so it cannot block the
	// ones behind it, and report it like a rejection.
	var ops []cart.Op
	for _, op := range m.pending {
		if opID(op) == batch[0] {
			ops = append(ops, op)
		}
	}
	m.dropOps(ops, pe.Message)
}

// resendFrom handles out_of_order: the server expects exp.Seq next from
// exp.Client. Our ops of that client before it were processed and are
// dropped (a sync shows their effect); the push that follows starts at it.
// If the outbox starts after it, the gap can never be filled: the server's
// database was restored from a backup older than ops it had acknowledged,
// or ops were lost from the outbox. The server would refuse every later op
// of that client id, and has applied none of them (a client id's ops are
// applied in seq order, and it has not seen the one it expects): they are
// sent again under a new client id, as new ops, rather than lost.
func (m *machine) resendFrom(exp protocol.OpID) {
	var before, all []cart.Op
	for _, op := range m.sendable() {
		if op.Client == exp.Client {
			all = append(all, op)
			if op.Seq < exp.Seq {
				before = append(before, op)
			}
		}
	}
	if len(all) == 0 {
		return
	}
	if all[0].Seq > exp.Seq {
		if m.client == exp.Client {
			m.rotate("the server can take no more ops of this id")
		}
		// Not the id of new edits: one the storage gives seqs to
		// cannot be reissued to.
		to := m.newID()
		m.log.Warn("the server expects ops the outbox no longer has; sending this client's others under a new client id",
			logkey.Client, exp.Client, logkey.Expected, exp.Seq, logkey.Seq, all[0].Seq, logkey.Ops, len(all), logkey.Current, to)
		m.reissue(exp, to)
		return
	}
	if len(before) == 0 {
		return
	}
	ids := make([]protocol.OpID, len(before))
	for i, op := range before {
		ids[i] = opID(op)
	}
	m.sess.needSync = true
	m.confirm(nil, ids, false)
}

// dropOps removes ops the server will never take and reports them as
// rejected.
func (m *machine) dropOps(ops []cart.Op, why string) {
	if len(ops) == 0 {
		return
	}
	v := m.confirmed.Version
	ids := make([]protocol.OpID, len(ops))
	results := make([]protocol.Result, len(ops))
	for i, op := range ops {
		ids[i] = opID(op)
		results[i] = protocol.Result{
			Client: op.Client, Seq: op.Seq, Status: protocol.StatusRejected, Version: v,
			Error: &cart.Error{Code: cart.CodeInvalidOp, Message: why},
		}
	}
	m.confirm(nil, ids, false)
	m.addRejected(results...)
}

// forgetToken handles unauthorized: the server will never take this
// connection's token, so its cart cannot be reached. Forget the token and
// the confirmed cart (tokenForgotten, once the storage has swapped the
// token), and start over on a new guest cart. The outbox is kept: the ops
// made on the unreachable cart go to the new one (settleGone).
func (m *machine) forgetToken(pe *protocol.Error) {
	m.sess.swapForg = pe
	m.emit(storeSwap{m.sess.token, ""})
}

func (m *machine) tokenForgotten(stored string, pe *protocol.Error) {
	s := m.sess
	m.token = stored
	m.changed = true
	if stored == "" {
		m.log.Error("device token refused; starting over on a new cart", logkey.Message, pe.Message)
		if gone := m.guestOf(s.token, s.helloCart); gone != "" {
			m.markGone(gone)
		}
		if !s.withUser || m.confirmed.User == "" {
			// A user's cart stays: only the device's guest cart is
			// lost with its token.
			m.confirm(&cart.Cart{Lines: []*cart.Line{}}, nil, true)
		} else {
			m.load()
		}
	} else {
		m.load()
	}
	m.settleGone()
	m.endPE(pe)
}

// showsErased reports whether the confirmed cart is cartID as an erasure
// left it, emptied, at the version it started over at, with no edit of
// this device's waiting (one the server applied meanwhile would make the
// retried erasure a new one, told before its acknowledgement).
func (m *machine) showsErased(cartID string) bool {
	c := m.confirmed
	return c.ID == cartID && c.Erased && c.Version > 0 && c.Version == c.Started && len(m.pending) == 0
}

// cartExpiredOn handles cart_expired: the device's guest cart was purged
// for inactivity; the welcome of the hello it answers (or of the next
// hello) brings a new device token and a fresh cart. Ops made on the
// purged cart go to the fresh one, those that can (settleGone). The
// purged snapshot is forgotten at once, so that edits made before the
// fresh cart arrives go to it. On a user's connection only the notice is
// kept: a user's cart keeps its id. which is the cart the server named
// (protocol 2 servers always name it); without it the machine works out
// which it was. erased says the storefront had the user forgotten (an
// older server does not say: the new cart's erased tells it then).
func (m *machine) cartExpiredOn(which string, erased bool) {
	s := m.sess
	m.cartExpired = true
	m.cartErased = m.cartErased || erased
	m.changed = true
	if which != "" {
		m.toldGone = which
	}
	gone := which
	if gone == "" && !s.withUser {
		gone = m.guestOf(s.token, s.helloCart)
	}
	if gone != "" {
		m.markGone(gone)
	}
	if gone != "" && m.confirmed.ID == gone {
		m.confirm(&cart.Cart{Lines: []*cart.Line{}}, nil, true)
	} else {
		m.load()
	}
	m.settleGone()
}
