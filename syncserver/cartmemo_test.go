package syncserver_test

import (
	"maps"
	"testing"
	"time"

	"github.com/cartsync/cartsync/shared/cart"
	"github.com/cartsync/cartsync/syncserver"
)

// A memo entry serves a record only when PutRecord made it, it knows the
// seq of every client asked for, and no other batch has taken it; the seqs
// it knew of other clients are kept only while the write followed the row
// it had, and times are kept as stores keep them.
func TestCartMemoTake(t *testing.T) {
	m := syncserver.NewCartMemo(10)
	at := time.Date(2026, 12, 3, 18, 30, 1, 123456789, time.FixedZone("CET", 3600))
	rec := func(version uint64, seqs map[string]uint64) *syncserver.Record {
		return &syncserver.Record{
			Cart: &cart.Cart{ID: "g_1", Version: version, Lines: []*cart.Line{}},
			Meta: syncserver.Meta{Kind: syncserver.KindGuest, UpdatedAt: at},
			Seqs: seqs,
		}
	}

	// take is Take and at once Release, for the checks of what it gives.
	take := func(id string, clients []string) (string, *syncserver.Record, bool) {
		stamp, rec, ok := m.Take(id, clients)
		if ok {
			m.Release(id, stamp)
		}
		return stamp, rec, ok
	}

	m.Put("g_1", "s1", &cart.Cart{ID: "g_1", Version: 1})
	if _, _, ok := take("g_1", nil); ok {
		t.Error("Take of an entry made by Put: ok, want none (no meta or seqs)")
	}

	m.PutRecord("g_1", "", "s2", rec(2, map[string]uint64{"a": 3}))
	stamp, got, ok := m.Take("g_1", []string{"a"})
	if !ok || stamp != "s2" || got.Cart.Version != 2 || !got.Exists || !maps.Equal(got.Seqs, map[string]uint64{"a": 3}) {
		t.Fatalf("Take(a) = %q, %+v, %v; want s2, version 2 with a=3", stamp, got, ok)
	}
	if _, _, ok := m.Take("g_1", []string{"a"}); ok {
		t.Error("Take of a taken entry: ok, want none until Release")
	}
	m.Release("g_1", "s-other")
	if _, _, ok := m.Take("g_1", []string{"a"}); ok {
		t.Error("Take after the Release of another stamp: ok, want none")
	}
	m.Release("g_1", "s2")
	want := time.Date(2026, 12, 3, 17, 30, 1, 123000000, time.UTC)
	if got.Meta.Kind != syncserver.KindGuest || got.Meta.UpdatedAt != want {
		t.Errorf("meta %+v, want kind guest updated at %v (UTC, to the millisecond)", got.Meta, want)
	}
	if _, _, ok := take("g_1", []string{"a", "b"}); ok {
		t.Error("Take(a, b) with b unknown: ok, want none")
	}

	// A write that followed s2 keeps a's seq and adds b's; its new
	// entry is not taken, although s2's was.
	if _, _, ok := m.Take("g_1", []string{"a"}); !ok {
		t.Fatal("Take after Release: none, want the entry")
	}
	m.PutRecord("g_1", "s2", "s3", rec(3, map[string]uint64{"b": 1}))
	if stamp, got, ok := take("g_1", []string{"a", "b"}); !ok || stamp != "s3" || !maps.Equal(got.Seqs, map[string]uint64{"a": 3, "b": 1}) {
		t.Errorf("after a write that followed s2: Take(a, b) = %q, %+v, %v; want s3 with a=3, b=1", stamp, got, ok)
	}
	// One that did not (the row was another writer's) knows only its own.
	m.PutRecord("g_1", "s-other", "s4", rec(5, map[string]uint64{"b": 2}))
	if _, _, ok := take("g_1", []string{"a"}); ok {
		t.Error("after a write that did not follow the memo's row: Take(a) ok, want none (a's seq unknown)")
	}
	if stamp, got, ok := take("g_1", []string{"b"}); !ok || stamp != "s4" || got.Seqs["b"] != 2 || got.Cart.Version != 5 {
		t.Errorf("Take(b) = %q, %+v, %v; want s4, version 5 with b=2", stamp, got, ok)
	}

	// The record's seqs are the caller's; the memo's stay.
	_, got, _ = take("g_1", []string{"b"})
	got.Seqs["b"] = 99
	if _, again, _ := take("g_1", []string{"b"}); again.Seqs["b"] != 2 {
		t.Errorf("changing a returned record's seqs changed the memo: b = %d", again.Seqs["b"])
	}

	// Advance puts a write decided on the entry it took, and nothing if
	// the entry was replaced meanwhile (by a later write).
	m.Advance("g_1", "s-old", "s5", rec(4, map[string]uint64{"b": 9}))
	if stamp, got, ok := take("g_1", []string{"b"}); !ok || stamp != "s4" || got.Seqs["b"] != 2 {
		t.Errorf("after Advance from a replaced entry: Take(b) = %q, %+v, %v; want s4 unchanged", stamp, got, ok)
	}
	m.Advance("g_1", "s4", "s6", rec(6, map[string]uint64{"c": 1}))
	if stamp, got, ok := take("g_1", []string{"b", "c"}); !ok || stamp != "s6" || got.Cart.Version != 6 || !maps.Equal(got.Seqs, map[string]uint64{"b": 2, "c": 1}) {
		t.Errorf("after Advance from s4: Take(b, c) = %q, %+v, %v; want s6, version 6, b=2 and c=1", stamp, got, ok)
	}

	m.Forget("g_1")
	if _, _, ok := take("g_1", nil); ok {
		t.Error("Take after Forget: ok, want none")
	}
}
