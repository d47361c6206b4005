package postgres

import (
	"cmp"
	"context"
	"encoding/json"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/cartsync/cartsync/syncserver"
)

// The outbox of cart events (syncserver.EventStore).
//
// An event's seq is taken when its row is inserted, not when it commits:
// a transaction holding seq 5 may commit after one holding seq 6, and a
// feed that had read up to 6 would skip 5. So each row also keeps the id of
// the transaction that inserted it (xid), and the feed reads in (xid, seq)
// order only the events whose transaction is older than the oldest one
// still running (pg_snapshot_xmin of the statement's snapshot): every
// transaction that could yet commit an event has a larger xid, and sorts
// after what was read. The cursor is "<xid>-<seq>". The feed lags behind
// the newest commits while older transactions run, by as long as they run.

// eventColumns are the columns scanEvent reads, in its order.
const eventColumns = `seq, xid::text, id, type, cart_id, at, data, state, attempts, next_at, last_error, tried_since`

// The statements of queueEvents.
const (
	// A coalescing event replaces the pending events of its cart and type
	// that no delivery has tried and that no lease holds. A claim that
	// holds one of them makes this wait, and then leaves it.
	//
	// The replacement is due when the earliest of those was, if sooner
	// than its own time: a cart edited without pause still gets its
	// event out.
	sqlCoalesceInsert = `WITH gone AS (
			UPDATE events SET state = 'coalesced'
			WHERE cart_id = $3 AND type = $2 AND state = 'pending' AND attempts = 0
				AND (lease_until IS NULL OR lease_until <= $7)
			RETURNING next_at)
		INSERT INTO events (id, type, cart_id, at, data, next_at, state)
		SELECT $1, $2, $3, $4, $5, LEAST($6, (SELECT min(next_at) FROM gone)), $8`
	sqlInsertEvent = `INSERT INTO events (id, type, cart_id, at, data, next_at, state) VALUES ($1, $2, $3, $4, $5, $6, $7)`
)

// queueEvents queues on b the writes of evs as pending events, for cartID
// unless an event names its cart; each coalesces first if it asks to, with
// leases compared to now. An event is due at its NextAt if set, else at its
// At.
func queueEvents(b *pgx.Batch, cartID string, evs []syncserver.Event, now time.Time) error {
	for _, ev := range evs {
		if ev.CartID == "" {
			ev.CartID = cartID
		}
		var data string
		switch {
		case ev.ID == "":
			return fmt.Errorf("event %s of cart %s has no id", ev.Type, ev.CartID)
		case len(ev.Data) == 0:
			data = "null"
		case !json.Valid(ev.Data):
			return fmt.Errorf("event %s: data is not JSON", ev.ID)
		default:
			data = string(ev.Data)
		}
		next := ev.NextAt
		if next.IsZero() {
			next = ev.At
		}
		state := initialState(ev)
		if ev.Coalesce {
			b.Queue(sqlCoalesceInsert, ev.ID, ev.Type, ev.CartID, ev.At.Truncate(time.Millisecond), data, next.Truncate(time.Millisecond), now, state)
			continue
		}
		b.Queue(sqlInsertEvent, ev.ID, ev.Type, ev.CartID, ev.At.Truncate(time.Millisecond), data, next.Truncate(time.Millisecond), state)
	}
	return nil
}

// collectEvents reads rows of eventColumns.
func collectEvents(rows pgx.Rows) ([]syncserver.Event, error) {
	var (
		out       []syncserver.Event
		ev        syncserver.Event
		xid       string
		data      []byte
		at, next  time.Time
		attempts  int32
		lastError string
		tried     *time.Time
	)
	_, err := pgx.ForEachRow(rows, []any{&ev.Seq, &xid, &ev.ID, &ev.Type, &ev.CartID, &at, &data, &ev.State, &attempts, &next, &lastError, &tried}, func() error {
		e := ev
		e.Cursor = xid + "-" + strconv.FormatInt(ev.Seq, 10)
		e.Data = json.RawMessage(slices.Clone(data))
		e.At, e.NextAt = at.UTC(), next.UTC()
		if tried != nil {
			e.TriedSince = tried.UTC()
		}
		e.Attempts, e.LastError = int(attempts), lastError
		out = append(out, e)
		return nil
	})
	return out, err
}

