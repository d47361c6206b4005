// Package postgres is a syncserver.Store on PostgreSQL, for several server
// instances sharing one database.
//
// Mutates are committed by group commit (syncserver.GroupCommitter): a
// batch is one transaction that locks its carts' rows (SELECT ... FOR
// UPDATE, in id order), so that the Mutates of a cart are serialized across
// every instance while different carts proceed in parallel. It costs one
// round trip whatever its size when this instance wrote each of its carts
// last (syncserver.CartMemo): the batch is decided on the carts in memory,
// and the BEGIN, the row locks with a check that each row is still the one
// written, the writes and the COMMIT go in one pipelined batch. Otherwise it
// costs two: the BEGIN, the row locks and the seqs in one; the writes and
// the COMMIT in another. A Merge is the same with two rows, locked in id
// order too, so that batches and Merges never deadlock. Purge skips the
// rows a batch holds (FOR UPDATE SKIP LOCKED) and a batch waits for the
// Purge holding its row, then finds the tombstone.
//
// The events fn appends go to the outbox (table events) in the second
// batch, with the cart's writes; the catalog is the table catalog_items.
// The outbox's feed orders events by the transaction that inserted them, so
// that one committing late is never skipped (see events.go).
//
// The schema is created and upgraded by migrations embedded in the binary,
// applied in order by Open under an advisory lock, so instances starting
// together migrate once. Tables are created unqualified, in the first schema
// of the connection's search_path (set it with the search_path URL
// parameter).
package postgres

import (
	"context"
	"embed"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"math"
	"slices"
	"strings"
	"sync/atomic"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/cartsync/cartsync/shared/cart"
	"github.com/cartsync/cartsync/syncserver"
)

//go:embed migrations/*.sql
var migrations embed.FS

// Store is a Store, CatalogStore and EventStore in a PostgreSQL database.
type Store struct {
	pool  *pgxpool.Pool
	group *syncserver.GroupCommitter
	memo  *syncserver.CartMemo // the carts batches wrote, by write_id

	// Batches committed in one round trip from the memo, and batches
	// whose memo was stale (then committed in two).
	memoCommits, staleCommits atomic.Uint64

	// newer are migrations the database has that this program does not
	// know: a newer version applied them (see UnknownMigrations); applied
	// those Open applied.
	newer, applied []string
}

// AppliedMigrations returns the migrations Open applied.
func (s *Store) AppliedMigrations() []string { return s.applied }

// UnknownMigrations returns the migrations applied to the database that
// this program does not have: a newer version of it migrated the database
// (a rolling deploy, or a rollback). Migrations only add, so this version
// still works on it; the caller should say so.
func (s *Store) UnknownMigrations() []string { return s.newer }

var (
	_ syncserver.Store        = (*Store)(nil)
	_ syncserver.CatalogStore = (*Store)(nil)
	_ syncserver.EventStore   = (*Store)(nil)

	_ syncserver.MemoCommitStore = (*Store)(nil)
)

// Option configures Open.
type Option func(*config)

type config struct {
	maxConns   int32
	committers int
}

// WithMaxConns sets the size of the connection pool. The default is the
// pool_max_conns URL parameter, or else the larger of 4 and the number of
// CPUs.
func WithMaxConns(n int32) Option { return func(c *config) { c.maxConns = n } }

// defaultCommitters is how many group-commit batches commit at once by
// default. Fewer batches at once make larger ones: on a 2-core machine
// with Postgres on it, 2 gave a lower ack latency than 4 at 1,000 edits/s
// (p99 26-34 ms against 31-58 ms) and as many acknowledged edits in a
// closed loop (docs/benchmarks.md, 2026-12-03 evening); one alone stalls
// every edit behind one slow transaction. A Postgres with cores to spare
// for more transactions at once may take more (-committers).
const defaultCommitters = 2

// WithGroupCommit sets how many group-commit batches may commit at once
// (see syncserver.GroupCommitter); 0 turns group commit off, so that each
// Mutate is a transaction of its own. The default is defaultCommitters.
func WithGroupCommit(committers int) Option {
	return func(c *config) { c.committers = committers }
}

// defaultConnectTimeout bounds a connection attempt when the URL sets no
// connect_timeout.
var defaultConnectTimeout = 10 * time.Second

