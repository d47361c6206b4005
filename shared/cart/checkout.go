package cart

import (
	"maps"
	"time"
)

// Checkout is a cart handed over to the storefront's checkout at the
// version the shopper reviewed: an immutable snapshot of its lines at the
// catalog's prices, and where it stands. It lives in its cart.
type Checkout struct {
	ID     string `json:"id"`
	CartID string `json:"cart_id"`
	// Version is the cart version the shopper reviewed and checked out.
	Version uint64         `json:"version"`
	Status  CheckoutStatus `json:"status"`
	Lines   []CheckoutLine `json:"lines"`
	// Totals sums the lines per currency, in minor units.
	Totals map[string]int64 `json:"totals"`
	// User is the shopper's user id, empty for a guest (until a user
	// cart takes the checkout at a login: AdoptCheckouts).
	User      string    `json:"user,omitempty"`
	CreatedAt time.Time `json:"created_at"`
	ExpiresAt time.Time `json:"expires_at"`
	// EndedAt is when it was completed or cancelled.
	EndedAt time.Time `json:"ended_at,omitzero"`
	// Order is the storefront's order reference given at completion.
	Order string `json:"order,omitempty"`
	// Base, when set, is the version of the cart the checkout lives in
	// from which later adds count (see CompleteCheckout): a guest cart's
	// checkout moved into the user cart at login counts from the merge.
	// Server bookkeeping.
	Base uint64 `json:"base,omitempty"`
}

// CheckoutLine is one line of a checkout, priced.
type CheckoutLine struct {
	Key       string            `json:"key"`
	SKU       string            `json:"sku"`
	Options   map[string]string `json:"options,omitempty"`
	Quantity  int               `json:"quantity"`
	Name      string            `json:"name,omitempty"`
	Image     string            `json:"image,omitempty"`
	UnitPrice int64             `json:"unit_price"`
	Currency  string            `json:"currency,omitempty"`
	Total     int64             `json:"total"`
	// PricedBy says where UnitPrice comes from: "catalog", or "client"
	// for a SKU the catalog does not know (taken with the details the
	// client sent, on a server that is not catalog-only): price those
	// yourself.
	PricedBy string `json:"priced_by"`
}

// CheckoutStatus is where a checkout stands.
type CheckoutStatus string

// Checkout statuses. Only an open checkout changes, once.
const (
	CheckoutOpen      CheckoutStatus = "open"
	CheckoutCompleted CheckoutStatus = "completed"
	CheckoutCancelled CheckoutStatus = "cancelled"
	CheckoutExpired   CheckoutStatus = "expired"
)

// Checkout error codes.
const (
	CodeCartChanged      Code = "cart_changed"       // the cart is not at the reviewed version, or the catalog changed under it
	CodeCartEmpty        Code = "cart_empty"         // nothing to check out
	CodeCheckoutEnded    Code = "checkout_ended"     // completed, cancelled or expired: it cannot change
	CodeCheckoutUnknown  Code = "checkout_unknown"   // no such checkout
	CodeTooManyCheckouts Code = "too_many_checkouts" // MaxCheckouts checkouts of the cart are open
)

// MaxCheckouts is how many checkouts a cart keeps. Open ones are never
// dropped: past it the oldest ended one goes, and with MaxCheckouts open a
// new one is refused.
const MaxCheckouts = 20

// Clone returns a deep copy.
func (co *Checkout) Clone() *Checkout {
	out := *co
	out.Lines = make([]CheckoutLine, len(co.Lines))
	for i, l := range co.Lines {
		l.Options = maps.Clone(l.Options)
		out.Lines[i] = l
	}
	out.Totals = maps.Clone(co.Totals)
	return &out
}

// Shown returns a copy of co as the API shows it at now: with its status
// then, and without the server's bookkeeping (Base).
func (co *Checkout) Shown(now time.Time) *Checkout {
	out := co.Clone()
	out.Status, out.Base = co.StatusAt(now), 0
	return out
}

