package storetest

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/cartsync/cartsync/shared/cart"
	"github.com/cartsync/cartsync/syncserver"
)

// keepTombstones is a tombstone cutoff before any tombstone.
var keepTombstones time.Time

// dropTombstones returns a tombstone cutoff after every tombstone made so
// far: stores stamp tombstones with their own clock.
func dropTombstones() time.Time { return time.Now().Add(time.Hour) }

func purge(t testing.TB, s syncserver.Store, kind string, cutoff, tombstoneCutoff time.Time, limit int) []string {
	t.Helper()
	ids, err := s.Purge(t.Context(), kind, cutoff, tombstoneCutoff, limit, false)
	if err != nil {
		t.Fatalf("Purge(%s, %v, %v, %d): %v", kind, cutoff, tombstoneCutoff, limit, err)
	}
	slices.Sort(ids)
	return ids
}

// makeCart creates a cart of kind with one line, last changed at.
func makeCart(t testing.TB, s syncserver.Store, id, kind string, at time.Time) {
	t.Helper()
	mutate(t, s, id, []string{"c1"}, func(rec *syncserver.Record) error {
		if err := applyOne(rec, addOp("c1", rec.Seqs["c1"]+1, "mug", 1)); err != nil {
			return err
		}
		rec.Meta.Kind = kind
		rec.Meta.UpdatedAt = at
		return nil
	})
}

// checkExpired checks that id answers as an expired cart: Load, Mutate,
// Changes and Merge on either side are ErrCartExpired, and fn is never
// called.
func checkExpired(t testing.TB, s syncserver.Store, id string) {
	t.Helper()
	if rec, err := s.Load(t.Context(), id, []string{"c1"}); !errors.Is(err, syncserver.ErrCartExpired) {
		t.Errorf("Load(%s) = %+v, %v; want ErrCartExpired", id, rec, err)
	}
	err := s.Mutate(t.Context(), id, []string{"c1"}, func(*syncserver.Record) error {
		t.Errorf("Mutate(%s) on an expired cart called fn", id)
		return nil
	})
	if !errors.Is(err, syncserver.ErrCartExpired) {
		t.Errorf("Mutate(%s) error = %v, want ErrCartExpired", id, err)
	}
	for _, since := range []uint64{0, 1, 100} {
		if chs, err := s.Changes(t.Context(), id, since, 10); !errors.Is(err, syncserver.ErrCartExpired) {
			t.Errorf("Changes(%s, %d) = %v, %v; want ErrCartExpired", id, since, versions(chs), err)
		}
	}
	noCall := func(*syncserver.Record, *syncserver.Record) error {
		t.Errorf("Merge with expired cart %s called fn", id)
		return nil
	}
	if err := s.Merge(t.Context(), id, "user-"+id, noCall); !errors.Is(err, syncserver.ErrCartExpired) {
		t.Errorf("Merge(%s, live) error = %v, want ErrCartExpired", id, err)
	}
	mutate(t, s, "guest-"+id, nil, func(*syncserver.Record) error { return nil }) // of no kind: never purged
	if err := s.Merge(t.Context(), "guest-"+id, id, noCall); !errors.Is(err, syncserver.ErrCartExpired) {
		t.Errorf("Merge(live, %s) error = %v, want ErrCartExpired", id, err)
	}
	// Still expired: nothing above brought it back.
	if _, err := s.Load(t.Context(), id, nil); !errors.Is(err, syncserver.ErrCartExpired) {
		t.Errorf("Load(%s) after the attempts = %v, want ErrCartExpired", id, err)
	}
}

