package postgres

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgtype"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/prometheus/client_golang/prometheus"

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

	// The batch's writes, one statement each for all its carts (the
	// cart and its meta, the seqs, the appended changes): the carts are
	// locked already, and each cart comes once, so no row is written twice
	// by one statement.
	sqlWriteCarts = `UPDATE carts c SET kind = w.kind, version = w.version, state = w.state::jsonb,
			merged_into = w.merged_into, updated_at = w.updated_at, abandoned_at = w.abandoned_at
		FROM unnest($1::text[], $2::text[], $3::bigint[], $4::text[], $5::text[], $6::timestamptz[], $7::timestamptz[])
			AS w(id, kind, version, state, merged_into, updated_at, abandoned_at)
		WHERE c.id = w.id
		RETURNING c.id, c.write_id::text`
	sqlWriteSeqs = `INSERT INTO cart_clients (cart_id, client_id, last_seq)
		SELECT * FROM unnest($1::text[], $2::text[], $3::bigint[])
		ON CONFLICT (cart_id, client_id) DO UPDATE SET last_seq = EXCLUDED.last_seq, updated_at = now()`
	sqlAppendAll = `INSERT INTO cart_log (cart_id, version, op, warnings, at)
		SELECT id, version, op::jsonb, warnings::jsonb, at
		FROM unnest($1::text[], $2::bigint[], $3::text[], $4::text[], $5::timestamptz[]) AS l(id, version, op, warnings, at)`
	// The trim stays one statement per cart: over an array of tens of
	// carts Postgres estimates a third of the log to match and plans a
	// hash join over a scan of the whole cart_log (240 ms at 576,000 rows,
	// EXPLAIN ANALYZE), where each cart's rows to delete are the oldest few
	// of its index range.
	sqlTrim = `DELETE FROM cart_log WHERE cart_id = $1 AND version <= $2`
)

// sqlLockStamped locks the carts of a batch decided from the memo, in id
// order as every batch does, and aborts the transaction unless each one
// exists, is not expired and still carries the write_id the memo holds
// ($2, by $1). The abort is a failed cast of a text that names it
// (staleMark), so that a plain statement does it: a PL/pgSQL function
// raising its own SQLSTATE cost Postgres about 0.1 ms more per call.
const sqlLockStamped = `SELECT (CASE WHEN count(*) = cardinality($1::text[]) THEN NULL
		ELSE '` + staleMark + ` ' || count(*) END)::int
	FROM (SELECT FROM carts c JOIN unnest($1::text[], $2::text[]) AS k(id, stamp) ON c.id = k.id
		WHERE c.write_id::text = k.stamp AND c.expired_at IS NULL AND c.state IS NOT NULL
		ORDER BY c.id FOR UPDATE OF c) l`

// staleMark is in the error of sqlLockStamped's abort.
const staleMark = "cartsync_stale_carts"

// errStale is returned by commitFromMemo when a cart's row changed since
// this store wrote it: nothing was written.
var errStale = errors.New("a cart changed since this instance wrote it")

// errUnchecked wraps an error of a batch decided from the memo that
// came before its rows were checked.
var errUnchecked = errors.New("refused before the carts were checked")

// isStale reports whether err is sqlLockStamped's abort: the text that
// could not be cast (invalid_text_representation) is quoted in the
// message, whatever its language.
func isStale(err error) bool {
	var pe *pgconn.PgError
	return errors.As(err, &pe) && pe.Code == "22P02" && strings.Contains(pe.Message, staleMark)
}

// CommitBatch implements syncserver.BatchCommitter. When the memo holds
// the record of every cart with the seqs of the clients asked for (carts
// this instance wrote last, edited by clients it has seen on them, as a
// busy cart's batches are), and no other batch of this instance is writing
// one of them from the memo, the batch is decided from memory and written
// in one round trip: BEGIN, the row locks with a check that each row is
// still the one the memo holds, the writes and the COMMIT. Otherwise (a
// client's first edit of a cart, a login merge, a cart another batch is
// writing) it takes two round trips, as Mutate would for one cart: the
// locks and the reads, then the writes and the COMMIT. When the check
// finds a row changed (another instance or the purge wrote it), nothing
// was written, the transaction is rolled back, and the batch goes the
// two-round-trip way.
func (s *Store) CommitBatch(ctx context.Context, carts []syncserver.BatchCart, decide func([]syncserver.BatchLoad) ([]syncserver.BatchWrite, error)) error {
	if stamps, loaded, ok := s.memoLoads(carts); ok {
		err := s.commitFromMemo(ctx, carts, stamps, loaded, decide)
		for i, c := range carts {
			s.memo.Release(c.ID, stamps[i]) // those not written since
		}
		switch {
		case err == nil:
			s.memoCommits.Add(1)
			return nil
		case errors.Is(err, errStale):
			s.staleCommits.Add(1)
		case !errors.Is(err, errUnchecked):
			return err
		}
	}
	return s.commitLocked(ctx, carts, decide)
}