// parseCursor returns the xid and seq of a feed cursor; "" is (0, 0),
// before every event.
func parseCursor(cursor string) (xid uint64, seq int64, err error) {
	if cursor == "" {
		return 0, 0, nil
	}
	x, q, ok := strings.Cut(cursor, "-")
	if ok {
		xid, err = strconv.ParseUint(x, 10, 64)
	}
	if ok && err == nil {
		seq, err = strconv.ParseInt(q, 10, 64)
	}
	if !ok || err != nil || strings.TrimLeft(x+q, "0123456789") != "" {
		return 0, 0, fmt.Errorf("bad cursor %q: %w (<xid>-<seq> in decimal)", cursor, syncserver.ErrBadCursor)
	}
	return xid, seq, nil
}

// sqlCursorGiven tells whether the cursor ($1 the xid, $2 the seq) is not
// past every cursor given: its transaction began (an xid below the
// snapshot's xmax) and its seq was handed out.
const sqlCursorGiven = `SELECT $1::text::xid8 < pg_snapshot_xmax(pg_current_snapshot())
	AND $2 <= coalesce(pg_sequence_last_value(pg_get_serial_sequence('events', 'seq')::regclass), 0)`

// EventsAfter implements syncserver.EventStore: see above for the cursor.
// A cursor past every one given (an xid not yet begun, or a seq not yet
// handed out) is ErrBadCursor; the page and that check are one round
// trip, the check after the page, so a cursor given before is never
// refused. A limit below 1 returns no events.
func (s *Store) EventsAfter(ctx context.Context, cursor string, limit int) ([]syncserver.Event, error) {
	xid, seq, err := parseCursor(cursor)
	if err != nil {
		return nil, fmt.Errorf("events after: %w", err)
	}
	if limit < 1 {
		return nil, ctx.Err()
	}
	x := strconv.FormatUint(xid, 10)
	b := &pgx.Batch{}
	var evs []syncserver.Event
	b.Queue(`SELECT `+eventColumns+` FROM events
		WHERE state <> 'coalesced' AND (xid, seq) > ($1::text::xid8, $2)
			AND xid < pg_snapshot_xmin(pg_current_snapshot())
		ORDER BY xid, seq LIMIT $3`, x, seq, limit).Query(func(rows pgx.Rows) error {
		evs, err = collectEvents(rows)
		return err
	})
	given := true
	if cursor != "" {
		b.Queue(sqlCursorGiven, x, seq).QueryRow(func(row pgx.Row) error { return row.Scan(&given) })
	}
	if err := s.pool.SendBatch(ctx, b).Close(); err != nil {
		return nil, withCtx(ctx, fmt.Errorf("events after %q: %w", cursor, err))
	}
	if !given {
		return nil, fmt.Errorf("events after %q: %w (past every cursor given)", cursor, syncserver.ErrBadCursor)
	}
	return evs, nil
}

