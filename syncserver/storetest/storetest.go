package storetest

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"sync"
	"testing"
	"time"

	"github.com/cartsync/cartsync/shared/cart"
	"github.com/cartsync/cartsync/syncserver"
)

// RunStore runs the Store contract suite. open must return a fresh, empty
// store for the test it is given; RunStore closes it when the subtest ends,
// before the cleanups open registered run (so open may drop a schema or
// remove a file in t.Cleanup).
//
// Besides the interface's doc comments, the suite pins these semantics:
//   - Record.Seqs is never nil and holds exactly the clients asked for;
//     a seq fn sets for a client it did not ask about is stored too, and a
//     client fn deletes from Seqs is not written.
//   - A Mutate whose fn returns nil creates the cart even if fn changed
//     nothing; a fn that sets Cart to nil makes Mutate fail, writing nothing.
//   - Times (Meta.UpdatedAt, Change.At) are kept to the millisecond; a zero
//     UpdatedAt stays zero.
//   - Every method fails with an error matching the context's error once
//     the context is done, and a Mutate waiting for a locked cart gives up
//     at its deadline without calling fn.
//   - A panic in fn rolls back and releases the cart.
//   - Merge hands fn from's seqs for every client that set one (a client
//     only asked about may be there at 0) and into's for the same clients;
//     it writes both records as Mutate writes one. Merging a cart into
//     itself is an error.
//   - Purge counts a cart without an UpdatedAt as changed when it was
//     created; a limit below 1 purges nothing; it deletes only tombstones of
//     the kind it was given. Tombstones are stamped with the store's clock:
//     the suite passes the zero time as tombstone cutoff to keep them all,
//     and an hour from now to drop them. Changes on an expired cart is
//     ErrCartExpired; once its tombstone is gone the cart is unknown.
func RunStore(t *testing.T, open func(t testing.TB) syncserver.Store) {
	tests := []struct {
		name string
		run  func(t *testing.T, s syncserver.Store)
	}{
		{"MutateNewCart", testMutateNewCart},
		{"MutateNoChangeCreates", testMutateNoChangeCreates},
		{"MutateErrorWritesNothing", testMutateErrorWritesNothing},
		{"MutateNilCart", testMutateNilCart},
		{"MutatePanicReleasesLock", testMutatePanicReleasesLock},
		{"Seqs", testSeqs},
		{"Changes", testChanges},
		{"ChangesUnknownCart", testChangesUnknownCart},
		{"ChangesCompacted", testChangesCompacted},
		{"LoadNotFound", testLoadNotFound},
		{"LoadRoundTrip", testLoadRoundTrip},
		{"Meta", testMeta},
		{"Secret", testSecret},
		{"SecretConcurrent", testSecretConcurrent},
		{"Ping", testPing},
		{"ConcurrentMutate", testConcurrentMutate},
		{"DifferentCarts", testDifferentCarts},
		{"MixedOutcomes", testMixedOutcomes},
		{"ContextCanceled", testContextCanceled},
		{"ContextDeadlineWhileLocked", testContextDeadlineWhileLocked},
		{"Merge", testMerge},
		{"MergeErrorWritesNothing", testMergeErrorWritesNothing},
		{"MergeNotFound", testMergeNotFound},
		{"MergeBoundGuest", testMergeBoundGuest},
		{"MergeConcurrentSame", testMergeConcurrentSame},
		{"MergeOppositeDirections", testMergeOppositeDirections},
		{"MergeDeadlineWhileLocked", testMergeDeadlineWhileLocked},
		{"Purge", testPurge},
		{"PurgeLimit", testPurgeLimit},
		{"PurgeTombstones", testPurgeTombstones},
		{"Revive", testRevive},
		{"PurgeRacesMutate", testPurgeRacesMutate},
		{"ClientIDsBounded", testClientIDsBounded},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := open(t)
			t.Cleanup(func() {
				if err := s.Close(); err != nil {
					t.Errorf("Close: %v", err)
				}
			})
			tt.run(t, s)
		})
	}
	runCommerce(t, open)
}

