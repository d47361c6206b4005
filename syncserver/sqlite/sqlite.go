// Package sqlite is the embedded default syncserver.Store: one SQLite file,
// on modernc.org/sqlite (pure Go, no cgo).
//
// The database runs in WAL mode with synchronous=FULL, so a committed
// Mutate survives a power loss. Writes go through a single connection that
// begins its transactions with BEGIN IMMEDIATE: Mutates, Merges and Purges
// are serialized (across processes sharing the file too, under
// busy_timeout), while Load, Changes and Ping read concurrently from a pool
// of read-only connections. The catalog, the outbox of cart events and
// their feed are tables of the same file; the events fn appends are written
// in its Mutate's or Merge's transaction.
//
// The schema is created and upgraded by migrations embedded in the binary,
// applied in order when the store is opened.
package sqlite

import (
	"context"
	"database/sql"
	"embed"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"math"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"time"

	_ "modernc.org/sqlite" // registers the "sqlite" driver

	"github.com/cartsync/cartsync/shared/cart"
	"github.com/cartsync/cartsync/syncserver"
)

//go:embed migrations/*.sql
var migrations embed.FS

// Store is a Store, CatalogStore and EventStore in one SQLite file.
type Store struct {
	w *sql.DB // one connection: every write transaction, in turn
	r *sql.DB // read-only connections

	group *syncserver.GroupCommitter

	// memo holds the carts batches wrote (see CommitBatch). writeMu is
	// held over CommitBatch and Merge (one transaction at a time in any
	// case: there is one writer), so that the memo changes with the
	// rows: a Merge forgets its carts before any batch can read them
	// again. Purge needs no part in it: a batch sees an expired cart's
	// tombstone, or no row, before it looks at the memo. dataVersion,
	// guarded by writeMu, is the file's PRAGMA data_version when
	// CommitBatch last looked: it changes when another process commits.
	memo        *syncserver.CartMemo
	writeMu     chan struct{} // a mutex a context can give up on
	dataVersion int64

	// The migrations Open found in the file that this program does not
	// know (a newer version applied them), and those it applied itself.
	newer, applied []string
}

// UnknownMigrations returns the migrations applied to the file that this
// program does not have: a newer version of it migrated the file (a
// rollback). Migrations only add, so this version still works on it; the
// caller should say so.
func (s *Store) UnknownMigrations() []string { return s.newer }

// AppliedMigrations returns the migrations Open applied.
func (s *Store) AppliedMigrations() []string { return s.applied }

// lockWrites takes writeMu, unless ctx ends first.
func (s *Store) lockWrites(ctx context.Context) (unlock func(), err error) {
	select {
	case s.writeMu <- struct{}{}:
		return func() { <-s.writeMu }, nil
	case <-ctx.Done():
		return nil, ctx.Err()
	}
}

var (
	_ syncserver.Store        = (*Store)(nil)
	_ syncserver.CatalogStore = (*Store)(nil)
	_ syncserver.EventStore   = (*Store)(nil)
)

// Option configures Open.
type Option func(*config)

type config struct {
	busyTimeout time.Duration
	readers     int
	groupCommit bool
}

// WithBusyTimeout sets how long a statement waits for a lock another
// process holds on the file before failing. The default is 5s.
func WithBusyTimeout(d time.Duration) Option { return func(c *config) { c.busyTimeout = d } }

// WithReaders sets how many read connections may be open at once. The
// default is 4.
func WithReaders(n int) Option { return func(c *config) { c.readers = n } }

// WithGroupCommit turns group commit (see syncserver.GroupCommitter) on or
// off; it is on by default: the Mutates that queue while one transaction
// commits are committed together in the next.
func WithGroupCommit(on bool) Option { return func(c *config) { c.groupCommit = on } }

