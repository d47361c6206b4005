package cart

import (
	"net/url"
	"sort"
	"strings"
)

// Limits bound what a cart may hold. The server enforces them; clients use
// the same values to reject bad input before it is queued.
type Limits struct {
	MaxQuantity  int   `json:"max_quantity"`   // per line
	MaxLines     int   `json:"max_lines"`      // per cart
	MaxSKU       int   `json:"max_sku"`        // bytes
	MaxOptions   int   `json:"max_options"`    // options per line
	MaxOptionLen int   `json:"max_option_len"` // bytes, for each key and each value
	MaxName      int   `json:"max_name"`       // bytes
	MaxImage     int   `json:"max_image"`      // bytes
	MaxPrice     int64 `json:"max_price"`      // minor units
	// MaxCartBytes bounds the lines of a cart as the server sends them
	// (JSON), so that every message carrying a cart, with its notices,
	// fits in protocol.MaxServerMessageBytes. 0 means the default (a
	// server older than the limit does not send it).
	MaxCartBytes int `json:"max_cart_bytes,omitempty"`
	// MaxContribs bounds the per-line history kept for remove semantics.
	// It is server bookkeeping and not sent to clients.
	MaxContribs int `json:"-"`
	// MaxClients bounds the client ids a cart keeps a seq for (see
	// Cart.Clients); zero means the default. Server bookkeeping, not sent
	// to clients.
	MaxClients int `json:"-"`
}

// MaxLineKey is the longest line key the limits allow: the SKU, and each
// option's key and value query-escaped (at most three bytes for one).
func (lim Limits) MaxLineKey() int {
	return lim.MaxSKU + lim.MaxOptions*(2+2*3*lim.MaxOptionLen)
}

// DefaultLimits are the limits used when none are configured.
var DefaultLimits = Limits{
	MaxQuantity:  999,
	MaxLines:     100,
	MaxSKU:       128,
	MaxOptions:   16,
	MaxOptionLen: 64,
	MaxName:      200,
	MaxImage:     2048,
	MaxPrice:     10_000_000_000, // 100 million in major units: a full cart's total stays exact in JavaScript (below 2^53)
	MaxCartBytes: 320 << 10,
	MaxContribs:  32,
	MaxClients:   10_000,
}

// Details are a line's display fields. They are a snapshot taken when the
// item was added; the storefront stays the authority on prices at checkout.
type Details struct {
	Name  string `json:"name,omitempty"`
	Image string `json:"image,omitempty"`
	// Price is the unit price in minor units (cents) of Currency.
	Price    int64  `json:"price,omitempty"`
	Currency string `json:"currency,omitempty"`
}

// Contrib is one contribution to a line's quantity, kept so that a remove can
// tell what the remover had not seen.
type Contrib struct {
	Version uint64 `json:"v"`
	Device  string `json:"d"`
	Set     bool   `json:"s,omitempty"` // a set, not an add
	N       int    `json:"n"`
}

// Line is one product with its options and quantity.
type Line struct {
	Key      string            `json:"key"`
	SKU      string            `json:"sku"`
	Options  map[string]string `json:"options,omitempty"`
	Quantity int               `json:"quantity"`
	Details  Details           `json:"details"`
	// Contribs is server bookkeeping; it is not sent to clients.
	Contribs []Contrib `json:"contribs,omitempty"`

	wire wireSize // WireBytes, for the details it was worked out with
}

