package syncserver

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"maps"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/cartsync/cartsync/shared/cart"
)

// batchStore is an in-memory BatchCommitter: each cart a version and the
// labels of the Mutates applied to it, in order.
type batchStore struct {
	mu      sync.Mutex
	carts   map[string]*Record
	sizes   []int // carts per CommitBatch call
	failBig error // if set, a batch of more than one cart fails with it
	singles int   // batches of one cart after the first batch
}

func newBatchStore() *batchStore { return &batchStore{carts: map[string]*Record{}} }

func (b *batchStore) CommitBatch(ctx context.Context, carts []BatchCart, decide func([]BatchLoad) ([]BatchWrite, error)) error {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.sizes = append(b.sizes, len(carts))
	if len(carts) == 1 && len(b.sizes) > 1 {
		b.singles++
	}
	if !slices.IsSortedFunc(carts, func(x, y BatchCart) int { return cmp.Compare(x.ID, y.ID) }) {
		return fmt.Errorf("carts not in id order: %v", carts)
	}
	loaded := make([]BatchLoad, len(carts))
	for i, c := range carts {
		loaded[i].Rec = b.load(c.ID, c.Clients)
	}
	writes, err := decide(loaded)
	if err != nil {
		return err
	}
	if b.failBig != nil && len(carts) > 1 {
		return b.failBig
	}
	for _, w := range writes {
		b.carts[w.ID] = &Record{Cart: w.Rec.Cart.Clone(), Meta: w.Rec.Meta, Exists: true, Seqs: maps.Clone(w.Rec.Seqs)}
	}
	return nil
}

func (b *batchStore) load(id string, clients []string) *Record {
	rec := &Record{Cart: &cart.Cart{ID: id}, Seqs: map[string]uint64{}}
	if have, ok := b.carts[id]; ok {
		rec = &Record{Cart: have.Cart.Clone(), Meta: have.Meta, Exists: true, Seqs: map[string]uint64{}}
		for _, c := range clients {
			rec.Seqs[c] = have.Seqs[c]
		}
	}
	return rec
}

// label returns a fn that appends a line named after the Mutate.
func label(name string) func(*Record) error {
	return func(rec *Record) error {
		rec.Cart.Version++
		rec.Cart.Lines = append(rec.Cart.Lines, &cart.Line{Key: name, SKU: name, Quantity: 1})
		return nil
	}
}

func lineKeys(c *cart.Cart) []string {
	var keys []string
	for _, l := range c.Lines {
		keys = append(keys, l.Key)
	}
	return keys
}

// queued waits until n Mutates are queued behind the committer.
func waitQueued(t *testing.T, g *GroupCommitter, n int) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		g.mu.Lock()
		got := len(g.queue)
		g.mu.Unlock()
		if got >= n {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d Mutates queued, want %d", got, n)
		}
		time.Sleep(time.Millisecond)
	}
}

// histogramCounts returns the samples of each of g's histograms, by name.
func histogramCounts(t *testing.T, g *GroupCommitter) map[string]uint64 {
	t.Helper()
	reg := prometheus.NewRegistry()
	reg.MustRegister(g.Collectors()...)
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	counts := map[string]uint64{}
	for _, mf := range mfs {
		for _, m := range mf.GetMetric() {
			counts[mf.GetName()] += m.GetHistogram().GetSampleCount()
		}
	}
	return counts
}