// memoLoads takes the memo's record of each cart with the stamps of their
// rows (CartMemo.Take), if it can take all of them; the caller releases
// them.
func (s *Store) memoLoads(carts []syncserver.BatchCart) (stamps []string, loaded []syncserver.BatchLoad, ok bool) {
	stamps = make([]string, len(carts))
	loaded = make([]syncserver.BatchLoad, len(carts))
	for i, c := range carts {
		if !c.AllClients {
			stamps[i], loaded[i].Rec, ok = s.memo.Take(c.ID, c.Clients)
		}
		if c.AllClients || !ok {
			for j := range i {
				s.memo.Release(carts[j].ID, stamps[j])
			}
			return nil, nil, false
		}
	}
	return stamps, loaded, true
}

// commitFromMemo commits a batch decided on the memo's records, in one
// round trip. errStale (a row changed) and errUnchecked (decide or a
// write refused what it decided, which may not hold on the rows) mean
// nothing was written and the batch must be decided again on the rows.
func (s *Store) commitFromMemo(ctx context.Context, carts []syncserver.BatchCart, stamps []string, loaded []syncserver.BatchLoad, decide func([]syncserver.BatchLoad) ([]syncserver.BatchWrite, error)) error {
	writes, err := decide(loaded)
	if err != nil {
		return fmt.Errorf("%w: %w", errUnchecked, err)
	}
	ids := make([]string, len(carts))
	for i, c := range carts {
		ids[i] = c.ID
	}
	b := &pgx.Batch{}
	b.Queue("BEGIN")
	b.Queue(sqlLockStamped, ids, stamps)
	newStamps, _, err := queueDecided(b, writes)
	if err != nil {
		return fmt.Errorf("%w: %w", errUnchecked, err)
	}
	b.Queue("COMMIT")

	conn, err := s.pool.Acquire(ctx)
	if err != nil {
		return withCtx(ctx, fmt.Errorf("commit batch: acquire connection: %w", err))
	}
	inTx := true // from the BEGIN on, until the COMMIT is answered
	defer func() { release(ctx, conn, inTx) }()
	if err := sendCommit(ctx, conn, b); err != nil {
		if isStale(err) {
			return errStale
		}
		return err
	}
	inTx = false
	index := make(map[string]int, len(carts))
	for i, c := range carts {
		index[c.ID] = i
	}
	for i, w := range writes {
		s.memo.Advance(w.ID, stamps[index[w.ID]], newStamps[i], w.Rec)
	}
	return nil
}

// commitLocked commits a batch in two round trips: it locks and reads the
// carts, decides, then writes and commits.
func (s *Store) commitLocked(ctx context.Context, carts []syncserver.BatchCart, decide func([]syncserver.BatchLoad) ([]syncserver.BatchWrite, error)) error {
	conn, err := s.pool.Acquire(ctx)
	if err != nil {
		return withCtx(ctx, fmt.Errorf("commit batch: acquire connection: %w", err))
	}
	inTx := false
	defer func() { release(ctx, conn, inTx) }()

	l := s.newBatchLock(carts)
	ids := l.ids
	b := &pgx.Batch{}
	b.Queue("BEGIN")
	b.Queue(sqlEnsureCarts, ids)
	l.queue(b)
	inTx = true
	if err := conn.SendBatch(ctx, b).Close(); err != nil {
		return withCtx(ctx, fmt.Errorf("commit batch: lock: %w", err))
	}
	for i := range l.loaded {
		if l.loaded[i].Rec == nil && l.loaded[i].Err == nil {
			// The purge deleted the cart between the insert and the lock.
			l.loaded[i].Err = fmt.Errorf("mutate cart %s: %w", carts[i].ID, syncserver.ErrCartGone)
		}
	}

	writes, err := decide(l.loaded)
	if err != nil {
		return err
	}
	b = &pgx.Batch{}
	newStamps, written, err := queueDecided(b, writes)
	if err != nil {
		return err
	}
	var unwritten []string
	for i, ld := range l.loaded {
		if ld.Rec != nil && !ld.Rec.Exists && !written[ids[i]] {
			unwritten = append(unwritten, ids[i])
		}
	}
	if len(unwritten) > 0 {
		b.Queue(sqlDropUnwritten, unwritten)
	}
	b.Queue("COMMIT")
	if err := sendCommit(ctx, conn, b); err != nil {
		return err
	}
	inTx = false
	for i, w := range writes {
		j := l.index[w.ID]
		from := ""
		if l.fromMemo[j] {
			from = l.stamps[j]
		}
		s.memo.PutRecord(w.ID, from, newStamps[i], w.Rec)
	}
	return nil
}

