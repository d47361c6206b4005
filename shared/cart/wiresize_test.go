package cart

import (
	"bytes"
	"encoding/json"
	"fmt"
	"strings"
	"testing"
)

// WireBytes is never less than the line as the server sends it, whatever
// the text escapes to.
func TestWireBytesBoundsTheEncodedLine(t *testing.T) {
	for _, fill := range []string{"a", `"`, `\`, "<&>", "é", "%", "\t", "日本"} {
		l := &Line{Key: LineKey("S"+fill, map[string]string{"k" + fill: "v" + fill}), SKU: "S" + fill,
			Options: map[string]string{"k" + fill: "v" + fill}, Quantity: 999,
			Details: Details{Name: strings.Repeat(fill, 50), Image: "https://x/" + fill, Price: 123456, Currency: "EUR"}}
		var b bytes.Buffer
		enc := json.NewEncoder(&b)
		enc.SetEscapeHTML(false)
		if err := enc.Encode(l); err != nil {
			t.Fatal(err)
		}
		if got := b.Len() - 1; got > l.WireBytes() {
			t.Errorf("line of %q: %d bytes encoded, WireBytes says %d", fill, got, l.WireBytes())
		}
	}
}

// An add or a details op that would take the cart past MaxCartBytes is
// refused as cart_too_large and changes nothing; a login merge leaves the
// line out with lines_dropped.
func TestMaxCartBytes(t *testing.T) {
	lim := DefaultLimits
	lim.MaxCartBytes = 2000
	big := &Details{Name: strings.Repeat(`"`, 100), Price: 100, Currency: "EUR"} // 202 bytes of name
	c := &Cart{ID: "g", Lines: []*Line{}}
	seq := uint64(0)
	add := func(sku string, d *Details) *Error {
		seq++
		_, err := c.Apply(Op{Client: "c", Seq: seq, Kind: KindAdd, SKU: sku, Quantity: 1, Details: d}, "d", lim)
		return err
	}
	n := 0
	for ; n < 20; n++ {
		if err := add("S"+strings.Repeat("x", n+1), big); err != nil {
			if err.Code != CodeCartTooLarge {
				t.Fatalf("add %d: %v, want cart_too_large", n, err)
			}
			break
		}
	}
	if n == 0 || n == 20 {
		t.Fatalf("%d lines before cart_too_large, want some and fewer than 20", n)
	}
	before, _ := json.Marshal(c)
	// New details on an existing line that would pass the limit.
	seq++
	_, err := c.Apply(Op{Client: "c", Seq: seq, Kind: KindDetails, SKU: "Sx", Details: &Details{Name: "Mug", Image: "https://x/" + strings.Repeat(`"`, 500)}}, "d", lim)
	if err == nil || err.Code != CodeCartTooLarge {
		t.Errorf("details past the limit: %v, want cart_too_large", err)
	}
	if after, _ := json.Marshal(c); !bytes.Equal(before, after) {
		t.Errorf("a refused op changed the cart:\n%s\n%s", before, after)
	}
	// More of a line already there still goes.
	if err := add("Sx", nil); err != nil {
		t.Errorf("more of an existing line: %v", err)
	}

	guest := &Cart{ID: "g2", Lines: []*Line{{Key: "NEW", SKU: "NEW", Quantity: 1, Details: *big}}}
	res, merr := c.Merge(guest, PolicyMerge, "d", lim)
	if merr != nil {
		t.Fatal(merr)
	}
	if res.Added != 0 || len(res.Warnings) != 1 || res.Warnings[0].Code != CodeLinesDropped || c.Line("NEW") != nil {
		t.Errorf("merge into a full cart: %+v, want NEW dropped with lines_dropped", res)
	}

	// A line the user's cart has without details takes the guest's, unless
	// they would not fit: then it is summed without them, and says so.
	seq++
	if _, err := c.Apply(Op{Client: "c", Seq: seq, Kind: KindSet, SKU: "Sx", Quantity: 0}, "d", lim); err != nil {
		t.Fatal(err)
	}
	if err := add("BARE", nil); err != nil {
		t.Fatalf("add of a line without details: %v", err)
	}
	huge := Details{Name: "Mug", Price: 100, Currency: "EUR", Image: "https://x/" + strings.Repeat(`"`, 900)}
	guest = &Cart{ID: "g3", Lines: []*Line{{Key: "BARE", SKU: "BARE", Quantity: 2, Details: huge}}}
	res, merr = c.Merge(guest, PolicyMerge, "d", lim)
	if merr != nil {
		t.Fatal(merr)
	}
	if l := c.Line("BARE"); l == nil || l.Quantity != 3 || l.Details != (Details{}) || res.Combined != 1 ||
		len(res.Warnings) != 1 || res.Warnings[0].Code != CodeDetailsDropped {
		t.Errorf("merge of details past the limit: %+v, line %+v; want BARE summed to 3 without details, with details_dropped", res, l)
	}
	small := Details{Name: "Mug", Price: 100, Currency: "EUR"}
	guest = &Cart{ID: "g4", Lines: []*Line{{Key: "BARE", SKU: "BARE", Quantity: 1, Details: small}}}
	if res, _ = c.Merge(guest, PolicyMerge, "d", lim); len(res.Warnings) != 0 || c.Line("BARE").Details != small {
		t.Errorf("merge of details that fit: %+v, line %+v; want the guest's details, no warning", res, c.Line("BARE"))
	}
}

// The largest total a cart can have at the default limits is exact as a
// JavaScript number, which is how a storefront's page reads it.
func TestLargestTotalIsExactInJavaScript(t *testing.T) {
	lim := DefaultLimits
	if max := lim.MaxPrice * int64(lim.MaxQuantity) * int64(lim.MaxLines); max >= 1<<53 {
		t.Errorf("a full cart may total %d minor units, past 2^53", max)
	}
}

// BenchmarkAddNewLine is an add of a new line to a cart of 50 lines: what
// MaxCartBytes costs an add (the lines' sizes summed).
func BenchmarkAddNewLine(b *testing.B) {
	base := &Cart{ID: "g", Lines: []*Line{}}
	for i := range 50 {
		if _, err := base.Apply(Op{Client: "c", Seq: uint64(i + 1), Kind: KindAdd, SKU: fmt.Sprintf("SKU-%02d", i), Quantity: 1,
			Options: map[string]string{"size": "M"}, Details: &Details{Name: "Organic cotton tee", Image: "https://shop.example/img/tee.jpg", Price: 1999, Currency: "EUR"}}, "d", DefaultLimits); err != nil {
			b.Fatal(err)
		}
	}
	op := Op{Client: "c", Seq: 99, Kind: KindAdd, SKU: "NEW", Quantity: 1, Details: &Details{Name: "Mug", Price: 1200, Currency: "EUR"}}
	b.Run("Apply", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			c := *base
			c.Lines = base.Lines[:50:50]
			if _, err := c.Apply(op, "d", DefaultLimits); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("fits", func(b *testing.B) {
		b.ReportAllocs()
		l := &Line{Key: "NEW", SKU: "NEW", Quantity: 1, Details: *op.Details}
		for b.Loop() {
			if err := base.fits(l, nil, DefaultLimits); err != nil {
				b.Fatal(err)
			}
		}
	})
}