// Open connects to the database at url (a postgres:// URL or a key=value
// connection string) and migrates it to the current schema.
func Open(ctx context.Context, url string, opts ...Option) (*Store, error) {
	cfg := config{committers: -1}
	for _, o := range opts {
		o(&cfg)
	}
	pcfg, err := pgxpool.ParseConfig(url)
	if err != nil {
		return nil, fmt.Errorf("postgres: parse connection string: %w", err)
	}
	if cfg.maxConns > 0 {
		pcfg.MaxConns = cfg.maxConns
	}
	if pcfg.ConnConfig.ConnectTimeout == 0 {
		// A Postgres that takes the connection and never answers (stopped,
		// or behind a firewall that drops) must not hang the start, or a
		// request that needs a new connection, for ever.
		pcfg.ConnConfig.ConnectTimeout = defaultConnectTimeout
	}
	pool, err := pgxpool.NewWithConfig(ctx, pcfg)
	if err != nil {
		return nil, fmt.Errorf("postgres: connect: %w", err)
	}
	s := &Store{pool: pool, memo: syncserver.NewCartMemo(memoCarts)}
	if err := s.migrate(ctx); err != nil {
		pool.Close()
		return nil, fmt.Errorf("postgres: %w", withCtx(ctx, err))
	}
	gc := syncserver.GroupCommitConfig{Committers: cfg.committers}
	switch {
	case cfg.committers < 0:
		gc.Committers = defaultCommitters
	case cfg.committers == 0:
		// A transaction per Mutate, as many at once as connections.
		gc.Committers, gc.MaxBatch = int(pcfg.MaxConns), 1
	}
	s.group = syncserver.NewGroupCommitter(s, gc)
	return s, nil
}

// retiredMigrations were migrations of this program for a while, and were
// taken out again: a database that has one was not migrated by a newer
// version. (0006_lock_stamped.sql made a function nothing calls since.)
var retiredMigrations = []string{"0006_lock_stamped.sql"}

// migrate applies the embedded migrations not applied yet, in name order,
// in one transaction.
func (s *Store) migrate(ctx context.Context) error {
	names, err := fs.Glob(migrations, "migrations/*.sql")
	if err != nil {
		return fmt.Errorf("migrate: %w", err)
	}
	slices.Sort(names)

	tx, err := s.pool.Begin(ctx)
	if err != nil {
		return fmt.Errorf("migrate: begin: %w", err)
	}
	defer tx.Rollback(context.WithoutCancel(ctx))
	// Instances starting together take turns; the lock is per schema, so
	// stores in different schemas of one database do not wait for each
	// other.
	if _, err := tx.Exec(ctx, `SELECT pg_advisory_xact_lock(hashtextextended('cartsync migrate ' || coalesce(current_schema(), ''), 0))`); err != nil {
		return fmt.Errorf("migrate: lock: %w", err)
	}
	// Created only when missing: a role that may read and write the
	// tables but not create any starts on a database that needs no
	// migration (CREATE ... IF NOT EXISTS needs the privilege anyway).
	var exists bool
	// Found through search_path, as the queries below find it (the store's
	// tables may sit in a later schema than the first), and ours only if
	// it has our column: another tool's schema_migrations (golang-migrate's
	// has version and dirty) is not, and ours is made where CREATE puts it.
	if err := tx.QueryRow(ctx, `SELECT EXISTS (SELECT 1 FROM pg_catalog.pg_attribute
		WHERE attrelid = to_regclass('schema_migrations') AND attname = 'name' AND NOT attisdropped)`).Scan(&exists); err != nil {
		return fmt.Errorf("migrate: look for schema_migrations: %w", err)
	}
	if !exists {
		if _, err := tx.Exec(ctx, `CREATE TABLE schema_migrations (
			name       text PRIMARY KEY,
			applied_at timestamptz NOT NULL DEFAULT now()
		)`); err != nil {
			return fmt.Errorf("migrate: create schema_migrations: %w", err)
		}
	}
	rows, _ := tx.Query(ctx, `SELECT name FROM schema_migrations`)
	applied, err := pgx.CollectRows(rows, pgx.RowTo[string])
	if err != nil {
		return fmt.Errorf("migrate: list applied: %w", err)
	}
	known := make([]string, len(names))
	for i, file := range names {
		known[i] = strings.TrimPrefix(file, "migrations/")
	}
	s.newer, s.applied = nil, nil
	for _, name := range applied {
		if !slices.Contains(known, name) && !slices.Contains(retiredMigrations, name) {
			s.newer = append(s.newer, name)
		}
	}
	slices.Sort(s.newer)
	for i, file := range names {
		name := known[i]
		if slices.Contains(applied, name) {
			continue
		}
		body, err := migrations.ReadFile(file)
		if err != nil {
			return fmt.Errorf("migrate: %w", err)
		}
		// Without arguments Exec uses the simple protocol, which runs a
		// file of several statements.
		if _, err := tx.Exec(ctx, string(body)); err != nil {
			return fmt.Errorf("migrate: apply %s: %w", name, err)
		}
		if _, err := tx.Exec(ctx, `INSERT INTO schema_migrations (name) VALUES ($1)`, name); err != nil {
			return fmt.Errorf("migrate: record %s: %w", name, err)
		}
		s.applied = append(s.applied, name)
	}
	if err := tx.Commit(ctx); err != nil {
		return fmt.Errorf("migrate: commit: %w", err)
	}
	return nil
}

