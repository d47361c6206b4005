package sqlite

import (
	"cmp"
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/cartsync/cartsync/syncserver"
)

// The outbox of cart events (syncserver.EventStore). Writes are serialized,
// so an event's seq is assigned in commit order and the feed's cursor is
// the seq alone: no event can commit later with a smaller one.

// eventColumns are the columns scanEvents reads, in its order.
const eventColumns = `seq, id, type, cart_id, at, data, state, attempts, next_at, last_error, tried_since`

// The statements of writeEvents.
const (
	// A coalescing event replaces the pending events of its cart and type
	// that no delivery has tried and that no lease holds.
	sqlCoalesce = `UPDATE events SET state = 'coalesced'
		WHERE cart_id = ? AND type = ? AND state = 'pending' AND attempts = 0
			AND (lease_until IS NULL OR lease_until <= ?)
		RETURNING next_at`
	sqlInsertEvent = `INSERT INTO events (id, type, cart_id, at, data, next_at, state) VALUES (?, ?, ?, ?, ?, ?, ?)`
)

// writeEvents adds evs to the outbox in tx, as pending, for cartID unless
// an event names its cart; each coalesces first if it asks to. An event is
// due at its NextAt if set, else at its At.
func writeEvents(ctx context.Context, tx *sql.Tx, cartID string, evs []syncserver.Event) error {
	if len(evs) == 0 {
		return nil
	}
	now := time.Now().UnixMilli()
	insert, err := tx.PrepareContext(ctx, sqlInsertEvent)
	if err != nil {
		return fmt.Errorf("write events: prepare: %w", err)
	}
	defer insert.Close()
	for _, ev := range evs {
		if ev.CartID == "" {
			ev.CartID = cartID
		}
		data, err := eventData(ev)
		if err != nil {
			return err
		}
		var due int64 // the earliest next_at among the replaced events
		if ev.Coalesce {
			if due, err = coalesce(ctx, tx, ev, now); err != nil {
				return err
			}
		}
		next := ev.NextAt
		if next.IsZero() {
			next = ev.At
		}
		if due != 0 && due < next.UnixMilli() {
			// A cart edited without pause still gets its event out:
			// the replacement is due when the first it replaced was.
			next = time.UnixMilli(due)
		}
		state := syncserver.EventPending
		if ev.State == syncserver.EventDelivered {
			state = syncserver.EventDelivered // a server without webhooks
		}
		if _, err := insert.ExecContext(ctx, ev.ID, ev.Type, ev.CartID, ev.At.UnixMilli(), data, next.UnixMilli(), state); err != nil {
			return fmt.Errorf("write event %s: %w", ev.ID, err)
		}
	}
	return nil
}

// coalesce marks the events ev replaces coalesced and returns the earliest
// next_at among them, 0 for none.
func coalesce(ctx context.Context, tx *sql.Tx, ev syncserver.Event, now int64) (int64, error) {
	rows, err := tx.QueryContext(ctx, sqlCoalesce, ev.CartID, ev.Type, now)
	if err != nil {
		return 0, fmt.Errorf("coalesce events before %s: %w", ev.ID, err)
	}
	defer rows.Close()
	var due int64
	for rows.Next() {
		var n int64
		if err := rows.Scan(&n); err != nil {
			return 0, fmt.Errorf("coalesce events before %s: %w", ev.ID, err)
		}
		if due == 0 || n < due {
			due = n
		}
	}
	if err := rows.Err(); err != nil {
		return 0, fmt.Errorf("coalesce events before %s: %w", ev.ID, err)
	}
	return due, nil
}

// eventData checks that ev can be written and returns its data, "null"
// for none.
func eventData(ev syncserver.Event) (string, error) {
	switch {
	case ev.ID == "":
		return "", fmt.Errorf("event %s of cart %s has no id", ev.Type, ev.CartID)
	case len(ev.Data) == 0:
		return "null", nil
	case !json.Valid(ev.Data):
		return "", fmt.Errorf("event %s: data is not JSON", ev.ID)
	}
	return string(ev.Data), nil
}