// epoch has sub-millisecond digits, so that a store keeping less than
// milliseconds is caught.
var epoch = time.Date(2025, 3, 14, 15, 9, 26, 535_897_932, time.UTC)

// stamp is the time of version v in these tests.
func stamp(v uint64) time.Time { return epoch.Add(time.Duration(v) * time.Second) }

var errBoom = errors.New("storetest: boom")

func addOp(client string, seq uint64, sku string, n int) cart.Op {
	return cart.Op{Client: client, Seq: seq, Kind: cart.KindAdd, SKU: sku, Quantity: n}
}

// apply returns a Mutate fn that does what the server does for each op:
// apply it as coming from the op's client, record the client's seq, log the
// change and stamp the meta.
func apply(ops ...cart.Op) func(*syncserver.Record) error {
	return func(rec *syncserver.Record) error {
		for _, op := range ops {
			if err := applyOne(rec, op); err != nil {
				return err
			}
		}
		return nil
	}
}

func applyOne(rec *syncserver.Record, op cart.Op) error {
	warns, cerr := rec.Cart.Apply(op, op.Client, cart.DefaultLimits)
	if cerr != nil {
		return cerr
	}
	rec.Seqs[op.Client] = op.Seq
	rec.Appended = append(rec.Appended, syncserver.Change{
		Version:  rec.Cart.Version,
		Op:       op,
		Warnings: warns,
		At:       stamp(rec.Cart.Version),
	})
	rec.Meta.UpdatedAt = stamp(rec.Cart.Version)
	return nil
}

func mutate(t testing.TB, s syncserver.Store, id string, clients []string, fn func(*syncserver.Record) error) {
	t.Helper()
	if err := s.Mutate(t.Context(), id, clients, fn); err != nil {
		t.Fatalf("Mutate(%q, %q): %v", id, clients, err)
	}
}

func load(t testing.TB, s syncserver.Store, id string, clients ...string) *syncserver.Record {
	t.Helper()
	rec, err := s.Load(t.Context(), id, clients)
	if err != nil {
		t.Fatalf("Load(%q, %q): %v", id, clients, err)
	}
	if rec == nil || rec.Cart == nil {
		t.Fatalf("Load(%q): got record %+v, want one with a cart", id, rec)
	}
	if !rec.Exists {
		t.Errorf("Load(%q): Exists = false, want true", id)
	}
	if len(rec.Appended) != 0 {
		t.Errorf("Load(%q): Appended = %v, want none", id, rec.Appended)
	}
	return rec
}

func changes(t testing.TB, s syncserver.Store, id string, since uint64, limit int) []syncserver.Change {
	t.Helper()
	chs, err := s.Changes(t.Context(), id, since, limit)
	if err != nil {
		t.Fatalf("Changes(%q, %d, %d): %v", id, since, limit, err)
	}
	return chs
}

// cartJSON is the form in which carts are compared: nil and empty slices
// are the same cart.
func cartJSON(t testing.TB, c *cart.Cart) string {
	t.Helper()
	if c != nil && len(c.Lines) == 0 {
		c = &cart.Cart{ID: c.ID, Version: c.Version}
	}
	b, err := json.Marshal(c)
	if err != nil {
		t.Fatalf("marshal cart: %v", err)
	}
	return string(b)
}

func checkCart(t testing.TB, what string, got, want *cart.Cart) {
	t.Helper()
	if g, w := cartJSON(t, got), cartJSON(t, want); g != w {
		t.Errorf("%s: cart\n got %s\nwant %s", what, g, w)
	}
}

// sameMilli reports whether a and b are the same instant to the millisecond.
func sameMilli(a, b time.Time) bool {
	if a.IsZero() || b.IsZero() {
		return a.IsZero() == b.IsZero()
	}
	d := a.Sub(b)
	return d > -time.Millisecond && d < time.Millisecond
}

