package syncclient

import (
	"fmt"
	"time"

	"github.com/cartsync/cartsync/shared/cart"
	"github.com/cartsync/cartsync/shared/logkey"
	"github.com/cartsync/cartsync/shared/protocol"
)

// The server's carts, acks and login messages on a connection: the
// welcome, snapshots and pushes, acks, and the login merge and choice.

func (m *machine) onWelcome(msg *protocol.Message) {
	s := m.sess
	moved := msg.PrevCartID != "" && msg.MergedInto != ""
	if moved {
		// The previous guest cart was merged into a user cart at a login
		// (in another tab, or one this device logged out of before it
		// finished): its unsent ops belong to that user cart now, and
		// are sent at the next login as that user.
		m.userCarts[msg.MergedInto] = true
		m.restamp(msg.PrevCartID, msg.MergedInto)
		m.load()
	}
	if msg.DeviceToken != "" && msg.DeviceToken != s.token {
		// The rest waits for the storage's answer: tokenSwapped.
		s.swapWelc, s.swapMove = msg, moved
		m.emit(storeSwap{s.token, msg.DeviceToken})
		return
	}
	m.welcomed(msg)
}

// tokenSwapped takes the storage's answer to a storeSwap: the device token
// stored now.
func (m *machine) tokenSwapped(now time.Time, stored string) {
	m.now = now
	s := m.sess
	if s == nil {
		return
	}
	switch {
	case s.swapWelc != nil:
		msg, moved := s.swapWelc, s.swapMove
		s.swapWelc = nil
		old := s.token
		m.token = stored
		if stored == msg.DeviceToken && old != "" && !moved {
			// A new token replaces one whose guest cart expired: ops
			// made on that cart can never be sent again.
			if gone := m.guestOf(old, ""); gone != "" {
				m.markGone(gone)
			}
		}
		m.changed = true
		if stored != msg.DeviceToken {
			// Another tab stored its token first: use that one (and its
			// cart), before anything is pushed on this one.
			m.end(errTokenChanged)
			return
		}
		s.token = stored
		m.settleGone()
		m.welcomed(msg)
	case s.swapForg != nil:
		pe := s.swapForg
		s.swapForg = nil
		m.tokenForgotten(stored, pe)
		return
	}
	m.step()
}

// welcomed takes the welcome once the device token is stored.
func (m *machine) welcomed(msg *protocol.Message) {
	s := m.sess
	s.cartID, s.user, s.guest = msg.CartID, msg.User, msg.GuestCartID
	if msg.User != "" && m.confirmed.User != "" && msg.User != m.confirmed.User {
		// Another account logged in without a logout: what was told
		// about the last one's cart is not this one's (as at a logout),
		// but for this one's cart expiring, told before its welcome.
		m.forgetAccountNotices(msg.CartID)
	}
	m.welcomes++
	m.live = m.welcomes
	m.sessCart, m.sessUser, m.sessGuest = msg.CartID, msg.User, msg.GuestCartID
	m.sessGen = s.userGen
	switch {
	case msg.User == "":
		m.guestTok, m.guestCart = s.token, msg.CartID
		m.choice = nil
	case msg.GuestCartID != "":
		m.userCarts[msg.CartID] = true
		m.guestTok, m.guestCart = s.token, msg.GuestCartID
	default:
		m.userCarts[msg.CartID] = true
	}
	if msg.HeartbeatMS > 0 {
		s.hb = time.Duration(msg.HeartbeatMS) * time.Millisecond
		m.emit(setTimer{timerPing, s.hb})
		m.emit(setTimer{timerSilence, m.silenceLimit()})
	}
	if msg.Limits != nil && msg.Limits.MaxQuantity > 0 {
		lim := *msg.Limits
		if lim.MaxContribs == 0 { // server bookkeeping, not sent
			lim.MaxContribs = m.limits.MaxContribs
		}
		m.limits = lim
	}
	m.rebuild()
	m.progress()
}

