package syncclient

import (
	"slices"
	"time"

	"github.com/cartsync/cartsync/shared/cart"
	"github.com/cartsync/cartsync/shared/logkey"
	"github.com/cartsync/cartsync/shared/protocol"
)

// The machine's copy of the storage, and the state shown from it.

// memoryConfirmFor is how long after reading the storage a confirm is
// shown from memory; later the storage is read back. A burst of edits and
// acks then reads it about once a second instead of at every ack.
const memoryConfirmFor = time.Second

// loadedStored takes everything stored, the source of truth for the
// confirmed cart and the outbox (other tabs write it too).
func (m *machine) loadedStored(now time.Time, st Stored) {
	if st.Cart == nil {
		st.Cart = &cart.Cart{Lines: []*cart.Line{}}
	}
	m.loaded = true
	m.token = st.DeviceToken
	m.confirmed = st.Cart
	m.ownCart()
	m.pending = st.Pending
	m.readAt = now
	m.rebuild()
}

// enqueued shows op, just stored by an edit, without reading the storage
// back: an edit returns as soon as it is durable, which is what a
// storefront's add() waits for. What other tabs stored meanwhile comes
// with the next read. The driver holds Engine.ioMu from before the op was
// stored: no read can have seen it, so it cannot have been sent, answered
// and taken out already (adding it then would show it twice), and no read
// from before it was stored can be taken after this and hide it.
func (m *machine) enqueued(op cart.Op) {
	// The outbox is in the order ops were enqueued, as Storage.Load gives
	// it: this op is the newest this machine knows of (one another tab
	// stored meanwhile takes its place with the next read).
	if !slices.ContainsFunc(m.pending, func(p cart.Op) bool { return p.Client == op.Client && p.Seq == op.Seq }) {
		m.pending = append(slices.Clip(m.pending), op)
	}
	m.rebuild()
	// Connected, an op this connection sends makes it syncing at once,
	// as the next step would say: never synced with an edit waiting.
	if m.status == Synced && m.sess != nil && m.sess.canSend(op) {
		m.setStatus(Syncing)
	}
}

// newOp stamps an edit with the client id, cart and base version it is
// made on; the storage allocates its seq.
func (m *machine) newOp(op cart.Op) cart.Op {
	op.Client, op.Cart, op.Base = m.client, m.confirmed.ID, m.confirmed.Version
	if m.hidden() {
		// For whichever cart the server names next: this device's, or
		// the account's of whoever logs in.
		op.Cart, op.Base = "", 0
	}
	return op
}

// confirm stores a confirmed cart and drops the answered ops, and makes
// the same change in the copy. With reread, or when the copy may be
// stale, it then reads the storage back: the reply to a hello or a sync,
// which is also when ops other tabs stored are looked for; a cart of
// another id, whose ops are the storage's to say; a read older than
// memoryConfirmFor. Otherwise an ack or a push costs one storage
// transaction, not a write and a read.
func (m *machine) confirm(c *cart.Cart, done []protocol.OpID, reread bool) {
	if c == nil && len(done) == 0 {
		if reread {
			m.load()
		}
		return
	}
	if !m.loaded || (c != nil && (m.confirmed.ID == "" || c.ID != m.confirmed.ID)) || m.now.Sub(m.readAt) > memoryConfirmFor {
		reread = true
	}
	c = m.ownedCopy(c)
	startedOver := c != nil && c.ID == m.confirmed.ID && m.confirmed.Version > 0 && m.confirmed.Version < c.Started
	if startedOver {
		// The cart expired and started over since this device last saw
		// it. The device whose hello started it over was told so; this
		// one learns it here.
		m.cartExpired = true
		m.changed = true
	}
	if c != nil && c.Erased && (startedOver || (c.ID == m.toldGone && m.cartExpired)) && !m.cartErased {
		// The cart that started over here, or the one the server told
		// this device was gone, started because the storefront had its
		// user forgotten: told as cleared, not as expired. (erased stays
		// on the cart for its life: it says nothing on its own.)
		m.cartErased = true
		m.changed = true
	}
	m.emit(storeConfirm{c, done})
	if replacesStored(m.confirmed, c) {
		m.confirmed = cloneCart(c)
	}
	m.ownCart() // as a read does: a client id just rotated has no cart yet
	m.pending = withoutDone(m.pending, done)
	m.rebuild()
	if reread {
		m.load()
	}
}

