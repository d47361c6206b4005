package cart

import (
	"strings"
	"testing"
)

// An add of a new line with Before puts it before that line (an undone
// removal goes back where it was); without that line it goes last, and an
// add to a line the cart has leaves the order alone.
func TestAddBefore(t *testing.T) {
	keys := func(c *Cart) string {
		var ks []string
		for _, l := range c.Lines {
			ks = append(ks, l.Key)
		}
		return strings.Join(ks, " ")
	}
	c := &Cart{ID: "g", Lines: []*Line{}}
	seq := uint64(0)
	add := func(sku, before string) {
		t.Helper()
		seq++
		if _, err := c.Apply(Op{Client: "c", Seq: seq, Kind: KindAdd, SKU: sku, Quantity: 1, Before: before}, "d", DefaultLimits); err != nil {
			t.Fatalf("add %s before %q: %v", sku, before, err)
		}
	}
	add("A", "")
	add("C", "")
	add("B", "C")
	add("D", "GONE")
	add("E", "A")
	add("C", "E") // the cart has C: it stays where it is
	if got, want := keys(c), "E A B C D"; got != want {
		t.Errorf("lines %s, want %s", got, want)
	}
	if l := c.Line("C"); l.Quantity != 2 {
		t.Errorf("C has %d, want 2", l.Quantity)
	}
}

// Before is an add's only, and a line key's size; a bad one is refused and
// changes nothing.
func TestBeforeValidated(t *testing.T) {
	lim := DefaultLimits
	for _, tc := range []struct {
		name string
		op   Op
	}{
		{"on a set", Op{Kind: KindSet, SKU: "A", Quantity: 1, Before: "B"}},
		{"on a remove", Op{Kind: KindRemove, SKU: "A", Before: "B"}},
		{"too long", Op{Kind: KindAdd, SKU: "A", Quantity: 1, Before: strings.Repeat("k", lim.MaxLineKey()+1)}},
		{"a control character", Op{Kind: KindAdd, SKU: "A", Quantity: 1, Before: "B\x00"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := &Cart{ID: "g", Lines: []*Line{{Key: "A", SKU: "A", Quantity: 1}}}
			tc.op.Client, tc.op.Seq = "c", 1
			if _, err := c.Apply(tc.op, "d", lim); err == nil || err.Code != CodeInvalidOp {
				t.Errorf("%+v: %v, want invalid_op", tc.op, err)
			}
			if c.Version != 0 || len(c.Lines) != 1 || c.Lines[0].Quantity != 1 {
				t.Errorf("a refused op changed the cart: %+v", c)
			}
		})
	}
	// The longest key the limits allow is taken.
	long := Op{Client: "c", Seq: 1, Kind: KindAdd, SKU: "A", Quantity: 1, Before: strings.Repeat("k", lim.MaxLineKey())}
	if err := long.Validate(lim); err != nil {
		t.Errorf("a before of %d bytes: %v", lim.MaxLineKey(), err)
	}
	// And it is as long as a key can be.
	opts := map[string]string{}
	for i := range lim.MaxOptions {
		k := strings.Repeat("\x7f", lim.MaxOptionLen-2) + string(rune('a'+i/26)) + string(rune('a'+i%26))
		opts[k] = strings.Repeat("é", lim.MaxOptionLen/2)
	}
	if k := LineKey(strings.Repeat("s", lim.MaxSKU), opts); len(k) > lim.MaxLineKey() {
		t.Errorf("a line key of %d bytes, longer than MaxLineKey %d", len(k), lim.MaxLineKey())
	}
}