// StatusAt is the checkout's status at now: an open one past ExpiresAt is
// expired.
func (co *Checkout) StatusAt(now time.Time) CheckoutStatus {
	if co.Status == CheckoutOpen && !now.Before(co.ExpiresAt) {
		return CheckoutExpired
	}
	return co.Status
}

// NewCheckout checks out c at the version the shopper reviewed: a conflict
// when c moved past it or when the catalog changed under a line in a way
// the shopper has not seen (any notice), an error when c is empty;
// otherwise the snapshot, at the catalog's prices, added to c (which keeps
// at most MaxCheckouts), and created is true. An open checkout of the same
// version is returned again instead (a second click, a retry), with created
// false. It does not change c's lines or version.
func NewCheckout(c *Cart, reviewed uint64, items map[string]Item, id string, now time.Time, ttl time.Duration) (co *Checkout, created bool, err *Error) {
	if c.Version != reviewed {
		return nil, false, errorf(CodeCartChanged, "the cart changed since the review (version %d, reviewed %d)", c.Version, reviewed)
	}
	if len(c.Lines) == 0 {
		return nil, false, errorf(CodeCartEmpty, "the cart is empty")
	}
	if n := Notices(c, items); len(n) > 0 {
		return nil, false, errorf(CodeCartChanged, "the catalog changed under %d line(s) since the review", len(n))
	}
	for _, co := range c.Checkouts {
		if co.Version == c.Version && co.StatusAt(now) == CheckoutOpen {
			// The same review checked out again (a second click, a
			// retry): the same checkout.
			return co.Clone(), false, nil
		}
	}
	open := 0
	for _, co := range c.Checkouts {
		if co.StatusAt(now) == CheckoutOpen {
			open++
		}
	}
	if open >= MaxCheckouts {
		return nil, false, errorf(CodeTooManyCheckouts, "%d checkouts of this cart are open; complete or cancel one, or wait for them to expire", open)
	}
	co = &Checkout{ID: id, CartID: c.ID, Version: c.Version, Status: CheckoutOpen, User: c.User,
		CreatedAt: now, ExpiresAt: now.Add(ttl), Totals: map[string]int64{}}
	for _, l := range c.Lines {
		price, cur, by := l.Details.Price, l.Details.Currency, "client"
		if it, ok := items[l.SKU]; ok {
			price, cur, by = it.Price, it.Currency, "catalog"
		}
		cl := CheckoutLine{Key: l.Key, SKU: l.SKU, Options: maps.Clone(l.Options), Quantity: l.Quantity,
			Name: l.Details.Name, Image: l.Details.Image, UnitPrice: price, Currency: cur, Total: price * int64(l.Quantity), PricedBy: by}
		co.Lines = append(co.Lines, cl)
		if cl.Total > 0 && cur != "" { // a line stored before a price needed its currency
			co.Totals[cur] += cl.Total
		}
	}
	c.Checkouts = append(c.Checkouts, co)
	c.pruneCheckouts(now)
	return co.Clone(), true, nil
}

// pruneCheckouts keeps at most MaxCheckouts, dropping the oldest that are
// no longer open; open ones are never dropped (NewCheckout refuses a new
// one past MaxCheckouts open).
func (c *Cart) pruneCheckouts(now time.Time) {
	for len(c.Checkouts) > MaxCheckouts {
		drop := -1
		for i, co := range c.Checkouts {
			if co.StatusAt(now) != CheckoutOpen {
				drop = i
				break
			}
		}
		if drop < 0 {
			return
		}
		c.Checkouts = append(c.Checkouts[:drop], c.Checkouts[drop+1:]...)
	}
}

// Checkout returns the cart's checkout with that id, or nil.
func (c *Cart) Checkout(id string) *Checkout {
	for _, co := range c.Checkouts {
		if co.ID == id {
			return co
		}
	}
	return nil
}