// Cart is a cart's state at a version.
type Cart struct {
	ID      string  `json:"id"`
	Version uint64  `json:"version"`
	Lines   []*Line `json:"lines"`
	// Started is the version at which the cart started over, empty, after
	// it expired (a user cart's, whose id stays its user's); 0 for a cart
	// that never did. A device whose copy of the cart is older than
	// Started knows that the lines it shows expired meanwhile.
	Started uint64 `json:"started,omitempty"`
	// Erased is set when the cart started over because the storefront had
	// its user forgotten (not because it expired): a device tells its
	// shopper the cart was cleared.
	Erased bool `json:"erased,omitempty"`
	// Clients counts the client ids the server records a seq for on this
	// cart, to hold them to Limits.MaxClients. Server bookkeeping: it is
	// not sent to clients.
	Clients int `json:"clients,omitempty"`
	// User is the user id of a user cart. Server bookkeeping, not sent to
	// clients.
	User string `json:"user,omitempty"`
	// Checkouts are the cart's checkouts, newest last (see Checkout).
	// Server bookkeeping, not sent to clients.
	Checkouts []*Checkout `json:"checkouts,omitempty"`

	// Notices and Totals are set by the server on the cart it sends when
	// the storefront keeps a catalog: how the catalog changed under each
	// line since it was added, and the totals per currency at the
	// catalog's prices. They are never stored.
	Notices []Notice         `json:"notices,omitempty"`
	Totals  map[string]int64 `json:"totals,omitempty"`
}

// Line returns the line with the given key, or nil.
func (c *Cart) Line(key string) *Line {
	for _, l := range c.Lines {
		if l.Key == key {
			return l
		}
	}
	return nil
}

// Items is the total quantity over all lines.
func (c *Cart) Items() int {
	n := 0
	for _, l := range c.Lines {
		n += l.Quantity
	}
	return n
}

// Subtotal sums quantity times unit price per currency.
func (c *Cart) Subtotal() map[string]int64 {
	out := map[string]int64{}
	for _, l := range c.Lines {
		if l.Details.Price > 0 {
			out[l.Details.Currency] += l.Details.Price * int64(l.Quantity)
		}
	}
	return out
}

// Clone returns a deep copy of the cart, without the read-time Notices and
// Totals (they belong to one reading of the catalog).
func (c *Cart) Clone() *Cart {
	if c == nil {
		return nil
	}
	out := &Cart{ID: c.ID, Version: c.Version, Lines: make([]*Line, len(c.Lines)), Started: c.Started, Erased: c.Erased, Clients: c.Clients, User: c.User}
	for i, l := range c.Lines {
		out.Lines[i] = l.clone()
	}
	for _, co := range c.Checkouts {
		out.Checkouts = append(out.Checkouts, co.Clone())
	}
	return out
}

// Public returns a deep copy without server bookkeeping, as sent to clients.
func (c *Cart) Public() *Cart {
	out := c.Clone()
	out.Clients = 0
	out.User = ""
	out.Checkouts = nil
	for _, l := range out.Lines {
		l.Contribs = nil
	}
	return out
}

func (l *Line) clone() *Line {
	n := *l
	if l.Options != nil {
		n.Options = make(map[string]string, len(l.Options))
		for k, v := range l.Options {
			n.Options[k] = v
		}
	}
	n.Contribs = append([]Contrib(nil), l.Contribs...)
	return &n
}

// NormalizeOptions brings keys and values to NFC, trims and lower-cases
// keys, trims values and drops options whose value is empty. It returns nil
// for no options.
func NormalizeOptions(opts map[string]string) map[string]string {
	if len(opts) == 0 {
		return nil
	}
	out := make(map[string]string, len(opts))
	for k, v := range opts {
		k = normalizeKey(k)
		v = normalizeValue(v)
		if v == "" {
			continue
		}
		out[k] = v
	}
	if len(out) == 0 {
		return nil
	}
	return out
}

// LineKey is the identity of a line: the SKU in NFC and its normalized
// options in key order, independent of the order in which they were given.
func LineKey(sku string, opts map[string]string) string {
	sku = NormalizeText(sku)
	opts = NormalizeOptions(opts)
	if len(opts) == 0 {
		return sku
	}
	keys := make([]string, 0, len(opts))
	for k := range opts {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	var b strings.Builder
	b.WriteString(sku)
	for i, k := range keys {
		if i == 0 {
			b.WriteByte('?')
		} else {
			b.WriteByte('&')
		}
		b.WriteString(url.QueryEscape(k))
		b.WriteByte('=')
		b.WriteString(url.QueryEscape(opts[k]))
	}
	return b.String()
}
