package cart

import (
	"slices"
	"sort"
	"strconv"
	"strings"
)

// Kind names an operation.
type Kind string

// Operation kinds.
const (
	KindAdd     Kind = "add"     // add Quantity to the line, creating it
	KindSet     Kind = "set"     // set the line's quantity; 0 removes it
	KindRemove  Kind = "remove"  // remove the line, as far as the remover had seen
	KindClear   Kind = "clear"   // remove every line, as far as the remover had seen
	KindDetails Kind = "details" // set the line's display details
	// KindMerge names a login merge in a cart's change log. It is written
	// by the server only; clients cannot send it.
	KindMerge Kind = "merge"
)

// Op is one edit. Client and Seq identify it: Seq is gap-free from 1 per
// client. Base is the cart version the client had confirmed when it made the
// edit; it decides what a remove or clear had seen.
type Op struct {
	Client   string            `json:"client"`
	Seq      uint64            `json:"seq"`
	Kind     Kind              `json:"kind"`
	SKU      string            `json:"sku,omitempty"`
	Options  map[string]string `json:"options,omitempty"`
	Quantity int               `json:"quantity,omitempty"`
	Details  *Details          `json:"details,omitempty"`
	Base     uint64            `json:"base"`
	// Cart is the id of the cart the client showed when it made the edit
	// (protocol 2; empty for older clients and for edits made before the
	// first sync). Base counts versions of that cart. The server applies
	// an op only to that cart, or to the user cart its device's guest
	// cart was merged into at login.
	Cart string `json:"cart,omitempty"`
	// Before, on an add of a line the cart does not have, is the key of
	// the line the new line goes before: an undone removal puts the line
	// back where it was. Without it, or when the cart has no such line,
	// the new line goes last. An add to a line the cart has ignores it.
	Before string `json:"before,omitempty"`
}

// Key is the line key the op addresses ("" for clear).
func (op *Op) Key() string { return LineKey(op.SKU, op.Options) }

// MaxClientID is the longest accepted client id, in bytes.
const MaxClientID = 64

// ValidClientID reports whether id is a well-formed client id.
func ValidClientID(id string) bool {
	return id != "" && len(id) <= MaxClientID && printable(id)
}

// MaxSeq is the largest seq: stores keep seqs as signed 64-bit integers.
const MaxSeq = 1<<63 - 1

// ValidateIdentity checks the op's client id and seq.
func (op *Op) ValidateIdentity() *Error {
	if !ValidClientID(op.Client) {
		return errorf(CodeInvalidOp, "client id must be 1 to %d printable bytes", MaxClientID)
	}
	if op.Seq == 0 {
		return errorf(CodeInvalidOp, "seq must start at 1")
	}
	if op.Seq > MaxSeq {
		return errorf(CodeInvalidOp, "seq must be below 2^63")
	}
	return nil
}

// Validate checks the op against the limits without looking at a cart.
func (op *Op) Validate(lim Limits) *Error {
	if e := op.ValidateIdentity(); e != nil {
		return e
	}
	switch op.Kind {
	case KindAdd, KindSet, KindRemove, KindDetails:
		if e := validateLine(op.SKU, op.Options, lim); e != nil {
			return e
		}
	case KindClear:
		if op.SKU != "" || len(op.Options) > 0 {
			return errorf(CodeInvalidOp, "clear takes no line")
		}
	default:
		return errorf(CodeInvalidOp, "unknown operation kind %q", op.Kind)
	}
	switch op.Kind {
	case KindAdd:
		if op.Quantity < 1 || op.Quantity > lim.MaxQuantity {
			return errorf(CodeInvalidQuantity, "add quantity must be 1 to %d, got %d", lim.MaxQuantity, op.Quantity)
		}
	case KindSet:
		if op.Quantity < 0 || op.Quantity > lim.MaxQuantity {
			return errorf(CodeInvalidQuantity, "set quantity must be 0 to %d, got %d", lim.MaxQuantity, op.Quantity)
		}
	default:
		if op.Quantity != 0 {
			return errorf(CodeInvalidQuantity, "%s takes no quantity", op.Kind)
		}
	}
	if op.Before != "" {
		if op.Kind != KindAdd {
			return errorf(CodeInvalidOp, "%s takes no before", op.Kind)
		}
		if bad := checkText(op.Before, false); bad != "" {
			return errorf(CodeInvalidOp, "before %s", bad)
		}
		if len(op.Before) > lim.MaxLineKey() {
			return errorf(CodeInvalidOp, "before must be a line key of at most %d bytes", lim.MaxLineKey())
		}
	}
	if op.Kind == KindDetails && op.Details == nil {
		return errorf(CodeInvalidDetails, "details operation without details")
	}
	if op.Details != nil {
		if op.Kind != KindAdd && op.Kind != KindDetails {
			return errorf(CodeInvalidDetails, "%s takes no details", op.Kind)
		}
		if e := validateDetails(op.Details, lim); e != nil {
			return e
		}
	}
	return nil
}