// CompleteCheckout records that the storefront placed the order for
// checkout id: it takes out of c exactly the quantities checked out, each
// as a set op of client id client, and marks the checkout completed. What
// was added to a line after the checkout stays, even when the line was
// removed and added again meanwhile. Completing
// a completed checkout again changes nothing and reports done = false.
// It returns the ops applied, for the change log.
func (c *Cart) CompleteCheckout(id, order, client string, now time.Time, lim Limits) (ops []Op, done bool, err *Error) {
	co := c.Checkout(id)
	if co == nil {
		return nil, false, errorf(CodeCheckoutUnknown, "no checkout %s on this cart", id)
	}
	switch co.StatusAt(now) {
	case CheckoutCompleted:
		return nil, false, nil
	case CheckoutOpen:
	default:
		return nil, false, errorf(CodeCheckoutEnded, "checkout %s is %s", id, co.StatusAt(now))
	}
	for _, cl := range co.Lines {
		l := c.Line(cl.Key)
		if l == nil {
			continue // removed meanwhile
		}
		base, take := co.Version, cl.Quantity
		if co.Base != 0 {
			// A guest's checkout this cart took at a login: its lines
			// came with that login, and what did not reach the line
			// (a sum capped at the maximum) is not taken from the
			// user's own.
			base = co.Base
			if n, ok := l.broughtAt(co.Base); ok {
				take = min(take, n)
			}
		}
		keep := max(l.Quantity-take, l.addedSince(base))
		if keep >= l.Quantity {
			continue // nothing of what was checked out is left on the line
		}
		op := Op{Client: client, Seq: c.Version + 1, Kind: KindSet, SKU: l.SKU, Options: l.Options,
			Quantity: max(0, keep), Base: c.Version}
		if _, e := c.Apply(op, client, lim); e != nil {
			return nil, false, errorf(e.Code, "complete checkout %s: %s", id, e.Message)
		}
		ops = append(ops, op)
	}
	co.Status, co.EndedAt, co.Order = CheckoutCompleted, now, order
	return ops, true, nil
}

// CancelCheckout cancels an open checkout; cancelling a cancelled one
// again reports done = false.
func (c *Cart) CancelCheckout(id string, now time.Time) (done bool, err *Error) {
	co := c.Checkout(id)
	if co == nil {
		return false, errorf(CodeCheckoutUnknown, "no checkout %s on this cart", id)
	}
	switch co.StatusAt(now) {
	case CheckoutCancelled:
		return false, nil
	case CheckoutOpen:
		co.Status, co.EndedAt = CheckoutCancelled, now
		return true, nil
	default:
		return false, errorf(CodeCheckoutEnded, "checkout %s is %s", id, co.StatusAt(now))
	}
}

// OpenCheckout reports whether c has an open checkout at now, of any
// version (the storefront may still complete one the cart has moved on
// from): a cart in checkout is not abandoned.
func (c *Cart) OpenCheckout(now time.Time) bool {
	for _, co := range c.Checkouts {
		if co.StatusAt(now) == CheckoutOpen {
			return true
		}
	}
	return false
}

// addedSince is how much the adds made after version put on the line:
// what a completed checkout of that version leaves there.
func (l *Line) addedSince(version uint64) int {
	n := 0
	for _, c := range l.Contribs {
		if c.Version > version && !c.Set {
			n += c.N
		}
	}
	return min(n, l.Quantity)
}

// broughtAt is what the adds of version brought to the line (a login
// merge's), if the line still keeps a contribution of that version.
func (l *Line) broughtAt(version uint64) (int, bool) {
	n, found := 0, false
	for _, c := range l.Contribs {
		if c.Version == version && !c.Set {
			n, found = n+c.N, true
		}
	}
	return n, found
}

// AdoptCheckouts moves from's checkouts into c, as at a login merge of
// from into c: later adds to c count from c's version now, and a checkout
// made as a guest names c's user, who logged in to finish it.
func (c *Cart) AdoptCheckouts(from *Cart, now time.Time) {
	for _, co := range from.Checkouts {
		co = co.Clone()
		co.Base = c.Version
		if co.User == "" {
			co.User = c.User
		}
		c.Checkouts = append(c.Checkouts, co)
	}
	from.Checkouts = nil
	c.pruneCheckouts(now)
}