// A cart last changed before the cutoff expires; one changed at or after
// it, or of another kind, does not.
func testPurge(t *testing.T, s syncserver.Store) {
	cutoff := stamp(10)
	carts := []struct {
		id      string
		kind    string
		at      time.Time
		expires bool
	}{
		{"guest-old", syncserver.KindGuest, stamp(2), true},
		{"guest-1ms-before", syncserver.KindGuest, cutoff.Add(-time.Millisecond), true},
		{"guest-at-cutoff", syncserver.KindGuest, cutoff, false},
		{"guest-just-after", syncserver.KindGuest, cutoff.Add(100 * time.Microsecond), false},
		{"guest-new", syncserver.KindGuest, stamp(11), false},
		{"user-old", syncserver.KindUser, stamp(2), false},
		{"guest-created-now", syncserver.KindGuest, time.Time{}, false}, // no UpdatedAt: counts from its creation
	}
	var want []string
	for _, c := range carts {
		makeCart(t, s, c.id, c.kind, c.at)
		if c.expires {
			want = append(want, c.id)
		}
	}
	// A merged guest cart expires like any other.
	mutate(t, s, "guest-merged", nil, func(rec *syncserver.Record) error {
		rec.Meta = syncserver.Meta{Kind: syncserver.KindGuest, UpdatedAt: stamp(3), MergedInto: "user-old"}
		return nil
	})
	want = append(want, "guest-merged")
	slices.Sort(want)
	before := map[string]*syncserver.Record{}
	for _, c := range carts {
		before[c.id] = load(t, s, c.id, "c1")
	}

	if got := purge(t, s, syncserver.KindGuest, cutoff, keepTombstones, 100); !slices.Equal(got, want) {
		t.Fatalf("Purge = %q, want %q", got, want)
	}
	for _, id := range want {
		checkExpired(t, s, id)
	}
	for _, c := range carts {
		if c.expires {
			continue
		}
		rec := load(t, s, c.id, "c1")
		checkCart(t, "Load("+c.id+") after Purge", rec.Cart, before[c.id].Cart)
		checkMeta(t, "Load("+c.id+") after Purge", rec.Meta, before[c.id].Meta)
		checkSeqs(t, "Load("+c.id+") after Purge", rec.Seqs, map[string]uint64{"c1": 1})
		if n := len(changes(t, s, c.id, 0, 10)); n != 1 {
			t.Errorf("Changes(%s) after Purge: %d changes, want 1", c.id, n)
		}
	}

	if got := purge(t, s, syncserver.KindGuest, cutoff, keepTombstones, 100); len(got) != 0 {
		t.Errorf("second Purge = %q, want none: it is idempotent", got)
	}
	if got := purge(t, s, syncserver.KindUser, cutoff, keepTombstones, 100); !slices.Equal(got, []string{"user-old"}) {
		t.Errorf("Purge(user) = %q, want [user-old]", got)
	}
	// A cutoff after every cart's creation expires the cart without an
	// UpdatedAt too.
	later := time.Now().Add(time.Hour)
	want = []string{"guest-at-cutoff", "guest-created-now", "guest-just-after", "guest-new"}
	if got := purge(t, s, syncserver.KindGuest, later, keepTombstones, 100); !slices.Equal(got, want) {
		t.Errorf("Purge(guest, now+1h) = %q, want %q", got, want)
	}
}

// Purge expires at most limit carts a call; the next call goes on with the
// rest.
func testPurgeLimit(t *testing.T, s syncserver.Store) {
	const n = 5
	var all []string
	for i := range n {
		id := fmt.Sprintf("guest-%d", i)
		makeCart(t, s, id, syncserver.KindGuest, stamp(uint64(i)))
		all = append(all, id)
	}
	if got := purge(t, s, syncserver.KindGuest, stamp(100), keepTombstones, 0); len(got) != 0 {
		t.Errorf("Purge(limit 0) = %q, want none", got)
	}
	var seen []string
	for i, wantLen := range []int{2, 2, 1, 0, 0} {
		got := purge(t, s, syncserver.KindGuest, stamp(100), keepTombstones, 2)
		if len(got) != wantLen {
			t.Errorf("Purge call %d = %q, want %d ids", i+1, got, wantLen)
		}
		for _, id := range got {
			if slices.Contains(seen, id) {
				t.Errorf("Purge call %d returned %s again", i+1, id)
			}
			seen = append(seen, id)
		}
	}
	slices.Sort(seen)
	if !slices.Equal(seen, all) {
		t.Errorf("Purge calls expired %q, want %q", seen, all)
	}
	for _, id := range all {
		if _, err := s.Load(t.Context(), id, nil); !errors.Is(err, syncserver.ErrCartExpired) {
			t.Errorf("Load(%s) = %v, want ErrCartExpired", id, err)
		}
	}
}