// Open opens the store in the file at path, creating the file and its
// directory if needed, and migrates it to the current schema.
func Open(ctx context.Context, path string, opts ...Option) (*Store, error) {
	cfg := config{busyTimeout: 5 * time.Second, readers: 4, groupCommit: true}
	for _, o := range opts {
		o(&cfg)
	}
	if cfg.readers < 1 {
		cfg.readers = 1
	}
	if path == "" || path == ":memory:" || strings.HasPrefix(path, "file:") || strings.Contains(path, "?") {
		return nil, fmt.Errorf("sqlite: open %q: want the path of a file, without '?'", path)
	}
	if err := os.MkdirAll(filepath.Dir(path), 0o750); err != nil {
		return nil, fmt.Errorf("sqlite: open %s: %w", path, err)
	}
	busy := strconv.FormatInt(cfg.busyTimeout.Milliseconds(), 10)

	w, err := sql.Open("sqlite", path+"?"+url.Values{
		"_txlock":       {"immediate"},
		"_journal_mode": {"WAL"},
		"_synchronous":  {"FULL"},
		"_busy_timeout": {busy},
		"_foreign_keys": {"1"},
	}.Encode())
	if err != nil {
		return nil, fmt.Errorf("sqlite: open %s: %w", path, err)
	}
	w.SetMaxOpenConns(1)
	w.SetMaxIdleConns(1)
	w.SetConnMaxIdleTime(0)
	w.SetConnMaxLifetime(0)
	mig, err := migrateRetrying(ctx, w, cfg.busyTimeout)
	if err != nil {
		w.Close()
		var coded interface{ Code() int }
		if errors.As(err, &coded) && coded.Code()&0xff == sqliteReadOnly {
			return nil, fmt.Errorf("sqlite: open %s: the file cannot be written (check its owner and mode, and its folder's): %w", path, err)
		}
		return nil, fmt.Errorf("sqlite: open %s: %w", path, err)
	}

	r, err := sql.Open("sqlite", path+"?"+url.Values{
		"_busy_timeout": {busy},
		"_query_only":   {"1"},
	}.Encode())
	if err != nil {
		w.Close()
		return nil, fmt.Errorf("sqlite: open %s: %w", path, err)
	}
	r.SetMaxOpenConns(cfg.readers)
	r.SetMaxIdleConns(cfg.readers)
	s := &Store{w: w, r: r, memo: syncserver.NewCartMemo(memoCarts), writeMu: make(chan struct{}, 1), newer: mig.newer, applied: mig.applied}
	if err := s.Ping(ctx); err != nil {
		s.Close()
		return nil, fmt.Errorf("sqlite: open %s: %w", path, err)
	}
	gc := syncserver.GroupCommitConfig{Committers: 1} // one writer
	if !cfg.groupCommit {
		gc.MaxBatch = 1
	}
	s.group = syncserver.NewGroupCommitter(s, gc)
	return s, nil
}

// migrateRetrying runs migrate, retrying for up to busyTimeout while the
// file is busy. The first connection to a new file switches it to WAL,
// which takes a lock SQLite does not wait for: when several processes open
// a new file at once, all but one may fail to connect with SQLITE_BUSY.
func migrateRetrying(ctx context.Context, db *sql.DB, busyTimeout time.Duration) (migrated, error) {
	deadline := time.Now().Add(busyTimeout)
	for {
		mig, err := migrate(ctx, db)
		var coded interface{ Code() int }
		if err == nil || !errors.As(err, &coded) || coded.Code()&0xff != sqliteBusy || time.Now().After(deadline) {
			return mig, err
		}
		select {
		case <-time.After(10 * time.Millisecond):
		case <-ctx.Done():
			return migrated{}, fmt.Errorf("migrate: %w", ctx.Err())
		}
	}
}

// migrated is what migrate found and did: the migrations in the file this
// program does not know, and those it applied.
type migrated struct{ newer, applied []string }

// Primary result codes: SQLITE_BUSY, a locked file; SQLITE_READONLY, a
// file this process may not write.
const (
	sqliteBusy     = 5
	sqliteReadOnly = 8
)

