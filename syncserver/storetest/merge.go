package storetest

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/cartsync/cartsync/shared/cart"
	"github.com/cartsync/cartsync/syncserver"
)

// mergeClient is the client id under which loginMerge logs the lines it
// moves.
const mergeClient = "merge"

// loginMerge returns a Merge fn that does what a login merge does, once:
// it adds every line of from to into (logged as ops of mergeClient),
// raises into's seqs to from's, and marks from as merged into intoID. A
// from already merged is left alone.
func loginMerge(intoID string) func(from, into *syncserver.Record) error {
	return func(from, into *syncserver.Record) error {
		if from.Meta.MergedInto != "" {
			return nil
		}
		if err := mergeLines(from.Cart, into); err != nil {
			return err
		}
		for c, q := range from.Seqs {
			into.Seqs[c] = max(into.Seqs[c], q)
		}
		if !into.Exists {
			into.Meta.Kind = syncserver.KindUser
		}
		from.Meta.MergedInto = intoID
		from.Meta.UpdatedAt = stamp(into.Cart.Version)
		return nil
	}
}

// mergeLines adds every line of from to into, as logged ops of
// mergeClient.
func mergeLines(from *cart.Cart, into *syncserver.Record) error {
	for _, key := range from.SortedKeys() {
		l := from.Line(key)
		op := cart.Op{Client: mergeClient, Seq: into.Cart.Version + 1, Kind: cart.KindAdd,
			SKU: l.SKU, Options: l.Options, Quantity: l.Quantity}
		if l.Details != (cart.Details{}) {
			op.Details = &l.Details
		}
		seq := into.Seqs[mergeClient]
		if err := applyOne(into, op); err != nil {
			return err
		}
		// The seq of a client fn was not asked about is stored too.
		into.Seqs[mergeClient] = max(seq, op.Seq)
	}
	return nil
}

// guestCart makes a guest cart edited by several clients, each Mutate
// asking about its own client only, and returns it as loaded.
func guestCart(t testing.TB, s syncserver.Store, id string) *syncserver.Record {
	t.Helper()
	edits := []cart.Op{
		addOp("g1", 1, "mug", 2),
		{Client: "g2", Seq: 1, Kind: cart.KindAdd, SKU: "shirt", Options: map[string]string{"size": "L"}, Quantity: 1,
			Details: &cart.Details{Name: "Shirt", Price: 1999, Currency: "EUR"}},
		addOp("g1", 2, "sock", 3),
		addOp("g3", 1, "mug", 1),
	}
	for _, op := range edits {
		mutate(t, s, id, []string{op.Client}, func(rec *syncserver.Record) error {
			rec.Meta.Kind = syncserver.KindGuest
			return applyOne(rec, op)
		})
	}
	// A client asked about that never edits the cart.
	mutate(t, s, id, []string{"g9"}, func(*syncserver.Record) error { return nil })
	return load(t, s, id, "g1", "g2", "g3")
}

// checkMergeSeqs checks what Merge hands fn: from's seqs hold every client
// that edited it (want), and maybe others at 0; into's seqs are for the
// same clients.
func checkMergeSeqs(t testing.TB, from, into map[string]uint64, want, wantInto map[string]uint64) {
	t.Helper()
	for c, q := range want {
		if got, ok := from[c]; !ok || got != q {
			t.Errorf("Merge: from.Seqs[%q] = %d (present %v), want %d; from.Seqs = %v", c, got, ok, q, from)
		}
	}
	for c, q := range from {
		if _, ok := want[c]; !ok && q != 0 {
			t.Errorf("Merge: from.Seqs[%q] = %d, want no such client", c, q)
		}
	}
	if !slices.Equal(slices.Sorted(maps.Keys(into)), slices.Sorted(maps.Keys(from))) {
		t.Errorf("Merge: into.Seqs = %v, want the clients of from.Seqs (%v)", into, from)
	}
	for c, q := range into {
		if q != wantInto[c] {
			t.Errorf("Merge: into.Seqs[%q] = %d, want %d", c, q, wantInto[c])
		}
	}
}

