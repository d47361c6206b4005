package syncserver_test

import (
	"net/url"
	"testing"

	"github.com/cartsync/cartsync/shared/cart"
	"github.com/cartsync/cartsync/shared/protocol"
	"github.com/cartsync/cartsync/syncserver"
)

// The feed answers 400 invalid, with the typed error body, for a cursor it
// never gave: one past the newest (as from a server whose store was reset)
// and one that is no cursor at all. The newest cursor reads an empty page.
func TestFeedRefusesCursorNotGiven(t *testing.T) {
	for name, open := range commerceStores() {
		t.Run(name, func(t *testing.T) {
			s := newShop(t, open(t), nil)
			s.push(s.device(), cart.Op{Client: "c", Seq: 1, Kind: cart.KindAdd, SKU: "PEN", Quantity: 1})
			p := s.feedUntil("", func(p syncserver.EventPage) bool { return len(p.Events) >= 2 })
			if len(p.Events) < 2 {
				t.Fatalf("feed = %+v, want the cart's first events", p)
			}
			if again := s.feed(p.Next); len(again.Events) != 0 || again.Next != p.Next {
				t.Errorf("feed after the newest cursor %q = %+v, want an empty page with the same next", p.Next, again)
			}
			// Every number of the newest cursor made a million times
			// larger: past anything given, whatever the store.
			past := ""
			for i, r := range p.Next {
				past += string(r)
				if r >= '0' && r <= '9' && (i+1 == len(p.Next) || p.Next[i+1] < '0' || p.Next[i+1] > '9') {
					past += "000000"
				}
			}
			for _, after := range []string{past, "999999999", "garbage"} {
				var e syncserver.ErrorResponse
				code := s.call("GET", "/v1/backend/events?after="+url.QueryEscape(after), testAPIKey, nil, &e)
				if code != 400 || e.Error == nil || e.Error.Code != protocol.ErrInvalid {
					t.Errorf("after=%s (newest cursor %s): %d %+v, want 400 invalid", after, p.Next, code, e.Error)
				}
			}
		})
	}
}
