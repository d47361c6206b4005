package postgres

import (
	"context"
	"encoding/json"
	"fmt"
	"maps"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/cartsync/cartsync/shared/cart"
	"github.com/cartsync/cartsync/syncserver"
)

// The two-cart login merge and the retention purge, the Store methods
// that lock or sweep several carts.

// Merge implements syncserver.Store. It costs two round trips, like
// Mutate: the into row is made to exist, both rows are locked in id order
// (the order of every multi-cart lock, so two Merges never wait on each
// other in a cycle) and the seqs read, in one batch; the writes of both
// carts and the COMMIT in another.
func (s *Store) Merge(ctx context.Context, fromID, intoID string, fn func(from, into *syncserver.Record) error) error {
	if fromID == intoID {
		return fmt.Errorf("merge cart %s into itself", fromID)
	}
	conn, err := s.pool.Acquire(ctx)
	if err != nil {
		return withCtx(ctx, fmt.Errorf("merge cart %s into %s: acquire connection: %w", fromID, intoID, err))
	}
	inTx := false
	defer func() { release(ctx, conn, inTx) }()

	type row struct {
		state              []byte
		updated, abandoned *time.Time
		expired            bool
		meta               syncserver.Meta
	}
	rows := map[string]*row{}
	fromSeqs, intoSeqs := map[string]uint64{}, map[string]uint64{}
	seqsInto := func(seqs map[string]uint64) func(pgx.Rows) error {
		return func(rows pgx.Rows) error {
			var client string
			var seq int64
			_, err := pgx.ForEachRow(rows, []any{&client, &seq}, func() error {
				seqs[client] = uint64(seq)
				return nil
			})
			return err
		}
	}
	b := &pgx.Batch{}
	b.Queue("BEGIN")
	b.Queue(sqlEnsureCart, intoID)
	b.Queue(sqlLockPair, []string{fromID, intoID}).Query(func(rs pgx.Rows) error {
		defer rs.Close()
		for rs.Next() {
			var id string
			r := new(row)
			if err := rs.Scan(&id, &r.meta.Kind, &r.state, &r.meta.MergedInto, &r.updated, &r.abandoned, &r.expired); err != nil {
				return err
			}
			rows[id] = r
		}
		return rs.Err()
	})
	b.Queue(sqlLoadAllSeqs, fromID).Query(seqsInto(fromSeqs))
	b.Queue(sqlLoadSeqsOf, fromID, intoID).Query(seqsInto(intoSeqs))
	inTx = true
	if err := conn.SendBatch(ctx, b).Close(); err != nil {
		return withCtx(ctx, fmt.Errorf("merge cart %s into %s: lock: %w", fromID, intoID, err))
	}
	f, i := rows[fromID], rows[intoID]
	switch {
	case f == nil || f.state == nil:
		return syncserver.ErrCartNotFound
	case f.expired || i != nil && i.expired:
		return syncserver.ErrCartExpired
	case i == nil:
		// The purge deleted the into row between the insert and the lock.
		return fmt.Errorf("merge cart %s into %s: %w", fromID, intoID, syncserver.ErrCartGone)
	}
	record := func(id string, r *row, seqs map[string]uint64) (*syncserver.Record, error) {
		rec := &syncserver.Record{Meta: r.meta, Seqs: seqs}
		rec.Meta.UpdatedAt, rec.Meta.AbandonedAt = utc(r.updated), utc(r.abandoned)
		if r.state == nil {
			rec.Cart = &cart.Cart{ID: id}
			return rec, nil
		}
		rec.Exists = true
		rec.Cart = new(cart.Cart)
		if err := json.Unmarshal(r.state, rec.Cart); err != nil {
			return nil, fmt.Errorf("merge cart %s into %s: decode cart %s: %w", fromID, intoID, id, err)
		}
		return rec, nil
	}
	for c := range fromSeqs {
		if _, ok := intoSeqs[c]; !ok {
			intoSeqs[c] = 0
		}
	}
	from, err := record(fromID, f, fromSeqs)
	if err != nil {
		return err
	}
	into, err := record(intoID, i, intoSeqs)
	if err != nil {
		return err
	}

	fromBefore, intoBefore := maps.Clone(from.Seqs), maps.Clone(into.Seqs)
	if err := fn(from, into); err != nil {
		return err
	}
	b = &pgx.Batch{}
	if err := queueWrites(b, fromID, from, fromBefore, nil); err != nil {
		return fmt.Errorf("merge cart %s into %s: cart %s: %w", fromID, intoID, fromID, err)
	}
	if err := queueWrites(b, intoID, into, intoBefore, nil); err != nil {
		return fmt.Errorf("merge cart %s into %s: cart %s: %w", fromID, intoID, intoID, err)
	}
	b.Queue("COMMIT")
	if err := conn.SendBatch(ctx, b).Close(); err != nil {
		return withCtx(ctx, fmt.Errorf("merge cart %s into %s: write: %w", fromID, intoID, err))
	}
	inTx = false
	return nil
}

// Purge implements syncserver.Store, in one transaction. A limit below 1
// purges nothing. Tombstones are stamped with this process's time.Now(),
// to be compared with tombstoneCutoff; only tombstones of the given kind
// are deleted. Each cart expired gets its cart.expired event, stamped with
// the same time, in the same transaction.
func (s *Store) Purge(ctx context.Context, kind string, cutoff, tombstoneCutoff time.Time, limit int) ([]string, error) {
	if err := ctx.Err(); err != nil {
		return nil, fmt.Errorf("purge %s carts: %w", kind, err)
	}
	if limit < 1 {
		return nil, nil
	}
	tx, err := s.pool.Begin(ctx)
	if err != nil {
		return nil, withCtx(ctx, fmt.Errorf("purge %s carts: begin: %w", kind, err))
	}
	defer tx.Rollback(context.WithoutCancel(ctx))

	// Times are kept to the millisecond, rounded down: a cart stored at
	// the cutoff's millisecond may have changed after the cutoff, so only
	// earlier milliseconds count.
	now := time.Now().Truncate(time.Millisecond)
	rows, _ := tx.Query(ctx, sqlExpire, kind, cutoff.Truncate(time.Millisecond), limit, now)
	ids, err := pgx.CollectRows(rows, pgx.RowTo[string])
	if err != nil {
		return nil, withCtx(ctx, fmt.Errorf("purge %s carts: expire: %w", kind, err))
	}
	// Each statement of the batch sees every commit before it began,
	// and no write to these carts can commit while their rows are locked.
	b := &pgx.Batch{}
	if len(ids) > 0 {
		b.Queue(sqlClearLog, ids)
		b.Queue(sqlClearSeqs, ids)
		evs := make([]syncserver.Event, len(ids))
		for i, id := range ids {
			evs[i] = syncserver.ExpiredEvent(id, kind, now)
		}
		if err := queueEvents(b, "", evs, now); err != nil {
			return nil, fmt.Errorf("purge %s carts: %w", kind, err)
		}
	}
	b.Queue(sqlDropTombstones, kind, tombstoneCutoff, limit)
	if err := tx.SendBatch(ctx, b).Close(); err != nil {
		return nil, withCtx(ctx, fmt.Errorf("purge %s carts: %w", kind, err))
	}
	if err := tx.Commit(ctx); err != nil {
		return nil, withCtx(ctx, fmt.Errorf("purge %s carts: commit: %w", kind, err))
	}
	return ids, nil
}
