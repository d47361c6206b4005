package syncclient

import (
	"fmt"
	"time"

	"github.com/cartsync/cartsync/shared/cart"
	"github.com/cartsync/cartsync/shared/protocol"
)

// The server's carts, acks and login messages on a session: the welcome,
// snapshots and pushes, acks, and the login merge and choice.

func (s *session) onWelcome(m *protocol.Message) error {
	e := s.e
	moved := m.PrevCartID != "" && m.MergedInto != ""
	if moved {
		// The previous guest cart was merged into a user cart at a login
		// (in another tab, or one this device logged out of before it
		// finished): its unsent ops belong to that user cart now, and
		// are sent at the next login as that user.
		if err := e.store.Restamp(s.ctx, m.PrevCartID, m.MergedInto); err != nil {
			return fmt.Errorf("hand ops of %s to %s: %w", m.PrevCartID, m.MergedInto, err)
		}
		e.update(func() { e.userCarts[m.MergedInto] = true })
		if err := e.reload(s.ctx); err != nil {
			return err
		}
	}
	if m.DeviceToken != "" && m.DeviceToken != s.token {
		stored, err := e.store.SwapDeviceToken(s.ctx, s.token, m.DeviceToken)
		if err != nil {
			return fmt.Errorf("store device token: %w", err)
		}
		old := s.token
		e.update(func() {
			e.token = stored
			if stored == m.DeviceToken && old != "" && !moved {
				// A new token replaces one whose guest cart expired:
				// ops made on that cart can never be sent again.
				if gone := e.guestOfLocked(old, ""); gone != "" {
					e.gone[gone] = true
				}
			}
		})
		if stored != m.DeviceToken {
			// Another tab stored its token first: use that one (and
			// its cart), before anything is pushed on this one.
			return errTokenChanged
		}
		s.token = stored
		if err := e.dropGone(s.ctx); err != nil {
			return err
		}
	}
	s.cartID, s.user, s.guest = m.CartID, m.User, m.GuestCartID
	s.live = &live{choose: make(chan chooseReq), done: make(chan struct{})}
	e.update(func() {
		e.sessCart, e.sessUser, e.sessGuest = m.CartID, m.User, m.GuestCartID
		e.sessGen = s.userGen
		switch {
		case m.User == "":
			e.guestTok, e.guestCart = s.token, m.CartID
			e.choice = nil
		case m.GuestCartID != "":
			e.userCarts[m.CartID] = true
			e.guestTok, e.guestCart = s.token, m.GuestCartID
		default:
			e.userCarts[m.CartID] = true
		}
		e.live = s.live
		e.rebuildLocked()
	})
	if m.HeartbeatMS > 0 {
		s.hb = time.Duration(m.HeartbeatMS) * time.Millisecond
		s.ping.Reset(s.hb)
		s.silence.Reset(s.silenceLimit())
	}
	if m.Limits != nil && m.Limits.MaxQuantity > 0 {
		e.update(func() {
			lim := *m.Limits
			if lim.MaxContribs == 0 { // server bookkeeping, not sent
				lim.MaxContribs = e.limits.MaxContribs
			}
			e.limits = lim
			e.rebuildLocked()
		})
	}
	s.progress()
	return nil
}

// onCart handles a snapshot: the reply to hello or sync, or a push.
func (s *session) onCart(m *protocol.Message) error {
	e := s.e
	if m.Cart == nil {
		return nil
	}
	if s.cartID != "" && m.Cart.ID != s.cartID {
		e.log.Warn("cart of another cart id ignored", "cart", m.Cart.ID)
		return nil
	}
	e.mu.Lock()
	confirmed := e.confirmed
	pending := e.pending
	e.mu.Unlock()
	same := confirmed.ID == "" || confirmed.ID == m.Cart.ID

	// Pushed: with the ops it covers, or without them (a merge chosen
	// later changes the cart by no op; a change of the catalog sends the
	// same version again, From = Cart.Version, with new notices and
	// totals). A reply carries its request's id; a push never does.
	if len(m.By) > 0 || m.ID == "" {
		switch {
		case same && m.From == confirmed.Version:
			// The next version, or the same one annotated anew: a
			// cart at the confirmed version replaces the stored one.
			s.news()
			return s.confirm(m.Cart, m.By)
		case same && m.Cart.Version <= confirmed.Version:
			return nil
		case !s.ready || s.syncID != "" || s.push != nil:
			// The reply in flight may close the gap; look again after it.
			if len(s.held) == maxHeld {
				s.held = s.held[1:]
			}
			s.held = append(s.held, m)
			return nil
		}
		s.needSync = true
		return nil
	}

	// A reply to hello or sync.
	s.progress()
	s.news()
	s.syncID = ""
	if !s.ready {
		s.ready = true
		s.needSync = s.needSync || s.hasOthers() // learn their acked seqs before resending
		if !s.choosing {
			e.update(func() { e.choice = nil }) // resolved meanwhile
		}
	}
	var done []protocol.OpID
	for _, op := range pending {
		if !s.canSend(op) {
			continue // the seqs are this cart's
		}
		if acked, ok := m.Acked[op.Client]; ok && op.Seq <= acked {
			done = append(done, opID(op))
		}
	}
	c := m.Cart
	if same && c.Version < confirmed.Version {
		c = nil
	}
	return s.confirmReload(c, done)
}