// restamp moves the pending ops made on cart from to cart to.
func (m *machine) restamp(from, to string) {
	m.emit(storeRestamp{from, to})
	pending := slices.Clone(m.pending)
	for i := range pending {
		if pending[i].Cart == from {
			pending[i].Cart, pending[i].Base = to, 0
		}
	}
	m.pending = pending
	m.rebuild()
}

// reissue gives the pending ops of exp.Client above exp.Seq the client id
// to, with seqs from 1, in the storage and in the copy (Storage.Reissue),
// and reads the storage back: what it holds then is what is sent.
func (m *machine) reissue(exp protocol.OpID, to string) {
	m.emit(storeReissue{exp.Client, exp.Seq, to})
	pending := slices.Clone(m.pending)
	var n uint64
	for i := range pending {
		if op := &pending[i]; op.Client == exp.Client && op.Seq > exp.Seq {
			n++
			op.Client, op.Seq = to, n
		}
	}
	m.pending = pending
	m.rebuild()
	m.load()
}

// ownCart makes the confirmed cart the one the client id's seqs count
// for. Seqs count per client id and cart: on another cart the id's next
// seq would be refused as out of order, so an id that counted for another
// cart is rotated.
func (m *machine) ownCart() {
	if m.confirmed.ID != m.clientCart {
		if m.clientCart != "" {
			m.rotate("the cart changed")
		}
		m.clientCart = m.confirmed.ID
	}
}

// rotate moves new ops to a fresh client id.
func (m *machine) rotate(why string) {
	old := m.client
	m.client, m.clientCart = m.newID(), ""
	m.log.Info("new client id", logkey.Client, m.client, logkey.Previous, old, logkey.Reason, why)
}

// rebuild replays the pending ops of the confirmed cart on it and counts
// the others, then the notices and totals shown. Rejections are expected
// (the line may be gone) and ignored: the server decides.
func (m *machine) rebuild() {
	hidden := m.hidden()
	c := &cart.Cart{Lines: []*cart.Line{}}
	if !hidden {
		c = m.confirmed.Clone()
	}
	m.waiting = 0
	for _, op := range m.pending {
		if !m.belongs(op) || (hidden && op.Cart != "") {
			m.waiting++
			continue
		}
		c.Apply(op, localDevice, m.limits)
	}
	m.shown = c
	if hidden {
		m.notices, m.totals = nil, nil // the catalog's word on the user's cart
	} else {
		m.annotate(len(m.pending) > m.waiting)
	}
	m.changed = true
}

// belongs reports whether op is for the confirmed cart: made on it,
// before the first sync, or (on a user cart) on the guest cart the latest
// welcome named for it, whose ops the server applies to the user cart.
func (m *machine) belongs(op cart.Op) bool {
	id := m.confirmed.ID
	return op.Cart == "" || op.Cart == id ||
		(id != "" && id == m.sessCart && m.sessUser != "" && m.sessGuest != "" && op.Cart == m.sessGuest)
}

// guestOf returns the guest cart of device token tok if the machine knows
// it. With fallback, a cart it does not know to be a user cart counts as
// tok's guest cart.
func (m *machine) guestOf(tok, fallback string) string {
	if tok != "" && tok == m.guestTok && m.guestCart != "" {
		return m.guestCart
	}
	if fallback != "" && !m.userCarts[fallback] {
		return fallback
	}
	return ""
}

// markGone records that cart id no longer exists for this device, and
// whether it is known to have been this device's guest cart: the one a
// welcome named, or the confirmed cart, stored as nobody's. Call it before
// the confirmed cart is replaced.
func (m *machine) markGone(id string) {
	m.gone[id] = true
	if !m.userCarts[id] && (id == m.guestCart || id == m.sessGuest || (id == m.confirmed.ID && m.confirmed.User == "")) {
		m.carry[id] = true
	}
}