// ClaimEvents implements syncserver.EventStore, in one statement: events
// another claim holds (FOR UPDATE SKIP LOCKED) are passed over, and one
// that another claim leased since the statement began fails the
// statement's check of its row, so no two claims return the same event. A
// limit below 1 claims nothing. An event with no failed attempt starts a
// series at now (tried_since); one with failed attempts keeps its series,
// or takes its at if it has none (a row written before migration 0006).
func (s *Store) ClaimEvents(ctx context.Context, now time.Time, lease time.Duration, limit int) ([]syncserver.Event, error) {
	if limit < 1 {
		return nil, ctx.Err()
	}
	rows, _ := s.pool.Query(ctx, `WITH picked AS (
			SELECT e.seq FROM events e
			WHERE e.state = 'pending' AND e.next_at <= $1 AND (e.lease_until IS NULL OR e.lease_until <= $1)
				AND NOT EXISTS (SELECT FROM events p WHERE p.cart_id = e.cart_id AND p.state = 'pending' AND p.seq < e.seq)
			ORDER BY e.seq
			LIMIT $3
			FOR UPDATE SKIP LOCKED
		)
		UPDATE events SET lease_until = $2,
			tried_since = CASE WHEN events.attempts = 0 THEN $4 ELSE coalesce(events.tried_since, events.at) END
		FROM picked WHERE events.seq = picked.seq
		RETURNING `+qualified("events", eventColumns),
		now, now.Add(lease).Truncate(time.Millisecond), limit, now.Truncate(time.Millisecond))
	evs, err := collectEvents(rows)
	if err != nil {
		return nil, withCtx(ctx, fmt.Errorf("claim events: %w", err))
	}
	slices.SortFunc(evs, func(a, b syncserver.Event) int { return cmp.Compare(a.Seq, b.Seq) })
	return evs, nil
}

// qualified prefixes each of the comma-separated columns with table.
func qualified(table, columns string) string {
	cols := strings.Split(columns, ", ")
	for i, c := range cols {
		cols[i] = table + "." + c
	}
	return strings.Join(cols, ", ")
}

// pendingUpdate runs update, a statement on the event $1, if the event is
// pending: ErrEventNotFound if no event has seq; nothing if the event is
// no longer pending. One statement.
func (s *Store) pendingUpdate(ctx context.Context, what string, seq int64, update string, args ...any) error {
	var found bool
	err := s.pool.QueryRow(ctx, `WITH u AS (`+update+` WHERE seq = $1 AND state = 'pending' RETURNING 1)
		SELECT EXISTS (SELECT FROM events WHERE seq = $1)`, append([]any{seq}, args...)...).Scan(&found)
	if err != nil {
		return withCtx(ctx, fmt.Errorf("event %d %s: %w", seq, what, err))
	}
	if !found {
		return fmt.Errorf("event %d %s: %w", seq, what, syncserver.ErrEventNotFound)
	}
	return nil
}

// EventDelivered implements syncserver.EventStore. An event no longer
// pending (delivered through another lease, say) is left as it is.
func (s *Store) EventDelivered(ctx context.Context, seq int64, at time.Time) error {
	return s.pendingUpdate(ctx, "delivered", seq,
		`UPDATE events SET state = 'delivered', delivered_at = $2, lease_until = NULL`, at.Truncate(time.Millisecond))
}

// EventFailed implements syncserver.EventStore. An event no longer pending
// is left as it is.
func (s *Store) EventFailed(ctx context.Context, seq int64, next time.Time, lastErr string, dead bool) error {
	state := syncserver.EventPending
	if dead {
		state = syncserver.EventDead
	}
	return s.pendingUpdate(ctx, "failed", seq,
		`UPDATE events SET state = $2, attempts = attempts + 1, last_error = $3, next_at = $4, lease_until = NULL`,
		state, lastErr, next.Truncate(time.Millisecond))
}

// DeadEvents implements syncserver.EventStore. A limit below 1 returns no
// events.
func (s *Store) DeadEvents(ctx context.Context, after int64, limit int) ([]syncserver.Event, error) {
	if limit < 1 {
		return nil, ctx.Err()
	}
	rows, _ := s.pool.Query(ctx, `SELECT `+eventColumns+` FROM events
		WHERE state = 'dead' AND seq > $1 ORDER BY seq LIMIT $2`, after, limit)
	evs, err := collectEvents(rows)
	if err != nil {
		return nil, withCtx(ctx, fmt.Errorf("dead events: %w", err))
	}
	return evs, nil
}

