package syncserver_test

import (
	"encoding/json"
	"net/url"
	"testing"
	"time"

	"github.com/cartsync/cartsync/shared/cart"
	"github.com/cartsync/cartsync/shared/protocol"
	"github.com/cartsync/cartsync/syncserver"
	"github.com/cartsync/cartsync/syncserver/memstore"
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

// next_at is when a pending event is due; the feed and the dead list leave
// it out of events in any other state (a dead event is not due again until
// a retry makes it pending).
func TestEventNextAtOnlyWhenPending(t *testing.T) {
	st := memstore.New()
	s := newShop(t, st, func(c *syncserver.Config) { c.Webhooks = true })
	s.push(s.device(), cart.Op{Client: "c", Seq: 1, Kind: cart.KindAdd, SKU: "PEN", Quantity: 1})
	evs, err := st.ClaimEvents(t.Context(), time.Now().Add(time.Hour), time.Minute, 10)
	if err != nil || len(evs) != 1 {
		t.Fatalf("ClaimEvents = %+v, %v; want the cart's first event", evs, err)
	}
	if err := st.EventFailed(t.Context(), evs[0].Seq, time.Now().Add(time.Hour), "HTTP 410", true); err != nil {
		t.Fatal(err)
	}
	type event struct {
		ID     string          `json:"id"`
		State  string          `json:"state"`
		NextAt json.RawMessage `json:"next_at"`
	}
	var feed, dead struct{ Events []event }
	if code := s.call("GET", "/v1/backend/events", testAPIKey, nil, &feed); code != 200 || len(feed.Events) != 2 {
		t.Fatalf("feed: %d %+v, want the cart's two events", code, feed)
	}
	if code := s.call("GET", "/v1/backend/events/dead", testAPIKey, nil, &dead); code != 200 || len(dead.Events) != 1 {
		t.Fatalf("dead events: %d %+v, want one", code, dead)
	}
	for _, ev := range append(feed.Events, dead.Events...) {
		if pending := ev.State == syncserver.EventPending; pending != (ev.NextAt != nil) {
			t.Errorf("event %s, %s: next_at %s; want it only when pending", ev.ID, ev.State, ev.NextAt)
		}
	}
}
