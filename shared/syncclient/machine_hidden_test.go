package syncclient

import (
	"strings"
	"testing"

	"github.com/cartsync/cartsync/shared/cart"
	"github.com/cartsync/cartsync/shared/protocol"
)

// An account's cart hidden after a logout (hidden): what the next person
// sees and where their edits go.

// After a logout, a login of someone else (offline, before any welcome,
// or with a token the server refuses) does not uncover the last account's
// cart; edits made meanwhile are queued for no cart, under a client id of
// their own.
func TestMachineHiddenUntilTheServerWelcomesTheLogin(t *testing.T) {
	h := newHarness(t)
	signedIn(h)
	if h.m.confirmed.User != "ann" {
		t.Fatalf("the confirmed cart is marked as %q's, want ann's", h.m.confirmed.User)
	}
	annClient := h.m.client
	h.m.stop()
	h.m.setUser("", "")
	if len(h.m.shown.Lines) != 0 || !h.m.hidden() {
		t.Fatalf("after the logout: shown %d lines, hidden %v; want an empty cart", len(h.m.shown.Lines), h.m.hidden())
	}
	h.m.setUser("user:bob", "")
	if st := h.m.snapshot(); len(st.Cart.Lines) != 0 || st.User != "" || st.Confirmed != 0 {
		t.Fatalf("bob's login, offline: shown %d lines of user %q at v%d, want nothing of ann's", len(st.Cart.Lines), st.User, st.Confirmed)
	}
	h.edit(add("tea"))
	for _, op := range outboxStored(h) {
		if op.SKU == "tea" && (op.Cart != "" || op.Client == annClient) {
			t.Errorf("bob's tea is queued as %s/%d on cart %q; want no cart and not ann's client id %s", op.Client, op.Seq, op.Cart, annClient)
		}
	}
	// Welcomed as ann again: her cart is shown.
	h.m.setUser("user:ann", "")
	h.do(opened(h))
	h.do(got(h, welcomeUser("tok", "ann", "cart-1")))
	h.do(got(h, reply("h1", cartNamed("u-ann", 1, "mug=1"), nil)))
	if h.m.hidden() || h.m.shown.Line("mug") == nil || h.m.shown.Line("tea") == nil {
		t.Errorf("welcomed as ann: hidden %v, shown %v; want her mug and the tea", h.m.hidden(), h.m.shown.Lines)
	}
}

// A logout ends the account's connection before anything more is sent on
// it: an edit made right after is for the next cart, not the account's.
func TestMachineNothingMoreOnTheAccountsConnectionAfterALogout(t *testing.T) {
	h := newHarness(t)
	signedIn(h)
	h.m.setUser("", "") // the Engine ends the connection a moment later
	h.edit(add("tea"))
	out := strings.Join(h.do(woken(h)), "\n")
	if strings.Contains(out, "send push") || !strings.Contains(out, "end: "+errUserChanged.Error()) {
		t.Errorf("woken after a logout: %s; want the connection ended and no push", out)
	}
}

// Edits queued for no cart wait while a login's choice is pending: the
// choice decides what the account's cart becomes.
func TestMachineOpsForNoCartWaitForTheChoice(t *testing.T) {
	h := newHarness(t)
	signedIn(h)
	h.m.stop()
	h.m.setUser("", "")
	h.edit(add("tea"))
	h.m.setUser("user:bob", cart.PolicyChoose)
	h.do(opened(h))
	h.do(got(h, welcomeUser("tok", "bob", "cart-2")))
	h.do(got(h, mergeNote(protocol.MergeInfo{Status: protocol.MergeChoose, Version: 3, Guest: cartNamed("cart-2", 0), User: cartNamed("u-bob", 3, "x=1")})))
	out := strings.Join(h.do(got(h, reply("h1", cartNamed("u-bob", 3, "x=1"), nil))), "\n")
	out += strings.Join(h.do(woken(h)), "\n")
	if strings.Contains(out, "send push") {
		t.Errorf("while bob chooses: %s; want the tea held", out)
	}
}