// migrate applies the embedded migrations not applied yet, in name order,
// in one transaction. BEGIN IMMEDIATE makes concurrent migrators (several
// processes opening the file) take turns. It also writes to the file in any
// case: a file this process may read but not write (a restore with the
// wrong owner or mode) would otherwise start a server that is ready and
// refuses every edit.
func migrate(ctx context.Context, db *sql.DB) (migrated, error) {
	var mig migrated
	names, err := fs.Glob(migrations, "migrations/*.sql")
	if err != nil {
		return mig, fmt.Errorf("migrate: %w", err)
	}
	slices.Sort(names)

	tx, err := db.BeginTx(ctx, nil)
	if err != nil {
		return mig, fmt.Errorf("migrate: begin: %w", err)
	}
	defer tx.Rollback()
	if _, err := tx.ExecContext(ctx, `CREATE TABLE IF NOT EXISTS schema_migrations (
		name       TEXT PRIMARY KEY,
		applied_at INTEGER NOT NULL
	) WITHOUT ROWID`); err != nil {
		return mig, fmt.Errorf("migrate: create schema_migrations: %w", err)
	}
	applied := map[string]bool{}
	rows, err := tx.QueryContext(ctx, `SELECT name FROM schema_migrations`)
	if err != nil {
		return mig, fmt.Errorf("migrate: list applied: %w", err)
	}
	for rows.Next() {
		var name string
		if err := rows.Scan(&name); err != nil {
			rows.Close()
			return mig, fmt.Errorf("migrate: list applied: %w", err)
		}
		applied[name] = true
	}
	if err := rows.Err(); err != nil {
		return mig, fmt.Errorf("migrate: list applied: %w", err)
	}
	known := map[string]bool{}
	for _, file := range names {
		known[strings.TrimPrefix(file, "migrations/")] = true
	}
	for name := range applied {
		if !known[name] {
			mig.newer = append(mig.newer, name)
		}
	}
	slices.Sort(mig.newer)
	for _, file := range names {
		name := strings.TrimPrefix(file, "migrations/")
		if applied[name] {
			continue
		}
		body, err := migrations.ReadFile(file)
		if err != nil {
			return mig, fmt.Errorf("migrate: %w", err)
		}
		if _, err := tx.ExecContext(ctx, string(body)); err != nil {
			return mig, fmt.Errorf("migrate: apply %s: %w", name, err)
		}
		if _, err := tx.ExecContext(ctx, `INSERT INTO schema_migrations (name, applied_at) VALUES (?, ?)`,
			name, time.Now().UnixMilli()); err != nil {
			return mig, fmt.Errorf("migrate: record %s: %w", name, err)
		}
		mig.applied = append(mig.applied, name)
	}
	// The write that proves the file can be written.
	if _, err := tx.ExecContext(ctx, `UPDATE schema_migrations SET applied_at = applied_at
		WHERE name = (SELECT max(name) FROM schema_migrations)`); err != nil {
		return mig, fmt.Errorf("migrate: write: %w", err)
	}
	if err := tx.Commit(); err != nil {
		return mig, fmt.Errorf("migrate: commit: %w", err)
	}
	return mig, nil
}

// Mutate implements syncserver.Store by group commit (see CommitBatch),
// one batch at a time: SQLite has one writer.
func (s *Store) Mutate(ctx context.Context, cartID string, clients []string, fn func(*syncserver.Record) error) error {
	return s.group.Mutate(ctx, cartID, clients, fn)
}

