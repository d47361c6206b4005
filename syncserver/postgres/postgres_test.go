package postgres

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/url"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/cartsync/cartsync/shared/cart"
	"github.com/cartsync/cartsync/syncserver"
	"github.com/cartsync/cartsync/syncserver/storetest"
)

// schemaURL is the test's own Postgres schema (storetest.SchemaURL).
func schemaURL(t testing.TB) string { return storetest.SchemaURL(t) }

// withSearchPath sets search_path in a URL or a key=value connection string.
func withSearchPath(t testing.TB, conn, schema string) string {
	t.Helper()
	if !strings.Contains(conn, "://") {
		return conn + " search_path=" + schema
	}
	u, err := url.Parse(conn)
	if err != nil {
		t.Fatalf("parse %s: %v", storetest.EnvPostgresURL, err)
	}
	q := u.Query()
	q.Set("search_path", schema)
	u.RawQuery = q.Encode()
	return u.String()
}

func openStore(t testing.TB, url string) *Store {
	t.Helper()
	s, err := Open(t.Context(), url)
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	return s
}

func TestStore(t *testing.T) {
	storetest.PostgresURL(t) // skip or fail once, not in every subtest
	storetest.RunStore(t, func(t testing.TB) syncserver.Store {
		return openStore(t, schemaURL(t))
	})
}

// With group commit off each Mutate is a batch of its own: the same
// contract.
func TestStoreWithoutGroupCommit(t *testing.T) {
	storetest.PostgresURL(t)
	storetest.RunStore(t, func(t testing.TB) syncserver.Store {
		s, err := Open(t.Context(), schemaURL(t), WithGroupCommit(0))
		if err != nil {
			t.Fatalf("Open: %v", err)
		}
		return s
	})
}

func addFn(client string, seq uint64, sku string) func(*syncserver.Record) error {
	return func(rec *syncserver.Record) error {
		op := cart.Op{Client: client, Seq: seq, Kind: cart.KindAdd, SKU: sku, Quantity: 1}
		if _, cerr := rec.Cart.Apply(op, client, cart.DefaultLimits); cerr != nil {
			return cerr
		}
		rec.Seqs[client] = seq
		rec.Appended = append(rec.Appended, syncserver.Change{Version: rec.Cart.Version, Op: op, At: time.Now()})
		return nil
	}
}

// Every instance opening the same schema at once: the migrations run once,
// and all the stores work.
func TestConcurrentOpen(t *testing.T) {
	url := schemaURL(t)
	const n = 4
	stores := make([]*Store, n)
	errs := make([]error, n)
	var wg sync.WaitGroup
	for i := range n {
		wg.Go(func() { stores[i], errs[i] = Open(t.Context(), url) })
	}
	wg.Wait()
	for i := range n {
		if errs[i] != nil {
			t.Fatalf("Open %d: %v", i, errs[i])
		}
		defer stores[i].Close()
	}
	var migrated int
	if err := stores[0].pool.QueryRow(t.Context(), `SELECT count(*) FROM schema_migrations`).Scan(&migrated); err != nil {
		t.Fatal(err)
	}
	if names, _ := migrations.ReadDir("migrations"); migrated != len(names) {
		t.Errorf("schema_migrations has %d rows, want one per migration (%d)", migrated, len(names))
	}
	for i, s := range stores {
		if err := s.Mutate(t.Context(), "cart", []string{"c"}, addFn("c", uint64(i+1), "sku")); err != nil {
			t.Errorf("Mutate through store %d: %v", i, err)
		}
	}
	rec, err := stores[n-1].Load(t.Context(), "cart", []string{"c"})
	if err != nil || rec.Cart.Version != n || rec.Seqs["c"] != n {
		t.Errorf("Load = %+v, %v; want version and seq %d", rec, err, n)
	}
}

