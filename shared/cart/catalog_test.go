package cart

import (
	"fmt"
	"strings"
	"testing"
	"time"
)

// A catalog item's price is 1 to MaxPrice minor units, and the message of
// a price out of that range says so, whichever end it is past.
func TestValidateItemPrice(t *testing.T) {
	lim := DefaultLimits
	want := fmt.Sprintf("price must be 1 to %d minor units", lim.MaxPrice)
	for _, tc := range []struct {
		name  string
		price int64
		ok    bool
	}{
		{"negative", -1, false},
		{"zero", 0, false},
		{"one", 1, true},
		{"the most", lim.MaxPrice, true},
		{"over the most", lim.MaxPrice + 1, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			it := Item{SKU: "MUG", Name: "Mug", Price: tc.price, Currency: "EUR"}
			e := ValidateItem(&it, lim)
			switch {
			case tc.ok && e != nil:
				t.Fatalf("price %d: %v, want valid", tc.price, e)
			case tc.ok:
			case e == nil:
				t.Fatalf("price %d: valid, want %s", tc.price, CodeInvalidDetails)
			case e.Code != CodeInvalidDetails || !strings.HasPrefix(e.Message, want):
				t.Errorf("price %d: %s %q, want %s %q", tc.price, e.Code, e.Message, CodeInvalidDetails, want)
			}
		})
	}
}

// A price in a currency that is not an ISO 4217 code the server knows is
// refused as the catalog refuses it, whoever sends it.
func TestClientPriceCurrencyMustBeKnown(t *testing.T) {
	c := &Cart{ID: "g", Lines: []*Line{}}
	for i, cur := range []string{"ZZZ", "EUR"} {
		_, err := c.Apply(Op{Client: "c", Seq: uint64(i + 1), Kind: KindAdd, SKU: "MUG", Quantity: 1,
			Details: &Details{Name: "Mug", Price: 100, Currency: cur}}, "d", DefaultLimits)
		if ok := err == nil; ok != (cur == "EUR") {
			t.Errorf("add priced in %s: %v", cur, err)
		}
		if err != nil && err.Code != CodeInvalidDetails {
			t.Errorf("add priced in %s: code %s, want invalid_details", cur, err.Code)
		}
	}
	if n := c.Items(); n != 1 {
		t.Errorf("%d items, want the EUR add only", n)
	}
}

// An add or a set that meets what the catalog has available says which
// limit it met, the stock or the maximum per order (the lesser; the maximum
// when they are equal), and how many one cart may hold, whether it is
// refused or reduced; a notice does the same.
func TestAuthorizeSaysWhichLimit(t *testing.T) {
	n := func(v int) *int { return &v }
	mug := func(stock, perOrder *int) *Item {
		return &Item{SKU: "MUG", Name: "Mug", Price: 900, Currency: "EUR", Sellable: true, Stock: stock, MaxPerOrder: perOrder}
	}
	for _, tc := range []struct {
		name      string
		item      *Item
		have, add int
		code      Code // out_of_stock or stock_clamped
		available int
		by        string
	}{
		{"stock refuses", mug(n(2), nil), 2, 1, CodeOutOfStock, 2, LimitStock},
		{"stock reduces", mug(n(3), nil), 1, 5, CodeStockClamped, 3, LimitStock},
		{"stock 0 refuses", mug(n(0), n(4)), 0, 1, CodeOutOfStock, 0, LimitStock},
		{"per order refuses", mug(nil, n(2)), 2, 1, CodeOutOfStock, 2, LimitPerOrder},
		{"per order reduces", mug(n(50), n(2)), 1, 5, CodeStockClamped, 2, LimitPerOrder},
		{"stock under per order", mug(n(1), n(2)), 0, 3, CodeStockClamped, 1, LimitStock},
		{"equal: per order", mug(n(2), n(2)), 2, 1, CodeOutOfStock, 2, LimitPerOrder},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := &Cart{ID: "g", Lines: []*Line{}}
			if tc.have > 0 {
				c.Lines = append(c.Lines, &Line{Key: "MUG", SKU: "MUG", Quantity: tc.have, Details: tc.item.Details()})
			}
			op := Op{Client: "c", Seq: 1, Kind: KindAdd, SKU: "MUG", Quantity: tc.add}
			_, warns, err := Authorize(c, op, tc.item, false)
			var code Code
			var avail *int
			var by string
			switch {
			case err != nil:
				code, avail, by = err.Code, err.Available, err.LimitBy
			case len(warns) == 1:
				code, avail, by = warns[0].Code, warns[0].Available, warns[0].LimitBy
			default:
				t.Fatalf("add %d to %d: no error, warnings %v", tc.add, tc.have, warns)
			}
			if code != tc.code || avail == nil || *avail != tc.available || by != tc.by {
				t.Errorf("add %d to %d: %s available %v limit_by %q, want %s %d %q", tc.add, tc.have, code, avail, by, tc.code, tc.available, tc.by)
			}
			if tc.have > tc.available {
				return
			}
			// The same limit as a notice: the cart holds one more than
			// available.
			c.Lines = []*Line{{Key: "MUG", SKU: "MUG", Quantity: tc.available + 1, Details: tc.item.Details()}}
			ns := Notices(c, map[string]Item{"MUG": *tc.item})
			if len(ns) != 1 || ns[0].Available == nil || *ns[0].Available != tc.available || ns[0].LimitBy != tc.by {
				t.Errorf("notices %+v, want available %d limit_by %q", ns, tc.available, tc.by)
			}
		})
	}
	// No limit, no field.
	c := &Cart{ID: "g", Lines: []*Line{}}
	if _, warns, err := Authorize(c, Op{Client: "c", Seq: 1, Kind: KindAdd, SKU: "MUG", Quantity: 5}, mug(nil, nil), false); err != nil || warns != nil {
		t.Errorf("unlimited add: %v %v", err, warns)
	}
	if by := mug(nil, nil).LimitBy(); by != "" {
		t.Errorf("unlimited item: limit_by %q, want none", by)
	}
}

