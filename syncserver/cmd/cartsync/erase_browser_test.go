package main

import (
	"net/http"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/cartsync/cartsync/syncserver"
)

// A user whom the storefront has forgotten while their page is open: the
// page hears one expired event whose reason is erased, then the empty
// cart, and the live region says the cart was cleared at the shop's
// request, never first that it expired, nor that the widget went offline
// and came back (the server ends the connection to hand the cart over),
// and the page's sync status never says offline meanwhile.
func TestBrowserErasedCartTold(t *testing.T) {
	srv := startCommerceServer(t)
	tb := startBrowser(t, t.TempDir()).first
	tb.navigate(srv.demo() + "/")
	ready(tb)
	loginAs(tb, "carol", "", "merge")
	call(tb, "add", "TEE-01", 1)
	before := waitSynced(tb, quantities{"TEE-01": 1})
	eval[bool](tb, `(window.__expired = [], cartsync.on('expired', (e) => window.__expired.push(e.reason)), true)`)
	eval[bool](tb, `(window.__status = [], cartsync.on('sync', (s) => window.__status.push(s.status)), true)`)
	recordLive(tb, srv.origin())

	var er syncserver.EraseResponse
	srv.backendCall(http.MethodDelete, "/v1/backend/users/carol/cart", nil, &er)
	if !slices.Contains(er.Erased, before.ID) {
		t.Fatalf("the erasure erased %q, want carol's cart %s among them", er.Erased, before.ID)
	}
	after := waitCart(tb, "the emptied cart", 15*time.Second, func(c hostCart) bool { return c.ID == before.ID && len(c.Lines) == 0 && synced(c) })
	if after.Version <= before.Version {
		t.Errorf("the emptied cart at version %d, want after %d", after.Version, before.Version)
	}
	waitHost(tb, "the expired event", `window.__expired.length > 0`)
	if got := eval[[]string](tb, `window.__expired`); !slices.Equal(got, []string{"erased"}) {
		t.Errorf("the page heard expired events with reasons %q, want one, erased", got)
	}
	time.Sleep(500 * time.Millisecond) // what the live region might say late
	if got := eval[[]string](tb, `window.__status`); slices.Contains(got, "offline") {
		t.Errorf("the page's sync statuses %q: offline while the server handed over the emptied cart", got)
	}
	said := liveSaid(tb, srv.origin())
	if !slices.ContainsFunc(said, func(s string) bool { return strings.HasPrefix(s, "Your cart was cleared at the shop's request") }) ||
		slices.ContainsFunc(said, func(s string) bool {
			return strings.HasPrefix(s, "Your previous cart expired") || strings.HasPrefix(s, "Offline.") || s == "Back online."
		}) {
		t.Errorf("the live region said %q; want that the cart was cleared, and nothing of an expiry or of going offline", said)
	}
}
