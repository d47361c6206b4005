package postgres

import (
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/cartsync/cartsync/syncserver"
)

// A transaction that took its seq before another committed a later one is
// not skipped by the feed: while it runs, the feed holds back the later
// event (whose transaction started after it), and once it commits both
// come, the earlier seq first. A feed on seq alone would have handed out
// the later one and skipped the earlier.
func TestFeedWaitsForEarlierSeq(t *testing.T) {
	s := openStore(t, schemaURL(t))
	defer s.Close()
	ctx := t.Context()
	now := time.Now()

	tx, err := s.pool.Begin(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer tx.Rollback(ctx)
	var early int64
	if err := tx.QueryRow(ctx, sqlInsertEvent+` RETURNING seq`,
		"evt_early", syncserver.EventCartCreated, "cart-early", now, `{}`, now, syncserver.EventPending).Scan(&early); err != nil {
		t.Fatalf("insert the early event: %v", err)
	}
	err = s.Mutate(ctx, "cart-late", nil, func(rec *syncserver.Record) error {
		rec.Events = append(rec.Events, syncserver.Event{ID: "evt_late", Type: syncserver.EventCartCreated, CartID: "cart-late", At: now})
		return nil
	})
	if err != nil {
		t.Fatalf("Mutate: %v", err)
	}

	evs, err := s.EventsAfter(ctx, "", 10)
	if err != nil {
		t.Fatalf("EventsAfter while the early transaction runs: %v", err)
	}
	if len(evs) != 0 {
		t.Errorf("EventsAfter while the early transaction runs = %+v, want nothing yet", evs)
	}
	if err := tx.Commit(ctx); err != nil {
		t.Fatal(err)
	}

	var got []syncserver.Event
	for deadline := time.Now().Add(10 * time.Second); len(got) < 2 && time.Now().Before(deadline); time.Sleep(20 * time.Millisecond) {
		if got, err = s.EventsAfter(ctx, "", 10); err != nil {
			t.Fatalf("EventsAfter: %v", err)
		}
	}
	if len(got) != 2 || got[0].ID != "evt_early" || got[1].ID != "evt_late" {
		t.Fatalf("EventsAfter after the commit = %+v, want evt_early then evt_late", got)
	}
	if got[0].Seq != early || got[1].Seq <= early {
		t.Errorf("seqs: early %d (inserted as %d), late %d; want the late one greater", got[0].Seq, early, got[1].Seq)
	}
	if rest, err := s.EventsAfter(ctx, got[0].Cursor, 10); err != nil || len(rest) != 1 || rest[0].ID != "evt_late" {
		t.Errorf("EventsAfter(early's cursor) = %+v, %v; want evt_late", rest, err)
	}
}

func TestParseCursor(t *testing.T) {
	tests := []struct {
		cursor string
		xid    uint64
		seq    int64
		bad    bool
	}{
		{"", 0, 0, false},
		{"751-12", 751, 12, false},
		{"18446744073709551615-9223372036854775807", 1<<64 - 1, 1<<63 - 1, false},
		{"12", 0, 0, true},
		{"-12", 0, 0, true},
		{"12-", 0, 0, true},
		{"1-2-3", 0, 0, true},
		{"+1-2", 0, 0, true},
		{"1-+2", 0, 0, true},
		{"x-1", 0, 0, true},
		{"18446744073709551616-1", 0, 0, true},
	}
	for _, tt := range tests {
		xid, seq, err := parseCursor(tt.cursor)
		switch {
		case tt.bad && err == nil:
			t.Errorf("parseCursor(%q) = %d, %d; want an error", tt.cursor, xid, seq)
		case tt.bad && !strings.Contains(err.Error(), "bad cursor"):
			t.Errorf("parseCursor(%q) error = %v; want it to say bad cursor", tt.cursor, err)
		case !tt.bad && (err != nil || xid != tt.xid || seq != tt.seq):
			t.Errorf("parseCursor(%q) = %d, %d, %v; want %d, %d", tt.cursor, xid, seq, err, tt.xid, tt.seq)
		}
	}
}

// Two stores on one schema, as two instances, claim at once: no event is
// claimed twice, and every cart's head is claimed.
func TestClaimAcrossInstances(t *testing.T) {
	url := schemaURL(t)
	a, b := openStore(t, url), openStore(t, url)
	defer a.Close()
	defer b.Close()
	const carts = 200
	at := time.Now().Add(-time.Minute)
	for i := range carts {
		id := fmt.Sprintf("cart-%03d", i)
		err := a.Mutate(t.Context(), id, nil, func(rec *syncserver.Record) error {
			rec.Events = append(rec.Events, syncserver.Event{ID: "evt_" + id, Type: syncserver.EventCartCreated, CartID: id, At: at})
			return nil
		})
		if err != nil {
			t.Fatalf("Mutate: %v", err)
		}
	}
	now := time.Now()
	results := make(chan []string, 8)
	for i := range 8 {
		s := a
		if i%2 == 1 {
			s = b
		}
		go func() {
			var got []string
			for {
				evs, err := s.ClaimEvents(t.Context(), now, time.Hour, 5)
				if err != nil {
					t.Errorf("ClaimEvents: %v", err)
					break
				}
				if len(evs) == 0 {
					break
				}
				for _, ev := range evs {
					got = append(got, ev.ID)
				}
			}
			results <- got
		}()
	}
	var all []string
	for range 8 {
		all = append(all, <-results...)
	}
	slices.Sort(all)
	if n := len(slices.Compact(slices.Clone(all))); n != len(all) {
		t.Errorf("%d claims but %d distinct events: some claimed twice", len(all), n)
	}
	if len(all) != carts {
		t.Errorf("claimed %d events, want %d", len(all), carts)
	}
}
