package postgres

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"

	"github.com/cartsync/cartsync/shared/cart"
	"github.com/cartsync/cartsync/syncserver"
)

// The statements of CommitBatch besides those of Mutate. The carts come in
// id order, are inserted in that order and locked in it (the lock is taken
// by the row-locking step above the sort), so two batches, or a batch and a
// Merge, wait for each other instead of deadlocking.
const (
	sqlEnsureCarts = `INSERT INTO carts (id) SELECT unnest($1::text[]) ON CONFLICT (id) DO NOTHING`
	// A row whose write_id (a random stamp of each write, set by a
	// trigger; migration 0005) is the stamp of the memo's entry is the one
	// the memo holds: its state is not sent (NULL, with state_null false).
	sqlLockCarts = `SELECT c.id, c.kind, CASE WHEN c.write_id::text = k.stamp THEN NULL ELSE c.state END, c.state IS NULL,
			c.merged_into, c.updated_at, c.abandoned_at, c.expired_at IS NOT NULL
		FROM carts c JOIN unnest($1::text[], $2::text[]) AS k(id, stamp) ON c.id = k.id
		ORDER BY c.id FOR UPDATE OF c`
	sqlLoadPairSeqs = `SELECT cart_id, client_id, last_seq FROM cart_clients
		WHERE (cart_id, client_id) IN (SELECT * FROM unnest($1::text[], $2::text[]))`
	sqlLoadCartsSeqs = `SELECT cart_id, client_id, last_seq FROM cart_clients WHERE cart_id = ANY($1)`
	// A cart the batch made exist but wrote nothing to goes again, as
	// it would with the rollback of a Mutate whose fn failed.
	sqlDropUnwritten = `DELETE FROM carts WHERE id = ANY($1) AND state IS NULL`
)

