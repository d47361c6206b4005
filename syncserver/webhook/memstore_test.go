package webhook

import (
	"context"
	"net/http"
	"sync"
	"testing"
	"time"

	"github.com/cartsync/cartsync/syncserver"
	"github.com/cartsync/cartsync/syncserver/memstore"
)

// TestMemstore delivers through memstore's outbox, with a receiver that
// fails each event's first attempt.
func TestMemstore(t *testing.T) {
	r := newReceiver(t, func(id string, n int) (int, bool) {
		if n == 0 {
			return http.StatusBadGateway, false
		}
		return http.StatusOK, false
	})
	store := memstore.New()
	evs := cartEvents(3, 3)
	ctx := context.Background()
	for _, ev := range evs {
		err := store.Mutate(ctx, ev.CartID, nil, func(rec *syncserver.Record) error {
			rec.Events = append(rec.Events, ev)
			return nil
		})
		if err != nil {
			t.Fatal(err)
		}
	}
	cfg, reg, _ := testConfig(store, r.srv.URL)
	start(t, newDeliverer(t, cfg))
	waitFor(t, "every event delivered", func() bool {
		counts, err := store.EventCounts(ctx)
		return err == nil && counts[syncserver.EventDelivered] == int64(len(evs))
	})
	r.check(t, evs, 2)
	if got := metric(t, reg, "cartsync_webhook_retried_total"); got != float64(len(evs)) {
		t.Errorf("retried_total %v, want %d", got, len(evs))
	}
	if dead, err := store.DeadEvents(ctx, 0, 10); err != nil || len(dead) != 0 {
		t.Errorf("DeadEvents = %v, %v; want none", dead, err)
	}
}

// clock is a settable Config.Now.
type clock struct {
	mu  sync.Mutex
	now time.Time
}

func (c *clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

func (c *clock) advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.now = c.now.Add(d)
}

// TestRetryWindowFromFirstAttempt checks, through memstore's outbox and
// with a receiver that fails every attempt, that the retry window counts
// from an event's first attempt, not from its creation: an event created
// long before (or held up behind its cart's earlier event) gets the whole
// window, and so does one revived by RetryEvent.
func TestRetryWindowFromFirstAttempt(t *testing.T) {
	r := newReceiver(t, func(string, int) (int, bool) { return http.StatusServiceUnavailable, false })
	store := memstore.New()
	clk := &clock{now: time.Now()}
	t0 := clk.Now()
	ctx := context.Background()
	old := syncserver.Event{ID: "evt_old", Type: syncserver.EventCartCreated, CartID: "cart_a", At: t0.Add(-48 * time.Hour)}
	next := syncserver.Event{ID: "evt_next", Type: syncserver.EventCartUpdated, CartID: "cart_a", At: t0}
	err := store.Mutate(ctx, "cart_a", nil, func(rec *syncserver.Record) error {
		rec.Events = append(rec.Events, old, next)
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	cfg, _, _ := testConfig(store, r.srv.URL)
	cfg.Now = clk.Now
	cfg.RetryWindow = time.Hour
	cfg.BackoffBase, cfg.BackoffCap = time.Minute, time.Minute
	d := newDeliverer(t, cfg)
	d.jitter = func(n time.Duration) time.Duration { return n } // due again a minute later
	start(t, d)

	// event returns id's state in the outbox.
	event := func(id string) syncserver.Event {
		t.Helper()
		evs, err := store.EventsAfter(ctx, "", 10)
		if err != nil {
			t.Fatal(err)
		}
		for _, ev := range evs {
			if ev.ID == id {
				return ev
			}
		}
		t.Fatalf("no event %s", id)
		return syncserver.Event{}
	}
	// failedOnce waits for id's first failed attempt of a series and
	// checks that it left the event pending.
	failedOnce := func(what, id string) {
		t.Helper()
		waitFor(t, what+": a failed attempt", func() bool { return event(id).Attempts == 1 })
		if ev := event(id); ev.State != syncserver.EventPending {
			t.Errorf("%s: after one failed attempt, %s is %s, want pending: the retry window starts at the first attempt", what, id, ev.State)
		}
	}

	failedOnce("created two days ago", old.ID)
	// Past the window since the first attempt: the next failure kills it.
	clk.advance(2 * time.Hour)
	waitFor(t, "the old event dead", func() bool { return event(old.ID).State == syncserver.EventDead })
	if n := event(old.ID).Attempts; n != 2 {
		t.Errorf("the old event died after %d attempts, want 2", n)
	}
	// The cart's next event waited two hours behind it: its own window
	// starts now.
	failedOnce("held up behind its cart's earlier event", next.ID)

	// A manual retry starts a new window.
	if err := store.RetryEvent(ctx, old.ID); err != nil {
		t.Fatal(err)
	}
	d.Kick()
	failedOnce("retried by hand", old.ID)
	clk.advance(30 * time.Minute)
	waitFor(t, "a second failure within the new window", func() bool { return event(old.ID).Attempts == 2 })
	if ev := event(old.ID); ev.State != syncserver.EventPending {
		t.Errorf("retried by hand: %s after a second attempt within the window, want pending", ev.State)
	}
}
