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
