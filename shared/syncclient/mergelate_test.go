package syncclient

import (
	"testing"

	"github.com/cartsync/cartsync/shared/cart"
	"github.com/cartsync/cartsync/shared/protocol"
)

// TestMergeLateCountsWhatTheServerApplied: the guest cart's adds still
// waiting at the login go to the user cart after the merge, whatever its
// policy, and count as its late items once the server answers them
// applied. One that had reached the guest cart before the login (a push in
// flight whose ack the login cut off) is answered duplicate: it was merged
// with the guest cart (or set aside with it by keep), and does not count.
// Until the answers come, the merge is settling.
func TestMergeLateCountsWhatTheServerApplied(t *testing.T) {
	for _, policy := range []cart.Policy{cart.PolicyKeep, cart.PolicyMerge} {
		h := newHarness(t)
		guestMug(h)
		h.m.take()
		h.edit(cart.Op{Kind: cart.KindAdd, SKU: "tea", Quantity: 2})
		h.do(woken(h)) // pushed: the server applies it to cart-1, its ack never comes
		h.m.stop()
		h.edit(cart.Op{Kind: cart.KindAdd, SKU: "jam", Quantity: 3}) // offline
		h.do(logIn("user:ann", policy)(h))
		h.do(opened(h))
		h.do(got(h, welcomeUser("", "ann", "cart-1")))
		h.do(got(h, mergeNote(protocol.MergeInfo{Status: protocol.MergeMerged, Version: 5, Result: &cart.MergeResult{Policy: policy}})))
		if st := h.m.snapshot(); st.MergeLate != 0 || !st.MergeSettling {
			t.Fatalf("%s: before the answers: MergeLate %d, settling %v; want 0, settling", policy, st.MergeLate, st.MergeSettling)
		}
		h.do(got(h, reply("h1", cartNamed("u-ann", 5, "mug=1"), nil)))
		h.m.take()
		ops := append([]cart.Op(nil), h.m.pending...)
		if len(ops) != 2 {
			t.Fatalf("%s: pending %+v, want the tea and the jam", policy, ops)
		}
		h.do(got(h, ack("p2", cartNamed("u-ann", 6, "jam=3", "mug=1"),
			protocol.Result{Client: ops[0].Client, Seq: ops[0].Seq, Status: protocol.StatusDuplicate},
			applied(protocol.OpID{Client: ops[1].Client, Seq: ops[1].Seq}, 6))))
		if st := h.m.snapshot(); st.MergeLate != 3 || st.MergeSettling {
			t.Errorf("%s: after the answers: MergeLate %d, settling %v; want the jam's 3, settled", policy, st.MergeLate, st.MergeSettling)
		}
	}
}