func checkMeta(t testing.TB, what string, got, want syncserver.Meta) {
	t.Helper()
	if got.Kind != want.Kind || got.MergedInto != want.MergedInto || !sameMilli(got.UpdatedAt, want.UpdatedAt) {
		t.Errorf("%s: meta = %+v, want %+v (UpdatedAt to the millisecond)", what, got, want)
	}
}

func checkSeqs(t testing.TB, what string, got, want map[string]uint64) {
	t.Helper()
	if !maps.Equal(got, want) {
		t.Errorf("%s: seqs = %v, want %v", what, got, want)
	}
}

func changeString(ch syncserver.Change) string {
	op, _ := json.Marshal(ch.Op)
	w := ""
	if len(ch.Warnings) > 0 {
		b, _ := json.Marshal(ch.Warnings)
		w = string(b)
	}
	return fmt.Sprintf("v%d op=%s warnings=%s", ch.Version, op, w)
}

func checkChanges(t testing.TB, what string, got, want []syncserver.Change) {
	t.Helper()
	if len(got) != len(want) {
		t.Errorf("%s: got %d changes %v, want %d (versions %v)", what, len(got), versions(got), len(want), versions(want))
		return
	}
	for i := range got {
		if g, w := changeString(got[i]), changeString(want[i]); g != w {
			t.Errorf("%s: change %d\n got %s\nwant %s", what, i, g, w)
		}
		if !sameMilli(got[i].At, want[i].At) {
			t.Errorf("%s: change %d At = %v, want %v to the millisecond", what, i, got[i].At, want[i].At)
		}
	}
}

func versions(chs []syncserver.Change) []uint64 {
	out := make([]uint64, len(chs))
	for i, ch := range chs {
		out[i] = ch.Version
	}
	return out
}

func testMutateNewCart(t *testing.T, s syncserver.Store) {
	clients := []string{"c1", "c2"}
	called := false
	mutate(t, s, "cart-new", clients, func(rec *syncserver.Record) error {
		called = true
		if rec.Exists {
			t.Errorf("new cart: Exists = true, want false")
		}
		if rec.Cart == nil {
			return errors.New("new cart: Cart = nil, want an empty cart")
		}
		checkCart(t, "new cart", rec.Cart, &cart.Cart{ID: "cart-new"})
		checkMeta(t, "new cart", rec.Meta, syncserver.Meta{})
		checkSeqs(t, "new cart", rec.Seqs, map[string]uint64{"c1": 0, "c2": 0})
		if len(rec.Appended) != 0 {
			t.Errorf("new cart: Appended = %v, want none", rec.Appended)
		}
		rec.Meta.Kind = syncserver.KindGuest
		return apply(addOp("c1", 1, "sku-1", 2))(rec)
	})
	if !called {
		t.Fatal("Mutate did not call fn")
	}

	want := &cart.Cart{ID: "cart-new"}
	if _, err := want.Apply(addOp("c1", 1, "sku-1", 2), "c1", cart.DefaultLimits); err != nil {
		t.Fatal(err)
	}
	rec := load(t, s, "cart-new", clients...)
	checkCart(t, "Load after commit", rec.Cart, want)
	checkMeta(t, "Load after commit", rec.Meta, syncserver.Meta{Kind: syncserver.KindGuest, UpdatedAt: stamp(1)})
	checkSeqs(t, "Load after commit", rec.Seqs, map[string]uint64{"c1": 1, "c2": 0})

	mutate(t, s, "cart-new", clients, func(rec *syncserver.Record) error {
		if !rec.Exists {
			t.Errorf("second Mutate: Exists = false, want true")
		}
		checkCart(t, "second Mutate", rec.Cart, want)
		checkMeta(t, "second Mutate", rec.Meta, syncserver.Meta{Kind: syncserver.KindGuest, UpdatedAt: stamp(1)})
		checkSeqs(t, "second Mutate", rec.Seqs, map[string]uint64{"c1": 1, "c2": 0})
		return nil
	})
}