// queueDecided queues on b the writes decide returned (prepare, then
// queueWrites); stamps[i] receives the write_id of writes[i]'s row once
// the batch ran, and written holds the carts written.
func queueDecided(b *pgx.Batch, writes []syncserver.BatchWrite) (stamps []string, written map[string]bool, err error) {
	sets, written, err := prepare(writes)
	if err != nil {
		return nil, nil, err
	}
	stamps = make([]string, len(writes))
	if err := queueWrites(b, sets, stamps); err != nil {
		return nil, nil, fmt.Errorf("commit batch: %w", err)
	}
	return stamps, written, nil
}

// sendCommit sends b, which ends with the COMMIT. An error that is not
// the server's answer wraps ErrCommitUnknown: the COMMIT may have reached
// it.
func sendCommit(ctx context.Context, conn *pgxpool.Conn, b *pgx.Batch) error {
	err := conn.SendBatch(ctx, b).Close()
	if err == nil {
		return nil
	}
	var pe *pgconn.PgError
	if !errors.As(err, &pe) {
		err = fmt.Errorf("%w: %w", syncserver.ErrCommitUnknown, err)
	}
	return withCtx(ctx, fmt.Errorf("commit batch: write: %w", err))
}

// prepare prepares each write (syncserver.BatchWrite.Prepare) and refuses
// a cart written twice; written holds the carts written.
func prepare(writes []syncserver.BatchWrite) (sets []syncserver.WriteSet, written map[string]bool, err error) {
	written = make(map[string]bool, len(writes))
	sets = make([]syncserver.WriteSet, len(writes))
	for i, w := range writes {
		if written[w.ID] {
			return nil, nil, fmt.Errorf("commit batch: cart %s written twice", w.ID)
		}
		if sets[i], err = w.Prepare(); err != nil {
			return nil, nil, fmt.Errorf("commit batch: cart %s: %w", w.ID, err)
		}
		written[w.ID] = true
	}
	return sets, written, nil
}

// batchLock reads a batch's carts as it locks them: their records, or why
// they can't be written, in loaded (in the order of the batch).
type batchLock struct {
	carts  []syncserver.BatchCart
	ids    []string     // the carts' ids, in the batch's order
	stamps []string     // the write_id this store last wrote, per cart (see CartMemo)
	memo   []*cart.Cart // the cart it wrote then
	// fromMemo[i]: the row locked was the one of stamps[i], and the
	// memo's cart stood for it.
	fromMemo []bool
	index    map[string]int
	loaded   []syncserver.BatchLoad
}

func (s *Store) newBatchLock(carts []syncserver.BatchCart) *batchLock {
	l := &batchLock{
		carts:    carts,
		ids:      make([]string, len(carts)),
		stamps:   make([]string, len(carts)),
		memo:     make([]*cart.Cart, len(carts)),
		fromMemo: make([]bool, len(carts)),
		index:    make(map[string]int, len(carts)),
		loaded:   make([]syncserver.BatchLoad, len(carts)),
	}
	for i, c := range carts {
		l.ids[i] = c.ID
		l.stamps[i], l.memo[i] = s.memo.Lookup(c.ID)
		l.index[c.ID] = i
	}
	return l
}

// queue queues on b the statements that lock the carts and read them and
// their seqs.
func (l *batchLock) queue(b *pgx.Batch) {
	var pairCarts, pairClients, allCarts []string
	for _, c := range l.carts {
		for _, cl := range c.Clients {
			pairCarts, pairClients = append(pairCarts, c.ID), append(pairClients, cl)
		}
		if c.AllClients {
			allCarts = append(allCarts, c.ID)
		}
	}
	b.Queue(sqlLockCarts, l.ids, l.stamps).Query(l.readCarts)
	if len(pairCarts) > 0 {
		b.Queue(sqlLoadPairSeqs, pairCarts, pairClients).Query(l.readSeqs)
	}
	if len(allCarts) > 0 {
		b.Queue(sqlLoadCartsSeqs, allCarts).Query(l.readSeqs)
	}
}

func (l *batchLock) readCarts(rows pgx.Rows) error {
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
		i, ok := l.index[id]
		if !ok {
			return fmt.Errorf("locked cart %s that was not asked for", id)
		}
		switch {
		case expired:
			l.loaded[i].Err = syncserver.ErrCartExpired
			continue
		case state == nil && !stateNull:
			// Unchanged since this store wrote it: shared, and
			// runCart clones it before any change.
			rec.Exists, rec.Cart = true, l.memo[i]
			l.fromMemo[i] = true
		default:
			if err := decodeState(rec, id, state); err != nil {
				return err
			}
		}
		rec.Meta.UpdatedAt, rec.Meta.AbandonedAt = utc(updated), utc(abandoned)
		rec.Seqs = zeroSeqs(l.carts[i].Clients)
		l.loaded[i].Rec = rec
	}
	return rows.Err()
}