func validateLine(sku string, opts map[string]string, lim Limits) *Error {
	if bad := checkText(sku, false); bad != "" {
		return errorf(CodeInvalidSKU, "sku %s", bad)
	}
	n := NormalizeText(sku)
	if strings.TrimSpace(n) == "" || len(n) > lim.MaxSKU || strings.TrimSpace(n) != n {
		return errorf(CodeInvalidSKU, "sku must be 1 to %d bytes (in NFC) without surrounding spaces", lim.MaxSKU)
	}
	if strings.ContainsAny(n, "?&") {
		return errorf(CodeInvalidSKU, "sku must not contain '?' or '&'")
	}
	if len(opts) > lim.MaxOptions {
		return errorf(CodeInvalidOptions, "at most %d options, got %d", lim.MaxOptions, len(opts))
	}
	seen := make(map[string]bool, len(opts))
	for k, v := range opts {
		if bad := checkText(k, false); bad != "" {
			return errorf(CodeInvalidOptions, "option key %s", bad)
		}
		if bad := checkText(v, false); bad != "" {
			return errorf(CodeInvalidOptions, "option value %s", bad)
		}
		// The limits count what is stored: normalizing can make text
		// longer (lower-casing "Ⱥ" takes 2 bytes to 3).
		nk, nv := normalizeKey(k), normalizeValue(v)
		if nk == "" || len(nk) > lim.MaxOptionLen || len(nv) > lim.MaxOptionLen {
			return errorf(CodeInvalidOptions, "option keys must be 1 to %d bytes and values at most %d (normalized)", lim.MaxOptionLen, lim.MaxOptionLen)
		}
		if seen[nk] {
			return errorf(CodeInvalidOptions, "option %q given twice", nk)
		}
		seen[nk] = true
	}
	return nil
}

func validateDetails(d *Details, lim Limits) *Error {
	if bad := checkText(d.Name, true); bad != "" {
		return errorf(CodeInvalidDetails, "name %s", bad)
	}
	if len(NormalizeText(d.Name)) > lim.MaxName {
		return errorf(CodeInvalidDetails, "name must be at most %d bytes (in NFC)", lim.MaxName)
	}
	if bad := checkText(d.Image, false); bad != "" {
		return errorf(CodeInvalidDetails, "image %s", bad)
	}
	if len(d.Image) > lim.MaxImage {
		return errorf(CodeInvalidDetails, "image must be at most %d bytes", lim.MaxImage)
	}
	if d.Image != "" && !strings.HasPrefix(d.Image, "https://") && !strings.HasPrefix(d.Image, "http://") && !strings.HasPrefix(d.Image, "/") {
		return errorf(CodeInvalidDetails, "image must be an http(s) URL or an absolute path")
	}
	if d.Price < 0 || d.Price > lim.MaxPrice {
		return errorf(CodeInvalidDetails, "price must be 0 to %d minor units", lim.MaxPrice)
	}
	if d.Price > 0 && d.Currency == "" {
		// Minor units of no currency: no total can count them.
		return errorf(CodeInvalidDetails, "a price needs its currency (an ISO 4217 code)")
	}
	if d.Currency != "" {
		if len(d.Currency) != 3 || strings.ToUpper(d.Currency) != d.Currency || !isLetters(d.Currency) {
			return errorf(CodeInvalidDetails, "currency must be a three-letter ISO 4217 code")
		}
		if !KnownCurrency(d.Currency) {
			return errorf(CodeInvalidDetails, "currency %q is not an ISO 4217 code this server knows", d.Currency)
		}
	}
	return nil
}

func isLetters(s string) bool {
	for _, r := range s {
		if r < 'A' || r > 'Z' {
			return false
		}
	}
	return true
}

// Apply applies op (normalized, see Op.Normalized) to the cart as the
// server does: device is the device the op came from (stamped by the server, not trusted from the client). On
// success the version advances by one and any warnings are returned. On a
// rejection the cart is unchanged and the error says why.
func (c *Cart) Apply(op Op, device string, lim Limits) ([]Warning, *Error) {
	return c.ApplyAs(op, Device{ID: device}, lim)
}

// Device is the device an op came from, as the remove rule sees it: its
// id, and a prefix of the id it had before (a device gets a new token at a
// logout). A remove takes away what its device had seen, and a device has
// seen its own contributions, made under either.
type Device struct {
	ID string
	// Link, if at least MinLinkLen long, is a prefix of the device's
	// previous id: contributions by an id that starts with it are the
	// device's own too.
	Link string
}

// MinLinkLen is the shortest Device.Link that counts: 16 hex digits, 64
// bits, which no other device's id on a line shares by chance.
const MinLinkLen = 16

