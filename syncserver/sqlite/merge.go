package sqlite

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	_ "modernc.org/sqlite" // registers the "sqlite" driver

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
// purges nothing. Tombstones are stamped with time.Now(), to be compared
// with tombstoneCutoff; only tombstones of the given kind are deleted. Each
// cart expired gets its cart.expired event, stamped with the same time, in
// the same transaction. If the purge committed but a later step failed, the
// ids expired are returned with the error.
func (s *Store) Purge(ctx context.Context, kind string, cutoff, tombstoneCutoff time.Time, limit int, settled bool) ([]string, error) {
	if err := ctx.Err(); err != nil {
		return nil, fmt.Errorf("purge %s carts: %w", kind, err)
	}
	if limit < 1 {
		return nil, nil
	}
	tx, err := s.w.BeginTx(ctx, nil)
	if err != nil {
		return nil, fmt.Errorf("purge %s carts: begin: %w", kind, err)
	}
	defer tx.Rollback()

	// Times are kept to the millisecond, rounded down: a cart stored at
	// the cutoff's millisecond may have changed after the cutoff, so only
	// earlier milliseconds count.
	before := cutoff.UnixMilli()
	now := time.Now()
	rows, err := tx.QueryContext(ctx, `UPDATE carts
		SET expired_at = ?, state = json_object('id', id, 'version', version, 'lines', json_array())
		WHERE id IN (SELECT id FROM carts WHERE kind = ? AND expired_at IS NULL
			AND (updated_at < ? OR (updated_at IS NULL AND created_at < ?)) LIMIT ?)
		RETURNING id`, now.UnixMilli(), kind, before, before, limit)
	ids, err := scanIDs(rows, err)
	if err != nil {
		return nil, fmt.Errorf("purge %s carts: expire: %w", kind, err)
	}
	if len(ids) > 0 {
		list, err := json.Marshal(ids)
		if err != nil {
			return nil, fmt.Errorf("purge %s carts: %w", kind, err)
		}
		for _, table := range []string{"cart_log", "cart_clients"} {
			if _, err := tx.ExecContext(ctx, `DELETE FROM `+table+` WHERE cart_id IN (SELECT value FROM json_each(?))`, string(list)); err != nil {
				return nil, fmt.Errorf("purge %s carts: clear %s: %w", kind, table, err)
			}
		}
		evs := make([]syncserver.Event, len(ids))
		for i, id := range ids {
			evs[i] = syncserver.ExpiredEvent(id, kind, now, settled)
		}
		if err := writeEvents(ctx, tx, "", evs); err != nil {
			return nil, fmt.Errorf("purge %s carts: %w", kind, err)
		}
	}
	if _, err := tx.ExecContext(ctx, `DELETE FROM carts WHERE id IN (
		SELECT id FROM carts WHERE kind = ? AND expired_at < ? LIMIT ?)`, kind, tombstoneCutoff.UnixMilli(), limit); err != nil {
		return nil, fmt.Errorf("purge %s carts: delete tombstones: %w", kind, err)
	}
	if err := tx.Commit(); err != nil {
		return nil, fmt.Errorf("purge %s carts: commit: %w", kind, err)
	}
	return ids, nil
}

// HasTombstones implements syncserver.TombstoneChecker (on the index of
// expired carts).
func (s *Store) HasTombstones(ctx context.Context, kind string) (bool, error) {
	var has bool
	err := s.r.QueryRowContext(ctx, `SELECT EXISTS (SELECT 1 FROM carts WHERE kind = ? AND expired_at IS NOT NULL)`, kind).Scan(&has)
	if err != nil {
		return false, fmt.Errorf("look for %s tombstones: %w", kind, err)
	}
	return has, nil
}

