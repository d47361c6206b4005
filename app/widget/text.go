package widget

import (
	"errors"
	"sort"
	"strconv"
	"strings"
	"unicode"

	"github.com/cartsync/cartsync/shared/cart"
	"github.com/cartsync/cartsync/shared/protocol"
	"github.com/cartsync/cartsync/shared/syncclient"
)

// currencySymbols are the currencies plainPrice writes with a symbol
// before the amount; the others are written "19.99 CHF".
var currencySymbols = map[string]string{
	"EUR": "€",
	"USD": "$",
	"GBP": "£",
	"JPY": "¥",
}

// minorDigits returns how many decimal digits a currency's minor unit has
// (ISO 4217): 2 unless listed.
func minorDigits(currency string) int {
	switch currency {
	case "BIF", "CLP", "DJF", "GNF", "ISK", "JPY", "KMF", "KRW", "PYG",
		"RWF", "UGX", "VND", "VUV", "XAF", "XOF", "XPF":
		return 0
	case "BHD", "IQD", "JOD", "KWD", "LYD", "OMR", "TND":
		return 3
	}
	return 2
}

// priceLocale is the BCP 47 locale prices are formatted for; "" is the
// browser's language.
var priceLocale string

// formatPrice formats an amount in minor units of currency for the
// shopper's locale: with Intl.NumberFormat in the browser (money_js.go),
// in the plain form elsewhere.
func formatPrice(minor int64, currency string) string {
	return formatMoney(priceLocale, minor, currency)
}

// bindSymbols keeps a currency sign with the Latin letters before it, as
// in "JP¥" and "US$" (Intl's Arabic forms): a left-to-right mark after the
// sign makes it part of their run, where a right-to-left page would
// otherwise show it on their other side ("¥JP").
func bindSymbols(s string) string {
	var b strings.Builder
	prev := rune(0)
	for _, r := range s {
		b.WriteRune(r)
		if unicode.Is(unicode.Sc, r) && (prev >= 'A' && prev <= 'Z' || prev >= 'a' && prev <= 'z') {
			b.WriteRune('\u200e')
		}
		prev = r
	}
	return b.String()
}

// plainPrice formats an amount in minor units of currency without locale
// rules: "€19.99", "19.99 CHF", or "19.99" without a currency; a point
// before the decimals and no grouping.
func plainPrice(minor int64, currency string) string {
	neg := minor < 0
	if neg {
		minor = -minor
	}
	digits := minorDigits(currency)
	s := strconv.FormatInt(minor, 10)
	if digits > 0 {
		if len(s) <= digits {
			s = strings.Repeat("0", digits-len(s)+1) + s
		}
		s = s[:len(s)-digits] + "." + s[len(s)-digits:]
	}
	if sym, ok := currencySymbols[currency]; ok {
		s = sym + s
	} else if currency != "" {
		s += " " + currency
	}
	if neg {
		s = "−" + s
	}
	return s
}

// subtotals returns the cart's subtotal per currency, formatted, in
// currency order. Lines without a price are left out.
func subtotals(c *cart.Cart) []string {
	if c == nil {
		return nil
	}
	return formatTotals(c.Subtotal())
}

// formatTotals formats amounts per currency, in currency order.
func formatTotals(sums map[string]int64) []string {
	curs := make([]string, 0, len(sums))
	for cur := range sums {
		curs = append(curs, cur)
	}
	sort.Strings(curs)
	out := make([]string, len(curs))
	for i, cur := range curs {
		out[i] = formatPrice(sums[cur], cur)
	}
	return out
}

// handoverText is the notice's message id for a cart the server handed
// over: erased at the storefront's request, or expired.
func handoverText(st syncclient.State) string {
	if st.CartErased {
		return erasedText
	}
	return expiredText
}

// lineName is what a line is called: its name, else its SKU.
func lineName(l *cart.Line) string {
	if l.Details.Name != "" {
		return l.Details.Name
	}
	return l.SKU
}