// owns reports whether a contribution by id is the device's own.
func (d Device) owns(id string) bool {
	return id == d.ID || (len(d.Link) >= MinLinkLen && strings.HasPrefix(id, d.Link))
}

// ApplyAs is Apply for a device that had another id before: its
// contributions under it count as its own for a remove, a clear or a
// quantity set to 0.
func (c *Cart) ApplyAs(op Op, dev Device, lim Limits) ([]Warning, *Error) {
	device := dev.ID
	if e := op.Validate(lim); e != nil {
		return nil, e
	}
	op = op.Normalized()
	next := c.Version + 1
	var warns []Warning
	switch op.Kind {
	case KindAdd:
		key := op.Key()
		l := c.Line(key)
		if l == nil {
			if len(c.Lines) >= lim.MaxLines {
				return nil, errorf(CodeTooManyLines, "a cart holds at most %d lines", lim.MaxLines)
			}
			l = &Line{Key: key, SKU: op.SKU, Options: NormalizeOptions(op.Options)}
			if op.Details != nil {
				l.Details = *op.Details
			}
			if e := c.fits(l, nil, lim); e != nil {
				return nil, e
			}
			at := len(c.Lines)
			if op.Before != "" {
				if i := slices.IndexFunc(c.Lines, func(o *Line) bool { return o.Key == op.Before }); i >= 0 {
					at = i
				}
			}
			c.Lines = slices.Insert(c.Lines, at, l)
		} else if op.Details != nil {
			if e := c.fitsDetails(l, *op.Details, lim); e != nil {
				return nil, e
			}
		}
		q := l.Quantity + op.Quantity
		if q > lim.MaxQuantity {
			warns = append(warns, Warning{Code: CodeQuantityClamped, Message: clampMsg(lim)})
			q = lim.MaxQuantity
		}
		l.Quantity = q
		if op.Details != nil {
			l.Details = *op.Details
		}
		l.contribute(Contrib{Version: next, Device: device, N: op.Quantity}, lim)
	case KindSet:
		l := c.Line(op.Key())
		if l == nil {
			return nil, errorf(CodeLineNotFound, "the cart has no line %q", op.Key())
		}
		if op.Quantity == 0 {
			c.removeSeen(l, op.Base, dev, lim)
			break
		}
		l.Quantity = op.Quantity
		l.contribute(Contrib{Version: next, Device: device, Set: true, N: op.Quantity}, lim)
	case KindRemove:
		l := c.Line(op.Key())
		if l == nil {
			// Removing what is already gone is done: the outcome the
			// remover wanted holds.
			break
		}
		c.removeSeen(l, op.Base, dev, lim)
	case KindClear:
		for _, l := range append([]*Line(nil), c.Lines...) {
			c.removeSeen(l, op.Base, dev, lim)
		}
	case KindDetails:
		l := c.Line(op.Key())
		if l == nil {
			return nil, errorf(CodeLineNotFound, "the cart has no line %q", op.Key())
		}
		if e := c.fitsDetails(l, *op.Details, lim); e != nil {
			return nil, e
		}
		l.Details = *op.Details
	}
	c.Version = next
	return warns, nil
}

func clampMsg(lim Limits) string {
	return "quantity limited to the maximum of " + strconv.Itoa(lim.MaxQuantity) + " per line"
}

// removeSeen removes from l what a device with the given base version had
// seen. Contributions by other devices after base survive, replayed in
// server order; if nothing survives the line goes.
func (c *Cart) removeSeen(l *Line, base uint64, dev Device, lim Limits) {
	var keep []Contrib
	q := 0
	for _, ct := range l.Contribs {
		if ct.Version <= base || dev.owns(ct.Device) {
			continue
		}
		keep = append(keep, ct)
		if ct.Set {
			q = ct.N
		} else {
			q += ct.N
		}
	}
	if q > lim.MaxQuantity {
		q = lim.MaxQuantity
	}
	if q <= 0 {
		c.deleteLine(l.Key)
		return
	}
	l.Quantity = q
	l.Contribs = keep
}

func (c *Cart) deleteLine(key string) {
	for i, l := range c.Lines {
		if l.Key == key {
			c.Lines = append(c.Lines[:i], c.Lines[i+1:]...)
			return
		}
	}
}

// contribute records a contribution, keeping the newest lim.MaxContribs.
func (l *Line) contribute(ct Contrib, lim Limits) {
	l.Contribs = append(l.Contribs, ct)
	if n := len(l.Contribs) - lim.MaxContribs; n > 0 {
		l.Contribs = append([]Contrib(nil), l.Contribs[n:]...)
	}
}

// SortedKeys returns the cart's line keys in sorted order.
func (c *Cart) SortedKeys() []string {
	keys := make([]string, len(c.Lines))
	for i, l := range c.Lines {
		keys[i] = l.Key
	}
	sort.Strings(keys)
	return keys
}
