package storetest

import (
	"errors"
	"slices"
	"testing"
	"time"

	"github.com/cartsync/cartsync/syncserver"
)

// Erase forgets a user cart and the guest cart merged into it, with their
// seqs, log and events, and nothing else: the guest cart is gone, the user
// cart left empty at the version after its own (its versions never repeat);
// a second Erase finds only the emptied cart and leaves it at that
// version; it takes edits afterwards, and an Erase after one empties it
// again, at a new version.
func testErase(t *testing.T, s commerceStore) {
	mutate(t, s, "guest-1", []string{"c1"}, withEvents(
		[]syncserver.Event{newEvent("g1", syncserver.EventCartCreated, "guest-1", stamp(1))}, addOp("c1", 1, "mug", 1)))
	err := s.Merge(t.Context(), "guest-1", "user-1", func(from, into *syncserver.Record) error {
		if err := loginMerge("user-1")(from, into); err != nil {
			return err
		}
		into.Events = append(into.Events, newEvent("u1", syncserver.EventCartCreated, "user-1", stamp(2)))
		return nil
	})
	if err != nil {
		t.Fatalf("Merge: %v", err)
	}
	mutate(t, s, "user-1", []string{"c2"}, apply(addOp("c2", 1, "tea", 1)))
	mutate(t, s, "other-1", []string{"c3"}, withEvents(
		[]syncserver.Event{newEvent("o1", syncserver.EventCartCreated, "other-1", stamp(3))}, addOp("c3", 1, "cap", 1)))
	waitFeed(t, s, "", 3)
	v := load(t, s, "user-1").Cart.Version

	erased, err := s.Erase(t.Context(), "user-1")
	slices.Sort(erased)
	if err != nil || !slices.Equal(erased, []string{"guest-1", "user-1"}) {
		t.Fatalf("Erase(user-1) = %q, %v; want guest-1 and user-1", erased, err)
	}
	if _, err := s.Load(t.Context(), "guest-1", []string{"c1"}); !errors.Is(err, syncserver.ErrCartNotFound) {
		t.Errorf("Load(guest-1) after Erase = %v, want ErrCartNotFound", err)
	}
	checkErased(t, s, "user-1", v+1)
	for _, id := range erased {
		if chs, err := s.Changes(t.Context(), id, 0, 10); len(chs) != 0 && err == nil {
			t.Errorf("Changes(%s) after Erase = %d changes, want none", id, len(chs))
		}
	}
	if got := feedAll(t, s, ""); !slices.Equal(ids(got), []string{"evt_o1"}) {
		t.Errorf("feed after Erase = %q, want only the other cart's evt_o1", ids(got))
	}
	if rec := load(t, s, "other-1", "c3"); len(rec.Cart.Lines) != 1 || rec.Seqs["c3"] != 1 {
		t.Errorf("the other cart after Erase: %d lines, seq %d; want it untouched", len(rec.Cart.Lines), rec.Seqs["c3"])
	}
	if again, err := s.Erase(t.Context(), "user-1"); err != nil || !slices.Equal(again, []string{"user-1"}) {
		t.Errorf("Erase(user-1) again = %q, %v; want the emptied user-1 alone", again, err)
	}
	checkErased(t, s, "user-1", v+1) // at the first call's version
	if again, err := s.Erase(t.Context(), "user-none"); err != nil || len(again) != 0 {
		t.Errorf("Erase(user-none) = %q, %v; want nothing", again, err)
	}
	mutate(t, s, "user-1", []string{"c2"}, apply(addOp("c2", 1, "pen", 1)))
	if rec := load(t, s, "user-1", "c2"); rec.Cart.Version != v+2 || len(rec.Cart.Lines) != 1 || rec.Seqs["c2"] != 1 {
		t.Errorf("user-1 after an edit: version %d, %d lines, seq %d; want %d, 1, 1", rec.Cart.Version, len(rec.Cart.Lines), rec.Seqs["c2"], v+2)
	}
	// Edited since: erased again.
	if again, err := s.Erase(t.Context(), "user-1"); err != nil || !slices.Equal(again, []string{"user-1"}) {
		t.Errorf("Erase(user-1) after an edit = %q, %v; want user-1", again, err)
	}
	checkErased(t, s, "user-1", v+3)
}

// checkErased checks that id is an emptied cart at version v, started
// there (a device that held it is told): live, no lines, no seqs, no user,
// no checkouts.
func checkErased(t testing.TB, s syncserver.Store, id string, v uint64) {
	t.Helper()
	rec, err := s.Load(t.Context(), id, []string{"c1", "c2"})
	if err != nil {
		t.Fatalf("Load(%s) after Erase: %v", id, err)
	}
	if c := rec.Cart; c.Version != v || c.Started != v || !c.Erased || len(c.Lines) != 0 || c.User != "" || len(c.Checkouts) != 0 || rec.Seqs["c1"] != 0 || rec.Seqs["c2"] != 0 {
		t.Errorf("%s after Erase: version %d (started %d, erased %v), %d lines, user %q, %d checkouts, seqs %v; want an empty cart started at %d", id, c.Version, c.Started, c.Erased, len(c.Lines), c.User, len(c.Checkouts), rec.Seqs, v)
	}
}

// A login merge of a guest cart into the user cart in flight as the
// erasure of the user starts: the erasure takes the guest cart too, once
// the merge has committed (it left the guest cart behind, merged into the
// emptied cart with its lines and log).
func testEraseDuringMerge(t *testing.T, s commerceStore) {
	mutate(t, s, "guest-1", []string{"c1"}, apply(addOp("c1", 1, "mug", 1)))
	mutate(t, s, "user-1", []string{"c2"}, apply(addOp("c2", 1, "tea", 1)))
	inMerge := make(chan struct{})
	merged := make(chan error, 1)
	go func() {
		merged <- s.Merge(t.Context(), "guest-1", "user-1", func(from, into *syncserver.Record) error {
			err := loginMerge("user-1")(from, into)
			close(inMerge)
			time.Sleep(200 * time.Millisecond) // the erasure starts meanwhile
			return err
		})
	}()
	<-inMerge
	erased, err := s.Erase(t.Context(), "user-1")
	if err := <-merged; err != nil {
		t.Fatalf("Merge: %v", err)
	}
	slices.Sort(erased)
	if err != nil || !slices.Equal(erased, []string{"guest-1", "user-1"}) {
		t.Errorf("Erase(user-1) during the merge = %q, %v; want guest-1 and user-1", erased, err)
	}
	if rec, err := s.Load(t.Context(), "guest-1", []string{"c1"}); !errors.Is(err, syncserver.ErrCartNotFound) {
		t.Errorf("Load(guest-1) after Erase = %+v, %v; want ErrCartNotFound", rec, err)
	}
}