// confirm stores a confirmed cart and drops the answered ops, then shows
// the same change from memory (Engine.confirmed) instead of reading the
// storage back: an ack or a push costs one storage transaction, and an
// add() made meanwhile waits behind that one only.
func (s *session) confirm(c *cart.Cart, done []protocol.OpID) error {
	if c == nil && len(done) == 0 {
		return nil
	}
	shown, err := s.e.confirmShown(s.ctx, c, done)
	if err != nil || shown {
		return err
	}
	// Another cart: what belongs to it is the storage's to say.
	return s.confirmReload(c, done)
}

// confirmReload stores a confirmed cart and drops the answered ops, then
// reloads everything stored: the reply to a hello or a sync, which is
// also when ops other tabs stored are looked for.
func (s *session) confirmReload(c *cart.Cart, done []protocol.OpID) error {
	if c != nil || len(done) > 0 {
		if err := s.e.store.Confirm(s.ctx, c, done); err != nil {
			return fmt.Errorf("store confirmed cart: %w", err)
		}
	}
	return s.e.reload(s.ctx)
}

func (s *session) onAck(m *protocol.Message) error {
	e := s.e
	s.progress()
	s.news()
	done := make([]protocol.OpID, 0, len(m.Results))
	var maxApplied uint64
	var applied int
	var rejected []protocol.Result
	for _, r := range m.Results {
		done = append(done, protocol.OpID{Client: r.Client, Seq: r.Seq})
		switch r.Status {
		case protocol.StatusRejected:
			rejected = append(rejected, r)
			code := cart.Code("")
			if r.Error != nil {
				code = r.Error.Code
			}
			e.log.Info("op rejected", logOps, fmt.Sprintf("%s/%d", r.Client, r.Seq), logCode, code)
		case protocol.StatusApplied:
			maxApplied = max(maxApplied, r.Version)
			applied++
		}
	}
	e.mu.Lock()
	confirmed := e.confirmed
	e.mu.Unlock()
	// The same version is taken too: its notices may be newer.
	c := m.Cart
	if c != nil && ((s.cartID != "" && c.ID != s.cartID) || (confirmed.ID == c.ID && c.Version < confirmed.Version)) {
		c = nil
	}
	// The cart moved further than this ack's own ops: others' ops,
	// perhaps from this outbox through another tab. Learn which.
	// Those may be in the storage and not yet shown here (another tab's
	// edits, its news still on the way): read it all back then.
	moved := c != nil && c.ID == confirmed.ID && c.Version-confirmed.Version > uint64(applied)
	confirm := s.confirm
	if moved {
		confirm = s.confirmReload
	}
	if err := confirm(c, done); err != nil {
		return err
	}
	if moved && s.hasOthers() {
		s.needSync = true
	}
	if len(rejected) > 0 {
		e.addRejected(rejected...)
	}
	e.mu.Lock()
	behind := maxApplied > e.confirmed.Version
	e.mu.Unlock()
	if behind {
		s.needSync = true // applied, but no cart shows it
	}

	if s.push != nil && (m.ID == "" || m.ID == s.push.id) {
		answered := make(map[protocol.OpID]bool, len(done))
		for _, id := range done {
			answered[id] = true
		}
		all := true
		for _, id := range s.push.ops {
			all = all && answered[id]
		}
		if all {
			s.push = nil
			s.failures = 0
			s.progressed = true
			s.maxBatch = min(protocol.MaxOpsPerPush, s.maxBatch*2)
			e.update(func() { e.lastErr = nil })
		}
		// Otherwise the server stopped early: its error about the rest
		// follows, and the push stays in flight until then.
	}
	return nil
}

// hasOthers reports whether the sendable ops include ones of client ids
// other than the engine's own.
func (s *session) hasOthers() bool {
	e := s.e
	e.mu.Lock()
	own := e.client
	e.mu.Unlock()
	for _, op := range s.sendable() {
		if op.Client != own {
			return true
		}
	}
	return false
}

// onMerge takes what the server says about the login merge.
func (s *session) onMerge(m *protocol.Message) error {
	mi := m.Merge
	if mi == nil {
		return nil
	}
	s.progress()
	e := s.e
	e.log.Info("login merge", "status", mi.Status, logVersion, mi.Version)
	s.choosing = mi.Status == protocol.MergeChoose
	s.chosen = false
	e.update(func() {
		e.merge = mi
		if s.choosing {
			e.choice = mi
		} else {
			e.choice = nil
		}
	})
	return nil
}

// choose sends the shopper's pick for a pending choice. rerr is for the
// caller of Choose; err ends the connection.
func (s *session) choose(policy cart.Policy) (rerr, err error) {
	e := s.e
	e.mu.Lock()
	choice := e.choice
	e.mu.Unlock()
	if !s.choosing || s.chosen || choice == nil {
		return ErrNoChoice, nil
	}
	err = s.send(&protocol.Message{Type: protocol.TypeChoose, ID: s.newID(reqChoose), Policy: policy})
	if err != nil {
		return ErrNotConnected, err
	}
	s.chosen = true
	s.progress()
	return nil, nil
}