// A store reopened on its schema finds everything, and nothing leaks into
// another schema of the same database.
func TestReopenAndIsolation(t *testing.T) {
	urlA, urlB := schemaURL(t), schemaURL(t)
	a := openStore(t, urlA)
	if err := a.Mutate(t.Context(), "cart", []string{"c"}, addFn("c", 1, "sku")); err != nil {
		t.Fatalf("Mutate: %v", err)
	}
	secret, err := a.Secret(t.Context(), "key", []byte("a"))
	if err != nil {
		t.Fatalf("Secret: %v", err)
	}
	a.Close()

	a = openStore(t, urlA)
	defer a.Close()
	rec, err := a.Load(t.Context(), "cart", []string{"c"})
	if err != nil || rec.Cart.Items() != 1 || rec.Seqs["c"] != 1 {
		t.Errorf("Load after reopen = %+v, %v; want the cart with one item and seq 1", rec, err)
	}
	if got, err := a.Secret(t.Context(), "key", []byte("other")); err != nil || string(got) != string(secret) {
		t.Errorf("Secret after reopen = %q, %v; want %q", got, err, secret)
	}

	b := openStore(t, urlB)
	defer b.Close()
	if _, err := b.Load(t.Context(), "cart", nil); !errors.Is(err, syncserver.ErrCartNotFound) {
		t.Errorf("Load in another schema: error = %v, want ErrCartNotFound", err)
	}
}

// A schema made by the first migration is upgraded when opened: its carts
// survive and can be purged.
func TestMigrateFromFirstSchema(t *testing.T) {
	url := schemaURL(t)
	conn, err := pgx.Connect(t.Context(), url)
	if err != nil {
		t.Fatal(err)
	}
	first, err := migrations.ReadFile("migrations/0001_init.sql")
	if err != nil {
		t.Fatal(err)
	}
	for _, stmt := range []string{
		`CREATE TABLE schema_migrations (name text PRIMARY KEY, applied_at timestamptz NOT NULL DEFAULT now())`,
		string(first),
		`INSERT INTO schema_migrations (name) VALUES ('0001_init.sql')`,
		`INSERT INTO carts (id, kind, version, state, updated_at) VALUES
			('old', 'guest', 1, '{"id":"old","version":1,"lines":[{"key":"mug","sku":"mug","quantity":2,"details":{}}]}', '2024-01-02T03:04:05Z')`,
		`INSERT INTO cart_clients (cart_id, client_id, last_seq) VALUES ('old', 'c1', 1)`,
	} {
		if _, err := conn.Exec(t.Context(), stmt); err != nil {
			t.Fatalf("set up the first schema: %v", err)
		}
	}
	conn.Close(t.Context())

	s := openStore(t, url)
	defer s.Close()
	rows, _ := s.pool.Query(t.Context(), `SELECT name FROM schema_migrations ORDER BY name`)
	applied, err := pgx.CollectRows(rows, pgx.RowTo[string])
	if err != nil {
		t.Fatal(err)
	}
	var want []string
	entries, _ := migrations.ReadDir("migrations")
	for _, e := range entries {
		want = append(want, e.Name())
	}
	if !slices.Equal(applied, want) {
		t.Errorf("applied migrations %q, want %q", applied, want)
	}
	rec, err := s.Load(t.Context(), "old", []string{"c1"})
	if err != nil || rec.Cart.Items() != 2 || rec.Seqs["c1"] != 1 {
		t.Fatalf("Load after upgrade = %+v, %v; want the cart with 2 items and seq 1", rec, err)
	}
	ids, err := s.Purge(t.Context(), syncserver.KindGuest, time.Now(), time.Time{}, 10, false)
	if err != nil || !slices.Equal(ids, []string{"old"}) {
		t.Errorf("Purge after upgrade = %q, %v; want [old]", ids, err)
	}
	if _, err := s.Load(t.Context(), "old", nil); !errors.Is(err, syncserver.ErrCartExpired) {
		t.Errorf("Load after Purge = %v, want ErrCartExpired", err)
	}
}

// No pgx error escapes the package.
func TestErrorsTranslated(t *testing.T) {
	s := openStore(t, schemaURL(t))
	defer s.Close()
	_, err := s.Load(t.Context(), "missing", []string{"c"})
	if !errors.Is(err, syncserver.ErrCartNotFound) || errors.Is(err, pgx.ErrNoRows) {
		t.Errorf("Load(missing) error = %v; want ErrCartNotFound and not pgx.ErrNoRows", err)
	}
	if _, err := s.Secret(t.Context(), "none", nil); err == nil || errors.Is(err, pgx.ErrNoRows) {
		t.Errorf("Secret with nothing to create: error = %v; want an error of the package's own", err)
	}
}