// A price needs its currency: minor units of no currency would be summed
// under an empty code. An add or a details op with one is refused and
// changes nothing; a line stored before the rule is left out of the
// totals and the checkout's.
func TestPriceNeedsItsCurrency(t *testing.T) {
	c := &Cart{ID: "g", Lines: []*Line{}}
	for i, op := range []Op{
		{Kind: KindAdd, SKU: "NOCUR", Quantity: 2, Details: &Details{Name: "No currency", Price: 500}},
		{Kind: KindAdd, SKU: "FREE", Quantity: 1, Details: &Details{Name: "Sticker"}},
		{Kind: KindDetails, SKU: "FREE", Details: &Details{Name: "Sticker", Price: 100}},
	} {
		op.Client, op.Seq = "c", uint64(i+1)
		_, err := c.Apply(op, "d", DefaultLimits)
		if ok := op.SKU == "FREE" && op.Kind == KindAdd; ok != (err == nil) {
			t.Errorf("%s %s with price %d and no currency: %v", op.Kind, op.SKU, op.Details.Price, err)
		}
		if err != nil && (err.Code != CodeInvalidDetails || !strings.Contains(err.Message, "currency")) {
			t.Errorf("%s %s: %s %q, want invalid_details about the currency", op.Kind, op.SKU, err.Code, err.Message)
		}
	}
	if len(c.Lines) != 1 || c.Lines[0].Details.Price != 0 {
		t.Fatalf("lines %+v, want only the sticker, without a price", c.Lines)
	}
	// Stored before the rule.
	c.Lines = append(c.Lines, &Line{Key: "OLD", SKU: "OLD", Quantity: 3, Details: Details{Name: "Old", Price: 500}},
		&Line{Key: "MUG", SKU: "MUG", Quantity: 1, Details: Details{Name: "Mug", Price: 1200, Currency: "EUR"}})
	if got := Totals(c, nil); len(got) != 1 || got["EUR"] != 1200 {
		t.Errorf("totals %v, want EUR 1200 only", got)
	}
	co, _, ce := NewCheckout(c, c.Version, nil, "co", time.Now(), time.Hour)
	if ce != nil {
		t.Fatal(ce)
	}
	if len(co.Totals) != 1 || co.Totals["EUR"] != 1200 {
		t.Errorf("checkout totals %v, want EUR 1200 only", co.Totals)
	}
}