// release returns a connection of a hand-rolled transaction to the pool,
// rolling back first if the transaction is still open (after an error or a
// panic). A connection that cannot roll back is left in its transaction,
// and the pool closes it.
func release(ctx context.Context, conn *pgxpool.Conn, inTx bool) {
	if inTx {
		rctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
		conn.Exec(rctx, "ROLLBACK")
		cancel()
	}
	conn.Release()
}

// Mutate implements syncserver.Store by group commit (see CommitBatch).
func (s *Store) Mutate(ctx context.Context, cartID string, clients []string, fn func(*syncserver.Record) error) error {
	return s.group.Mutate(ctx, cartID, clients, fn)
}

// The statements of Purge. A cart counts as changed at its updated_at,
// or at its creation if fn never set one.
const (
	// Rows a Mutate or Merge holds are skipped: they are being changed.
	// The UPDATE checks the time again on the row it locked, so that a
	// cart changed since the statement began is never expired.
	sqlExpire = `WITH picked AS (
			SELECT id FROM carts
			WHERE kind = $1 AND expired_at IS NULL AND state IS NOT NULL
				AND (updated_at < $2 OR (updated_at IS NULL AND created_at < $2))
			LIMIT $3
			FOR UPDATE SKIP LOCKED
		)
		UPDATE carts c
		SET expired_at = $4, state = jsonb_build_object('id', c.id, 'version', c.version, 'lines', '[]'::jsonb)
		FROM picked
		WHERE c.id = picked.id AND c.expired_at IS NULL
			AND (c.updated_at < $2 OR (c.updated_at IS NULL AND c.created_at < $2))
		RETURNING c.id`
	sqlClearLog       = `DELETE FROM cart_log WHERE cart_id = ANY($1)`
	sqlClearSeqs      = `DELETE FROM cart_clients WHERE cart_id = ANY($1)`
	sqlDropTombstones = `DELETE FROM carts WHERE id IN (
		SELECT id FROM carts WHERE kind = $1 AND expired_at < $2 LIMIT $3 FOR UPDATE SKIP LOCKED)
		RETURNING id`
)

// Load implements syncserver.Store.
func (s *Store) Load(ctx context.Context, cartID string, clients []string) (*syncserver.Record, error) {
	// One statement, so the seqs belong to the same commit as the cart.
	var (
		state              []byte
		updated, abandoned *time.Time
		expired            bool
		seqClients         []string
		seqs               []int64
		rec                = &syncserver.Record{Exists: true, Cart: new(cart.Cart), Seqs: zeroSeqs(clients)}
	)
	err := s.pool.QueryRow(ctx, `SELECT c.kind, c.state, c.merged_into, c.updated_at, c.abandoned_at, c.expired_at IS NOT NULL,
			s.clients, s.seqs
		FROM carts c
		CROSS JOIN LATERAL (
			SELECT array_agg(client_id) AS clients, array_agg(last_seq) AS seqs
			FROM cart_clients WHERE cart_id = c.id AND client_id = ANY($2)
		) s
		WHERE c.id = $1 AND c.state IS NOT NULL`, cartID, clients).
		Scan(&rec.Meta.Kind, &state, &rec.Meta.MergedInto, &updated, &abandoned, &expired, &seqClients, &seqs)
	if errors.Is(err, pgx.ErrNoRows) {
		return nil, syncserver.ErrCartNotFound
	}
	if err != nil {
		return nil, withCtx(ctx, fmt.Errorf("load cart %s: %w", cartID, err))
	}
	if expired {
		return nil, syncserver.ErrCartExpired
	}
	if err := json.Unmarshal(state, rec.Cart); err != nil {
		return nil, fmt.Errorf("load cart %s: decode cart: %w", cartID, err)
	}
	rec.Meta.UpdatedAt, rec.Meta.AbandonedAt = utc(updated), utc(abandoned)
	for i, c := range seqClients {
		rec.Seqs[c] = uint64(seqs[i])
	}
	return rec, nil
}

