package syncclient

import (
	"fmt"
	"maps"

	"github.com/cartsync/cartsync/shared/cart"
	"github.com/cartsync/cartsync/shared/protocol"
)

// What the engine shows: the connection's status, and the state built from
// the confirmed cart and the outbox.

// Status is the state of the connection to the server.
type Status int

// Statuses.
const (
	Offline    Status = iota // not connected (also while trying again, until the server answers); edits are kept and sent later
	Connecting               // the first connection, or the next on a live one's end (a login, a logout, a new cart handed over): dialling, or waiting for the server's first cart
	Syncing                  // connected, with ops or a sync in flight
	Synced                   // connected, nothing pending
)

func (s Status) String() string {
	switch s {
	case Offline:
		return "offline"
	case Connecting:
		return "connecting"
	case Syncing:
		return "syncing"
	case Synced:
		return "synced"
	}
	return fmt.Sprintf("Status(%d)", int(s))
}

// State is what the engine shows.
type State struct {
	// Cart is the confirmed cart with the pending ops replayed on it. It is
	// shared: do not modify it.
	Cart *cart.Cart
	// Confirmed is the version of the last cart the server confirmed.
	Confirmed uint64
	// Pending is the number of ops in the outbox, of every client id,
	// Waiting included.
	Pending int
	// Waiting is the number of pending ops held for another cart than the
	// one shown: made on a user's cart before a logout (or while the login
	// had expired, then logged out). They are neither shown nor sent until
	// a connection is on their cart again (the next login of that user).
	Waiting int
	Status  Status
	// User is the user id of the shown cart, "" for a guest cart (or one
	// not connected to yet since the engine started).
	User string
	// LastError is the last protocol error the server sent, until the next
	// successful exchange.
	LastError *protocol.Error
	// Rejected are the most recent ops the server refused, oldest first, so
	// the shopper can be told.
	Rejected []protocol.Result
	// Reduced are the most recent ops the server applied with less than
	// they asked, oldest first, so the shopper can be told: an add or set
	// lowered to what the catalog has available or its per-order maximum
	// (warning stock_clamped).
	Reduced []protocol.Result

	// NeedsLogin: the server refused the user token (expired, or not
	// valid). The engine does not connect again until SetUser is called;
	// edits are kept and shown, and sent after the next login.
	NeedsLogin bool
	// CartExpired: the cart was purged for inactivity, and a fresh one is
	// now shown: a guest's, with a new device token, or the user's cart
	// started over under the same id. Until AckNotices, or a logout.
	CartExpired bool
	// CartErased: with CartExpired, the fresh cart is there because the
	// storefront had the user forgotten (their cart erased), not because
	// it expired. Until AckNotices, or a logout.
	CartErased bool
	// Merge is what the latest login merge did (status merged or already),
	// or the pending choice (status choose). Until AckNotices, or a
	// logout. Shared: do
	// not modify.
	Merge *protocol.MergeInfo
	// MergeLate is how many items this device had added to its guest
	// cart that had not reached the server when Merge was made and that
	// the server then applied to the user cart, whatever the policy (keep
	// included: they are edits the shopper made, sent late); they are
	// not in Merge.Result.Items. With Merge. While MergeSettling, some
	// of those adds are still to be answered: the count may grow.
	MergeLate     int
	MergeSettling bool
	// Choice, while not nil, holds both carts of a login merge the server
	// will not do until the shopper picks a policy with Choose. Shared: do
	// not modify.
	Choice *protocol.MergeInfo
	// Dropped are pending ops the engine removed unsent because their cart
	// no longer exists for this device (it expired, or its device token
	// was refused or replaced) and they cannot apply to the fresh one (a
	// change of one of the old cart's lines), oldest first, at most 100.
	// Until AckNotices.
	Dropped []cart.Op
	// Elsewhere: a login on another device merged its guest cart into
	// the shown user cart (a push by protocol.MergeClient that is not this
	// device's own login). Until AckNotices. Shared: do not modify.
	Elsewhere *LoginElsewhere

	// Notices are what the storefront's catalog says changed under the
	// lines since they were added (a new price, less stock, a withdrawn
	// item), as the server sent them with the confirmed cart, less those
	// the pending edits resolve: a details op that gives the line the new
	// price, a quantity within what is available, the line removed. Nil
	// when the server keeps no catalog. Shared: do not modify.
	Notices []cart.Notice
	// Totals are the shown cart's totals per currency at the catalog's
	// prices, withdrawn items left out: the server's for the confirmed
	// cart, worked out again from its notices while edits are pending.
	// Nil when the server sent none (it keeps no catalog); then
	// Cart.Subtotal is the total. Shared: do not modify.
	Totals map[string]int64
}