// Tombstones of the kind that expired before the tombstone cutoff are
// deleted, at most limit a call: the cart is then unknown, and a Mutate
// makes a new one.
func testPurgeTombstones(t *testing.T, s syncserver.Store) {
	guests := []string{"guest-a", "guest-b", "guest-c"}
	for _, id := range guests {
		mutate(t, s, id, []string{"c1", "c2"}, func(rec *syncserver.Record) error {
			rec.Meta.Kind = syncserver.KindGuest
			return apply(addOp("c1", 1, "mug", 1), addOp("c2", 4, "hat", 1))(rec)
		})
	}
	makeCart(t, s, "user-a", syncserver.KindUser, stamp(1))
	if got := purge(t, s, syncserver.KindGuest, stamp(100), keepTombstones, 10); !slices.Equal(got, guests) {
		t.Fatalf("Purge(guest) = %q, want %q", got, guests)
	}
	if got := purge(t, s, syncserver.KindUser, stamp(100), keepTombstones, 10); !slices.Equal(got, []string{"user-a"}) {
		t.Fatalf("Purge(user) = %q, want [user-a]", got)
	}

	// Only guest tombstones go, two a call.
	countGone := func() int {
		t.Helper()
		gone := 0
		for _, id := range guests {
			_, err := s.Load(t.Context(), id, nil)
			switch {
			case errors.Is(err, syncserver.ErrCartNotFound):
				gone++
			case !errors.Is(err, syncserver.ErrCartExpired):
				t.Errorf("Load(%s) = %v, want ErrCartExpired or ErrCartNotFound", id, err)
			}
		}
		return gone
	}
	for i, wantGone := range []int{2, 3} {
		if got := purge(t, s, syncserver.KindGuest, stamp(100), dropTombstones(), 2); len(got) != 0 {
			t.Errorf("Purge call %d with tombstone cutoff = %q, want nothing expired", i+1, got)
		}
		if got := countGone(); got != wantGone {
			t.Errorf("after Purge call %d: %d guest tombstones deleted, want %d", i+1, got, wantGone)
		}
	}
	if _, err := s.Load(t.Context(), "user-a", nil); !errors.Is(err, syncserver.ErrCartExpired) {
		t.Errorf("Load(user-a) = %v, want ErrCartExpired: a guest purge deletes only guest tombstones", err)
	}

	// A deleted cart is unknown, and starts again from nothing.
	if chs, err := s.Changes(t.Context(), "guest-a", 0, 10); err != nil || len(chs) != 0 {
		t.Errorf("Changes(deleted) = %v, %v; want none, nil", versions(chs), err)
	}
	mutate(t, s, "guest-a", []string{"c1", "c2"}, func(rec *syncserver.Record) error {
		if rec.Exists {
			t.Error("Mutate after the tombstone went: Exists = true, want false")
		}
		checkCart(t, "Mutate after the tombstone went", rec.Cart, &cart.Cart{ID: "guest-a"})
		checkMeta(t, "Mutate after the tombstone went", rec.Meta, syncserver.Meta{})
		checkSeqs(t, "Mutate after the tombstone went", rec.Seqs, map[string]uint64{"c1": 0, "c2": 0})
		rec.Meta.Kind = syncserver.KindGuest
		return apply(addOp("c1", 1, "sock", 2))(rec)
	})
	rec := load(t, s, "guest-a", "c1", "c2")
	if rec.Cart.Version != 1 || rec.Cart.Items() != 2 || rec.Seqs["c1"] != 1 || rec.Seqs["c2"] != 0 {
		t.Errorf("new cart: version %d, %d items, seqs %v; want version 1, 2 items, c1:1 c2:0", rec.Cart.Version, rec.Cart.Items(), rec.Seqs)
	}
	if n := len(changes(t, s, "guest-a", 0, 10)); n != 1 {
		t.Errorf("new cart: %d changes, want 1", n)
	}
}