// Load implements syncserver.Store.
func (s *Store) Load(ctx context.Context, cartID string, clients []string) (*syncserver.Record, error) {
	// One read transaction: the seqs belong to the same commit as the cart.
	tx, err := s.r.BeginTx(ctx, &sql.TxOptions{ReadOnly: true})
	if err != nil {
		return nil, fmt.Errorf("load cart %s: begin: %w", cartID, err)
	}
	defer tx.Rollback()
	rec, err := loadRecord(ctx, tx, cartID, clients)
	if err != nil {
		return nil, fmt.Errorf("load cart %s: %w", cartID, err)
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
	rows, err := s.r.QueryContext(ctx, `SELECT version, op, warnings, at FROM cart_log
		WHERE cart_id = ? AND version > ? ORDER BY version LIMIT ?`, cartID, int64(since), limit)
	if err != nil {
		return nil, fmt.Errorf("changes of cart %s: %w", cartID, err)
	}
	defer rows.Close()
	var out []syncserver.Change
	for rows.Next() {
		var (
			version  int64
			op, warn []byte
			at       int64
		)
		if err := rows.Scan(&version, &op, &warn, &at); err != nil {
			return nil, fmt.Errorf("changes of cart %s: %w", cartID, err)
		}
		ch, err := syncserver.DecodeChange(uint64(version), op, warn, time.UnixMilli(at))
		if err != nil {
			return nil, fmt.Errorf("changes of cart %s: %w", cartID, err)
		}
		out = append(out, ch)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("changes of cart %s: %w", cartID, err)
	}
	if err := syncserver.CheckRunsOn(out, since); err != nil {
		return nil, err
	}
	if len(out) == 0 {
		// An expired cart has no log left: tell it from an idle one. A
		// cart past since with no log after it started over (Revive):
		// its log does not reach since+1.
		var expired bool
		var version int64
		err := s.r.QueryRowContext(ctx, `SELECT expired_at IS NOT NULL, version FROM carts WHERE id = ?`, cartID).Scan(&expired, &version)
		switch {
		case err == nil && expired:
			return nil, syncserver.ErrCartExpired
		case err == nil && uint64(version) > since:
			return nil, syncserver.ErrCompacted
		case err != nil && !errors.Is(err, sql.ErrNoRows):
			return nil, fmt.Errorf("changes of cart %s: %w", cartID, err)
		}
	}
	return out, nil
}

// Secret implements syncserver.Store.
func (s *Store) Secret(ctx context.Context, name string, create []byte) ([]byte, error) {
	var v []byte
	err := s.r.QueryRowContext(ctx, `SELECT value FROM secrets WHERE name = ?`, name).Scan(&v)
	if err == nil {
		return v, nil
	}
	if !errors.Is(err, sql.ErrNoRows) {
		return nil, fmt.Errorf("secret %s: %w", name, err)
	}
	if len(create) == 0 {
		return nil, fmt.Errorf("secret %s: empty value to create", name)
	}
	// Writes are serialized, so a concurrent creator has either committed
	// before this insert (which then does nothing) or runs after it.
	if _, err := s.w.ExecContext(ctx, `INSERT INTO secrets (name, value, created_at) VALUES (?, ?, ?)
		ON CONFLICT (name) DO NOTHING`, name, create, time.Now().UnixMilli()); err != nil {
		return nil, fmt.Errorf("secret %s: create: %w", name, err)
	}
	if err := s.w.QueryRowContext(ctx, `SELECT value FROM secrets WHERE name = ?`, name).Scan(&v); err != nil {
		return nil, fmt.Errorf("secret %s: %w", name, err)
	}
	return v, nil
}

// Ping implements syncserver.Store: it reads from the file.
func (s *Store) Ping(ctx context.Context) error {
	var n int
	if err := s.r.QueryRowContext(ctx, `SELECT count(*) FROM schema_migrations`).Scan(&n); err != nil {
		return fmt.Errorf("sqlite: ping: %w", err)
	}
	return nil
}

// Close closes the database.
func (s *Store) Close() error {
	return errors.Join(s.r.Close(), s.w.Close())
}

// querier is a transaction or a database.
type querier interface {
	QueryRowContext(ctx context.Context, query string, args ...any) *sql.Row
	QueryContext(ctx context.Context, query string, args ...any) (*sql.Rows, error)
}

func zeroSeqs(clients []string) map[string]uint64 {
	seqs := make(map[string]uint64, len(clients))
	for _, c := range clients {
		seqs[c] = 0
	}
	return seqs
}

// loadRecord reads the cart and the seqs of clients. An expired cart is
// ErrCartExpired.
func loadRecord(ctx context.Context, q querier, cartID string, clients []string) (*syncserver.Record, error) {
	return loadRecordMemo(ctx, q, cartID, clients, nil)
}

// loadRecordMemo is loadRecord given the memo's cart, if any: while the
// row is at its version the state is not read, and the record shares
// memo's cart.
func loadRecordMemo(ctx context.Context, q querier, cartID string, clients []string, memo *cart.Cart) (*syncserver.Record, error) {
	var (
		state              []byte
		updated, abandoned sql.NullInt64
		expired            bool
		rec                = &syncserver.Record{Exists: true, Cart: new(cart.Cart)}
		memoVersion        = int64(-1)
	)
	if memo != nil && memo.Version <= math.MaxInt64 {
		memoVersion = int64(memo.Version)
	}
	err := q.QueryRowContext(ctx, `SELECT kind, CASE WHEN version = ? THEN NULL ELSE state END, merged_into, updated_at, abandoned_at,
			expired_at IS NOT NULL
		FROM carts WHERE id = ?`, memoVersion, cartID).
		Scan(&rec.Meta.Kind, &state, &rec.Meta.MergedInto, &updated, &abandoned, &expired)
	if errors.Is(err, sql.ErrNoRows) {
		return nil, syncserver.ErrCartNotFound
	}
	if err != nil {
		return nil, err
	}
	if expired {
		return nil, syncserver.ErrCartExpired
	}
	if updated.Valid {
		rec.Meta.UpdatedAt = time.UnixMilli(updated.Int64).UTC()
	}
	if abandoned.Valid {
		rec.Meta.AbandonedAt = time.UnixMilli(abandoned.Int64).UTC()
	}
	if state == nil {
		rec.Cart = memo // state is NOT NULL: the row is the memo's
	} else if err := json.Unmarshal(state, rec.Cart); err != nil {
		return nil, fmt.Errorf("decode cart: %w", err)
	}
	rec.Seqs = zeroSeqs(clients)
	if len(clients) == 0 {
		return rec, nil
	}
	list, err := json.Marshal(clients)
	if err != nil {
		return nil, err
	}
	rows, err := q.QueryContext(ctx, `SELECT client_id, last_seq FROM cart_clients
		WHERE cart_id = ? AND client_id IN (SELECT value FROM json_each(?))`, cartID, string(list))
	if err != nil {
		return nil, fmt.Errorf("load seqs: %w", err)
	}
	defer rows.Close()
	for rows.Next() {
		var client string
		var seq int64
		if err := rows.Scan(&client, &seq); err != nil {
			return nil, fmt.Errorf("load seqs: %w", err)
		}
		rec.Seqs[client] = uint64(seq)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("load seqs: %w", err)
	}
	return rec, nil
}

// allSeqs reads the seqs of every client the cart has one for.
func allSeqs(ctx context.Context, q querier, cartID string) (map[string]uint64, error) {
	rows, err := q.QueryContext(ctx, `SELECT client_id, last_seq FROM cart_clients WHERE cart_id = ?`, cartID)
	if err != nil {
		return nil, fmt.Errorf("load seqs: %w", err)
	}
	defer rows.Close()
	seqs := map[string]uint64{}
	for rows.Next() {
		var client string
		var seq int64
		if err := rows.Scan(&client, &seq); err != nil {
			return nil, fmt.Errorf("load seqs: %w", err)
		}
		seqs[client] = uint64(seq)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("load seqs: %w", err)
	}
	return seqs, nil
}

// writeRecord runs the statements of ws (syncserver.WriteSet) in tx: the
// cart and its meta, the seqs, the appended changes, the trim of the log,
// and the events.
func writeRecord(ctx context.Context, tx *sql.Tx, ws syncserver.WriteSet) error {
	now := time.Now().UnixMilli()
	if _, err := tx.ExecContext(ctx, `INSERT INTO carts (id, kind, version, state, merged_into, updated_at, abandoned_at, created_at)
		VALUES (?, ?, ?, ?, ?, ?, ?, ?)
		ON CONFLICT (id) DO UPDATE SET kind = excluded.kind, version = excluded.version, state = excluded.state,
			merged_into = excluded.merged_into, updated_at = excluded.updated_at, abandoned_at = excluded.abandoned_at`,
		ws.ID, ws.Kind, ws.Version, string(ws.State), ws.MergedInto, nullMillis(ws.UpdatedAt),
		nullMillis(ws.AbandonedAt), now); err != nil {
		return fmt.Errorf("write cart: %w", err)
	}
	for _, sw := range ws.Seqs {
		if _, err := tx.ExecContext(ctx, `INSERT INTO cart_clients (cart_id, client_id, last_seq, updated_at)
			VALUES (?, ?, ?, ?)
			ON CONFLICT (cart_id, client_id) DO UPDATE SET last_seq = excluded.last_seq, updated_at = excluded.updated_at`,
			ws.ID, sw.Client, sw.Seq, now); err != nil {
			return fmt.Errorf("write seq of %s: %w", sw.Client, err)
		}
	}
	for _, lw := range ws.Log {
		var warn any // NULL for none
		if lw.Warnings != nil {
			warn = string(lw.Warnings)
		}
		if _, err := tx.ExecContext(ctx, `INSERT INTO cart_log (cart_id, version, op, warnings, at) VALUES (?, ?, ?, ?, ?)`,
			ws.ID, lw.Version, string(lw.Op), warn, lw.At.UnixMilli()); err != nil {
			return fmt.Errorf("append change %d: %w", lw.Version, err)
		}
	}
	if ws.TrimThrough > 0 {
		if _, err := tx.ExecContext(ctx, `DELETE FROM cart_log WHERE cart_id = ? AND version <= ?`, ws.ID, ws.TrimThrough); err != nil {
			return fmt.Errorf("trim log: %w", err)
		}
	}
	return writeEvents(ctx, tx, ws.ID, ws.Events)
}

func nullMillis(t time.Time) any {
	if t.IsZero() {
		return nil
	}
	return t.UnixMilli()
}
