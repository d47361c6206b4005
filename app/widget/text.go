package widget

import (
	"errors"
	"fmt"
	"sort"
	"strconv"
	"strings"

	"cartsync/shared/cart"
	"cartsync/shared/protocol"
	"cartsync/shared/syncclient"
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

// plural writes "1 item" or "3 items".
func plural(n int, one, many string) string {
	if n == 1 {
		return "1 " + one
	}
	return strconv.Itoa(n) + " " + many
}

// cartLabel is the cart button's accessible name.
func cartLabel(loaded bool, items int) string {
	switch {
	case !loaded:
		return "Cart"
	case items == 0:
		return "Cart, empty"
	}
	return "Cart, " + plural(items, "item", "items")
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
		return "Loading…"
	}
	n := unsent(st)
	waiting := ""
	if n > 0 {
		waiting = " — " + plural(n, "change", "changes") + " waiting"
	}
	if st.NeedsLogin {
		// Not an error: the edits are kept for the next login.
		return "Sign in again to sync" + waiting
	}
	switch st.Status {
	case syncclient.Offline:
		return "Offline" + waiting
	case syncclient.Connecting:
		return "Connecting…" + waiting
	case syncclient.Syncing:
		return "Syncing…"
	case syncclient.Synced:
		switch {
		case n > 0:
			return "Syncing…"
		case st.User != "":
			return "Saved to your account"
		}
		return "Synced"
	}
	return st.Status.String()
}

// reasons are what the shopper is told about a refused edit, by code.
var reasons = map[cart.Code]string{
	cart.CodeInvalidQuantity: "that quantity isn't possible",
	cart.CodeLineNotFound:    "it's no longer in your cart",
	cart.CodeTooManyLines:    "your cart can't hold more different items",
	cart.CodeInvalidSKU:      "the shop sent a product code the cart can't accept",
	cart.CodeInvalidOptions:  "the shop sent product options the cart can't accept",
	cart.CodeInvalidDetails:  "the shop sent product details the cart can't accept",
}

// reason is the friendly text for a cart error code.
func reason(code cart.Code) string {
	if r, ok := reasons[code]; ok {
		return r
	}
	return "the change couldn't be applied"
}

// rejectedText tells the shopper that an edit of name was refused.
func rejectedText(name string, code cart.Code) string {
	if name == "" {
		name = "your cart"
	}
	return fmt.Sprintf("Couldn't update %s: %s.", name, reason(code))
}

// clampedText tells the shopper that an add was capped at the maximum.
func clampedText(name string, qty int) string {
	return fmt.Sprintf("%s: the quantity was limited to %d, the most a cart can hold.", name, qty)
}

// editFailedText tells the shopper that an edit of name could not be made.
func editFailedText(name string, err error) string {
	var ce *cart.Error
	if errors.As(err, &ce) {
		return rejectedText(name, ce.Code)
	}
	if name == "" {
		name = "your cart"
	}
	return fmt.Sprintf("Couldn't update %s: the change couldn't be saved on this device.", name)
}

// stoppedText says why syncing stopped for good.
func stoppedText(err error) string {
	var pe *protocol.Error
	if errors.As(err, &pe) {
		switch pe.Code {
		case protocol.ErrUnsupportedVersion:
			return "This page is out of date. Reload it to keep your cart in sync."
		case protocol.ErrForbidden:
			return "This cart can no longer be changed here."
		}
	}
	return "Your cart stopped syncing. Reload the page to try again."
}

// Notes about where the cart is kept and about checkout.
const (
	noteMemory = "Your browser doesn't let this cart be saved, so it is kept only while this page is open."
	noteUnsent = "Your latest changes haven't reached the shop yet. Check your connection and try again."
	noteNoShop = "Checkout happens on the shop's page, and this cart isn't shown on one."
	noteTaxes  = "Taxes and shipping are calculated at checkout."
)

// Notes about logins.
const (
	noteSignedOut     = "You're signed out. Your cart is saved to your account for the next time you sign in."
	noteChoiceNotSent = "Your choice couldn't be sent. Check your connection and try again."
	expiredText       = "Your previous cart expired after 30 days without changes. This is a new cart."
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
// cart: nothing to say unless the server merged (status merged).
func mergeTexts(mi *protocol.MergeInfo) []string {
	if mi == nil || mi.Status != protocol.MergeMerged || mi.Result == nil {
		return nil
	}
	r := mi.Result
	var out []string
	switch r.Policy {
	case cart.PolicyReplace:
		if r.Items > 0 {
			out = append(out, fmt.Sprintf("Your cart now holds the %s from this device.", plural(r.Items, "item", "items")))
		} else {
			out = append(out, "Your cart now holds what was in the cart on this device.")
		}
		if r.Replaced > 0 {
			out = append(out, fmt.Sprintf("It replaced the %s saved in your cart before.", plural(r.Replaced, "product", "products")))
		}
	case cart.PolicyKeep:
		out = append(out, "Your saved cart was kept. The items in the cart on this device were set aside.")
	default: // merge
		switch {
		case r.Items == 1:
			out = append(out, "1 item from this device was added to your cart.")
		case r.Items > 1:
			out = append(out, fmt.Sprintf("%d items from this device were added to your cart.", r.Items))
		}
		if r.Combined == 1 {
			out = append(out, "1 product was already in your cart: the quantities were added together.")
		} else if r.Combined > 1 {
			out = append(out, fmt.Sprintf("%d products were already in your cart: the quantities were added together.", r.Combined))
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
			out = append(out, "Some quantities were limited to the most a cart can hold.")
		case cart.CodeLinesDropped:
			out = append(out, "Some items couldn't be added: your cart can't hold more different items.")
		default:
			out = append(out, "Some items couldn't be added as they were.")
		}
	}
	return out
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
		return fmt.Sprintf("Adding %d × %s", op.Quantity, name)
	case cart.KindSet:
		if op.Quantity == 0 {
			return "Removing " + name
		}
		return fmt.Sprintf("Changing %s to %d", name, op.Quantity)
	case cart.KindRemove:
		return "Removing " + name
	case cart.KindClear:
		return "Emptying the cart"
	}
	return "Changing the details of " + name
}
