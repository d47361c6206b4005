package sqlite

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"strconv"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/cartsync/cartsync/shared/cart"
	"github.com/cartsync/cartsync/syncserver"
)

// CommitBatch implements syncserver.BatchCommitter: one write transaction,
// and so one WAL sync, for the whole batch. SQLite has one writer, so the
// transaction holds every cart of the file; the carts are read and written
// in the order given.
func (s *Store) CommitBatch(ctx context.Context, carts []syncserver.BatchCart, decide func([]syncserver.BatchLoad) ([]syncserver.BatchWrite, error)) error {
	unlock, err := s.lockWrites(ctx)
	if err != nil {
		return fmt.Errorf("commit batch: %w", err)
	}
	defer unlock()
	tx, err := s.w.BeginTx(ctx, nil)
	if err != nil {
		return fmt.Errorf("commit batch: begin: %w", err)
	}
	defer tx.Rollback()
	// Another process sharing the file may have written since this
	// one's last commit: then nothing in the memo can be trusted.
	var dataVersion int64
	if err := tx.QueryRowContext(ctx, `PRAGMA data_version`).Scan(&dataVersion); err != nil {
		return fmt.Errorf("commit batch: data version: %w", err)
	}
	if dataVersion != s.dataVersion {
		s.memo.Clear()
		s.dataVersion = dataVersion
	}

	loaded := make([]syncserver.BatchLoad, len(carts))
	for i, c := range carts {
		_, memo := s.memo.Lookup(c.ID)
		rec, err := loadRecordMemo(ctx, tx, c.ID, c.Clients, memo)
		switch {
		case errors.Is(err, syncserver.ErrCartNotFound):
			rec = &syncserver.Record{Cart: &cart.Cart{ID: c.ID}, Seqs: zeroSeqs(c.Clients)}
		case errors.Is(err, syncserver.ErrCartExpired):
			loaded[i].Err = syncserver.ErrCartExpired
			continue
		case err != nil:
			return fmt.Errorf("commit batch: cart %s: %w", c.ID, err)
		}
		if c.AllClients {
			all, err := allSeqs(ctx, tx, c.ID)
			if err != nil {
				return fmt.Errorf("commit batch: cart %s: %w", c.ID, err)
			}
			if rec.Seqs == nil {
				rec.Seqs = make(map[string]uint64, len(all))
			}
			maps.Copy(rec.Seqs, all)
		}
		loaded[i].Rec = rec
	}
	writes, err := decide(loaded)
	if err != nil {
		return err
	}
	for _, w := range writes {
		ws, err := w.Prepare()
		if err != nil {
			return fmt.Errorf("commit batch: cart %s: %w", w.ID, err)
		}
		if err := writeRecord(ctx, tx, ws); err != nil {
			return fmt.Errorf("commit batch: cart %s: %w", w.ID, err)
		}
	}
	if err := tx.Commit(); err != nil {
		// An I/O error during COMMIT may leave it done: not retried.
		return fmt.Errorf("commit batch: commit: %w: %w", syncserver.ErrCommitUnknown, err)
	}
	for _, w := range writes {
		s.memo.Put(w.ID, strconv.FormatUint(w.Rec.Cart.Version, 10), w.Rec.Cart)
	}
	return nil
}

// memoCarts bounds the carts a Store keeps decoded (see CartMemo).
const memoCarts = 5_000

// GroupCommitStats implements syncserver.GroupCommitStore.
func (s *Store) GroupCommitStats() (batches, mutations uint64) {
	return s.group.Stats()
}

// GroupCommitCollectors implements syncserver.GroupCommitStore.
func (s *Store) GroupCommitCollectors() []prometheus.Collector {
	return s.group.Collectors()
}
