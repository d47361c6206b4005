package webhook

import (
	"context"
	"net/http"
	"testing"

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
