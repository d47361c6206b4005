package syncserver

import (
	"context"
	"errors"
	"fmt"
	"maps"
)

// MutateBatch is Store.Mutate for a store that commits batches, as a batch
// of one cart and one Mutate, without a GroupCommitter: for stores that do
// not need one (memstore).
func MutateBatch(ctx context.Context, bc BatchCommitter, cartID string, clients []string, fn func(rec *Record) error) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	var fnErr error // returned as it is
	err := bc.CommitBatch(ctx, []BatchCart{{ID: cartID, Clients: clients}}, func(loaded []BatchLoad) ([]BatchWrite, error) {
		l := loaded[0]
		if l.Err != nil {
			return nil, l.Err
		}
		rec := &Record{Cart: l.Rec.Cart.Clone(), Meta: l.Rec.Meta, Exists: l.Rec.Exists, Seqs: maps.Clone(l.Rec.Seqs)}
		if fnErr = fn(rec); fnErr != nil {
			return nil, fnErr
		}
		return []BatchWrite{{ID: cartID, Rec: rec, Before: l.Rec.Seqs}}, nil
	})
	return err
}

// MergeBatch is Store.Merge for a store that commits batches: the login
// merge is a batch of its two carts, locked in id order, so that a store
// writes it with the primitives it writes everything else with. Both
// carts are loaded with the seq of every client that ever edited them;
// from keeps them all, into those of from's clients only (0 where into
// has none), as Merge promises.
func MergeBatch(ctx context.Context, bc BatchCommitter, fromID, intoID string, fn func(from, into *Record) error) error {
	if fromID == intoID {
		return fmt.Errorf("merge cart %s into itself", fromID)
	}
	fi, ii := 0, 1
	if intoID < fromID {
		fi, ii = 1, 0
	}
	carts := make([]BatchCart, 2)
	carts[fi] = BatchCart{ID: fromID, AllClients: true}
	carts[ii] = BatchCart{ID: intoID, AllClients: true}
	var fnErr error // returned as it is
	err := bc.CommitBatch(ctx, carts, func(loaded []BatchLoad) ([]BatchWrite, error) {
		f, i := loaded[fi], loaded[ii]
		switch {
		case errors.Is(f.Err, ErrCartExpired):
			return nil, ErrCartExpired
		case errors.Is(f.Err, ErrCartGone):
			// Purged between the batch making its row exist and
			// locking it: it was not there to merge.
			return nil, ErrCartNotFound
		case f.Err != nil:
			return nil, f.Err
		case !f.Rec.Exists:
			return nil, ErrCartNotFound
		case i.Err != nil:
			return nil, i.Err
		}
		// The loaded carts may be shared with the store's memo: fn
		// changes copies.
		from := &Record{Cart: f.Rec.Cart.Clone(), Meta: f.Rec.Meta, Exists: true, Seqs: f.Rec.Seqs}
		into := &Record{Cart: i.Rec.Cart.Clone(), Meta: i.Rec.Meta, Exists: i.Rec.Exists, Seqs: make(map[string]uint64, len(from.Seqs))}
		for c := range from.Seqs {
			into.Seqs[c] = i.Rec.Seqs[c]
		}
		fromBefore, intoBefore := maps.Clone(from.Seqs), maps.Clone(into.Seqs)
		if fnErr = fn(from, into); fnErr != nil {
			return nil, fnErr
		}
		writes := make([]BatchWrite, 2)
		writes[fi] = BatchWrite{ID: fromID, Rec: from, Before: fromBefore}
		writes[ii] = BatchWrite{ID: intoID, Rec: into, Before: intoBefore}
		return writes, nil
	})
	if err != nil && fnErr == nil && !errors.Is(err, ErrCartNotFound) && !errors.Is(err, ErrCartExpired) {
		return fmt.Errorf("merge cart %s into %s: %w", fromID, intoID, err)
	}
	return err
}