func testMerge(t *testing.T, s syncserver.Store) {
	tests := []struct {
		name     string
		existing bool // into exists, with lines and seqs
	}{
		{"new user cart", false},
		{"existing user cart", true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			fromID, intoID := "guest-"+UniqueName(t), "user-"+UniqueName(t)
			guest := guestCart(t, s, fromID)
			guestLog := changes(t, s, fromID, 0, 100)
			wantInto := map[string]uint64{"g1": 0, "g2": 0, "g3": 0}
			userWant := &syncserver.Record{Cart: &cart.Cart{ID: intoID}, Seqs: map[string]uint64{}}
			if tt.existing {
				mutate(t, s, intoID, []string{"g2", "u1"}, func(rec *syncserver.Record) error {
					rec.Meta.Kind = syncserver.KindUser
					rec.Seqs["g2"] = 5
					return apply(addOp("u1", 1, "mug", 1), addOp("u1", 2, "hat", 1))(rec)
				})
				userWant = load(t, s, intoID)
				wantInto["g2"] = 5
			}
			userLog := changes(t, s, intoID, 0, 100)

			called := false
			err := s.Merge(t.Context(), fromID, intoID, func(from, into *syncserver.Record) error {
				called = true
				if !from.Exists {
					t.Error("Merge: from.Exists = false, want true")
				}
				if into.Exists != tt.existing {
					t.Errorf("Merge: into.Exists = %v, want %v", into.Exists, tt.existing)
				}
				checkCart(t, "Merge: from", from.Cart, guest.Cart)
				checkMeta(t, "Merge: from", from.Meta, guest.Meta)
				checkCart(t, "Merge: into", into.Cart, userWant.Cart)
				checkMeta(t, "Merge: into", into.Meta, userWant.Meta)
				checkMergeSeqs(t, from.Seqs, into.Seqs, map[string]uint64{"g1": 2, "g2": 1, "g3": 1}, wantInto)
				if len(from.Appended)+len(into.Appended) != 0 {
					t.Errorf("Merge: Appended = %v and %v, want none", from.Appended, into.Appended)
				}
				if err := loginMerge(intoID)(from, into); err != nil {
					return err
				}
				into.Seqs["x"] = 7 // a client fn was not asked about
				from.Seqs["g3"] = 2
				return nil
			})
			if err != nil {
				t.Fatalf("Merge: %v", err)
			}
			if !called {
				t.Fatal("Merge did not call fn")
			}

			// The reference: the same fn on the loaded records.
			ref := &syncserver.Record{Cart: userWant.Cart.Clone(), Meta: userWant.Meta, Seqs: map[string]uint64{}}
			if err := mergeLines(guest.Cart, ref); err != nil {
				t.Fatal(err)
			}
			user := load(t, s, intoID, "g1", "g2", "g3", "x", mergeClient)
			checkCart(t, "Load(into) after Merge", user.Cart, ref.Cart)
			checkMeta(t, "Load(into) after Merge", user.Meta, syncserver.Meta{Kind: syncserver.KindUser, UpdatedAt: ref.Meta.UpdatedAt})
			checkSeqs(t, "Load(into) after Merge", user.Seqs,
				map[string]uint64{"g1": 2, "g2": max(1, wantInto["g2"]), "g3": 1, "x": 7, mergeClient: ref.Cart.Version})
			checkChanges(t, "Changes(into) after Merge", changes(t, s, intoID, 0, 100), append(userLog, ref.Appended...))

			after := load(t, s, fromID, "g1", "g2", "g3")
			checkCart(t, "Load(from) after Merge", after.Cart, guest.Cart)
			checkMeta(t, "Load(from) after Merge", after.Meta,
				syncserver.Meta{Kind: syncserver.KindGuest, UpdatedAt: stamp(ref.Cart.Version), MergedInto: intoID})
			checkSeqs(t, "Load(from) after Merge", after.Seqs, map[string]uint64{"g1": 2, "g2": 1, "g3": 2})
			checkChanges(t, "Changes(from) after Merge", changes(t, s, fromID, 0, 100), guestLog)

			// What Merge wrote is what the next Mutate of into sees.
			mutate(t, s, intoID, []string{"g1", "x"}, func(rec *syncserver.Record) error {
				checkSeqs(t, "Mutate(into) after Merge", rec.Seqs, map[string]uint64{"g1": 2, "x": 7})
				checkCart(t, "Mutate(into) after Merge", rec.Cart, ref.Cart)
				return nil
			})
		})
	}
}