// Changes implements syncserver.Store. A limit below 1 returns no changes.
func (s *Store) Changes(ctx context.Context, cartID string, since uint64, limit int) ([]syncserver.Change, error) {
	if err := ctx.Err(); err != nil {
		return nil, fmt.Errorf("changes of cart %s: %w", cartID, err)
	}
	if limit < 1 || since >= math.MaxInt64 {
		return nil, nil
	}
	rows, _ := s.pool.Query(ctx, `SELECT version, op, warnings, at FROM cart_log
		WHERE cart_id = $1 AND version > $2 ORDER BY version LIMIT $3`, cartID, int64(since), limit)
	var (
		out      []syncserver.Change
		version  int64
		op, warn []byte
		at       time.Time
	)
	_, err := pgx.ForEachRow(rows, []any{&version, &op, &warn, &at}, func() error {
		ch, err := syncserver.DecodeChange(uint64(version), op, warn, at)
		if err != nil {
			return err
		}
		out = append(out, ch)
		return nil
	})
	if err != nil {
		return nil, withCtx(ctx, fmt.Errorf("changes of cart %s: %w", cartID, err))
	}
	if err := syncserver.CheckRunsOn(out, since); err != nil {
		return nil, err
	}
	if len(out) == 0 {
		// An expired cart has no log left: tell it from an idle one. A
		// cart past since with no log after it started over (Revive):
		// its log does not reach since+1.
		var expired, past bool
		err := s.pool.QueryRow(ctx, `SELECT
				EXISTS (SELECT FROM carts WHERE id = $1 AND expired_at IS NOT NULL),
				EXISTS (SELECT FROM carts WHERE id = $1 AND expired_at IS NULL AND version > $2)`, cartID, int64(since)).Scan(&expired, &past)
		if err != nil {
			return nil, withCtx(ctx, fmt.Errorf("changes of cart %s: %w", cartID, err))
		}
		if expired {
			return nil, syncserver.ErrCartExpired
		}
		if past {
			return nil, syncserver.ErrCompacted
		}
	}
	return out, nil
}

// Secret implements syncserver.Store.
func (s *Store) Secret(ctx context.Context, name string, create []byte) ([]byte, error) {
	const get = `SELECT value FROM secrets WHERE name = $1`
	var v []byte
	err := s.pool.QueryRow(ctx, get, name).Scan(&v)
	if err == nil {
		return v, nil
	}
	if !errors.Is(err, pgx.ErrNoRows) {
		return nil, withCtx(ctx, fmt.Errorf("secret %s: %w", name, err))
	}
	if len(create) == 0 {
		return nil, fmt.Errorf("secret %s: empty value to create", name)
	}
	// The insert waits for a concurrent creator's transaction to end and
	// then does nothing; the read after it, a statement of its own, sees
	// whichever value won.
	if _, err := s.pool.Exec(ctx, `INSERT INTO secrets (name, value) VALUES ($1, $2) ON CONFLICT (name) DO NOTHING`, name, create); err != nil {
		return nil, withCtx(ctx, fmt.Errorf("secret %s: create: %w", name, err))
	}
	if err := s.pool.QueryRow(ctx, get, name).Scan(&v); err != nil {
		return nil, withCtx(ctx, fmt.Errorf("secret %s: %w", name, err))
	}
	return v, nil
}

// Ping implements syncserver.Store.
func (s *Store) Ping(ctx context.Context) error {
	if err := s.pool.Ping(ctx); err != nil {
		return withCtx(ctx, fmt.Errorf("postgres: ping: %w", err))
	}
	return nil
}

// Close closes every connection. It waits for connections in use to be
// released.
func (s *Store) Close() error {
	s.pool.Close()
	return nil
}

func zeroSeqs(clients []string) map[string]uint64 {
	seqs := make(map[string]uint64, len(clients))
	for _, c := range clients {
		seqs[c] = 0
	}
	return seqs
}

// withCtx makes err match the context's error when the context ended the
// call: a statement the server canceled is otherwise reported as a server
// error.
func withCtx(ctx context.Context, err error) error {
	if cerr := ctx.Err(); cerr != nil && !errors.Is(err, cerr) {
		return fmt.Errorf("%w: %w", cerr, err)
	}
	return err
}

// utc returns *t in UTC, or the zero time for nil.
func utc(t *time.Time) time.Time {
	if t == nil {
		return time.Time{}
	}
	return t.UTC()
}