// A Mutate whose fn succeeds without changing anything still creates the
// cart: it exists, empty, at version 0.
func testMutateNoChangeCreates(t *testing.T, s syncserver.Store) {
	mutate(t, s, "cart-quiet", nil, func(*syncserver.Record) error { return nil })
	rec := load(t, s, "cart-quiet")
	checkCart(t, "Load", rec.Cart, &cart.Cart{ID: "cart-quiet"})
	checkMeta(t, "Load", rec.Meta, syncserver.Meta{})
	if got := changes(t, s, "cart-quiet", 0, 10); len(got) != 0 {
		t.Errorf("Changes = %v, want none", versions(got))
	}
}

func testMutateErrorWritesNothing(t *testing.T, s syncserver.Store) {
	tests := []struct {
		name     string
		existing bool
	}{
		{"new cart", false},
		{"existing cart", true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			id := "cart-fail-" + UniqueName(t)
			clients := []string{"c1", "c2"}
			if tt.existing {
				mutate(t, s, id, clients, func(rec *syncserver.Record) error {
					rec.Meta.Kind = syncserver.KindUser
					return apply(addOp("c1", 1, "sku-1", 1), addOp("c2", 1, "sku-2", 1))(rec)
				})
			}
			var before *syncserver.Record
			var beforeLog []syncserver.Change
			if tt.existing {
				before = load(t, s, id, clients...)
				beforeLog = changes(t, s, id, 0, 10)
			}

			err := s.Mutate(t.Context(), id, clients, func(rec *syncserver.Record) error {
				if err := apply(addOp("c1", 2, "sku-1", 5), addOp("c2", 2, "sku-3", 1))(rec); err != nil {
					return err
				}
				rec.Seqs["c3"] = 7
				rec.Meta = syncserver.Meta{Kind: syncserver.KindGuest, UpdatedAt: stamp(99), MergedInto: "someone"}
				return fmt.Errorf("wrapped: %w", errBoom)
			})
			if !errors.Is(err, errBoom) {
				t.Fatalf("Mutate error = %v, want the error fn returned (%v)", err, errBoom)
			}

			if !tt.existing {
				if _, err := s.Load(t.Context(), id, clients); !errors.Is(err, syncserver.ErrCartNotFound) {
					t.Errorf("Load after failed create: error = %v, want ErrCartNotFound", err)
				}
				if got := changes(t, s, id, 0, 10); len(got) != 0 {
					t.Errorf("Changes after failed create = %v, want none", versions(got))
				}
				return
			}
			after := load(t, s, id, "c1", "c2", "c3")
			checkCart(t, "Load after failed Mutate", after.Cart, before.Cart)
			checkMeta(t, "Load after failed Mutate", after.Meta, before.Meta)
			checkSeqs(t, "Load after failed Mutate", after.Seqs, map[string]uint64{"c1": 1, "c2": 1, "c3": 0})
			checkChanges(t, "Changes after failed Mutate", changes(t, s, id, 0, 10), beforeLog)
		})
	}
}

// A fn that leaves no cart is a bug in the caller: Mutate fails and writes
// nothing.
func testMutateNilCart(t *testing.T, s syncserver.Store) {
	err := s.Mutate(t.Context(), "cart-nil", nil, func(rec *syncserver.Record) error {
		rec.Cart = nil
		return nil
	})
	if err == nil {
		t.Fatal("Mutate with fn setting Cart = nil: got no error")
	}
	if _, err := s.Load(t.Context(), "cart-nil", nil); !errors.Is(err, syncserver.ErrCartNotFound) {
		t.Errorf("Load: error = %v, want ErrCartNotFound", err)
	}
}

