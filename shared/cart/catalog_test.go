package cart

import (
	"fmt"
	"strings"
	"testing"
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