func TestOpenErrors(t *testing.T) {
	base := storetest.PostgresURL(t)
	tests := []struct {
		name string
		url  string
	}{
		{"bad URL", "postgres://%zz"},
		{"search_path schema missing", withSearchPath(t, base, "no_such_schema_"+storetest.UniqueName(t))},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if s, err := Open(t.Context(), tt.url); err == nil {
				s.Close()
				t.Errorf("Open: got no error")
			}
		})
	}
}

// BenchmarkMutate measures the hot path: one acknowledged operation on an
// existing cart (lock, apply, write cart, seq and change, commit).
func BenchmarkMutate(b *testing.B) {
	s := openStore(b, schemaURL(b))
	defer s.Close()
	var seq uint64
	b.ResetTimer()
	for b.Loop() {
		seq++
		if err := s.Mutate(b.Context(), "bench", []string{"c"}, addFn("c", seq, fmt.Sprint("sku-", seq%3))); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkRawInsert is the floor BenchmarkMutate is compared with: one
// single-row INSERT, autocommitted.
func BenchmarkRawInsert(b *testing.B) {
	s := openStore(b, schemaURL(b))
	defer s.Close()
	var i int
	for b.Loop() {
		i++
		if _, err := s.pool.Exec(b.Context(), `INSERT INTO secrets (name, value) VALUES ($1, $2)`, fmt.Sprint("k", i), []byte("v")); err != nil {
			b.Fatal(err)
		}
	}
}

// twoInstances opens two stores on the test's schema, as two server
// instances on one database.
func twoInstances(t *testing.T) (a, b *Store) {
	t.Helper()
	url := schemaURL(t)
	a, b = openStore(t, url), openStore(t, url)
	t.Cleanup(func() { a.Close(); b.Close() })
	return a, b
}

// A batch takes a cart from its memo only while the row is the one it
// wrote: a write by another instance, even one that keeps the version
// (a login merge counting a new client), is seen by the next batch. A
// batch decided from the memo on a row that changed is decided again on
// the row (the stale count); one on an unchanged row commits in one round
// trip (the memo count).
func TestMemoSeesOtherInstancesWrites(t *testing.T) {
	a, b := twoInstances(t)
	ctx := t.Context()
	const id = "cart-memo"
	if err := a.Mutate(ctx, id, []string{"c1"}, addFn("c1", 1, "SKU-A")); err != nil {
		t.Fatal(err)
	}
	if err := b.Mutate(ctx, id, nil, func(rec *syncserver.Record) error {
		rec.Cart.Clients = 41 // a change without a new version
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	var saw int
	if err := a.Mutate(ctx, id, []string{"c1"}, func(rec *syncserver.Record) error {
		saw = rec.Cart.Clients
		return addFn("c1", 2, "SKU-B")(rec)
	}); err != nil {
		t.Fatal(err)
	}
	if saw != 41 {
		t.Errorf("second Mutate on the first instance saw Clients = %d, want the other instance's 41", saw)
	}
	if memo, stale := a.MemoCommitStats(); memo != 0 || stale != 1 {
		t.Errorf("after the other instance's write: %d batches from the memo, %d stale; want 0 and 1", memo, stale)
	}
	// And the memo serves a cart this instance wrote, unchanged.
	var lines int
	if err := a.Mutate(ctx, id, nil, func(rec *syncserver.Record) error {
		lines = len(rec.Cart.Lines)
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	if stamp, c := a.memo.Lookup(id); stamp == "" || c == nil || len(c.Lines) != 2 || lines != 2 {
		t.Errorf("memo entry %q with %v, Mutate saw %d lines; want the cart of 2 lines", stamp, c, lines)
	}
	if memo, stale := a.MemoCommitStats(); memo != 1 || stale != 1 {
		t.Errorf("after a Mutate on the cart this instance wrote: %d batches from the memo, %d stale; want 1 and 1", memo, stale)
	}
	rec, err := b.Load(ctx, id, []string{"c1"})
	if err != nil || rec.Cart.Version != 2 || rec.Seqs["c1"] != 2 || rec.Cart.Clients != 41 {
		t.Errorf("Load = %+v, %v; want version 2, c1 at seq 2, Clients 41", rec, err)
	}
}

// A cart another instance expired while this one holds it in memory: the
// batch decided from memory finds the row changed, and the Mutate fails
// with ErrCartExpired, writing nothing.
func TestMemoCartExpiredElsewhere(t *testing.T) {
	a, b := twoInstances(t)
	ctx := t.Context()
	const id = "g_memo-expired"
	old := time.Now().Add(-time.Hour)
	if err := a.Mutate(ctx, id, []string{"c1"}, func(rec *syncserver.Record) error {
		rec.Meta.Kind, rec.Meta.UpdatedAt = syncserver.KindGuest, old
		return addFn("c1", 1, "SKU-A")(rec)
	}); err != nil {
		t.Fatal(err)
	}
	if got, err := b.Purge(ctx, syncserver.KindGuest, time.Now(), time.Time{}, 10, false); err != nil || len(got) != 1 || got[0] != id {
		t.Fatalf("Purge on the other instance = %q, %v; want [%s]", got, err, id)
	}
	err := a.Mutate(ctx, id, []string{"c1"}, addFn("c1", 2, "SKU-B"))
	if !errors.Is(err, syncserver.ErrCartExpired) {
		t.Errorf("Mutate on the cart expired elsewhere = %v, want ErrCartExpired", err)
	}
	if memo, stale := a.MemoCommitStats(); memo != 0 || stale != 1 {
		t.Errorf("%d batches from the memo, %d stale; want 0 and 1", memo, stale)
	}
	if _, err := a.Load(ctx, id, nil); !errors.Is(err, syncserver.ErrCartExpired) {
		t.Errorf("Load after = %v, want ErrCartExpired", err)
	}
	if chs, err := b.Changes(ctx, id, 0, 10); err == nil || len(chs) != 0 {
		t.Errorf("Changes after = %d changes, %v; want none, ErrCartExpired", len(chs), err)
	}
}

// Two instances edit the same carts at once, many times: each batch one
// of them decides from memory finds the other's writes, and is decided
// again on the rows. Every Mutate that returned nil is in its cart exactly
// once, versions and each client's seqs have no gap, and both kinds of
// batch ran.
func TestMemoUnderTwoInstances(t *testing.T) {
	a, b := twoInstances(t)
	stores := []*Store{a, b}
	ctx := t.Context()
	const carts, workers, rounds = 4, 4, 30
	cartID := func(i int) string { return fmt.Sprintf("g_memo-both-%d", i) }
	// Worker w's cart in round i: five rounds on one, then the next.
	pick := func(w, i int) int { return (w + i/5) % carts }

	var wg sync.WaitGroup
	errs := make(chan error, len(stores)*workers)
	for s, st := range stores {
		for w := range workers {
			client := fmt.Sprintf("s%d-w%d", s, w)
			wg.Go(func() {
				for i := range rounds {
					err := st.Mutate(ctx, cartID(pick(w, i)), []string{client}, func(rec *syncserver.Record) error {
						rec.Meta.Kind = syncserver.KindGuest
						return addFn(client, rec.Seqs[client]+1, "X")(rec)
					})
					if err != nil {
						errs <- fmt.Errorf("%s, round %d: %w", client, i, err)
						return
					}
				}
			})
		}
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}

	total := 0
	for c := range carts {
		var clients []string
		want := map[string]uint64{}
		for s := range stores {
			for w := range workers {
				client := fmt.Sprintf("s%d-w%d", s, w)
				clients = append(clients, client)
				for i := range rounds {
					if pick(w, i) == c {
						want[client]++
					}
				}
			}
		}
		edits := 0
		for _, n := range want {
			edits += int(n)
		}
		total += edits
		rec, err := stores[0].Load(ctx, cartID(c), clients)
		if err != nil {
			t.Fatalf("Load(%s): %v", cartID(c), err)
		}
		if l := rec.Cart.Line("X"); rec.Cart.Version != uint64(edits) || l == nil || l.Quantity != edits {
			t.Errorf("%s: version %d, line %+v; want version and quantity %d", cartID(c), rec.Cart.Version, l, edits)
		}
		for _, client := range clients {
			if rec.Seqs[client] != want[client] {
				t.Errorf("%s: %s at seq %d, want %d", cartID(c), client, rec.Seqs[client], want[client])
			}
		}
		chs, err := stores[1].Changes(ctx, cartID(c), 0, 1000)
		if err != nil || len(chs) != edits {
			t.Errorf("%s: %d changes, %v; want %d (Changes checks they run on without a gap)", cartID(c), len(chs), err, edits)
		}
	}
	var memo, stale uint64
	for _, st := range stores {
		m, s := st.MemoCommitStats()
		memo, stale = memo+m, stale+s
	}
	t.Logf("%d edits: %d batches from the memo, %d stale", total, memo, stale)
	if memo == 0 || stale == 0 {
		t.Errorf("%d batches from the memo and %d stale: the test ran only one kind", memo, stale)
	}
}

// A database a newer version migrated further still opens, and the store
// names the migrations it does not know (the server logs them).
func TestOpenNamesNewerMigrations(t *testing.T) {
	url := schemaURL(t)
	s := openStore(t, url)
	if n := s.UnknownMigrations(); len(n) != 0 {
		t.Errorf("a fresh schema has unknown migrations %v", n)
	}
	if a := s.AppliedMigrations(); len(a) == 0 {
		t.Error("a fresh schema: AppliedMigrations names none")
	}
	if _, err := s.pool.Exec(t.Context(), `INSERT INTO schema_migrations (name) VALUES ('9999_from_the_future.sql')`); err != nil {
		t.Fatal(err)
	}
	s.Close()
	s = openStore(t, url)
	defer s.Close()
	if n := s.UnknownMigrations(); !slices.Equal(n, []string{"9999_from_the_future.sql"}) {
		t.Errorf("UnknownMigrations = %v, want the newer one", n)
	}
	if a := s.AppliedMigrations(); len(a) != 0 {
		t.Errorf("reopened: AppliedMigrations = %v, want none", a)
	}
}

// A migration that was taken out of the program again
// (retiredMigrations) is not one of a newer version: the server warned
// at every start that it should be upgraded, although it was the newest.
func TestOpenKnowsRetiredMigrations(t *testing.T) {
	url := schemaURL(t)
	s := openStore(t, url)
	if _, err := s.pool.Exec(t.Context(), `INSERT INTO schema_migrations (name) VALUES ('0006_lock_stamped.sql')`); err != nil {
		t.Fatal(err)
	}
	s.Close()
	s = openStore(t, url)
	defer s.Close()
	if n := s.UnknownMigrations(); len(n) != 0 {
		t.Errorf("UnknownMigrations = %v, want none", n)
	}
}

// Another tool's schema_migrations (golang-migrate's, say) in a schema
// later in search_path is not the store's: a fresh schema first in the
// path gets its own. (Looking the table up through the whole path found the
// other one, and the start failed on its columns.)
func TestOpenBesideAnotherToolsSchemaMigrations(t *testing.T) {
	other := schemaURL(t)
	otherName := currentSchema(t, other, `CREATE TABLE schema_migrations (version bigint PRIMARY KEY, dirty boolean NOT NULL)`)
	mineName := currentSchema(t, schemaURL(t))
	s, err := Open(t.Context(), withSearchPath(t, storetest.PostgresURL(t), mineName+","+otherName))
	if err != nil {
		t.Fatalf("Open on a fresh schema with another tool's schema_migrations later in search_path: %v", err)
	}
	defer s.Close()
	if len(s.AppliedMigrations()) == 0 {
		t.Error("the fresh schema was not migrated")
	}
}

// The store's tables in a schema later in search_path than another,
// existing, one (an owner migrated with another path, a $user schema made
// since) are found, as the queries find them: the store migrates nothing
// and makes no tables in the first schema (looking in the current schema
// only, it made a whole empty set there, and ran on it).
func TestOpenFindsItsTablesLaterInSearchPath(t *testing.T) {
	data := schemaURL(t)
	dataName := currentSchema(t, data)
	openStore(t, data).Close()
	emptyName := currentSchema(t, schemaURL(t))
	s, err := Open(t.Context(), withSearchPath(t, storetest.PostgresURL(t), emptyName+","+dataName))
	if err != nil {
		t.Fatalf("Open with the tables second in search_path: %v", err)
	}
	defer s.Close()
	var n int
	if err := s.pool.QueryRow(t.Context(), `SELECT count(*) FROM pg_tables WHERE schemaname = $1`, emptyName).Scan(&n); err != nil {
		t.Fatal(err)
	}
	if n != 0 || len(s.AppliedMigrations()) != 0 {
		t.Errorf("tables made in the first schema: %d, migrations applied %v; want none", n, s.AppliedMigrations())
	}
}

// A role that may read and write the tables but create nothing (the
// runtime role of a least-privilege set-up, migrations run by the owner)
// opens a database that needs no migration; it could not, as the store
// created schema_migrations "if not exists" at every start.
func TestOpenWithARoleThatCreatesNothing(t *testing.T) {
	dsn := schemaURL(t)
	openStore(t, dsn).Close() // migrated by the owner
	schema := storetest.UniqueName(t)
	role := pgx.Identifier{"dml_" + schema}.Sanitize()
	ident := pgx.Identifier{currentSchema(t, dsn)}.Sanitize()
	currentSchema(t, dsn,
		"CREATE ROLE "+role+" LOGIN",
		"GRANT USAGE ON SCHEMA "+ident+" TO "+role,
		"GRANT SELECT, INSERT, UPDATE, DELETE ON ALL TABLES IN SCHEMA "+ident+" TO "+role,
		"GRANT USAGE, SELECT ON ALL SEQUENCES IN SCHEMA "+ident+" TO "+role)
	t.Cleanup(func() {
		ctx := context.Background()
		owner, err := pgx.Connect(ctx, dsn)
		if err != nil {
			t.Error(err)
			return
		}
		defer owner.Close(ctx)
		for _, q := range []string{"DROP OWNED BY " + role, "DROP ROLE " + role} {
			if _, err := owner.Exec(ctx, q); err != nil {
				t.Errorf("%s: %v", q, err)
			}
		}
	})
	asRole := dsn + " user=dml_" + schema
	if u, err := url.Parse(dsn); err == nil && u.Scheme != "" {
		u.User = url.User("dml_" + schema)
		asRole = u.String()
	}
	s, err := Open(t.Context(), asRole)
	if err != nil {
		t.Fatalf("Open as a role that creates nothing: %v", err)
	}
	defer s.Close()
	if err := s.Mutate(t.Context(), "g_0123456789abcdef0123456789abcdef", nil, addFn("c", 1, "MUG")); err != nil {
		t.Errorf("an edit as that role: %v", err)
	}
}

// currentSchema runs stmts on a connection to dsn, then returns the
// connection's current schema.
func currentSchema(t testing.TB, dsn string, stmts ...string) string {
	t.Helper()
	conn, err := pgx.Connect(t.Context(), dsn)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(context.Background())
	for _, q := range stmts {
		if _, err := conn.Exec(t.Context(), q); err != nil {
			t.Fatalf("%s: %v", q, err)
		}
	}
	var name string
	if err := conn.QueryRow(t.Context(), `SELECT current_schema()`).Scan(&name); err != nil {
		t.Fatal(err)
	}
	return name
}

// A Postgres that takes the connection and never answers fails Open within
// the connect timeout instead of hanging it, when the URL sets none.
func TestOpenGivesUpOnASilentServer(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			defer c.Close() // held open, never answered
		}
	}()
	defer func(d time.Duration) { defaultConnectTimeout = d }(defaultConnectTimeout)
	defaultConnectTimeout = 300 * time.Millisecond
	done := make(chan error, 1)
	go func() {
		_, err := Open(context.Background(), "postgres://nobody@"+ln.Addr().String()+"/none")
		done <- err
	}()
	select {
	case err := <-done:
		if err == nil {
			t.Fatal("Open succeeded against a server that never answers")
		}
	case <-time.After(20 * time.Second):
		t.Fatal("Open hangs on a server that never answers")
	}
}