func testMutatePanicReleasesLock(t *testing.T, s syncserver.Store) {
	func() {
		defer func() {
			if r := recover(); r != errBoom {
				t.Errorf("recovered %v, want the panic value %v", r, errBoom)
			}
		}()
		_ = s.Mutate(t.Context(), "cart-panic", nil, func(rec *syncserver.Record) error {
			if err := apply(addOp("c1", 1, "sku-1", 1))(rec); err != nil {
				return err
			}
			panic(errBoom)
		})
	}()
	if _, err := s.Load(t.Context(), "cart-panic", nil); !errors.Is(err, syncserver.ErrCartNotFound) {
		t.Errorf("Load after panic: error = %v, want ErrCartNotFound", err)
	}
	ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
	defer cancel()
	err := s.Mutate(ctx, "cart-panic", []string{"c1"}, func(rec *syncserver.Record) error {
		if rec.Exists {
			t.Errorf("after panic: Exists = true, want false")
		}
		return apply(addOp("c1", 1, "sku-1", 1))(rec)
	})
	if err != nil {
		t.Fatalf("Mutate after a panicking Mutate: %v (lock not released?)", err)
	}
	if got := load(t, s, "cart-panic").Cart.Version; got != 1 {
		t.Errorf("version = %d, want 1", got)
	}
}

func testSeqs(t *testing.T, s syncserver.Store) {
	mutate(t, s, "cart-seqs", []string{"a", "b"}, func(rec *syncserver.Record) error {
		checkSeqs(t, "first Mutate", rec.Seqs, map[string]uint64{"a": 0, "b": 0})
		rec.Seqs["a"] = 3
		rec.Seqs["z"] = 9 // a client fn was not asked about is stored too
		return nil
	})
	mutate(t, s, "cart-other", []string{"a"}, func(rec *syncserver.Record) error {
		rec.Seqs["a"] = 100
		return nil
	})

	tests := []struct {
		name    string
		clients []string
		want    map[string]uint64
	}{
		{"asked and unknown", []string{"a", "b", "c", "z"}, map[string]uint64{"a": 3, "b": 0, "c": 0, "z": 9}},
		{"one", []string{"z"}, map[string]uint64{"z": 9}},
		{"none", nil, map[string]uint64{}},
	}
	for _, tt := range tests {
		t.Run("Load "+tt.name, func(t *testing.T) {
			rec := load(t, s, "cart-seqs", tt.clients...)
			if len(rec.Seqs) != len(tt.want) {
				t.Errorf("Seqs = %v, want exactly %v", rec.Seqs, tt.want)
			}
			for c, want := range tt.want {
				if got, ok := rec.Seqs[c]; !ok || got != want {
					t.Errorf("Seqs[%q] = %d (present %v), want %d", c, got, ok, want)
				}
			}
		})
	}

	mutate(t, s, "cart-seqs", []string{"b"}, func(rec *syncserver.Record) error {
		checkSeqs(t, "Mutate asking b", rec.Seqs, map[string]uint64{"b": 0})
		rec.Seqs["b"] = 1 << 40
		rec.Seqs["a"] = 4
		return nil
	})
	checkSeqs(t, "Load after raise", load(t, s, "cart-seqs", "a", "b", "z").Seqs,
		map[string]uint64{"a": 4, "b": 1 << 40, "z": 9})
	checkSeqs(t, "other cart", load(t, s, "cart-other", "a", "b").Seqs, map[string]uint64{"a": 100, "b": 0})
}