// settleGone deals with the pending ops of carts that no longer exist for
// this device, and reads the storage back. An op made on a guest cart of
// this device that expired, or whose device token the server refused,
// goes to the cart the device has now, as an op made before the first
// sync does (its cart becomes ""): an add the shopper made as the page
// loaded, before the server said the cart had expired, is kept. Those
// that cannot apply without the old cart's lines (a quantity or details of
// one of its lines) are dropped and reported in State.Dropped, and a
// removal or emptying that would change nothing is dropped silently: what
// the shopper wanted holds. The ops of any other cart (an account's, or
// one not known to be this device's guest cart) stay as they are: an
// account's edits wait for that account's next login, never going into a
// guest cart or another account. It reports whether it changed the
// outbox.
func (m *machine) settleGone() bool {
	var drop, quiet []cart.Op
	replay := map[string]*cart.Cart{} // each gone guest cart's carried ops, replayed on an empty cart
	for _, op := range m.pending {
		if op.Cart == "" || !m.carry[op.Cart] { // carry holds gone carts only
			continue
		}
		c := replay[op.Cart]
		if c == nil {
			c = &cart.Cart{Lines: []*cart.Line{}}
			replay[op.Cart] = c
		}
		removal := op.Kind == cart.KindRemove || (op.Kind == cart.KindSet && op.Quantity == 0)
		noop := (removal && c.Line(op.Key()) == nil) || (op.Kind == cart.KindClear && len(c.Lines) == 0)
		if noop {
			quiet = append(quiet, op)
			continue
		}
		if _, err := c.Apply(op, localDevice, m.limits); err != nil {
			drop = append(drop, op)
		}
	}
	if len(replay) == 0 {
		return false
	}
	for from := range replay {
		m.log.Warn("ops of a cart that no longer exists go to the device's cart now", logkey.Cart, from)
		m.restamp(from, "")
	}
	if len(drop) > 0 {
		m.log.Warn("ops dropped: their cart no longer exists", logkey.Ops, len(drop), logkey.Cart, drop[0].Cart)
	}
	for _, op := range drop {
		// Listed once, even if a failed write brings it back.
		if !slices.ContainsFunc(m.dropped, func(d cart.Op) bool { return opID(d) == opID(op) }) {
			m.dropped = append(m.dropped, op)
		}
	}
	if n := len(m.dropped) - maxDropped; n > 0 {
		m.dropped = slices.Clone(m.dropped[n:])
	}
	ids := make([]protocol.OpID, 0, len(drop)+len(quiet))
	for _, op := range append(drop, quiet...) {
		ids = append(ids, opID(op))
	}
	// After the restamp, in a second transaction: should the page close
	// between the two, the ops to drop are sent to the device's cart too,
	// where the server refuses them unless a line of that key is there by
	// then. Dropped first, the ops to carry would be left on the gone cart
	// of a page that no longer knows it is gone, never sent.
	m.confirm(nil, ids, true)
	return true
}

func (m *machine) setStatus(s Status) {
	if m.status != s {
		m.status = s
		m.changed = true
	}
}

func (m *machine) addRejected(rs ...protocol.Result) {
	m.rejected = keepLast(m.rejected, rs)
	m.changed = true
}

// keepLast appends rs to list and keeps the last maxRejected.
func keepLast(list, rs []protocol.Result) []protocol.Result {
	list = append(list, rs...)
	if n := len(list) - maxRejected; n > 0 {
		list = slices.Clone(list[n:])
	}
	return list
}

// reduced reports whether the server applied r with less than it asked
// because of the catalog: its quantity lowered to what is available
// (stock_clamped). The most a line holds (quantity_clamped) the engine
// knows and applies itself before the op is queued, and its UI tells it
// then.
func reduced(r protocol.Result) bool {
	return r.Status == protocol.StatusApplied && slices.ContainsFunc(r.Warnings, func(w cart.Warning) bool {
		return w.Code == cart.CodeStockClamped
	})
}

func (m *machine) addWarned(rs ...protocol.Result) {
	m.warned = keepLast(m.warned, rs)
	m.changed = true
}

// ackNotices clears the notices the UI has shown.
func (m *machine) ackNotices() {
	m.cartExpired, m.cartErased, m.toldGone = false, false, ""
	m.setMerge(nil)
	m.dropped = nil
	m.elsewhere = nil
	m.changed = true
}