// onCart handles a snapshot: the reply to hello or sync, or a push.
func (m *machine) onCart(msg *protocol.Message) {
	s := m.sess
	if msg.Cart == nil {
		return
	}
	if s.cartID != "" && msg.Cart.ID != s.cartID {
		m.log.Warn("cart of another cart id ignored", logkey.Cart, msg.Cart.ID)
		return
	}
	confirmed := m.confirmed
	same := confirmed.ID == "" || confirmed.ID == msg.Cart.ID

	// Pushed: with the ops it covers, or without them (a merge chosen
	// later changes the cart by no op; a change of the catalog sends the
	// same version again, From = Cart.Version, with new notices and
	// totals). A reply carries its request's id; a push never does.
	if len(msg.By) > 0 || msg.ID == "" {
		switch {
		case same && msg.From == confirmed.Version:
			// The next version, or the same one annotated anew: a
			// cart at the confirmed version replaces the stored one.
			m.news()
			m.loginElsewhere(confirmed, msg)
			m.confirm(msg.Cart, msg.By, false)
		case same && msg.Cart.Version <= confirmed.Version:
		case !s.ready || s.syncID != "" || s.push != nil:
			// The reply in flight may close the gap; look again after it.
			if len(s.held) == maxHeld {
				s.held = s.held[1:]
			}
			s.held = append(s.held, msg)
		default:
			s.needSync = true
		}
		return
	}

	// A reply to hello or sync.
	m.progress()
	m.news()
	s.syncID = ""
	if !s.ready {
		s.ready = true
		s.needSync = s.needSync || m.hasOthers() // learn their acked seqs before resending
		if !s.choosing && m.choice != nil {
			m.choice = nil // resolved meanwhile
			m.changed = true
		}
	}
	var done []protocol.OpID
	for _, op := range m.pending {
		if !s.canSend(op) {
			continue // the seqs are this cart's
		}
		if acked, ok := msg.Acked[op.Client]; ok && op.Seq <= acked {
			done = append(done, opID(op))
		}
	}
	c := msg.Cart
	if same && c.Version < confirmed.Version {
		if !msg.Reset {
			c = nil // an older read (another instance's cache): ours is newer
		} else {
			// The server's store was restored from an older backup:
			// its cart is the cart now, older though it is. The
			// storage keeps a newer version of the same id, so the
			// copy is dropped first.
			m.log.Warn("the server's cart is older than ours (restored from a backup): taking it",
				logkey.Cart, c.ID, logkey.Version, c.Version, logkey.Previous, confirmed.Version)
			m.confirm(&cart.Cart{Lines: []*cart.Line{}}, nil, false)
		}
	}
	m.confirm(c, done, true)
}

func (m *machine) onAck(msg *protocol.Message) {
	s := m.sess
	m.progress()
	m.news()
	done := make([]protocol.OpID, 0, len(msg.Results))
	var maxApplied uint64
	var applied int
	var rejected, warned []protocol.Result
	for _, r := range msg.Results {
		id := protocol.OpID{Client: r.Client, Seq: r.Seq}
		done = append(done, id)
		if q, ok := m.lateOps[id]; ok {
			if r.Status == protocol.StatusApplied {
				m.mergeLate += q
			}
			delete(m.lateOps, id)
		}
		switch r.Status {
		case protocol.StatusRejected:
			rejected = append(rejected, r)
			code := cart.Code("")
			if r.Error != nil {
				code = r.Error.Code
			}
			m.log.Info("op rejected", logkey.Ops, fmt.Sprintf("%s/%d", r.Client, r.Seq), logkey.Code, code)
		case protocol.StatusApplied:
			maxApplied = max(maxApplied, r.Version)
			applied++
			if reduced(r) {
				warned = append(warned, r)
			}
		}
	}
	confirmed := m.confirmed
	// The same version is taken too: its notices may be newer.
	c := msg.Cart
	if c != nil && ((s.cartID != "" && c.ID != s.cartID) || (confirmed.ID == c.ID && c.Version < confirmed.Version)) {
		c = nil
	}
	// The cart moved further than this ack's own ops: others' ops,
	// perhaps from this outbox through another tab. Learn which. Those
	// may be in the storage and not yet shown here (another tab's edits,
	// its news still on the way): read it all back then.
	moved := c != nil && c.ID == confirmed.ID && c.Version-confirmed.Version > uint64(applied)
	m.confirm(c, done, moved)
	if moved {
		s.othersCheck = true // once the storage is read
	}
	if len(rejected) > 0 {
		m.addRejected(rejected...)
	}
	if len(warned) > 0 {
		m.addWarned(warned...)
	}
	if maxApplied > m.confirmed.Version {
		s.needSync = true // applied, but no cart shows it
	}

	if s.push != nil && (msg.ID == "" || msg.ID == s.push.id) {
		m.settlePush(done)
	}
}

