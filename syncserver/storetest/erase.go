package storetest

import (
	"errors"
	"slices"
	"testing"

	"github.com/cartsync/cartsync/syncserver"
)

// Erase deletes a user cart and the guest cart merged into it, with their
// seqs, log and events, and nothing else; a second Erase finds nothing;
// the id takes a new cart afterwards.
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

	erased, err := s.Erase(t.Context(), "user-1")
	slices.Sort(erased)
	if err != nil || !slices.Equal(erased, []string{"guest-1", "user-1"}) {
		t.Fatalf("Erase(user-1) = %q, %v; want guest-1 and user-1", erased, err)
	}
	for _, id := range erased {
		if _, err := s.Load(t.Context(), id, []string{"c1", "c2"}); !errors.Is(err, syncserver.ErrCartNotFound) {
			t.Errorf("Load(%s) after Erase = %v, want ErrCartNotFound", id, err)
		}
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
	if again, err := s.Erase(t.Context(), "user-1"); err != nil || len(again) != 0 {
		t.Errorf("Erase(user-1) again = %q, %v; want nothing", again, err)
	}
	mutate(t, s, "user-1", []string{"c2"}, apply(addOp("c2", 1, "pen", 1)))
	if rec := load(t, s, "user-1", "c2"); rec.Cart.Version != 1 || len(rec.Cart.Lines) != 1 || rec.Seqs["c2"] != 1 {
		t.Errorf("user-1 made anew: version %d, %d lines, seq %d; want 1, 1, 1", rec.Cart.Version, len(rec.Cart.Lines), rec.Seqs["c2"])
	}
}
