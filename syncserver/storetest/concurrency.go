package storetest

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/cartsync/cartsync/syncserver"
)

// Contract tests of a Store under concurrency and cancellation: racing
// Mutates, carts that do not block each other, contexts that end.

// Concurrent Mutates on one cart must be serialized: each sees the last
// one's commit, so no increment is lost and versions have no gaps.
func testConcurrentMutate(t *testing.T, s syncserver.Store) {
	const workers, each = 20, 10
	const id = "cart-hot"
	ctx, cancel := context.WithTimeout(t.Context(), 2*time.Minute)
	defer cancel()
	errs := make(chan error, workers)
	var wg sync.WaitGroup
	for w := range workers {
		client := fmt.Sprintf("w%02d", w)
		wg.Go(func() {
			for i := range each {
				seq := uint64(i + 1)
				err := s.Mutate(ctx, id, []string{client}, func(rec *syncserver.Record) error {
					if got := rec.Seqs[client]; got != seq-1 {
						return fmt.Errorf("client %s: Mutate sees seq %d, want %d (a lost update)", client, got, seq-1)
					}
					return applyOne(rec, addOp(client, seq, "counter", 1))
				})
				if err != nil {
					errs <- err
					return
				}
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	if t.Failed() {
		return
	}

	clients := make([]string, workers)
	want := map[string]uint64{}
	for w := range workers {
		clients[w] = fmt.Sprintf("w%02d", w)
		want[clients[w]] = each
	}
	rec := load(t, s, id, clients...)
	if got := rec.Cart.Version; got != workers*each {
		t.Errorf("version = %d, want %d", got, workers*each)
	}
	if l := rec.Cart.Line("counter"); l == nil || l.Quantity != workers*each {
		t.Errorf("counter line = %+v, want quantity %d", l, workers*each)
	}
	checkSeqs(t, "Load", rec.Seqs, want)

	log := changes(t, s, id, 0, workers*each+10)
	if len(log) != workers*each {
		t.Fatalf("log has %d changes, want %d", len(log), workers*each)
	}
	seen := map[string]bool{}
	for i, ch := range log {
		if ch.Version != uint64(i+1) {
			t.Fatalf("log[%d].Version = %d, want %d (gap-free, oldest first)", i, ch.Version, i+1)
		}
		k := fmt.Sprintf("%s/%d", ch.Op.Client, ch.Op.Seq)
		if seen[k] {
			t.Errorf("op %s logged twice", k)
		}
		seen[k] = true
	}
}

// A Mutate on one cart must not keep a Mutate on another from finishing;
// stores may serialize all writes, but never deadlock.
func testDifferentCarts(t *testing.T, s syncserver.Store) {
	ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
	defer cancel()

	entered := make(chan struct{})
	release := make(chan struct{})
	holder := make(chan error, 1)
	go func() {
		holder <- s.Mutate(ctx, "cart-a", []string{"c1"}, func(rec *syncserver.Record) error {
			close(entered)
			select {
			case <-release:
			case <-ctx.Done():
			}
			return apply(addOp("c1", 1, "sku-a", 1))(rec)
		})
	}()
	<-entered
	other := make(chan error, 1)
	go func() {
		other <- s.Mutate(ctx, "cart-b", []string{"c1"}, apply(addOp("c1", 1, "sku-b", 1)))
	}()
	// A store with per-cart locks finishes cart-b now; one that serializes
	// every write finishes it once cart-a commits.
	select {
	case err := <-other:
		close(release)
		if err != nil {
			t.Errorf("Mutate(cart-b) while cart-a is locked: %v", err)
		}
		if err := <-holder; err != nil {
			t.Errorf("Mutate(cart-a): %v", err)
		}
	case <-time.After(300 * time.Millisecond):
		close(release)
		if err := <-holder; err != nil {
			t.Errorf("Mutate(cart-a): %v", err)
		}
		if err := <-other; err != nil {
			t.Errorf("Mutate(cart-b) after cart-a committed: %v", err)
		}
	}

	// Many carts at once, several writers each.
	var wg sync.WaitGroup
	errs := make(chan error, 40)
	for c := range 8 {
		for w := range 5 {
			wg.Go(func() {
				id, client := fmt.Sprintf("cart-many-%d", c), fmt.Sprintf("w%d", w)
				if err := s.Mutate(ctx, id, []string{client}, apply(addOp(client, 1, "sku", 1))); err != nil {
					errs <- fmt.Errorf("Mutate(%s) by %s: %w", id, client, err)
				}
			})
		}
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	for _, id := range []string{"cart-a", "cart-b", "cart-many-0", "cart-many-7"} {
		rec := load(t, s, id)
		want := 1
		if id != "cart-a" && id != "cart-b" {
			want = 5
		}
		if rec.Cart.Items() != want || rec.Cart.Version != uint64(want) {
			t.Errorf("%s: %d items at version %d, want %d at %d", id, rec.Cart.Items(), rec.Cart.Version, want, want)
		}
	}
}

func testContextCanceled(t *testing.T, s syncserver.Store) {
	mutate(t, s, "cart-ctx", []string{"c1"}, apply(addOp("c1", 1, "sku", 1)))
	ctx, cancel := context.WithCancel(t.Context())
	cancel()

	tests := []struct {
		name string
		call func() error
	}{
		{"Mutate", func() error {
			return s.Mutate(ctx, "cart-ctx", []string{"c1"}, func(rec *syncserver.Record) error {
				t.Error("Mutate with a canceled context called fn")
				return apply(addOp("c1", 2, "sku", 1))(rec)
			})
		}},
		{"Load", func() error { _, err := s.Load(ctx, "cart-ctx", []string{"c1"}); return err }},
		{"Changes", func() error { _, err := s.Changes(ctx, "cart-ctx", 0, 10); return err }},
		{"Merge", func() error {
			return s.Merge(ctx, "cart-ctx", "cart-ctx-user", func(*syncserver.Record, *syncserver.Record) error {
				t.Error("Merge with a canceled context called fn")
				return nil
			})
		}},
		{"Purge", func() error {
			_, err := s.Purge(ctx, syncserver.KindGuest, time.Now().Add(time.Hour), keepTombstones, 10, false)
			return err
		}},
		{"Secret", func() error { _, err := s.Secret(ctx, "s", []byte("v")); return err }},
		{"Ping", func() error { return s.Ping(ctx) }},
	}
	for _, tt := range tests {
		if err := tt.call(); !errors.Is(err, context.Canceled) {
			t.Errorf("%s with a canceled context: error = %v, want context.Canceled", tt.name, err)
		}
	}
	if got := load(t, s, "cart-ctx").Cart.Version; got != 1 {
		t.Errorf("version after canceled Mutate = %d, want 1", got)
	}
}

// A Mutate waiting for a cart another Mutate holds gives up when its
// context ends, without running fn; the holder is unaffected.
func testContextDeadlineWhileLocked(t *testing.T, s syncserver.Store) {
	const id = "cart-wait"
	letGo, holder := holdLocked(t, s, id, "c1")
	ctx, cancel := context.WithTimeout(t.Context(), 200*time.Millisecond)
	defer cancel()
	start := time.Now()
	err := s.Mutate(ctx, id, []string{"c2"}, func(rec *syncserver.Record) error {
		t.Error("Mutate past its deadline called fn")
		return apply(addOp("c2", 1, "sku", 1))(rec)
	})
	waited := time.Since(start)
	letGo()
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("Mutate while locked, past deadline: error = %v, want context.DeadlineExceeded", err)
	}
	if waited > 3*time.Second {
		t.Errorf("Mutate returned after %v, with a deadline of 200ms", waited)
	}
	if err := <-holder; err != nil {
		t.Fatalf("holder Mutate: %v", err)
	}
	rec := load(t, s, id, "c1", "c2")
	checkSeqs(t, "Load", rec.Seqs, map[string]uint64{"c1": 1, "c2": 0})
	if rec.Cart.Version != 1 {
		t.Errorf("version = %d, want 1", rec.Cart.Version)
	}
}