// settlePush ends the push in flight if done answers all its ops.
// Otherwise the server stopped early: its error about the rest follows,
// and the push stays in flight until then.
func (m *machine) settlePush(done []protocol.OpID) {
	s := m.sess
	answered := make(map[protocol.OpID]bool, len(done))
	for _, id := range done {
		answered[id] = true
	}
	for _, id := range s.push.ops {
		if !answered[id] {
			return
		}
	}
	s.push = nil
	s.failures = 0
	s.progressed = true
	s.maxBatch = min(protocol.MaxOpsPerPush, s.maxBatch*2)
	if m.lastErr != nil {
		m.lastErr = nil
		m.changed = true
	}
}

// loginElsewhere notes a login merge in push msg onto the confirmed cart
// that this device's own login did not make (its merge message, which comes
// first, names the version): the shopper here is told that the cart
// changed under them.
func (m *machine) loginElsewhere(confirmed *cart.Cart, msg *protocol.Message) {
	for _, id := range msg.By {
		// Its seq is the version it made. A choice this engine was asked
		// is answered by a merge too, perhaps from another tab.
		if id.Client != protocol.MergeClient || m.choice != nil || (m.merge != nil && m.merge.Version == id.Seq) {
			continue
		}
		e := &LoginElsewhere{Version: id.Seq}
		for _, l := range confirmed.Lines {
			if now := msg.Cart.Line(l.Key); now == nil || now.Quantity < l.Quantity {
				e.Removed++
			}
		}
		for _, l := range msg.Cart.Lines {
			if old := confirmed.Line(l.Key); old == nil || old.Quantity < l.Quantity {
				e.Added++
			}
		}
		if e.Removed > 0 || e.Added > 0 {
			m.elsewhere = e
			m.changed = true
		}
	}
}

// onMerge takes what the server says about the login merge.
func (m *machine) onMerge(msg *protocol.Message) {
	mi := msg.Merge
	if mi == nil {
		return
	}
	s := m.sess
	m.progress()
	m.log.Info("login merge", logkey.Status, mi.Status, logkey.Version, mi.Version)
	s.choosing = mi.Status == protocol.MergeChoose
	s.chosen = false
	m.setMerge(mi)
	if mi.Status == protocol.MergeMerged {
		// The guest cart's adds still waiting, which go to the user cart
		// after the merge (ops made before the first sync have no cart,
		// and go there too). Some may have reached the guest cart before
		// the login (a push in flight, another tab's): the server's
		// answers tell (onAck).
		for _, op := range m.pending {
			if op.Kind == cart.KindAdd && (op.Cart == "" || op.Cart == m.sessGuest) {
				if m.lateOps == nil {
					m.lateOps = map[protocol.OpID]int{}
				}
				m.lateOps[protocol.OpID{Client: op.Client, Seq: op.Seq}] = op.Quantity
			}
		}
	}
	if s.choosing {
		m.choice = mi
	} else {
		m.choice = nil
	}
	m.changed = true
}

// choose sends the shopper's pick for a pending choice.
func (m *machine) choose(now time.Time, policy cart.Policy) error {
	m.now = now
	s := m.sess
	if !m.active() || m.live == 0 {
		return ErrNotConnected
	}
	if !s.choosing || s.chosen || m.choice == nil {
		return ErrNoChoice
	}
	m.send(&protocol.Message{Type: protocol.TypeChoose, ID: m.newReqID(reqChoose), Policy: policy})
	s.chosen = true
	m.progress()
	m.step()
	return nil
}

// setMerge makes mi the latest merge (nil: none), with no late items yet.
func (m *machine) setMerge(mi *protocol.MergeInfo) {
	m.merge, m.mergeLate, m.lateOps = mi, 0, nil
}

// mergeSettling reports whether an add counted for the merge's late items
// is still waiting for the server's answer on this connection.
func (m *machine) mergeSettling() bool {
	if len(m.lateOps) == 0 {
		return false
	}
	for _, op := range m.pending {
		if _, ok := m.lateOps[protocol.OpID{Client: op.Client, Seq: op.Seq}]; ok {
			return true
		}
	}
	return false
}
