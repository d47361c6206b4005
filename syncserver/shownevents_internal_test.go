package syncserver

import (
	"testing"
	"time"
)

// The feed shows next_at only on pending events and last_error only with
// the failed attempts it belongs to: an event retried by hand and then
// delivered shows no failure.
func TestShownEvents(t *testing.T) {
	at := time.Date(2026, 12, 4, 14, 41, 10, 0, time.UTC)
	got := shownEvents([]Event{
		{ID: "evt_retried", State: EventDelivered, LastError: "HTTP 500", NextAt: at},
		{ID: "evt_failing", State: EventPending, Attempts: 2, LastError: "HTTP 500", NextAt: at},
		{ID: "evt_dead", State: EventDead, Attempts: 9, LastError: "HTTP 500", NextAt: at},
	})
	want := []struct {
		lastError string
		nextAt    time.Time
	}{{"", time.Time{}}, {"HTTP 500", at}, {"HTTP 500", time.Time{}}}
	for i, w := range want {
		if got[i].LastError != w.lastError || !got[i].NextAt.Equal(w.nextAt) {
			t.Errorf("%s: last_error %q, next_at %v; want %q, %v", got[i].ID, got[i].LastError, got[i].NextAt, w.lastError, w.nextAt)
		}
	}
	if evs := shownEvents(nil); evs == nil || len(evs) != 0 {
		t.Errorf("shownEvents(nil) = %#v, want an empty list", evs)
	}
}