// optionsText writes a line's options as "color: red, size: M", in key
// order.
func optionsText(opts map[string]string) string {
	keys := make([]string, 0, len(opts))
	for k := range opts {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	parts := make([]string, len(keys))
	for i, k := range keys {
		parts[i] = k + ": " + opts[k]
	}
	return strings.Join(parts, ", ")
}

// cartLabel is the cart button's accessible name.
func cartLabel(loaded bool, items int) string {
	switch {
	case !loaded:
		return tr("cart.label")
	case items == 0:
		return tr("cart.label.empty")
	}
	return trn("cart.label.items", items)
}

// badgeText is the count on the cart button.
func badgeText(items int) string {
	if items > 99 {
		return "99+"
	}
	return strconv.Itoa(items)
}

// statusText is the sync status line.
func statusText(loaded bool, st syncclient.State) string {
	if !loaded {
		return tr("status.loading")
	}
	n := unsent(st)
	waiting := func(status string) string {
		if n == 0 {
			return tr(status)
		}
		return trn("status.waiting", n, "status", tr(status))
	}
	if st.NeedsLogin {
		// Not an error: the edits are kept for the next login.
		return waiting("status.signin")
	}
	switch st.Status {
	case syncclient.Offline:
		return waiting("status.offline")
	case syncclient.Connecting:
		return waiting("status.connecting")
	case syncclient.Syncing:
		return tr("status.syncing")
	case syncclient.Synced:
		switch {
		case n > 0:
			return tr("status.syncing")
		case st.User != "":
			return tr("status.account")
		}
		return tr("status.synced")
	}
	return st.Status.String()
}

// reasons are the ids of what the shopper is told about a refused edit, by
// code.
var reasons = map[cart.Code]string{
	cart.CodeInvalidQuantity: "reason.invalid_quantity",
	cart.CodeLineNotFound:    "reason.line_not_found",
	cart.CodeTooManyLines:    "reason.too_many_lines",
	cart.CodeInvalidSKU:      "reason.invalid_sku",
	cart.CodeInvalidOptions:  "reason.invalid_options",
	cart.CodeInvalidDetails:  "reason.invalid_details",
	cart.CodeCartTooLarge:    "reason.cart_too_large",
	cart.CodeOutOfStock:      "reason.out_of_stock",
	cart.CodeNotSellable:     "reason.not_sellable",
	cart.CodeUnknownSKU:      "reason.unknown_sku",
}

// reason is the friendly text for a cart error code.
func reason(code cart.Code) string {
	if r, ok := reasons[code]; ok {
		return tr(r)
	}
	return tr("reason.other")
}

// rejectedText tells the shopper that an edit of name was refused.
func rejectedText(name string, code cart.Code) string {
	return refusedText(name, reason(code))
}

// refusedText tells the shopper that an edit of name was refused, and why.
func refusedText(name, why string) string {
	if name == "" {
		return tr("edit.rejected.cart", "reason", why)
	}
	return tr("edit.rejected", "name", name, "reason", why)
}

// errorText tells the shopper why the server refused an edit of name: an
// item's maximum per order is told as such, with the number, rather than
// as "no more in stock".
func errorText(name string, e *cart.Error) string {
	if n, ok := e.PerOrder(); ok && e.Code == cart.CodeOutOfStock {
		return refusedText(name, tr("reason.per_order", "count", n))
	}
	return rejectedText(name, e.Code)
}

// reducedText tells the shopper that an add of name was lowered to what the
// catalog allows: its maximum per order, with the number, or its stock.
func reducedText(name string, w cart.Warning) string {
	if n, ok := w.PerOrder(); ok {
		if name == "" {
			return tr("edit.order_limited.cart", "count", n)
		}
		return tr("edit.order_limited", "name", name, "count", n)
	}
	if name == "" {
		return tr("edit.stock_limited.cart")
	}
	return tr("edit.stock_limited", "name", name)
}

// clampedText tells the shopper that an add was capped at the maximum.
func clampedText(name string, qty int) string {
	return tr("edit.clamped", "name", name, "count", qty)
}

// editFailedText tells the shopper that an edit of name could not be made.
func editFailedText(name string, err error) string {
	var ce *cart.Error
	if errors.As(err, &ce) {
		return rejectedText(name, ce.Code)
	}
	if name == "" {
		return tr("edit.not_saved.cart")
	}
	return tr("edit.not_saved", "name", name)
}

// stoppedText says why syncing stopped for good.
func stoppedText(err error) string {
	var pe *protocol.Error
	if errors.As(err, &pe) {
		switch pe.Code {
		case protocol.ErrUnsupportedVersion:
			return tr("stopped.outdated")
		case protocol.ErrForbidden:
			return tr("stopped.forbidden")
		}
	}
	return tr("stopped.other")
}

// Ids of notes about where the cart is kept and about checkout.
const (
	noteMemory = "note.memory"
	noteUnsent = "checkout.unsent"
	noteNoShop = "checkout.no_shop"
	noteTaxes  = "note.taxes"
)

// Ids of notes about logins.
const (
	noteSignedOut     = "note.signed_out"
	noteChoiceNotSent = "note.choice_not_sent"
	noteChoiceAlready = "note.choice_already"
	expiredText       = "notice.expired"
	erasedText        = "notice.erased"
)

// mergeChanged reports whether a login merge changed the user's cart.
func mergeChanged(mi *protocol.MergeInfo) bool {
	if mi == nil || mi.Status != protocol.MergeMerged || mi.Result == nil {
		return false
	}
	r := mi.Result
	return r.Items > 0 || r.Added > 0 || r.Combined > 0 || r.Replaced > 0
}

// mergeTexts tell the shopper what a login merge did with this device's
// cart: nothing to say unless the server merged (status merged). late are
// the items this device had added that reached the user cart after the
// merge, whatever its policy (State.MergeLate).
func mergeTexts(mi *protocol.MergeInfo, late int) []string {
	if mi == nil || mi.Status != protocol.MergeMerged || mi.Result == nil {
		return nil
	}
	r := mi.Result
	var out []string
	switch r.Policy {
	case cart.PolicyReplace:
		if n := r.Items + late; n > 0 {
			out = append(out, trn("merge.replace.items", n))
		} else {
			out = append(out, tr("merge.replace.all"))
		}
		if r.Replaced > 0 {
			out = append(out, trn("merge.replaced", r.Replaced))
		}
	case cart.PolicyKeep:
		if late > 0 {
			out = append(out, trn("merge.kept.late", late))
		} else {
			out = append(out, tr("merge.kept"))
		}
	default: // merge
		if n := r.Items + late; n > 0 {
			out = append(out, trn("merge.added", n))
		}
		if r.Combined > 0 {
			out = append(out, trn("merge.combined", r.Combined))
		}
	}
	seen := map[cart.Code]bool{}
	for _, w := range r.Warnings {
		if seen[w.Code] {
			continue
		}
		seen[w.Code] = true
		switch w.Code {
		case cart.CodeQuantityClamped:
			out = append(out, tr("merge.clamped"))
		case cart.CodeLinesDropped:
			out = append(out, tr("merge.dropped"))
		default:
			out = append(out, tr("merge.other"))
		}
	}
	return out
}

// elsewhereText tells what a login on another device did to the cart.
func elsewhereText(e *syncclient.LoginElsewhere) string {
	if e.Removed > 0 {
		return tr("elsewhere.replaced")
	}
	return tr("elsewhere.added")
}

// quantityText is what the live region says of a line's new quantity.
func quantityText(name string, q int) string {
	return tr("live.quantity", "name", name, "count", q)
}

// droppedText describes an edit that was lost with its cart.
func droppedText(op cart.Op, ops *opIndex) string {
	name := op.SKU
	if op.Details != nil && op.Details.Name != "" {
		name = op.Details.Name
	} else if ops != nil {
		if ref, ok := ops.lookup(protocol.OpID{Client: op.Client, Seq: op.Seq}); ok && ref.name != "" {
			name = ref.name
		}
	}
	switch op.Kind {
	case cart.KindAdd:
		return tr("dropped.add", "count", op.Quantity, "name", name)
	case cart.KindSet:
		if op.Quantity == 0 {
			return tr("dropped.remove", "name", name)
		}
		return tr("dropped.set", "name", name, "count", op.Quantity)
	case cart.KindRemove:
		return tr("dropped.remove", "name", name)
	case cart.KindClear:
		return tr("dropped.clear")
	}
	return tr("dropped.details", "name", name)
}