// A Merge whose fn fails, or leaves a cart nil, or panics writes nothing on
// either side: not even the row of a new into cart.
func testMergeErrorWritesNothing(t *testing.T, s syncserver.Store) {
	tests := []struct {
		name     string
		existing bool
		fail     func(from, into *syncserver.Record) error
		wantErr  error // nil: any error
		panics   bool
	}{
		{"error, new into", false, func(*syncserver.Record, *syncserver.Record) error { return errBoom }, errBoom, false},
		{"error, existing into", true, func(*syncserver.Record, *syncserver.Record) error { return errBoom }, errBoom, false},
		{"from left nil", false, func(from, _ *syncserver.Record) error { from.Cart = nil; return nil }, nil, false},
		{"into left nil", true, func(_, into *syncserver.Record) error { into.Cart = nil; return nil }, nil, false},
		{"panic", false, func(*syncserver.Record, *syncserver.Record) error { panic(errBoom) }, nil, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			fromID, intoID := "guest-"+UniqueName(t), "user-"+UniqueName(t)
			guest := guestCart(t, s, fromID)
			guestLog := changes(t, s, fromID, 0, 100)
			var user *syncserver.Record
			if tt.existing {
				mutate(t, s, intoID, []string{"g1"}, func(rec *syncserver.Record) error {
					rec.Meta.Kind = syncserver.KindUser
					return apply(addOp("g1", 7, "hat", 1))(rec)
				})
				user = load(t, s, intoID, "g1", "g2", "g3", "x")
			}
			userLog := changes(t, s, intoID, 0, 100)

			var err error
			func() {
				if tt.panics {
					defer func() {
						if r := recover(); r != errBoom {
							t.Errorf("recovered %v, want the panic value %v", r, errBoom)
						}
					}()
				}
				err = s.Merge(t.Context(), fromID, intoID, func(from, into *syncserver.Record) error {
					if err := loginMerge(intoID)(from, into); err != nil {
						return err
					}
					into.Seqs["x"] = 7
					from.Seqs["g1"] = 9
					return tt.fail(from, into)
				})
			}()
			switch {
			case tt.panics:
			case tt.wantErr != nil && !errors.Is(err, tt.wantErr):
				t.Fatalf("Merge error = %v, want %v", err, tt.wantErr)
			case err == nil:
				t.Fatal("Merge: got no error")
			}

			after := load(t, s, fromID, "g1", "g2", "g3")
			checkCart(t, "Load(from)", after.Cart, guest.Cart)
			checkMeta(t, "Load(from)", after.Meta, guest.Meta)
			checkSeqs(t, "Load(from)", after.Seqs, guest.Seqs)
			checkChanges(t, "Changes(from)", changes(t, s, fromID, 0, 100), guestLog)
			if !tt.existing {
				if _, err := s.Load(t.Context(), intoID, nil); !errors.Is(err, syncserver.ErrCartNotFound) {
					t.Errorf("Load(into) after a failed Merge: error = %v, want ErrCartNotFound", err)
				}
			} else {
				got := load(t, s, intoID, "g1", "g2", "g3", "x")
				checkCart(t, "Load(into)", got.Cart, user.Cart)
				checkMeta(t, "Load(into)", got.Meta, user.Meta)
				checkSeqs(t, "Load(into)", got.Seqs, user.Seqs)
			}
			checkChanges(t, "Changes(into)", changes(t, s, intoID, 0, 100), userLog)

			// Both carts were released.
			ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
			defer cancel()
			if err := s.Merge(ctx, fromID, intoID, loginMerge(intoID)); err != nil {
				t.Fatalf("Merge after a failed Merge: %v (carts not released?)", err)
			}
			if got := load(t, s, fromID).Meta.MergedInto; got != intoID {
				t.Errorf("MergedInto = %q, want %q", got, intoID)
			}
		})
	}
}