// While a batch commits, the Mutates that arrive wait and then commit
// together, each cart's in the order they arrived; a failing one and a
// caller that gave up leave nothing.
func TestGroupCommitBatchesWhileBusy(t *testing.T) {
	b := newBatchStore()
	g := NewGroupCommitter(b, GroupCommitConfig{Committers: 1})
	ctx := t.Context()

	started, release := make(chan struct{}), make(chan struct{})
	first := make(chan error, 1)
	go func() {
		first <- g.Mutate(ctx, "cart-a", nil, func(rec *Record) error {
			close(started)
			<-release
			return label("a0")(rec)
		})
	}()
	<-started

	type call struct {
		cart, name string
		fail       bool
	}
	calls := []call{
		{"cart-b", "b1", false}, {"cart-a", "a1", false}, {"cart-b", "b2", true},
		{"cart-c", "c1", false}, {"cart-b", "b3", false}, {"cart-a", "a2", false},
	}
	errRefused := errors.New("refused")
	results := make([]chan error, len(calls))
	for i, c := range calls {
		results[i] = make(chan error, 1)
		go func() {
			results[i] <- g.Mutate(ctx, c.cart, []string{"dev"}, func(rec *Record) error {
				if err := label(c.name)(rec); err != nil {
					return err
				}
				rec.Seqs["dev"]++
				if c.fail {
					return errRefused
				}
				return nil
			})
		}()
		waitQueued(t, g, i+1)
	}
	// One that gives up while queued is never run.
	gaveUp, cancel := context.WithCancel(ctx)
	abandoned := make(chan error, 1)
	go func() {
		abandoned <- g.Mutate(gaveUp, "cart-a", nil, func(*Record) error {
			t.Error("fn of an abandoned Mutate ran")
			return nil
		})
	}()
	waitQueued(t, g, len(calls)+1)
	cancel()
	if err := <-abandoned; !errors.Is(err, context.Canceled) {
		t.Errorf("abandoned Mutate: %v, want context.Canceled", err)
	}
	close(release)

	if err := <-first; err != nil {
		t.Fatalf("first Mutate: %v", err)
	}
	for i, c := range calls {
		err := <-results[i]
		if c.fail != errors.Is(err, errRefused) || (!c.fail && err != nil) {
			t.Errorf("Mutate %s: %v", c.name, err)
		}
	}
	if batches, mutations := g.Stats(); batches != 2 || mutations != uint64(len(calls)+1) {
		t.Errorf("Stats = %d batches, %d Mutates; want 2 and %d", batches, mutations, len(calls)+1)
	}
	if want := []int{1, 3}; !slices.Equal(b.sizes, want) {
		t.Errorf("carts per batch = %v, want %v", b.sizes, want)
	}
	// Every Mutate taken into a batch waited once; each batch committed once.
	if got, want := histogramCounts(t, g), map[string]uint64{
		"cartsync_commit_wait_seconds": uint64(len(calls) + 1), "cartsync_commit_seconds": 2,
	}; !maps.Equal(got, want) {
		t.Errorf("histogram samples = %v, want %v", got, want)
	}
	want := map[string][]string{"cart-a": {"a0", "a1", "a2"}, "cart-b": {"b1", "b3"}, "cart-c": {"c1"}}
	for id, keys := range want {
		got := b.carts[id]
		if !slices.Equal(lineKeys(got.Cart), keys) || got.Cart.Version != uint64(len(keys)) {
			t.Errorf("%s: lines %v at version %d, want %v", id, lineKeys(got.Cart), got.Cart.Version, keys)
		}
	}
	if got := b.carts["cart-b"].Seqs["dev"]; got != 2 {
		t.Errorf("cart-b: seq of dev = %d, want 2 (the refused Mutate's seq dropped)", got)
	}
}