// LoginElsewhere is what a login on another device did to the cart shown
// here: Removed lines that were here are gone or hold less (the other
// device's shopper chose replace), Added lines are new or hold more.
type LoginElsewhere struct {
	Version uint64 // the version the merge produced
	Removed int
	Added   int
}

// Snapshot returns the current state.
func (e *Engine) Snapshot() State {
	e.mu.Lock()
	defer e.mu.Unlock()
	return e.view
}

func (m *machine) snapshot() State {
	st := State{
		Cart:          m.shown,
		Confirmed:     m.confirmed.Version,
		Pending:       len(m.pending),
		Waiting:       m.waiting,
		Status:        m.status,
		LastError:     m.lastErr,
		Rejected:      append([]protocol.Result(nil), m.rejected...),
		Reduced:       append([]protocol.Result(nil), m.warned...),
		NeedsLogin:    m.needsLogin,
		CartExpired:   m.cartExpired,
		CartErased:    m.cartErased,
		Merge:         m.merge,
		MergeLate:     m.mergeLate,
		MergeSettling: m.mergeSettling(),
		Choice:        m.choice,
		Dropped:       append([]cart.Op(nil), m.dropped...),
		Elsewhere:     m.elsewhere,
		Notices:       m.notices,
		Totals:        m.totals,
	}
	if m.sessCart != "" && m.sessCart == m.confirmed.ID {
		st.User = m.sessUser
	}
	if m.hidden() {
		st.Confirmed, st.User = 0, ""
	}
	return st
}

// annotate sets the notices and totals shown from those the server sent
// with the confirmed cart, for the shown cart.
func (m *machine) annotate(replayed bool) {
	m.notices = liveNotices(m.confirmed.Notices, m.shown)
	m.totals = nil
	switch {
	case m.confirmed.Totals == nil && m.confirmed.Notices == nil:
		// No catalog; or one that knows none of the SKUs, or totals
		// that are all zero (an empty map is left out of the JSON).
		// Either way the lines' own prices are the totals.
	case !replayed && m.confirmed.Totals != nil:
		m.totals = maps.Clone(m.confirmed.Totals)
	default:
		m.totals = catalogTotals(m.shown, m.confirmed)
	}
}

// liveNotices returns the notices that still hold for the shown cart: the
// line is still there, its price is not yet the catalog's, the cart holds
// more of its SKU than is available. A notice reduced to nothing is left
// out; the others are copies.
func liveNotices(notices []cart.Notice, shown *cart.Cart) []cart.Notice {
	var out []cart.Notice
	for _, n := range notices {
		l := shown.Line(n.Line)
		if l == nil {
			continue
		}
		if pc := n.PriceChanged; pc != nil && l.Details.Price == pc.To && l.Details.Currency == pc.Currency {
			n.PriceChanged = nil
		}
		if n.Available != nil && shown.SKUQuantity(l.SKU) <= *n.Available {
			n.Limit = cart.Limit{}
		}
		if n.Unavailable || n.PriceChanged != nil || n.Available != nil {
			out = append(out, n)
		}
	}
	return out
}

// catalogTotals works out the totals of c at the catalog's prices as far as
// the notices of the confirmed cart tell them: the new price of a SKU whose
// price changed, none for a withdrawn SKU, and the line's own price for the
// others (the catalog's, unless it changed since the server said so).
func catalogTotals(c, confirmed *cart.Cart) map[string]int64 {
	type price struct {
		minor    int64
		currency string
	}
	prices := map[string]price{}
	withdrawn := map[string]bool{}
	for _, n := range confirmed.Notices {
		l := confirmed.Line(n.Line)
		switch {
		case l == nil:
		case n.Unavailable:
			withdrawn[l.SKU] = true
		case n.PriceChanged != nil:
			prices[l.SKU] = price{n.PriceChanged.To, n.PriceChanged.Currency}
		}
	}
	out := map[string]int64{}
	for _, l := range c.Lines {
		if withdrawn[l.SKU] {
			continue
		}
		p, ok := prices[l.SKU]
		if !ok {
			p = price{l.Details.Price, l.Details.Currency}
		}
		if p.minor > 0 {
			out[p.currency] += p.minor * int64(l.Quantity)
		}
	}
	return out
}