// Mutates racing with Purges of the same carts never lose an acknowledged
// change: a Mutate that returned nil committed before the purge looked at
// the cart, which then counted as changed after the cutoff and stayed; one
// that came after found the tombstone and did not call fn.
func testPurgeRacesMutate(t *testing.T, s syncserver.Store) {
	const n = 24
	cutoff := stamp(10)
	ids := make([]string, n)
	for i := range n {
		ids[i] = fmt.Sprintf("guest-%02d", i)
		makeCart(t, s, ids[i], syncserver.KindGuest, stamp(1))
	}

	ctx, cancel := context.WithTimeout(t.Context(), time.Minute)
	defer cancel()
	start := make(chan struct{})
	mutErr := make([]error, n)
	called := make([]bool, n)
	var purged []string
	var purgeErr error
	var wg sync.WaitGroup
	for i := range n {
		wg.Go(func() {
			<-start
			mutErr[i] = s.Mutate(ctx, ids[i], []string{"c2"}, func(rec *syncserver.Record) error {
				called[i] = true
				if err := applyOne(rec, addOp("c2", 1, "late", 1)); err != nil {
					return err
				}
				rec.Meta.UpdatedAt = stamp(20) // after the cutoff
				return nil
			})
		})
	}
	wg.Go(func() {
		<-start
		for {
			got, err := s.Purge(ctx, syncserver.KindGuest, cutoff, keepTombstones, 5, false)
			if err != nil {
				purgeErr = err
				return
			}
			if len(got) == 0 {
				return
			}
			purged = append(purged, got...)
		}
	})
	close(start)
	wg.Wait()
	if purgeErr != nil {
		t.Fatalf("Purge: %v", purgeErr)
	}
	// Whatever the race left old, a last call expires.
	purged = append(purged, purge(t, s, syncserver.KindGuest, cutoff, keepTombstones, n)...)

	kept := 0
	for i, id := range ids {
		switch {
		case mutErr[i] == nil:
			kept++
			if slices.Contains(purged, id) {
				t.Errorf("%s: Mutate succeeded, and Purge expired the cart", id)
				continue
			}
			rec := load(t, s, id, "c1", "c2")
			if l := rec.Cart.Line("late"); l == nil || rec.Cart.Version != 2 || rec.Seqs["c2"] != 1 {
				t.Errorf("%s: Mutate succeeded, cart at version %d with seqs %v, want the change at version 2", id, rec.Cart.Version, rec.Seqs)
			}
		case errors.Is(mutErr[i], syncserver.ErrCartExpired):
			if called[i] {
				t.Errorf("%s: Mutate called fn, then returned ErrCartExpired", id)
			}
			if !slices.Contains(purged, id) {
				t.Errorf("%s: Mutate returned ErrCartExpired, but no Purge returned the cart", id)
			}
			if _, err := s.Load(t.Context(), id, nil); !errors.Is(err, syncserver.ErrCartExpired) {
				t.Errorf("%s: Load = %v, want ErrCartExpired", id, err)
			}
		default:
			t.Errorf("%s: Mutate: %v", id, mutErr[i])
		}
	}
	if len(purged)+kept != n {
		t.Errorf("Purge returned %d carts and %d Mutates succeeded, want %d in all (purged %q)", len(purged), kept, n, purged)
	}
	t.Logf("%d carts kept by their Mutate, %d purged", kept, len(purged))
}