// scanEvents reads rows of eventColumns and closes them.
func scanEvents(rows *sql.Rows) ([]syncserver.Event, error) {
	defer rows.Close()
	var out []syncserver.Event
	for rows.Next() {
		var (
			ev       syncserver.Event
			data     []byte
			at, next int64
			tried    sql.NullInt64
		)
		if err := rows.Scan(&ev.Seq, &ev.ID, &ev.Type, &ev.CartID, &at, &data, &ev.State, &ev.Attempts, &next, &ev.LastError, &tried); err != nil {
			return nil, err
		}
		if tried.Valid {
			ev.TriedSince = time.UnixMilli(tried.Int64).UTC()
		}
		ev.Cursor = strconv.FormatInt(ev.Seq, 10)
		ev.Data = json.RawMessage(data)
		ev.At = time.UnixMilli(at).UTC()
		ev.NextAt = time.UnixMilli(next).UTC()
		out = append(out, ev)
	}
	return out, rows.Err()
}

// EventsAfter implements syncserver.EventStore. The cursor is the event's
// seq in decimal; one past the last seq handed out (sqlite_sequence) is
// ErrBadCursor. A limit below 1 returns no events.
func (s *Store) EventsAfter(ctx context.Context, cursor string, limit int) ([]syncserver.Event, error) {
	var after int64
	if cursor != "" {
		n, err := strconv.ParseInt(cursor, 10, 64)
		if err != nil || strings.TrimLeft(cursor, "0123456789") != "" {
			return nil, fmt.Errorf("events after %q: %w (a seq in decimal)", cursor, syncserver.ErrBadCursor)
		}
		after = n
	}
	if limit < 1 {
		return nil, ctx.Err()
	}
	rows, err := s.r.QueryContext(ctx, `SELECT `+eventColumns+` FROM events
		WHERE seq > ? AND state <> 'coalesced' ORDER BY seq LIMIT ?`, after, limit)
	if err != nil {
		return nil, fmt.Errorf("events after %q: %w", cursor, err)
	}
	evs, err := scanEvents(rows)
	if err != nil {
		return nil, fmt.Errorf("events after %q: %w", cursor, err)
	}
	if len(evs) == 0 && after > 0 {
		// Read after the page: the last seq only grows, so a cursor
		// given before the page was read is never past it.
		var last int64
		err := s.r.QueryRowContext(ctx, `SELECT coalesce(max(seq), 0) FROM sqlite_sequence WHERE name = 'events'`).Scan(&last)
		if err != nil {
			return nil, fmt.Errorf("events after %q: last seq: %w", cursor, err)
		}
		if after > last {
			return nil, fmt.Errorf("events after %q: %w (past the last event, %d)", cursor, syncserver.ErrBadCursor, last)
		}
	}
	return evs, nil
}

// ClaimEvents implements syncserver.EventStore, in one write transaction:
// writes are serialized, so no other claim runs meanwhile. A limit below 1
// claims nothing. An event with no failed attempt starts a series at now
// (tried_since); one with failed attempts keeps its series, or takes its
// at if it has none (a row written before migration 0004).
func (s *Store) ClaimEvents(ctx context.Context, now time.Time, lease time.Duration, limit int) ([]syncserver.Event, error) {
	if limit < 1 {
		return nil, ctx.Err()
	}
	tx, err := s.w.BeginTx(ctx, nil)
	if err != nil {
		return nil, fmt.Errorf("claim events: begin: %w", err)
	}
	defer tx.Rollback()
	rows, err := tx.QueryContext(ctx, `UPDATE events SET lease_until = ?,
			tried_since = CASE WHEN attempts = 0 THEN ? ELSE coalesce(tried_since, at) END
		WHERE seq IN (
			SELECT e.seq FROM events e
			WHERE e.state = 'pending' AND e.next_at <= ? AND (e.lease_until IS NULL OR e.lease_until <= ?)
				AND NOT EXISTS (SELECT 1 FROM events p WHERE p.cart_id = e.cart_id AND p.state = 'pending' AND p.seq < e.seq)
			ORDER BY e.seq LIMIT ?)
		RETURNING `+eventColumns, now.Add(lease).UnixMilli(), now.UnixMilli(), now.UnixMilli(), now.UnixMilli(), limit)
	if err != nil {
		return nil, fmt.Errorf("claim events: %w", err)
	}
	evs, err := scanEvents(rows)
	if err != nil {
		return nil, fmt.Errorf("claim events: %w", err)
	}
	if err := tx.Commit(); err != nil {
		return nil, fmt.Errorf("claim events: commit: %w", err)
	}
	sortBySeq(evs)
	return evs, nil
}

