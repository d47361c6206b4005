package cart

import (
	"fmt"
	"testing"
	"time"
)

// A checkout of the user's cart completed after another device's login
// merged or replaced into that cart: the order takes out what it checked
// out, and what the login brought in after the checkout stays, whatever
// the policy (a replace rebuilt the lines the checkout named).
func TestCheckoutCompletedAfterALogin(t *testing.T) {
	now := time.Now()
	for _, tc := range []struct {
		policy Policy
		want   string
	}{
		{PolicyMerge, "[CAP=1 MUG=2]"},
		{PolicyReplace, "[CAP=1 MUG=2]"},
	} {
		t.Run(string(tc.policy), func(t *testing.T) {
			user := &Cart{ID: "u_1", Lines: []*Line{}}
			if _, err := user.Apply(Op{Client: "a", Seq: 1, Kind: KindAdd, SKU: "MUG", Quantity: 2}, "phone", DefaultLimits); err != nil {
				t.Fatal(err)
			}
			co, _, ce := NewCheckout(user, user.Version, nil, "co_1", now, time.Hour)
			if ce != nil {
				t.Fatal(ce)
			}
			guest := &Cart{ID: "g_1", Lines: []*Line{}}
			for i, sku := range []string{"MUG", "MUG", "CAP"} {
				if _, err := guest.Apply(Op{Client: "b", Seq: uint64(i + 1), Kind: KindAdd, SKU: sku, Quantity: 1}, "laptop", DefaultLimits); err != nil {
					t.Fatal(err)
				}
			}
			if _, err := user.Merge(guest, tc.policy, "laptop", DefaultLimits); err != nil {
				t.Fatal(err)
			}
			if _, done, ce := user.CompleteCheckout(co.ID, "ORDER-1", "checkout", now, DefaultLimits); ce != nil || !done {
				t.Fatalf("complete: %v, %v", done, ce)
			}
			var got []string
			for _, k := range user.SortedKeys() {
				got = append(got, fmt.Sprintf("%s=%d", k, user.Line(k).Quantity))
			}
			if fmt.Sprint(got) != tc.want {
				t.Errorf("after the order the cart holds %v, want %s: what the login brought in stays", got, tc.want)
			}
		})
	}
}

// A guest's checkout taken by the user cart at a login whose sum was
// capped at the line's maximum: the order takes out only what reached the
// line, not the user's own items.
func TestAdoptedCheckoutOfACappedSum(t *testing.T) {
	now := time.Now()
	user := &Cart{ID: "u_1", Lines: []*Line{}}
	if _, err := user.Apply(Op{Client: "a", Seq: 1, Kind: KindAdd, SKU: "PEN", Quantity: 998}, "phone", DefaultLimits); err != nil {
		t.Fatal(err)
	}
	guest := &Cart{ID: "g_1", Lines: []*Line{}}
	if _, err := guest.Apply(Op{Client: "b", Seq: 1, Kind: KindAdd, SKU: "PEN", Quantity: 2}, "laptop", DefaultLimits); err != nil {
		t.Fatal(err)
	}
	co, _, ce := NewCheckout(guest, guest.Version, nil, "co_g", now, time.Hour)
	if ce != nil {
		t.Fatal(ce)
	}
	res, err := user.Merge(guest, PolicyMerge, "laptop", DefaultLimits)
	if err != nil || res.Items != 1 {
		t.Fatalf("merge: %+v, %v; want 1 item reached", res, err)
	}
	user.AdoptCheckouts(guest, now)
	if _, done, ce := user.CompleteCheckout(co.ID, "ORDER-1", "checkout", now, DefaultLimits); ce != nil || !done {
		t.Fatalf("complete: %v, %v", done, ce)
	}
	if l := user.Line("PEN"); l == nil || l.Quantity != 998 {
		t.Errorf("after the order: %+v, want the user's own 998 pens", l)
	}
}
