package protocol_test

import (
	"fmt"
	"strings"
	"testing"

	"github.com/cartsync/cartsync/shared/cart"
	"github.com/cartsync/cartsync/shared/protocol"
)

// fullCart fills a cart with lines whose every text is at its limit and
// made of what JSON and the line key escape most (quotes, backslashes, '<',
// percent-encoded option bytes), until the cart refuses the next line: as
// cart_too_large or too_many_lines, never by growing past what a client
// can read.
func fullCart(t *testing.T, id, fill string) *cart.Cart {
	t.Helper()
	lim := cart.DefaultLimits
	c := &cart.Cart{ID: id, Lines: []*cart.Line{}}
	text := func(n int, seed int) string {
		s := fmt.Sprintf("%d", seed) + strings.Repeat(fill, n)
		for len(s) > n {
			s = s[:len(s)-1]
		}
		return strings.ToValidUTF8(s, "")
	}
	var last *cart.Error
	for i := 0; i < lim.MaxLines+1; i++ {
		opts := map[string]string{}
		for j := range lim.MaxOptions {
			opts[text(lim.MaxOptionLen, j)] = text(lim.MaxOptionLen, i)
		}
		op := cart.Op{Client: "c", Seq: uint64(i + 1), Kind: cart.KindAdd, SKU: "S" + text(lim.MaxSKU-1, i), Quantity: lim.MaxQuantity,
			Options: opts, Details: &cart.Details{Name: text(lim.MaxName, i), Image: "https://x/" + text(lim.MaxImage-10, i), Price: lim.MaxPrice, Currency: "EUR"}}
		if _, err := c.Apply(op, "d", lim); err != nil {
			last = err
			break
		}
	}
	if last == nil || (last.Code != cart.CodeCartTooLarge && last.Code != cart.CodeTooManyLines) {
		t.Fatalf("filling the cart with %q ended with %v, want cart_too_large or too_many_lines", fill, last)
	}
	return c
}

// Every message that carries a cart fits in MaxServerMessageBytes, for
// the largest cart the limits allow: with a notice on every line, and
// the choose message with two such carts.
func TestLargestCartFitsInAServerMessage(t *testing.T) {
	for _, fill := range []string{"a", "\"", "<", "é", "%", "\\"} {
		c := fullCart(t, "u_x", fill)
		pub := c.Public()
		avail := 1
		for _, l := range pub.Lines {
			pub.Notices = append(pub.Notices, cart.Notice{Line: l.Key, Unavailable: true, Limit: cart.Limit{Available: &avail},
				PriceChanged: &cart.PriceChange{From: cart.DefaultLimits.MaxPrice, To: cart.DefaultLimits.MaxPrice, Currency: "EUR"}})
		}
		pub.Totals = map[string]int64{"EUR": cart.DefaultLimits.MaxPrice * 999 * 100}
		other := fullCart(t, "g_x", fill).Public()
		for _, m := range []*protocol.Message{
			{Type: protocol.TypeCart, ID: "3", Cart: pub, From: 1},
			{Type: protocol.TypeMerge, ID: "h1", Merge: &protocol.MergeInfo{Status: protocol.MergeChoose, Guest: other, User: pub}},
		} {
			b, err := protocol.Encode(m)
			if err != nil {
				t.Fatal(err)
			}
			if len(b) > protocol.MaxServerMessageBytes {
				t.Errorf("%s of a cart of %d lines filled with %q: %d bytes, more than %d", m.Type, len(pub.Lines), fill, len(b), protocol.MaxServerMessageBytes)
			}
			// What a client reads it with.
			if _, err := protocol.DecodeServer(b); err != nil {
				t.Errorf("%s of a cart of %d lines filled with %q: the client cannot read it: %v", m.Type, len(pub.Lines), fill, err)
			}
			t.Logf("%s, %d lines of %q: %d bytes", m.Type, len(pub.Lines), fill, len(b))
		}
	}
}