// pendingUpdate runs update (whose last argument is the seq) on the event
// with seq if it is pending, in one write transaction: ErrEventNotFound if
// no event has seq; nothing if the event is no longer pending.
func (s *Store) pendingUpdate(ctx context.Context, what string, seq int64, update string, args ...any) error {
	tx, err := s.w.BeginTx(ctx, nil)
	if err != nil {
		return fmt.Errorf("event %d %s: begin: %w", seq, what, err)
	}
	defer tx.Rollback()
	res, err := tx.ExecContext(ctx, update+` WHERE seq = ? AND state = 'pending'`, append(args, seq)...)
	if err != nil {
		return fmt.Errorf("event %d %s: %w", seq, what, err)
	}
	if n, err := res.RowsAffected(); err != nil {
		return fmt.Errorf("event %d %s: %w", seq, what, err)
	} else if n == 0 {
		var one int
		err := tx.QueryRowContext(ctx, `SELECT 1 FROM events WHERE seq = ?`, seq).Scan(&one)
		switch {
		case errors.Is(err, sql.ErrNoRows):
			return fmt.Errorf("event %d %s: %w", seq, what, syncserver.ErrEventNotFound)
		case err != nil:
			return fmt.Errorf("event %d %s: %w", seq, what, err)
		}
	}
	if err := tx.Commit(); err != nil {
		return fmt.Errorf("event %d %s: commit: %w", seq, what, err)
	}
	return nil
}

// EventDelivered implements syncserver.EventStore. An event no longer
// pending (delivered through another lease, say) is left as it is.
func (s *Store) EventDelivered(ctx context.Context, seq int64, at time.Time) error {
	return s.pendingUpdate(ctx, "delivered", seq,
		`UPDATE events SET state = 'delivered', delivered_at = ?, lease_until = NULL`, at.UnixMilli())
}

// EventFailed implements syncserver.EventStore. An event no longer pending
// is left as it is.
func (s *Store) EventFailed(ctx context.Context, seq int64, next time.Time, lastErr string, dead bool) error {
	state := syncserver.EventPending
	if dead {
		state = syncserver.EventDead
	}
	return s.pendingUpdate(ctx, "failed", seq,
		`UPDATE events SET state = ?, attempts = attempts + 1, last_error = ?, next_at = ?, lease_until = NULL`,
		state, lastErr, next.UnixMilli())
}

// DeadEvents implements syncserver.EventStore. A limit below 1 returns no
// events.
func (s *Store) DeadEvents(ctx context.Context, after int64, limit int) ([]syncserver.Event, error) {
	if limit < 1 {
		return nil, ctx.Err()
	}
	rows, err := s.r.QueryContext(ctx, `SELECT `+eventColumns+` FROM events
		WHERE state = 'dead' AND seq > ? ORDER BY seq LIMIT ?`, after, limit)
	if err != nil {
		return nil, fmt.Errorf("dead events: %w", err)
	}
	evs, err := scanEvents(rows)
	if err != nil {
		return nil, fmt.Errorf("dead events: %w", err)
	}
	return evs, nil
}

// RetryEvent implements syncserver.EventStore. The event keeps its last
// error.
func (s *Store) RetryEvent(ctx context.Context, id string) error {
	res, err := s.w.ExecContext(ctx, `UPDATE events SET state = 'pending', attempts = 0, next_at = ?, lease_until = NULL,
			tried_since = NULL
		WHERE id = ? AND state = 'dead'`, time.Now().UnixMilli(), id)
	if err != nil {
		return fmt.Errorf("retry event %s: %w", id, err)
	}
	n, err := res.RowsAffected()
	if err != nil {
		return fmt.Errorf("retry event %s: %w", id, err)
	}
	if n == 0 {
		return fmt.Errorf("retry event %s: %w", id, syncserver.ErrEventNotFound)
	}
	return nil
}

