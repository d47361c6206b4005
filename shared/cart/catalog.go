package cart

import (
	"fmt"
	"time"
)

// Item is what the storefront's catalog says about a SKU. For a SKU the
// catalog knows, the server takes a line's display details from it (never
// from the browser) and holds adds to its stock and per-order maximum.
type Item struct {
	SKU   string `json:"sku"`
	Name  string `json:"name"`
	Image string `json:"image,omitempty"`
	// Price is the unit price in minor units (cents) of Currency.
	Price    int64  `json:"price"`
	Currency string `json:"currency"`
	// Sellable false withdraws the item: adds are refused and carts that
	// hold it are told it is no longer available.
	Sellable bool `json:"sellable"`
	// Stock, when set, is how many can be bought now; nil means no limit.
	Stock *int `json:"stock,omitempty"`
	// MaxPerOrder, when set, bounds one cart's quantity of the SKU (over
	// all its option lines).
	MaxPerOrder *int `json:"max_per_order,omitempty"`
	// UpdatedAt is when the server last stored the item.
	UpdatedAt time.Time `json:"updated_at,omitzero"`
}

// Catalog rejection and warning codes.
const (
	CodeNotSellable  Code = "not_sellable"  // the catalog withdrew the SKU
	CodeUnknownSKU   Code = "unknown_sku"   // the catalog does not know the SKU and the server takes only known ones
	CodeOutOfStock   Code = "out_of_stock"  // nothing more of the SKU can be added (stock or per-order maximum reached)
	CodeStockClamped Code = "stock_clamped" // warning: the add was reduced to what the stock or the per-order maximum allows
)

// What bounds how many of a SKU one cart may hold (the limit_by of
// out_of_stock, stock_clamped and a notice's available).
const (
	LimitStock    = "stock"     // the catalog's stock
	LimitPerOrder = "per_order" // the catalog's maximum per order
)

// ItemLimits bound catalog items, besides the cart limits on SKUs, names,
// images and prices.
const (
	MaxStock      = 1_000_000_000
	MaxCatalogSKU = 128
)

// ValidateSKU checks a SKU the storefront names in its catalog: one a line
// can carry, in Unicode NFC, as the catalog stores it.
func ValidateSKU(sku string, lim Limits) *Error {
	if e := validateLine(sku, nil, lim); e != nil {
		return e
	}
	if NormalizeText(sku) != sku {
		return errorf(CodeInvalidSKU, "sku must be in Unicode NFC without surrounding spaces")
	}
	return nil
}

// ValidateItem checks an item the storefront sends.
func ValidateItem(it *Item, lim Limits) *Error {
	if e := ValidateSKU(it.SKU, lim); e != nil {
		return e
	}
	if it.Name == "" {
		return errorf(CodeInvalidDetails, "name is required")
	}
	if it.Price <= 0 || it.Price > lim.MaxPrice {
		// Before validateDetails, whose range (from 0, for a line's
		// details) is not the catalog's.
		return errorf(CodeInvalidDetails, "price must be 1 to %d minor units, got %d", lim.MaxPrice, it.Price)
	}
	if e := validateDetails(&Details{Name: it.Name, Image: it.Image, Price: it.Price, Currency: it.Currency}, lim); e != nil {
		return e
	}
	if !KnownCurrency(it.Currency) {
		return errorf(CodeInvalidDetails, "currency %q is not an ISO 4217 code this server knows", it.Currency)
	}
	if it.Stock != nil && (*it.Stock < 0 || *it.Stock > MaxStock) {
		return errorf(CodeInvalidQuantity, "stock must be 0 to %d, got %d", MaxStock, *it.Stock)
	}
	if it.MaxPerOrder != nil && (*it.MaxPerOrder < 1 || *it.MaxPerOrder > lim.MaxQuantity*lim.MaxLines) {
		return errorf(CodeInvalidQuantity, "max_per_order must be 1 to %d, got %d", lim.MaxQuantity*lim.MaxLines, *it.MaxPerOrder)
	}
	return nil
}

// Details returns the display details the catalog gives a line.
func (it *Item) Details() Details {
	return Details{Name: it.Name, Image: it.Image, Price: it.Price, Currency: it.Currency}
}

// Available is how many of the SKU one cart may hold: the least of stock
// and the per-order maximum; -1 for no limit.
func (it *Item) Available() int {
	n := -1
	if it.Stock != nil {
		n = *it.Stock
	}
	if it.MaxPerOrder != nil && (n < 0 || *it.MaxPerOrder < n) {
		n = *it.MaxPerOrder
	}
	if !it.Sellable {
		return 0
	}
	return n
}

// LimitBy says what sets Available: LimitPerOrder when the per-order
// maximum is the lesser bound (or stock and maximum are equal), LimitStock
// otherwise; "" for no limit or a withdrawn item.
func (it *Item) LimitBy() string {
	n := it.Available()
	switch {
	case n < 0 || !it.Sellable:
		return ""
	case it.MaxPerOrder != nil && *it.MaxPerOrder == n:
		return LimitPerOrder
	}
	return LimitStock
}

// SKUQuantity is the cart's quantity of a SKU over all its option lines.
func (c *Cart) SKUQuantity(sku string) int {
	n := 0
	for _, l := range c.Lines {
		if l.SKU == sku {
			n += l.Quantity
		}
	}
	return n
}