// A batch that fails as a whole is committed again Mutate by Mutate,
// unless it may have committed: then no fn runs again.
func TestGroupCommitBatchFailureRetriesOneByOne(t *testing.T) {
	for _, tt := range []struct {
		name    string
		err     error
		singles int
	}{
		{"rolled back", errors.New("statement failed"), 5},
		{"outcome unknown", fmt.Errorf("connection reset: %w", ErrCommitUnknown), 0},
	} {
		t.Run(tt.name, func(t *testing.T) {
			b := newBatchStore()
			b.failBig = tt.err
			g := NewGroupCommitter(b, GroupCommitConfig{Committers: 1})
			ctx := t.Context()

			started, release := make(chan struct{}), make(chan struct{})
			first := make(chan error, 1)
			go func() {
				first <- g.Mutate(ctx, "cart-0", nil, func(rec *Record) error {
					close(started)
					<-release
					return label("x")(rec)
				})
			}()
			<-started
			const n = 5
			results := make(chan error, n)
			for i := range n {
				go func() { results <- g.Mutate(ctx, fmt.Sprintf("cart-%d", i+1), nil, label("y")) }()
			}
			waitQueued(t, g, n)
			close(release)
			if err := <-first; err != nil {
				t.Fatalf("first Mutate: %v", err)
			}
			for range n {
				err := <-results
				if tt.singles == 0 && !errors.Is(err, ErrCommitUnknown) {
					t.Errorf("Mutate in a batch of unknown outcome: %v, want ErrCommitUnknown", err)
				}
				if tt.singles > 0 && err != nil {
					t.Errorf("Mutate in a failed batch: %v, want it committed on its own", err)
				}
			}
			if b.singles != tt.singles {
				t.Errorf("%d Mutates committed one by one, want %d", b.singles, tt.singles)
			}
			// Stats count what committed: the first batch, and each
			// one-by-one commit; not the batch that failed.
			if batches, mutations := g.Stats(); batches != uint64(1+tt.singles) || mutations != uint64(1+tt.singles) {
				t.Errorf("Stats = %d batches, %d Mutates; want %d of each", batches, mutations, 1+tt.singles)
			}
			// Two batches (the first, and the five that failed together):
			// the one-by-one retries count in their batch's time.
			if got, want := histogramCounts(t, g), map[string]uint64{
				"cartsync_commit_wait_seconds": n + 1, "cartsync_commit_seconds": 2,
			}; !maps.Equal(got, want) {
				t.Errorf("histogram samples = %v, want %v", got, want)
			}
			for i := range tt.singles {
				if c := b.carts[fmt.Sprintf("cart-%d", i+1)]; c == nil || c.Cart.Version != 1 {
					t.Errorf("cart-%d: %+v, want version 1", i+1, c)
				}
			}
		})
	}
}

// expectingStore is a BatchCommitter that decides a batch on the carts as
// it expects them first (stale here: version 7), then finds them changed
// and decides again on the carts as locked and commits; or, with err,
// fails with it before it could lock them.
type expectingStore struct {
	*batchStore
	err error
}

func (s expectingStore) CommitBatch(ctx context.Context, carts []BatchCart, decide func([]BatchLoad) ([]BatchWrite, error)) error {
	expected := make([]BatchLoad, len(carts))
	for i, c := range carts {
		expected[i].Rec = &Record{Cart: &cart.Cart{ID: c.ID, Version: 7}, Exists: true, Seqs: map[string]uint64{}}
	}
	if _, err := decide(expected); err != nil {
		return err
	}
	if s.err != nil {
		return s.err
	}
	return s.batchStore.CommitBatch(ctx, carts, decide)
}

// What fn said or did on the carts a store expected, but found changed,
// never reaches the caller: only its run on the locked cart counts, and a
// batch that then fails answers its own error.
func TestGroupCommitOnlyTheLastDecideCounts(t *testing.T) {
	errStale := errors.New("refused on the stale cart")
	fn := func(rec *Record) error {
		switch {
		case rec.Cart.Version == 7 && rec.Cart.ID == "cart-err":
			return errStale
		case rec.Cart.Version == 7:
			panic("fn saw the stale cart")
		}
		return label("x")(rec)
	}
	for _, tt := range []struct {
		name string
		err  error
	}{
		{"committed", nil},
		{"failed", errors.New("write failed")},
	} {
		t.Run(tt.name, func(t *testing.T) {
			b := newBatchStore()
			g := NewGroupCommitter(expectingStore{b, tt.err}, GroupCommitConfig{Committers: 1})
			for _, id := range []string{"cart-err", "cart-panic"} {
				err := g.Mutate(t.Context(), id, nil, fn)
				switch {
				case tt.err == nil && err != nil:
					t.Errorf("Mutate(%s) = %v, want nil: its run on the locked cart succeeded", id, err)
				case tt.err != nil && !errors.Is(err, tt.err):
					t.Errorf("Mutate(%s) = %v, want the batch's error %q", id, err, tt.err)
				}
				if c := b.carts[id]; tt.err == nil && (c == nil || c.Cart.Version != 1) {
					t.Errorf("%s after the commit: %+v, want version 1", id, c)
				}
			}
		})
	}
}
