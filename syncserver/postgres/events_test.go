package postgres

import (
	"testing"
	"time"

	"github.com/cartsync/cartsync/syncserver"
)

// An event that had failed attempts before migration 0006 (no tried_since)
// keeps the window it had: it counts from its at. One never tried starts a
// series at its first claim.
func TestClaimTriedSinceOfOldRows(t *testing.T) {
	s := openStore(t, schemaURL(t))
	defer s.Close()
	ctx := t.Context()
	now := time.Now().Truncate(time.Millisecond)
	created := now.Add(-time.Hour)
	err := s.Mutate(ctx, "cart-old", nil, func(rec *syncserver.Record) error {
		rec.Events = append(rec.Events,
			syncserver.Event{ID: "evt_tried", Type: syncserver.EventCartCreated, CartID: "cart-old", At: created},
			syncserver.Event{ID: "evt_fresh", Type: syncserver.EventCartCreated, CartID: "cart-fresh", At: created})
		return nil
	})
	if err != nil {
		t.Fatalf("Mutate: %v", err)
	}
	if _, err := s.pool.Exec(ctx, `UPDATE events SET attempts = 3, tried_since = NULL WHERE id = 'evt_tried'`); err != nil {
		t.Fatal(err)
	}
	evs, err := s.ClaimEvents(ctx, now, time.Minute, 10)
	if err != nil || len(evs) != 2 {
		t.Fatalf("ClaimEvents = %+v, %v; want both events", evs, err)
	}
	for _, ev := range evs {
		want := now
		if ev.ID == "evt_tried" {
			want = created
		}
		if !ev.TriedSince.Equal(want) {
			t.Errorf("%s: TriedSince %v, want %v", ev.ID, ev.TriedSince, want)
		}
	}
}