// Merging a cart that does not exist is ErrCartNotFound: fn is not called
// and into is not created. A cart cannot be merged into itself.
func testMergeNotFound(t *testing.T, s syncserver.Store) {
	noCall := func(*syncserver.Record, *syncserver.Record) error {
		t.Error("Merge called fn")
		return nil
	}
	if err := s.Merge(t.Context(), "guest-none", "user-new", noCall); !errors.Is(err, syncserver.ErrCartNotFound) {
		t.Errorf("Merge(missing, new) error = %v, want ErrCartNotFound", err)
	}
	if _, err := s.Load(t.Context(), "user-new", nil); !errors.Is(err, syncserver.ErrCartNotFound) {
		t.Errorf("Load(into) after Merge from a missing cart: error = %v, want ErrCartNotFound", err)
	}
	mutate(t, s, "user-old", []string{"u1"}, apply(addOp("u1", 1, "mug", 1)))
	if err := s.Merge(t.Context(), "guest-none", "user-old", noCall); !errors.Is(err, syncserver.ErrCartNotFound) {
		t.Errorf("Merge(missing, existing) error = %v, want ErrCartNotFound", err)
	}
	if got := load(t, s, "user-old").Cart.Version; got != 1 {
		t.Errorf("into version = %d, want 1", got)
	}
	if err := s.Merge(t.Context(), "user-old", "user-old", noCall); err == nil {
		t.Error("Merge of a cart into itself: got no error")
	}
	if got := load(t, s, "user-old").Cart.Version; got != 1 {
		t.Errorf("version after merging into itself = %d, want 1", got)
	}
}

// A guest cart that never reached the store is bound to a user cart at
// login by a Mutate that writes only its meta (an empty tombstone): Load
// and a later Merge see the binding.
func testMergeBoundGuest(t *testing.T, s syncserver.Store) {
	mutate(t, s, "guest-bound", nil, func(rec *syncserver.Record) error {
		if rec.Exists {
			t.Error("Mutate of a missing cart: Exists = true")
		}
		rec.Meta.Kind = syncserver.KindGuest
		rec.Meta.MergedInto = "user-b"
		rec.Meta.UpdatedAt = stamp(1)
		return nil
	})
	rec := load(t, s, "guest-bound")
	if rec.Meta.MergedInto != "user-b" || rec.Cart.Version != 0 || len(rec.Cart.Lines) != 0 {
		t.Errorf("bound guest loads as merged into %q at version %d with %d lines, want user-b, 0, 0",
			rec.Meta.MergedInto, rec.Cart.Version, len(rec.Cart.Lines))
	}
	called := false
	err := s.Merge(t.Context(), "guest-bound", "user-b", func(from, into *syncserver.Record) error {
		called = true
		if from.Meta.MergedInto != "user-b" {
			t.Errorf("Merge: from.Meta.MergedInto = %q, want user-b", from.Meta.MergedInto)
		}
		return errBoom
	})
	if !called || !errors.Is(err, errBoom) {
		t.Errorf("Merge of a bound guest: called %v, error %v; want called and errBoom", called, err)
	}
}

// Merges of one guest cart into one user cart, racing: fn sees the
// previous merge's commit, so the result is one merge.
func testMergeConcurrentSame(t *testing.T, s syncserver.Store) {
	const workers = 20
	const fromID, intoID = "guest-race", "user-race"
	guest := guestCart(t, s, fromID)
	mutate(t, s, intoID, []string{"u1"}, func(rec *syncserver.Record) error {
		rec.Meta.Kind = syncserver.KindUser
		return apply(addOp("u1", 1, "mug", 1))(rec)
	})
	user := load(t, s, intoID)
	userLog := changes(t, s, intoID, 0, 100)

	ctx, cancel := context.WithTimeout(t.Context(), time.Minute)
	defer cancel()
	var merged atomic.Int32
	start := make(chan struct{})
	errs := make(chan error, workers)
	var wg sync.WaitGroup
	for range workers {
		wg.Go(func() {
			<-start
			errs <- s.Merge(ctx, fromID, intoID, func(from, into *syncserver.Record) error {
				if from.Meta.MergedInto != "" {
					return nil
				}
				merged.Add(1)
				return loginMerge(intoID)(from, into)
			})
		})
	}
	close(start)
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Errorf("Merge: %v", err)
		}
	}
	if n := merged.Load(); n < 1 {
		t.Fatalf("%d fns merged, want at least 1", n)
	}

	ref := &syncserver.Record{Cart: user.Cart.Clone(), Seqs: map[string]uint64{}}
	if err := mergeLines(guest.Cart, ref); err != nil {
		t.Fatal(err)
	}
	checkCart(t, "Load(into)", load(t, s, intoID).Cart, ref.Cart)
	checkChanges(t, "Changes(into)", changes(t, s, intoID, 0, 100), append(userLog, ref.Appended...))
	checkSeqs(t, "Load(into)", load(t, s, intoID, "g1", "g2", "g3").Seqs, map[string]uint64{"g1": 2, "g2": 1, "g3": 1})
	if got := load(t, s, fromID).Meta.MergedInto; got != intoID {
		t.Errorf("from MergedInto = %q, want %q", got, intoID)
	}
}