// CommitBatch implements syncserver.BatchCommitter: two round trips and one
// commit for the whole batch, as Mutate takes for one cart.
func (s *Store) CommitBatch(ctx context.Context, carts []syncserver.BatchCart, decide func([]syncserver.BatchLoad) ([]syncserver.BatchWrite, error)) error {
	conn, err := s.pool.Acquire(ctx)
	if err != nil {
		return withCtx(ctx, fmt.Errorf("commit batch: acquire connection: %w", err))
	}
	inTx := false
	defer func() { release(ctx, conn, inTx) }()

	ids := make([]string, len(carts))
	stamps := make([]string, len(carts))
	memo := make([]*cart.Cart, len(carts))
	index := make(map[string]int, len(carts))
	loaded := make([]syncserver.BatchLoad, len(carts))
	var pairCarts, pairClients, allCarts []string
	for i, c := range carts {
		ids[i] = c.ID
		stamps[i], memo[i] = s.memo.Lookup(c.ID)
		index[c.ID] = i
		for _, cl := range c.Clients {
			pairCarts, pairClients = append(pairCarts, c.ID), append(pairClients, cl)
		}
		if c.AllClients {
			allCarts = append(allCarts, c.ID)
		}
	}
	seqsInto := func(rows pgx.Rows) error {
		var cartID, client string
		var seq int64
		_, err := pgx.ForEachRow(rows, []any{&cartID, &client, &seq}, func() error {
			if i, ok := index[cartID]; ok && loaded[i].Rec != nil {
				loaded[i].Rec.Seqs[client] = uint64(seq)
			}
			return nil
		})
		return err
	}
	b := &pgx.Batch{}
	b.Queue("BEGIN")
	b.Queue(sqlEnsureCarts, ids)
	b.Queue(sqlLockCarts, ids, stamps).Query(func(rows pgx.Rows) error {
		for rows.Next() {
			var (
				id                 string
				state              []byte
				stateNull, expired bool
				updated, abandoned *time.Time
				rec                = &syncserver.Record{}
			)
			if err := rows.Scan(&id, &rec.Meta.Kind, &state, &stateNull, &rec.Meta.MergedInto, &updated, &abandoned, &expired); err != nil {
				return err
			}
			i, ok := index[id]
			if !ok {
				return fmt.Errorf("locked cart %s that was not asked for", id)
			}
			switch {
			case expired:
				loaded[i].Err = syncserver.ErrCartExpired
				continue
			case state == nil && !stateNull:
				// Unchanged since this store wrote it: shared,
				// and runCart clones it before any change.
				rec.Exists, rec.Cart = true, memo[i]
			default:
				if err := decodeState(rec, id, state); err != nil {
					return err
				}
			}
			rec.Meta.UpdatedAt, rec.Meta.AbandonedAt = utc(updated), utc(abandoned)
			rec.Seqs = zeroSeqs(carts[i].Clients)
			loaded[i].Rec = rec
		}
		return rows.Err()
	})
	if len(pairCarts) > 0 {
		b.Queue(sqlLoadPairSeqs, pairCarts, pairClients).Query(seqsInto)
	}
	if len(allCarts) > 0 {
		b.Queue(sqlLoadCartsSeqs, allCarts).Query(seqsInto)
	}
	inTx = true
	if err := conn.SendBatch(ctx, b).Close(); err != nil {
		return withCtx(ctx, fmt.Errorf("commit batch: lock: %w", err))
	}
	for i := range loaded {
		if loaded[i].Rec == nil && loaded[i].Err == nil {
			// The purge deleted the cart between the insert and the lock.
			loaded[i].Err = fmt.Errorf("mutate cart %s: %w", carts[i].ID, syncserver.ErrCartGone)
		}
	}

	writes, err := decide(loaded)
	if err != nil {
		return err
	}
	b = &pgx.Batch{}
	written := make(map[string]bool, len(writes))
	newStamps := make([]string, len(writes))
	for i, w := range writes {
		ws, err := w.Prepare()
		if err != nil {
			return fmt.Errorf("commit batch: cart %s: %w", w.ID, err)
		}
		if err := queueWrites(b, ws, &newStamps[i]); err != nil {
			return fmt.Errorf("commit batch: cart %s: %w", w.ID, err)
		}
		written[w.ID] = true
	}
	var unwritten []string
	for i, l := range loaded {
		if l.Rec != nil && !l.Rec.Exists && !written[ids[i]] {
			unwritten = append(unwritten, ids[i])
		}
	}
	if len(unwritten) > 0 {
		b.Queue(sqlDropUnwritten, unwritten)
	}
	b.Queue("COMMIT")
	if err := conn.SendBatch(ctx, b).Close(); err != nil {
		var pe *pgconn.PgError
		if !errors.As(err, &pe) {
			// The server did not answer: the COMMIT may have
			// reached it.
			err = fmt.Errorf("%w: %w", syncserver.ErrCommitUnknown, err)
		}
		return withCtx(ctx, fmt.Errorf("commit batch: write: %w", err))
	}
	inTx = false
	for i, w := range writes {
		s.memo.Put(w.ID, newStamps[i], w.Rec.Cart)
	}
	return nil
}

// memoCarts bounds the carts a Store keeps decoded (see CartMemo): about
// the carts edited at once on one instance.
const memoCarts = 5_000

// decodeState fills rec.Cart from a locked row's state: a row whose state
// is NULL was made to exist by this transaction, an empty new cart.
func decodeState(rec *syncserver.Record, cartID string, state []byte) error {
	if state == nil {
		rec.Cart = &cart.Cart{ID: cartID}
		return nil
	}
	rec.Exists = true
	rec.Cart = new(cart.Cart)
	if err := json.Unmarshal(state, rec.Cart); err != nil {
		return fmt.Errorf("decode cart %s: %w", cartID, err)
	}
	return nil
}

// GroupCommitStats implements syncserver.GroupCommitStore.
func (s *Store) GroupCommitStats() (batches, mutations uint64) {
	if s.group == nil {
		return 0, 0
	}
	return s.group.Stats()
}