// Erase implements syncserver.Store, in one write transaction (writes
// are one at a time: no merge runs meanwhile). Finding the merged guest
// carts and the events reads every cart and every event: a rare call, with
// no index of its own on the write path.
func (s *Store) Erase(ctx context.Context, cartID string) ([]string, error) {
	unlock, err := s.lockWrites(ctx)
	if err != nil {
		return nil, fmt.Errorf("erase cart %s: %w", cartID, err)
	}
	defer unlock()
	tx, err := s.w.BeginTx(ctx, nil)
	if err != nil {
		return nil, fmt.Errorf("erase cart %s: begin: %w", cartID, err)
	}
	defer tx.Rollback()
	ids, err := scanIDs(tx.QueryContext(ctx, `DELETE FROM carts WHERE merged_into = ? AND id <> ? RETURNING id`, cartID, cartID))
	if err != nil {
		return nil, fmt.Errorf("erase cart %s: %w", cartID, err)
	}
	// The user's cart is emptied unless an erasure emptied it and nothing
	// changed it since (its version is still the one it started over at):
	// a retried call keeps its version (its devices are told again, and
	// those that show it take no notice).
	res, err := tx.ExecContext(ctx, `UPDATE carts SET version = version + 1,
			state = json_object('id', id, 'version', version + 1, 'lines', json_array(), 'started', version + 1, 'erased', json('true')),
			merged_into = '', expired_at = NULL, updated_at = ?, abandoned_at = NULL
		WHERE id = ? AND NOT coalesce(json_extract(state, '$.erased') = 1 AND json_extract(state, '$.started') = version, 0)`,
		time.Now().UnixMilli(), cartID)
	if err != nil {
		return nil, fmt.Errorf("erase cart %s: %w", cartID, err)
	}
	n, err := res.RowsAffected()
	if err == nil && n == 0 {
		err = tx.QueryRowContext(ctx, `SELECT count(*) FROM carts WHERE id = ?`, cartID).Scan(&n)
	}
	if err != nil {
		return nil, fmt.Errorf("erase cart %s: %w", cartID, err)
	}
	if n == 1 {
		ids = append(ids, cartID)
	}
	if len(ids) > 0 {
		list, err := json.Marshal(ids)
		if err != nil {
			return nil, fmt.Errorf("erase cart %s: %w", cartID, err)
		}
		for _, table := range []string{"cart_log", "cart_clients", "events"} {
			if _, err := tx.ExecContext(ctx, `DELETE FROM `+table+` WHERE cart_id IN (SELECT value FROM json_each(?))`, string(list)); err != nil {
				return nil, fmt.Errorf("erase cart %s: clear %s: %w", cartID, table, err)
			}
		}
	}
	if err := tx.Commit(); err != nil {
		return nil, fmt.Errorf("erase cart %s: commit: %w", cartID, err)
	}
	s.memo.Forget(ids...)
	return ids, nil
}

// Revive implements syncserver.Store: one statement on the tombstone's
// row (its log and seqs were deleted with its lines).
func (s *Store) Revive(ctx context.Context, cartID, user string, now time.Time) (bool, error) {
	unlock, err := s.lockWrites(ctx)
	if err != nil {
		return false, fmt.Errorf("revive cart %s: %w", cartID, err)
	}
	defer unlock()
	res, err := s.w.ExecContext(ctx, `UPDATE carts
		SET expired_at = NULL, version = version + 1,
			state = json_object('id', id, 'version', version + 1, 'lines', json_array(), 'started', version + 1, 'user', ?),
			updated_at = ?, abandoned_at = NULL
		WHERE id = ? AND kind = ? AND expired_at IS NOT NULL`, user, now.UnixMilli(), cartID, syncserver.KindUser)
	if err != nil {
		return false, fmt.Errorf("revive cart %s: %w", cartID, err)
	}
	n, err := res.RowsAffected()
	if err != nil {
		return false, fmt.Errorf("revive cart %s: %w", cartID, err)
	}
	s.memo.Forget(cartID)
	return n == 1, nil
}

// scanIDs reads the ids a query returns (one column), closing rows.
func scanIDs(rows *sql.Rows, err error) ([]string, error) {
	if err != nil {
		return nil, err
	}
	var ids []string
	for rows.Next() {
		var id string
		if err := rows.Scan(&id); err != nil {
			rows.Close()
			return nil, err
		}
		ids = append(ids, id)
	}
	return ids, errors.Join(rows.Close(), rows.Err())
}