// An expired user cart is revived as an empty cart at the version after
// the tombstone's, changed then, with no log and no seqs, and takes
// changes again; a guest cart's tombstone, a live cart and a missing one
// are left as they are. Reviving twice revives once.
func testRevive(t *testing.T, s syncserver.Store) {
	makeCart(t, s, "user-old", syncserver.KindUser, stamp(2))
	makeCart(t, s, "guest-old", syncserver.KindGuest, stamp(2))
	makeCart(t, s, "user-live", syncserver.KindUser, stamp(20))
	v := load(t, s, "user-old", "c1").Cart.Version
	tc, checks := s.(syncserver.TombstoneChecker)
	hasTombstones := func(when string, want bool) {
		t.Helper()
		if !checks {
			return
		}
		if has, err := tc.HasTombstones(t.Context(), syncserver.KindUser); err != nil || has != want {
			t.Errorf("HasTombstones(user) %s = %v, %v; want %v", when, has, err, want)
		}
	}
	hasTombstones("before the purge", false)
	purge(t, s, syncserver.KindGuest, stamp(10), keepTombstones, 100)
	hasTombstones("with a guest tombstone", false)
	purge(t, s, syncserver.KindUser, stamp(10), keepTombstones, 100)
	hasTombstones("after the purge", true)
	checkExpired(t, s, "user-old")

	at := stamp(30)
	for _, id := range []string{"guest-old", "user-live", "user-missing"} {
		if ok, err := s.Revive(t.Context(), id, "ann", at); ok || err != nil {
			t.Errorf("Revive(%s) = %v, %v; want false, nil", id, ok, err)
		}
	}
	checkExpired(t, s, "guest-old")
	if ok, err := s.Revive(t.Context(), "user-old", "ann", at); !ok || err != nil {
		t.Fatalf("Revive(user-old) = %v, %v; want true", ok, err)
	}
	if ok, err := s.Revive(t.Context(), "user-old", "ann", at.Add(time.Second)); ok || err != nil {
		t.Errorf("Revive(user-old) again = %v, %v; want false, nil", ok, err)
	}
	rec := load(t, s, "user-old", "c1")
	if rec.Cart.Version != v+1 || rec.Cart.Started != v+1 || len(rec.Cart.Lines) != 0 || rec.Cart.User != "ann" || rec.Seqs["c1"] != 0 || rec.Meta.Kind != syncserver.KindUser || !rec.Meta.UpdatedAt.Truncate(time.Millisecond).Equal(at.Truncate(time.Millisecond)) {
		t.Fatalf("revived: version %d (tombstone's %d, started %d), lines %d, user %q, seq %d, meta %+v; want an empty cart of ann started at %d changed at %v",
			rec.Cart.Version, v, rec.Cart.Started, len(rec.Cart.Lines), rec.Cart.User, rec.Seqs["c1"], rec.Meta, v+1, at)
	}
	if chs, err := s.Changes(t.Context(), "user-old", v+1, 10); err != nil || len(chs) != 0 {
		t.Errorf("Changes of the revived cart since %d = %v, %v; want none", v+1, versions(chs), err)
	}
	// From the tombstone's version, the log does not reach: compacted,
	// for a full snapshot.
	if chs, err := s.Changes(t.Context(), "user-old", v, 10); !errors.Is(err, syncserver.ErrCompacted) {
		t.Errorf("Changes of the revived cart since %d = %v, %v; want ErrCompacted", v, versions(chs), err)
	}
	makeCart(t, s, "user-old", syncserver.KindUser, stamp(31)) // c1's first op on the new cart
	if rec := load(t, s, "user-old", "c1"); rec.Cart.Version != v+2 || rec.Cart.Started != v+1 || len(rec.Cart.Lines) != 1 || rec.Seqs["c1"] != 1 {
		t.Errorf("after an op: version %d, started %d, %d lines, seq %d; want %d, %d, 1, 1", rec.Cart.Version, rec.Cart.Started, len(rec.Cart.Lines), rec.Seqs["c1"], v+2, v+1)
	}
}
