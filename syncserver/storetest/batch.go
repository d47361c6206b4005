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

// errRefused is what a Mutate fn of testMixedOutcomes fails with after it
// changed the record.
var errRefused = errors.New("storetest: refused after changing the record")

// panicMixed is what a Mutate fn of testMixedOutcomes panics with.
type panicMixed struct{ client, cart string }

// Concurrent Mutates of several carts, some failing and some panicking
// after they changed the record, as group commit puts them together in
// one transaction: each cart holds exactly the Mutates that succeeded,
// each seeing the one before, gap-free; a failed one leaves nothing and
// its caller gets its own error or panic, not its neighbours'.
func testMixedOutcomes(t *testing.T, s syncserver.Store) {
	const workers, each = 16, 12
	carts := []string{"cart-mix-a", "cart-mix-b", "cart-mix-c", "cart-mix-d"}
	ctx, cancel := context.WithTimeout(t.Context(), 2*time.Minute)
	defer cancel()

	var mu sync.Mutex
	succeeded := map[string]map[string]uint64{} // cart -> client -> seq
	for _, c := range carts {
		succeeded[c] = map[string]uint64{}
	}
	errs := make(chan error, workers*each)
	var wg sync.WaitGroup
	for w := range workers {
		client := fmt.Sprintf("m%02d", w)
		wg.Go(func() {
			next := map[string]uint64{}
			for i := range each {
				id := carts[(w+i)%len(carts)]
				seq := next[id] + 1
				outcome := (w*7 + i) % 5
				recovered, err := mutateRecovering(ctx, s, id, client, func(rec *syncserver.Record) error {
					if got := rec.Seqs[client]; got != seq-1 {
						return fmt.Errorf("client %s on %s: Mutate sees seq %d, want %d", client, id, got, seq-1)
					}
					if err := applyOne(rec, addOp(client, seq, "counter", 1)); err != nil {
						return err
					}
					switch outcome {
					case 0:
						return errRefused
					case 1:
						panic(panicMixed{client, id})
					}
					return nil
				})
				switch {
				case outcome == 0 && !errors.Is(err, errRefused):
					errs <- fmt.Errorf("client %s on %s: refused Mutate returned %v, want its own error", client, id, err)
				case outcome == 1 && recovered != (panicMixed{client, id}):
					errs <- fmt.Errorf("client %s on %s: panicking Mutate: recovered %v (error %v), want its own panic", client, id, recovered, err)
				case outcome > 1 && (err != nil || recovered != nil):
					errs <- fmt.Errorf("client %s on %s: Mutate: error %v, panic %v", client, id, err, recovered)
				case outcome > 1:
					next[id] = seq
					mu.Lock()
					succeeded[id][client] = seq
					mu.Unlock()
				}
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}

	for _, id := range carts {
		var clients []string
		total := uint64(0)
		for c, seq := range succeeded[id] {
			clients = append(clients, c)
			total += seq
		}
		rec := load(t, s, id, clients...)
		if rec.Cart.Version != total {
			t.Errorf("%s: version = %d, want %d (the Mutates that succeeded)", id, rec.Cart.Version, total)
		}
		if l := rec.Cart.Line("counter"); l == nil || uint64(l.Quantity) != total {
			t.Errorf("%s: counter line = %+v, want quantity %d", id, l, total)
		}
		checkSeqs(t, id+" Load", rec.Seqs, succeeded[id])
		log := changes(t, s, id, 0, int(total)+10)
		if uint64(len(log)) != total {
			t.Errorf("%s: log has %d changes, want %d", id, len(log), total)
			continue
		}
		for i, ch := range log {
			if ch.Version != uint64(i+1) {
				t.Errorf("%s: log[%d].Version = %d, want %d", id, i, ch.Version, i+1)
				break
			}
		}
	}
}

// mutateRecovering runs one Mutate for client and returns the value it
// panicked with, or its error.
func mutateRecovering(ctx context.Context, s syncserver.Store, id, client string, fn func(*syncserver.Record) error) (recovered any, err error) {
	defer func() { recovered = recover() }()
	return nil, s.Mutate(ctx, id, []string{client}, fn)
}