// Authorize holds an op to the catalog before it is applied to c: an op on
// a SKU the catalog knows gets the catalog's details (whatever the client
// sent); an add or a set of a withdrawn SKU is refused; an add or a set
// that would take the cart's quantity of the SKU past what is available is
// reduced to it, with a warning, or refused when nothing more is
// available. item is nil for a SKU the catalog does not know: then the op
// is refused when known is true, and left as it is otherwise. It returns
// the op to apply.
func Authorize(c *Cart, op Op, item *Item, knownOnly bool) (Op, []Warning, *Error) {
	switch op.Kind {
	case KindAdd, KindSet, KindDetails:
	default:
		return op, nil, nil // remove and clear only take away
	}
	op = op.Normalized()
	if item == nil {
		if knownOnly && (op.Kind == KindAdd || op.Kind == KindDetails) {
			return op, nil, errorf(CodeUnknownSKU, "the catalog has no SKU %q", op.SKU)
		}
		return op, nil, nil
	}
	d := item.Details()
	switch op.Kind {
	case KindDetails:
		op.Details = &d
		return op, nil, nil
	case KindAdd:
		op.Details = &d
	}
	if !item.Sellable {
		if l := c.Line(op.Key()); op.Kind == KindSet && l != nil && op.Quantity <= l.Quantity {
			return op, nil, nil // taking a withdrawn item out is fine
		}
		return op, nil, errorf(CodeNotSellable, "%s is no longer available", item.Name)
	}
	avail := item.Available()
	if avail < 0 {
		return op, nil, nil
	}
	have := c.SKUQuantity(op.SKU)
	var line int // this op's line's quantity now
	if l := c.Line(op.Key()); l != nil {
		line = l.Quantity
	}
	others := have - line // the SKU's other option lines
	var want int          // the line's quantity after the op
	switch op.Kind {
	case KindAdd:
		want = line + op.Quantity
	case KindSet:
		want = op.Quantity
	}
	if others+want <= avail || want <= line {
		return op, nil, nil // within what is available, or not growing
	}
	allowed := avail - others // the most this line may hold
	by := item.LimitBy()
	if allowed <= line {
		e := errorf(CodeOutOfStock, "no more %s can be added: %s", item.Name, limitText(avail, by))
		e.Limit = Limit{Available: &avail, LimitBy: by}
		return op, nil, e
	}
	w := Warning{Code: CodeStockClamped, Message: fmt.Sprintf("only %d of %s can be bought (%s)", avail, item.Name, limitText(avail, by)),
		Limit: Limit{Available: &avail, LimitBy: by}}
	switch op.Kind {
	case KindAdd:
		op.Quantity = allowed - line
	case KindSet:
		op.Quantity = allowed
	}
	return op, []Warning{w}, nil
}

func limitText(avail int, by string) string {
	if by == LimitPerOrder {
		return fmt.Sprintf("at most %d per order", avail)
	}
	return fmt.Sprintf("%d in stock", avail)
}

// Notice tells the shopper how the catalog changed under a line since it
// was added, without changing what they chose.
type Notice struct {
	// Line is the line's key.
	Line string `json:"line"`
	// PriceChanged is set when the catalog's unit price (or currency)
	// differs from the line's: From is what the line says, To is the
	// catalog's.
	PriceChanged *PriceChange `json:"price_changed,omitempty"`
	// Limit is set when the line's SKU is limited below what the cart
	// holds of it: how many the cart may have in all, and what limits it.
	Limit
	// Unavailable is true when the catalog withdrew the SKU.
	Unavailable bool `json:"unavailable,omitempty"`
}

// PriceChange is a unit price then and now.
type PriceChange struct {
	From     int64  `json:"from"`
	To       int64  `json:"to"`
	Currency string `json:"currency"`
	// FromCurrency is set when the currency changed too.
	FromCurrency string `json:"from_currency,omitempty"`
}

// Notices compares c's lines with the catalog's items (by SKU; SKUs the
// catalog does not know get no notice) and lists what changed, in line
// order. Nil when nothing did.
func Notices(c *Cart, items map[string]Item) []Notice {
	var out []Notice
	for _, l := range c.Lines {
		it, ok := items[l.SKU]
		if !ok {
			continue
		}
		n := Notice{Line: l.Key}
		if !it.Sellable {
			n.Unavailable = true
		} else {
			if it.Price != l.Details.Price || it.Currency != l.Details.Currency {
				pc := &PriceChange{From: l.Details.Price, To: it.Price, Currency: it.Currency}
				if it.Currency != l.Details.Currency {
					pc.FromCurrency = l.Details.Currency
				}
				n.PriceChanged = pc
			}
			if avail := it.Available(); avail >= 0 && c.SKUQuantity(l.SKU) > avail {
				a := avail
				n.Limit = Limit{Available: &a, LimitBy: it.LimitBy()}
			}
		}
		if n.Unavailable || n.PriceChanged != nil || n.Available != nil {
			out = append(out, n)
		}
	}
	return out
}

// Totals sums quantity times unit price per currency, taking the catalog's
// price for SKUs it knows and leaving out withdrawn ones.
func Totals(c *Cart, items map[string]Item) map[string]int64 {
	out := map[string]int64{}
	for _, l := range c.Lines {
		price, cur := l.Details.Price, l.Details.Currency
		if it, ok := items[l.SKU]; ok {
			if !it.Sellable {
				continue
			}
			price, cur = it.Price, it.Currency
		}
		if price > 0 && cur != "" { // a line stored before a price needed its currency
			out[cur] += price * int64(l.Quantity)
		}
	}
	return out
}