func testMeta(t *testing.T, s syncserver.Store) {
	const id = "cart-meta"
	tests := []struct {
		name string
		meta syncserver.Meta
	}{
		{"guest", syncserver.Meta{Kind: syncserver.KindGuest, UpdatedAt: epoch}},
		{"non-UTC zone", syncserver.Meta{Kind: syncserver.KindGuest, UpdatedAt: epoch.Add(time.Hour).In(time.FixedZone("X", -7*3600))}},
		{"merged", syncserver.Meta{Kind: syncserver.KindGuest, UpdatedAt: stamp(2), MergedInto: "user-42"}},
		{"user", syncserver.Meta{Kind: syncserver.KindUser, UpdatedAt: stamp(3)}},
		{"zero", syncserver.Meta{}},
	}
	prev := syncserver.Meta{}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			mutate(t, s, id, nil, func(rec *syncserver.Record) error {
				checkMeta(t, "Mutate sees the previous meta", rec.Meta, prev)
				rec.Meta = tt.meta
				return nil
			})
			checkMeta(t, "Load", load(t, s, id).Meta, tt.meta)
			prev = tt.meta
		})
	}
}

func testSecret(t *testing.T, s syncserver.Store) {
	tests := []struct {
		name   string
		create string
		want   string
	}{
		{"a", "first", "first"},
		{"a", "second", "first"},
		{"b", "other", "other"},
		{"a", "third", "first"},
		{"b", "\x00\xff binary", "other"},
	}
	for _, tt := range tests {
		got, err := s.Secret(t.Context(), tt.name, []byte(tt.create))
		if err != nil {
			t.Fatalf("Secret(%q, %q): %v", tt.name, tt.create, err)
		}
		if string(got) != tt.want {
			t.Errorf("Secret(%q, %q) = %q, want %q", tt.name, tt.create, got, tt.want)
		}
	}
	bin := []byte{0, 1, 2, 0xfe, 0xff}
	got, err := s.Secret(t.Context(), "bin", bin)
	if err != nil || string(got) != string(bin) {
		t.Errorf("Secret(bin) = %x, %v; want %x", got, err, bin)
	}
}

func testSecretConcurrent(t *testing.T, s syncserver.Store) {
	const n = 16
	got := make([][]byte, n)
	errs := make([]error, n)
	start := make(chan struct{})
	var wg sync.WaitGroup
	for i := range n {
		wg.Go(func() {
			<-start
			got[i], errs[i] = s.Secret(t.Context(), "shared", fmt.Appendf(nil, "value-%d", i))
		})
	}
	close(start)
	wg.Wait()
	for i := range n {
		if errs[i] != nil {
			t.Fatalf("Secret from goroutine %d: %v", i, errs[i])
		}
		if string(got[i]) != string(got[0]) {
			t.Errorf("goroutine %d got %q, goroutine 0 got %q: instances would disagree", i, got[i], got[0])
		}
	}
	again, err := s.Secret(t.Context(), "shared", []byte("late"))
	if err != nil || string(again) != string(got[0]) {
		t.Errorf("Secret after the race = %q, %v; want %q", again, err, got[0])
	}
}

func testPing(t *testing.T, s syncserver.Store) {
	if err := s.Ping(t.Context()); err != nil {
		t.Errorf("Ping: %v", err)
	}
}

// holdLocked starts a Mutate of id, as client, that holds the cart until
// letGo is called, and returns once it holds it; holder gives its result.
// A store that ignores a deadline must fail the test that calls this, not
// hang it: the holder lets go after 5 s regardless.
func holdLocked(t testing.TB, s syncserver.Store, id, client string) (letGo func(), holder <-chan error) {
	t.Helper()
	entered := make(chan struct{})
	release := make(chan struct{})
	done := make(chan error, 1)
	go func() {
		done <- s.Mutate(t.Context(), id, []string{client}, func(rec *syncserver.Record) error {
			close(entered)
			<-release
			return apply(addOp(client, 1, "sku", 1))(rec)
		})
	}()
	<-entered
	var once sync.Once
	letGo = func() { once.Do(func() { close(release) }) }
	backstop := time.AfterFunc(5*time.Second, letGo)
	t.Cleanup(func() { backstop.Stop() })
	return letGo, done
}
