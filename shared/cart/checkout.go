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
	// User is the shopper's user id, empty for a guest.
	User      string    `json:"user,omitempty"`
	CreatedAt time.Time `json:"created_at"`
	ExpiresAt time.Time `json:"expires_at"`
	// EndedAt is when it was completed or cancelled.
	EndedAt time.Time `json:"ended_at,omitzero"`
	// Order is the storefront's order reference given at completion.
	Order string `json:"order,omitempty"`
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
	CodeCartChanged     Code = "cart_changed"     // the cart is not at the reviewed version, or the catalog changed under it
	CodeCartEmpty       Code = "cart_empty"       // nothing to check out
	CodeCheckoutEnded   Code = "checkout_ended"   // completed, cancelled or expired: it cannot change
	CodeCheckoutUnknown Code = "checkout_unknown" // no such checkout
)

// MaxCheckouts is how many checkouts a cart keeps; the oldest ended ones go
// first.
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
// at most MaxCheckouts). It does not change c's lines or version.
func NewCheckout(c *Cart, reviewed uint64, items map[string]Item, id string, now time.Time, ttl time.Duration) (*Checkout, *Error) {
	if c.Version != reviewed {
		return nil, errorf(CodeCartChanged, "the cart changed since the review (version %d, reviewed %d)", c.Version, reviewed)
	}
	if len(c.Lines) == 0 {
		return nil, errorf(CodeCartEmpty, "the cart is empty")
	}
	if n := Notices(c, items); len(n) > 0 {
		return nil, errorf(CodeCartChanged, "the catalog changed under %d line(s) since the review", len(n))
	}
	co := &Checkout{ID: id, CartID: c.ID, Version: c.Version, Status: CheckoutOpen, User: c.User,
		CreatedAt: now, ExpiresAt: now.Add(ttl), Totals: map[string]int64{}}
	for _, l := range c.Lines {
		price, cur := l.Details.Price, l.Details.Currency
		if it, ok := items[l.SKU]; ok {
			price, cur = it.Price, it.Currency
		}
		cl := CheckoutLine{Key: l.Key, SKU: l.SKU, Options: maps.Clone(l.Options), Quantity: l.Quantity,
			Name: l.Details.Name, Image: l.Details.Image, UnitPrice: price, Currency: cur, Total: price * int64(l.Quantity)}
		co.Lines = append(co.Lines, cl)
		if cl.Total > 0 {
			co.Totals[cur] += cl.Total
		}
	}
	c.Checkouts = append(c.Checkouts, co)
	c.pruneCheckouts(now)
	return co.Clone(), nil
}

// pruneCheckouts keeps at most MaxCheckouts, dropping the oldest that are
// no longer open first.
func (c *Cart) pruneCheckouts(now time.Time) {
	for len(c.Checkouts) > MaxCheckouts {
		drop := 0
		for i, co := range c.Checkouts {
			if co.StatusAt(now) != CheckoutOpen {
				drop = i
				break
			}
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
// checkout id: it takes out of c exactly the quantities checked out (a line
// that grew since keeps the difference), each as a set op of client
// MergeClient-like id client, and marks the checkout completed. Completing
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
		op := Op{Client: client, Seq: c.Version + 1, Kind: KindSet, SKU: l.SKU, Options: l.Options,
			Quantity: max(0, l.Quantity-cl.Quantity), Base: c.Version}
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

// OpenCheckout reports whether c has an open checkout at now for its
// current version: a cart in checkout is not abandoned.
func (c *Cart) OpenCheckout(now time.Time) bool {
	for _, co := range c.Checkouts {
		if co.Version == c.Version && co.StatusAt(now) == CheckoutOpen {
			return true
		}
	}
	return false
}
