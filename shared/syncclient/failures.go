package syncclient

import (
	"fmt"
	"slices"
	"time"

	"github.com/cartsync/cartsync/shared/cart"
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

func (s *session) onError(m *protocol.Message) error {
	e := s.e
	pe := m.Error
	if pe == nil {
		return nil
	}
	s.progress()
	e.log.Warn("error from the server", logCode, pe.Code, logMessage, pe.Message)
	e.update(func() { e.lastErr = pe })
	switch {
	case pe.Code == protocol.ErrTokenExpired || (pe.Code == protocol.ErrUnauthorized && s.withUser):
		// The user token is refused. (An unauthorized answer to a user
		// hello cannot say which token it refused; the device token is
		// kept, as losing it would lose the guest cart.) Do not present
		// it again: wait for SetUser.
		e.update(func() {
			if e.userGen == s.userGen {
				e.needsLogin = true
			}
		})
		return s.end(pe)
	case pe.Code == protocol.ErrUnauthorized && s.token != "":
		return s.forgetToken(pe)
	case fatal(pe.Code):
		return s.end(pe)
	case pe.Code == protocol.ErrCartExpired:
		if err := s.cartExpired(pe.Cart); err != nil {
			return err
		}
		if s.ready { // about a request: the next hello gets the fresh cart
			return s.end(pe)
		}
		return nil // at hello: the welcome with the fresh cart follows
	}

	var kind reqKind
	if m.ID != "" {
		kind = reqKind(m.ID[0])
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
		return s.end(pe)
	case reqChoose:
		s.chosen = false // the choice stands; the shopper may try again
		return nil
	case reqSync:
		if m.ID != "" && m.ID != s.syncID {
			return nil
		}
		s.syncID = ""
		s.needSync = true
		s.failures++
		s.retryLater(pe)
		return nil
	case reqPush:
		if s.push == nil || (m.ID != "" && m.ID != s.push.id) {
			return nil // about a push already settled
		}
		return s.onPushError(pe)
	}
	return nil
}

func (s *session) onPushError(pe *protocol.Error) error {
	batch := s.push.ops
	s.push = nil
	switch {
	case pe.Code == protocol.ErrOutOfOrder && pe.Expected != nil:
		if err := s.resendFrom(*pe.Expected); err != nil {
			return err
		}
		s.failures++
		if s.failures > 1 { // resend at once the first time only
			s.retryLater(pe)
		}
		return nil
	case pe.Retryable:
		s.failures++
		s.retryLater(pe)
		return nil
	case len(batch) > 1:
		// The batch as a whole was refused (too large, or a field the
		// server does not take): halve it to find the op it is about.
		s.maxBatch = max(1, len(batch)/2)
		return nil
	}
	// One op the server will never take: drop it so it cannot block the
	// ones behind it, and report it like a rejection.
	e := s.e
	e.mu.Lock()
	var ops []cart.Op
	for _, op := range e.pending {
		if opID(op) == batch[0] {
			ops = append(ops, op)
		}
	}
	e.mu.Unlock()
	return s.dropOps(ops, pe.Message)
}

// resendFrom handles out_of_order: the server expects exp.Seq next from
// exp.Client. Our ops of that client before it were processed and are
// dropped (a sync shows their effect); the push that follows starts at it.
// If the outbox starts after it, the ops in between are lost and the gap can
// never be filled: that client's ops are dropped and reported.
func (s *session) resendFrom(exp protocol.OpID) error {
	e := s.e
	var before, all []cart.Op
	for _, op := range s.sendable() {
		if op.Client == exp.Client {
			all = append(all, op)
			if op.Seq < exp.Seq {
				before = append(before, op)
			}
		}
	}
	if len(all) == 0 {
		return nil
	}
	if all[0].Seq > exp.Seq {
		e.log.Error("ops lost from the outbox; the rest of this client's ops cannot be sent",
			logOps, exp.Client, "expected", exp.Seq, "first", all[0].Seq)
		e.update(func() {
			if e.client == exp.Client {
				e.rotateLocked("the server can take no more ops of this id")
			}
		})
		return s.dropOps(all, fmt.Sprintf("lost: the server expects seq %d of client %s", exp.Seq, exp.Client))
	}
	if len(before) == 0 {
		return nil
	}
	ids := make([]protocol.OpID, len(before))
	for i, op := range before {
		ids[i] = opID(op)
	}
	s.needSync = true
	return s.confirm(nil, ids)
}

// dropOps removes ops the server will never take and reports them as
// rejected.
func (s *session) dropOps(ops []cart.Op, why string) error {
	if len(ops) == 0 {
		return nil
	}
	e := s.e
	e.mu.Lock()
	v := e.confirmed.Version
	e.mu.Unlock()
	ids := make([]protocol.OpID, len(ops))
	results := make([]protocol.Result, len(ops))
	for i, op := range ops {
		ids[i] = opID(op)
		results[i] = protocol.Result{
			Client: op.Client, Seq: op.Seq, Status: protocol.StatusRejected, Version: v,
			Error: &cart.Error{Code: cart.CodeInvalidOp, Message: why},
		}
	}
	if err := s.confirm(nil, ids); err != nil {
		return err
	}
	e.addRejected(results...)
	return nil
}

// forgetToken handles unauthorized: the server will never take this
// connection's token, so its cart cannot be reached. Forget the token and the
// confirmed cart, and start over on a new guest cart. The outbox is kept: ops
// of client ids without history go to the new cart; the others are refused
// there as out of order and reported.
func (s *session) forgetToken(pe *protocol.Error) error {
	e := s.e
	stored, err := e.store.SwapDeviceToken(s.ctx, s.token, "")
	if err != nil {
		return fmt.Errorf("forget device token: %w", err)
	}
	if stored == "" {
		e.log.Error("device token refused; starting over on a new cart", logMessage, pe.Message)
		e.update(func() {
			if gone := e.guestOfLocked(s.token, s.helloCart); gone != "" {
				e.gone[gone] = true
			}
		})
		if err := e.store.Confirm(s.ctx, &cart.Cart{Lines: []*cart.Line{}}, nil); err != nil {
			return fmt.Errorf("forget confirmed cart: %w", err)
		}
	}
	if err := e.reload(s.ctx); err != nil {
		return err
	}
	if err := e.dropGone(s.ctx); err != nil {
		return err
	}
	return s.end(pe)
}

// cartExpired handles cart_expired: the device's guest cart was purged for
// inactivity; the welcome of the hello it answers (or of the next hello)
// brings a new device token and a fresh cart. Ops made on the purged cart
// cannot be sent anywhere: they are dropped and reported. The purged
// snapshot is forgotten at once, so that edits made before the fresh cart
// arrives go to it. On a user's connection only the notice is kept: a
// user's cart keeps its id. which is the cart the server named (protocol 2
// servers always name it); without it the engine works out which it was.
func (s *session) cartExpired(which string) error {
	e := s.e
	var wipe bool
	e.update(func() {
		e.cartExpired = true
		if s.withUser && which == "" {
			return
		}
		gone := which
		if gone == "" {
			gone = e.guestOfLocked(s.token, s.helloCart)
		}
		if gone != "" {
			e.gone[gone] = true
			wipe = e.confirmed.ID == gone
		}
	})
	if wipe {
		if err := e.store.Confirm(s.ctx, &cart.Cart{Lines: []*cart.Line{}}, nil); err != nil {
			return fmt.Errorf("forget expired cart: %w", err)
		}
	}
	if err := e.reload(s.ctx); err != nil {
		return err
	}
	return e.dropGone(s.ctx)
}

// end ends the connection because of pe, waiting at least as long as the
// server asked before the next.
func (s *session) end(pe *protocol.Error) error {
	s.retryAfter = time.Duration(pe.RetryAfterMS) * time.Millisecond
	return &sessionError{pe}
}

// retryLater holds pushes and syncs back for a while after the s.failures-th
// failure in a row.
func (s *session) retryLater(pe *protocol.Error) {
	wait := backoff(s.failures-1, s.e.cfg.BackoffBase, s.e.cfg.BackoffCap, s.e.cfg.Rand)
	if pe.RetryAfterMS > 0 {
		wait = max(wait, time.Duration(pe.RetryAfterMS)*time.Millisecond)
	}
	if s.retry != nil {
		s.retry.Stop()
	}
	s.retry = time.NewTimer(wait)
	s.e.log.Info("retrying later", logCode, pe.Code, logWait, wait)
}

func (e *Engine) addRejected(rs ...protocol.Result) {
	e.update(func() {
		e.rejected = append(e.rejected, rs...)
		if n := len(e.rejected) - maxRejected; n > 0 {
			e.rejected = slices.Clone(e.rejected[n:])
		}
	})
}