// Merges in both directions between two carts at once never deadlock, and
// each sees the previous one's commit.
func testMergeOppositeDirections(t *testing.T, s syncserver.Store) {
	const each = 10
	mutate(t, s, "cart-a", []string{"a"}, apply(addOp("a", 1, "mug", 1)))
	mutate(t, s, "cart-b", []string{"b"}, apply(addOp("b", 1, "mug", 1)))

	// Each merge adds one item to into as an op of from's own client.
	move := func(client, sku string) func(from, into *syncserver.Record) error {
		return func(from, into *syncserver.Record) error {
			seq, ok := into.Seqs[client]
			if !ok {
				return fmt.Errorf("into.Seqs has no %q, from.Seqs = %v", client, from.Seqs)
			}
			if seq == 0 {
				seq = 1 // past the op that made from
			}
			return applyOne(into, addOp(client, seq+1, sku, 1))
		}
	}
	ctx, cancel := context.WithTimeout(t.Context(), time.Minute)
	defer cancel()
	start := make(chan struct{})
	errs := make(chan error, 2*each)
	var wg sync.WaitGroup
	for range each {
		wg.Go(func() {
			<-start
			if err := s.Merge(ctx, "cart-a", "cart-b", move("a", "from-a")); err != nil {
				errs <- fmt.Errorf("Merge(a, b): %w", err)
			}
		})
		wg.Go(func() {
			<-start
			if err := s.Merge(ctx, "cart-b", "cart-a", move("b", "from-b")); err != nil {
				errs <- fmt.Errorf("Merge(b, a): %w", err)
			}
		})
	}
	close(start)
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	for _, c := range []struct{ id, sku string }{{"cart-a", "from-b"}, {"cart-b", "from-a"}} {
		rec := load(t, s, c.id)
		if l := rec.Cart.Line(c.sku); l == nil || l.Quantity != each || rec.Cart.Version != each+1 {
			t.Errorf("%s: line %s = %+v at version %d, want quantity %d at version %d", c.id, c.sku, l, rec.Cart.Version, each, each+1)
		}
		if n := len(changes(t, s, c.id, 0, 100)); n != each+1 {
			t.Errorf("%s: %d changes, want %d", c.id, n, each+1)
		}
	}
}

// A Merge waiting for a cart another write holds gives up when its context
// ends, without running fn.
func testMergeDeadlineWhileLocked(t *testing.T, s syncserver.Store) {
	guestCart(t, s, "guest-wait")
	letGo, holder := holdLocked(t, s, "user-wait", "u1")

	ctx, cancel := context.WithTimeout(t.Context(), 200*time.Millisecond)
	defer cancel()
	begin := time.Now()
	err := s.Merge(ctx, "guest-wait", "user-wait", func(*syncserver.Record, *syncserver.Record) error {
		t.Error("Merge past its deadline called fn")
		return nil
	})
	waited := time.Since(begin)
	letGo()
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("Merge while into is locked, past deadline: error = %v, want context.DeadlineExceeded", err)
	}
	if waited > 3*time.Second {
		t.Errorf("Merge returned after %v, with a deadline of 200ms", waited)
	}
	if err := <-holder; err != nil {
		t.Fatalf("holder Mutate: %v", err)
	}
	if got := load(t, s, "guest-wait").Meta.MergedInto; got != "" {
		t.Errorf("MergedInto = %q after a Merge that gave up, want none", got)
	}
}