// RetryEvent implements syncserver.EventStore. The event keeps its last
// error.
func (s *Store) RetryEvent(ctx context.Context, id string) error {
	tag, err := s.pool.Exec(ctx, `UPDATE events SET state = 'pending', attempts = 0, next_at = $2, lease_until = NULL,
			tried_since = NULL
		WHERE id = $1 AND state = 'dead'`, id, time.Now().Truncate(time.Millisecond))
	if err != nil {
		return withCtx(ctx, fmt.Errorf("retry event %s: %w", id, err))
	}
	if tag.RowsAffected() == 0 {
		return fmt.Errorf("retry event %s: %w", id, syncserver.ErrEventNotFound)
	}
	return nil
}

// EventCounts implements syncserver.EventStore. Every state is counted,
// at 0 if no event is in it.
func (s *Store) EventCounts(ctx context.Context) (map[string]int64, error) {
	counts := map[string]int64{
		syncserver.EventPending: 0, syncserver.EventDelivered: 0,
		syncserver.EventDead: 0, syncserver.EventCoalesced: 0,
	}
	rows, _ := s.pool.Query(ctx, `SELECT state, count(*) FROM events GROUP BY state`)
	var (
		state string
		n     int64
	)
	_, err := pgx.ForEachRow(rows, []any{&state, &n}, func() error {
		counts[state] = n
		return nil
	})
	if err != nil {
		return nil, withCtx(ctx, fmt.Errorf("event counts: %w", err))
	}
	return counts, nil
}

// PruneEvents implements syncserver.EventStore, in one statement; the
// index events_prunable (migration 0004) finds the events old enough.
// Times are kept to the millisecond, as in IdleCarts. A limit below 1
// deletes nothing.
func (s *Store) PruneEvents(ctx context.Context, cutoff time.Time, limit int, pending bool) (int, error) {
	if limit < 1 {
		return 0, ctx.Err()
	}
	query := `DELETE FROM events WHERE seq IN (
			SELECT seq FROM events WHERE state <> 'pending' AND at < $1
				AND (state <> 'dead' OR coalesce(tried_since, at) < $1)
			ORDER BY seq LIMIT $2)`
	if pending {
		// Its own statement: the one above is the index's.
		query = `DELETE FROM events WHERE seq IN (
			SELECT seq FROM events WHERE at < $1
				AND (state <> 'dead' OR coalesce(tried_since, at) < $1)
			ORDER BY seq LIMIT $2)`
	}
	tag, err := s.pool.Exec(ctx, query, cutoff.Truncate(time.Millisecond), limit)
	if err != nil {
		return 0, withCtx(ctx, fmt.Errorf("prune events: %w", err))
	}
	return int(tag.RowsAffected()), nil
}

// IdleCarts implements syncserver.EventStore. Times are kept to the
// millisecond, as in Purge: only carts changed in a millisecond before
// cutoff's are idle. A cart without an UpdatedAt is never idle.
func (s *Store) IdleCarts(ctx context.Context, kind string, cutoff time.Time, limit int) ([]string, error) {
	if limit < 1 {
		return nil, ctx.Err()
	}
	rows, _ := s.pool.Query(ctx, `SELECT id FROM carts
		WHERE kind = $1 AND expired_at IS NULL AND state IS NOT NULL AND merged_into = '' AND updated_at < $2
			AND (abandoned_at IS NULL OR abandoned_at <> updated_at)
		ORDER BY updated_at, id LIMIT $3`, kind, cutoff.Truncate(time.Millisecond), limit)
	ids, err := pgx.CollectRows(rows, pgx.RowTo[string])
	if err != nil {
		return nil, withCtx(ctx, fmt.Errorf("idle %s carts: %w", kind, err))
	}
	return ids, nil
}

// initialState is the state an event is written in: pending, or delivered
// when the core says so (a server without webhooks).
func initialState(ev syncserver.Event) string {
	if ev.State == syncserver.EventDelivered {
		return syncserver.EventDelivered
	}
	return syncserver.EventPending
}
