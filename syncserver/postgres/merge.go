package postgres

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/cartsync/cartsync/syncserver"
)

// The two-cart login merge and the retention purge, the Store methods
// that lock or sweep several carts.

// Merge implements syncserver.Store as a batch of its two carts
// (syncserver.MergeBatch).
func (s *Store) Merge(ctx context.Context, fromID, intoID string, fn func(from, into *syncserver.Record) error) error {
	return syncserver.MergeBatch(ctx, s, fromID, intoID, fn)
}

// Purge implements syncserver.Store, in one transaction. A limit below 1
// purges nothing. Tombstones are stamped with this process's time.Now(),
// to be compared with tombstoneCutoff; only tombstones of the given kind
// are deleted. Each cart expired gets its cart.expired event, stamped with
// the same time, in the same transaction.
func (s *Store) Purge(ctx context.Context, kind string, cutoff, tombstoneCutoff time.Time, limit int, settled bool) ([]string, error) {
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
			evs[i] = syncserver.ExpiredEvent(id, kind, now, settled)
		}
		if err := queueEvents(b, "", evs, now); err != nil {
			return nil, fmt.Errorf("purge %s carts: %w", kind, err)
		}
	}
	var dropped []string
	b.Queue(sqlDropTombstones, kind, tombstoneCutoff, limit).Query(func(rows pgx.Rows) (err error) {
		dropped, err = pgx.CollectRows(rows, pgx.RowTo[string])
		return err
	})
	if err := tx.SendBatch(ctx, b).Close(); err != nil {
		return nil, withCtx(ctx, fmt.Errorf("purge %s carts: %w", kind, err))
	}
	// Before the commit, so that later batches do not decide on these
	// carts from memory (they would call their fns on them, and then find
	// them gone; Store.Mutate allows it, but it is wasted work). A batch
	// that took its record before, or wrote the cart just before the
	// purge locked it, may still do so once; the check under lock catches
	// it. Another instance's memo finds out at its next batch.
	s.memo.Forget(ids...)
	s.memo.Forget(dropped...)
	if err := tx.Commit(ctx); err != nil {
		return nil, withCtx(ctx, fmt.Errorf("purge %s carts: commit: %w", kind, err))
	}
	return ids, nil
}

// HasTombstones implements syncserver.TombstoneChecker (on the index of
// expired carts).
func (s *Store) HasTombstones(ctx context.Context, kind string) (bool, error) {
	var has bool
	err := s.pool.QueryRow(ctx, `SELECT EXISTS (SELECT 1 FROM carts WHERE kind = $1 AND expired_at IS NOT NULL)`, kind).Scan(&has)
	if err != nil {
		return false, withCtx(ctx, fmt.Errorf("look for %s tombstones: %w", kind, err))
	}
	return has, nil
}

// Erase implements syncserver.Store, in one transaction. Finding the
// merged guest carts and the events reads every cart and every event: a
// rare call, with no index of its own on the write path.
func (s *Store) Erase(ctx context.Context, cartID string) ([]string, error) {
	tx, err := s.pool.Begin(ctx)
	if err != nil {
		return nil, withCtx(ctx, fmt.Errorf("erase cart %s: begin: %w", cartID, err))
	}
	defer tx.Rollback(context.WithoutCancel(ctx))
	// The cart's row first: a merge into it (which locks it) has committed
	// when the lock is ours, and the statements after this one see its
	// guest cart; one that starts later merges into the emptied cart.
	// A cart emptied by an erasure and not changed since (its version is
	// still the one it started over at) keeps its version: a retried call
	// does not make it a new cart (its devices are told again, and those
	// that show it take no notice).
	var exists, untouched bool
	switch err := tx.QueryRow(ctx, `SELECT true, COALESCE(state->>'erased' = 'true' AND (state->>'started')::bigint = version, false)
		FROM carts WHERE id = $1 FOR UPDATE`, cartID).Scan(&exists, &untouched); {
	case errors.Is(err, pgx.ErrNoRows):
	case err != nil:
		return nil, withCtx(ctx, fmt.Errorf("erase cart %s: lock: %w", cartID, err))
	}
	// The guests' seqs and log go with their rows (ON DELETE CASCADE).
	rows, _ := tx.Query(ctx, `DELETE FROM carts WHERE merged_into = $1 AND id <> $1 RETURNING id`, cartID)
	ids, err := pgx.CollectRows(rows, pgx.RowTo[string])
	if err != nil {
		return nil, withCtx(ctx, fmt.Errorf("erase cart %s: merged guest carts: %w", cartID, err))
	}
	b := &pgx.Batch{}
	if exists {
		if !untouched {
			b.Queue(`UPDATE carts SET version = version + 1,
				state = jsonb_build_object('id', id, 'version', version + 1, 'lines', '[]'::jsonb, 'started', version + 1, 'erased', true),
				merged_into = '', expired_at = NULL, updated_at = $2, abandoned_at = NULL
				WHERE id = $1`, cartID, time.Now().Truncate(time.Millisecond))
		}
		b.Queue(sqlClearLog, []string{cartID})
		b.Queue(sqlClearSeqs, []string{cartID})
		ids = append(ids, cartID)
	}
	if len(ids) > 0 {
		b.Queue(`DELETE FROM events WHERE cart_id = ANY($1)`, ids)
	}
	if err := tx.SendBatch(ctx, b).Close(); err != nil {
		return nil, withCtx(ctx, fmt.Errorf("erase cart %s: %w", cartID, err))
	}
	s.memo.Forget(ids...)
	if err := tx.Commit(ctx); err != nil {
		return nil, withCtx(ctx, fmt.Errorf("erase cart %s: commit: %w", cartID, err))
	}
	return ids, nil
}

// Revive implements syncserver.Store: one statement on the tombstone's
// row (its log and seqs were deleted with its lines).
func (s *Store) Revive(ctx context.Context, cartID, user string, now time.Time) (bool, error) {
	tag, err := s.pool.Exec(ctx, `UPDATE carts
		SET expired_at = NULL, version = version + 1,
			state = jsonb_build_object('id', id, 'version', version + 1, 'lines', '[]'::jsonb, 'started', version + 1, 'user', $4::text),
			updated_at = $2, abandoned_at = NULL
		WHERE id = $1 AND kind = $3 AND expired_at IS NOT NULL`, cartID, now.Truncate(time.Millisecond), syncserver.KindUser, user)
	if err != nil {
		return false, withCtx(ctx, fmt.Errorf("revive cart %s: %w", cartID, err))
	}
	s.memo.Forget(cartID)
	return tag.RowsAffected() == 1, nil
}