func (l *batchLock) readSeqs(rows pgx.Rows) error {
	var cartID, client string
	var seq int64
	_, err := pgx.ForEachRow(rows, []any{&cartID, &client, &seq}, func() error {
		if i, ok := l.index[cartID]; ok && l.loaded[i].Rec != nil {
			l.loaded[i].Rec.Seqs[client] = uint64(seq)
		}
		return nil
	})
	return err
}

// queueWrites queues on b the writes of sets (syncserver.WriteSet), carts
// that differ: three statements for all of them, and one per trim and per
// event; stamps[i] receives the write_id of sets[i]'s row (see CartMemo).
func queueWrites(b *pgx.Batch, sets []syncserver.WriteSet, stamps []string) error {
	if len(sets) == 0 {
		return nil
	}
	var (
		n                              = len(sets)
		ids, kinds, states, mergedInto = make([]string, n), make([]string, n), make([]string, n), make([]string, n)
		versions                       = make([]int64, n)
		updated, abandoned             = make([]pgtype.Timestamptz, n), make([]pgtype.Timestamptz, n)
		seqCarts, seqClients           []string
		seqs                           []int64
		logCarts, logOps               []string
		logWarnings                    []pgtype.Text
		logVersions                    []int64
		logAt                          []time.Time
		index                          = make(map[string]int, n)
	)
	for i, ws := range sets {
		ids[i], kinds[i], versions[i], states[i], mergedInto[i] = ws.ID, ws.Kind, ws.Version, string(ws.State), ws.MergedInto
		updated[i], abandoned[i] = timestamptz(ws.UpdatedAt), timestamptz(ws.AbandonedAt)
		index[ws.ID] = i
		for _, sw := range ws.Seqs {
			seqCarts, seqClients, seqs = append(seqCarts, ws.ID), append(seqClients, sw.Client), append(seqs, sw.Seq)
		}
		for _, lw := range ws.Log {
			logCarts, logVersions, logOps = append(logCarts, ws.ID), append(logVersions, lw.Version), append(logOps, string(lw.Op))
			logWarnings = append(logWarnings, pgtype.Text{String: string(lw.Warnings), Valid: lw.Warnings != nil})
			logAt = append(logAt, lw.At.Truncate(time.Millisecond))
		}
	}
	b.Queue(sqlWriteCarts, ids, kinds, versions, states, mergedInto, updated, abandoned).Query(func(rows pgx.Rows) error {
		var id, stamp string
		got := 0
		_, err := pgx.ForEachRow(rows, []any{&id, &stamp}, func() error {
			i, ok := index[id]
			if !ok {
				return fmt.Errorf("wrote cart %s that was not asked for", id)
			}
			stamps[i] = stamp
			got++
			return nil
		})
		if err == nil && got != n {
			// Every cart was locked: a row missing here would be a write lost.
			err = fmt.Errorf("wrote %d of %d carts", got, n)
		}
		return err
	})
	if len(seqCarts) > 0 {
		b.Queue(sqlWriteSeqs, seqCarts, seqClients, seqs)
	}
	if len(logCarts) > 0 {
		b.Queue(sqlAppendAll, logCarts, logVersions, logOps, logWarnings, logAt)
	}
	for _, ws := range sets {
		if ws.TrimThrough > 0 {
			b.Queue(sqlTrim, ws.ID, ws.TrimThrough)
		}
	}
	now := time.Now()
	for _, ws := range sets {
		if err := queueEvents(b, ws.ID, ws.Events, now); err != nil {
			return fmt.Errorf("cart %s: %w", ws.ID, err)
		}
	}
	return nil
}

// timestamptz is t to the millisecond, NULL if zero.
func timestamptz(t time.Time) pgtype.Timestamptz {
	if t.IsZero() {
		return pgtype.Timestamptz{}
	}
	return pgtype.Timestamptz{Time: t.Truncate(time.Millisecond), Valid: true}
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

// MemoCommitStats implements syncserver.MemoCommitStore.
func (s *Store) MemoCommitStats() (committed, stale uint64) {
	return s.memoCommits.Load(), s.staleCommits.Load()
}

// GroupCommitStats implements syncserver.GroupCommitStore.
func (s *Store) GroupCommitStats() (batches, mutations uint64) {
	return s.group.Stats()
}

// GroupCommitCollectors implements syncserver.GroupCommitStore.
func (s *Store) GroupCommitCollectors() []prometheus.Collector {
	return s.group.Collectors()
}