// EventCounts implements syncserver.EventStore. Every state is counted,
// at 0 if no event is in it.
func (s *Store) EventCounts(ctx context.Context) (map[string]int64, error) {
	rows, err := s.r.QueryContext(ctx, `SELECT state, count(*) FROM events GROUP BY state`)
	if err != nil {
		return nil, fmt.Errorf("event counts: %w", err)
	}
	defer rows.Close()
	counts := map[string]int64{
		syncserver.EventPending: 0, syncserver.EventDelivered: 0,
		syncserver.EventDead: 0, syncserver.EventCoalesced: 0,
	}
	for rows.Next() {
		var state string
		var n int64
		if err := rows.Scan(&state, &n); err != nil {
			return nil, fmt.Errorf("event counts: %w", err)
		}
		counts[state] = n
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("event counts: %w", err)
	}
	return counts, nil
}

// PruneEvents implements syncserver.EventStore, in one write transaction.
// Times are kept to the millisecond: only events of a millisecond before
// cutoff's go. A limit below 1 deletes nothing. AUTOINCREMENT never hands
// out a pruned seq again.
func (s *Store) PruneEvents(ctx context.Context, cutoff time.Time, limit int, pending bool) (int, error) {
	if limit < 1 {
		return 0, ctx.Err()
	}
	tx, err := s.w.BeginTx(ctx, nil)
	if err != nil {
		return 0, fmt.Errorf("prune events: begin: %w", err)
	}
	defer tx.Rollback()
	res, err := tx.ExecContext(ctx, `DELETE FROM events WHERE seq IN (
			SELECT seq FROM events WHERE (state <> 'pending' OR ?) AND at < ?
				AND (state <> 'dead' OR coalesce(tried_since, at) < ?)
			ORDER BY seq LIMIT ?)`,
		pending, cutoff.UnixMilli(), cutoff.UnixMilli(), limit)
	if err != nil {
		return 0, fmt.Errorf("prune events: %w", err)
	}
	n, err := res.RowsAffected()
	if err != nil {
		return 0, fmt.Errorf("prune events: %w", err)
	}
	if err := tx.Commit(); err != nil {
		return 0, fmt.Errorf("prune events: commit: %w", err)
	}
	return int(n), nil
}

// IdleCarts implements syncserver.EventStore. Times are kept to the
// millisecond, as in Purge: only carts changed in a millisecond before
// cutoff's are idle. A cart without an UpdatedAt is never idle.
func (s *Store) IdleCarts(ctx context.Context, kind string, cutoff time.Time, limit int) ([]string, error) {
	if limit < 1 {
		return nil, ctx.Err()
	}
	rows, err := s.r.QueryContext(ctx, `SELECT id FROM carts
		WHERE kind = ? AND expired_at IS NULL AND merged_into = '' AND updated_at < ?
			AND (abandoned_at IS NULL OR abandoned_at <> updated_at)
		ORDER BY updated_at, id LIMIT ?`, kind, cutoff.UnixMilli(), limit)
	if err != nil {
		return nil, fmt.Errorf("idle %s carts: %w", kind, err)
	}
	defer rows.Close()
	var ids []string
	for rows.Next() {
		var id string
		if err := rows.Scan(&id); err != nil {
			return nil, fmt.Errorf("idle %s carts: %w", kind, err)
		}
		ids = append(ids, id)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("idle %s carts: %w", kind, err)
	}
	return ids, nil
}

// sortBySeq sorts evs by seq (RETURNING gives no order).
func sortBySeq(evs []syncserver.Event) {
	slices.SortFunc(evs, func(a, b syncserver.Event) int { return cmp.Compare(a.Seq, b.Seq) })
}
