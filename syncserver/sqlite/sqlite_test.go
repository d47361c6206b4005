package sqlite

import (
	"context"
	"database/sql"
	"errors"
	"path/filepath"
	"slices"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/cartsync/cartsync/shared/cart"
	"github.com/cartsync/cartsync/syncserver"
	"github.com/cartsync/cartsync/syncserver/storetest"
)

func openTemp(t testing.TB, path string) *Store {
	t.Helper()
	s, err := Open(t.Context(), path)
	if err != nil {
		t.Fatalf("Open(%s): %v", path, err)
	}
	return s
}

func TestStore(t *testing.T) {
	storetest.RunStore(t, func(t testing.TB) syncserver.Store {
		return openTemp(t, filepath.Join(t.TempDir(), "carts.db"))
	})
}

// With group commit off each Mutate is a batch of its own: the same
// contract.
func TestStoreWithoutGroupCommit(t *testing.T) {
	storetest.RunStore(t, func(t testing.TB) syncserver.Store {
		s, err := Open(t.Context(), filepath.Join(t.TempDir(), "carts.db"), WithGroupCommit(false))
		if err != nil {
			t.Fatal(err)
		}
		return s
	})
}

func TestReopenKeepsEverything(t *testing.T) {
	path := filepath.Join(t.TempDir(), "nested", "dir", "carts.db")
	at := time.Date(2025, 6, 1, 12, 0, 0, 123_000_000, time.UTC)
	op := cart.Op{Client: "c1", Seq: 1, Kind: cart.KindAdd, SKU: "mug", Quantity: 2}

	s := openTemp(t, path)
	var want *cart.Cart
	err := s.Mutate(t.Context(), "cart-1", []string{"c1"}, func(rec *syncserver.Record) error {
		if _, cerr := rec.Cart.Apply(op, "c1", cart.DefaultLimits); cerr != nil {
			return cerr
		}
		rec.Seqs["c1"] = 1
		rec.Meta = syncserver.Meta{Kind: syncserver.KindUser, UpdatedAt: at, MergedInto: "x"}
		rec.Appended = append(rec.Appended, syncserver.Change{Version: 1, Op: op, At: at})
		want = rec.Cart.Clone()
		return nil
	})
	if err != nil {
		t.Fatalf("Mutate: %v", err)
	}
	secret, err := s.Secret(t.Context(), "key", []byte("k1"))
	if err != nil {
		t.Fatalf("Secret: %v", err)
	}
	if err := s.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}

	s = openTemp(t, path)
	defer s.Close()
	rec, err := s.Load(t.Context(), "cart-1", []string{"c1"})
	if err != nil {
		t.Fatalf("Load after reopen: %v", err)
	}
	if l, wl := rec.Cart.Line("mug"), want.Line("mug"); l == nil || l.Quantity != 2 || len(l.Contribs) != len(wl.Contribs) || rec.Cart.Version != 1 {
		t.Errorf("cart after reopen = %+v, want %+v", rec.Cart, want)
	}
	if got := rec.Meta; got.Kind != syncserver.KindUser || !got.UpdatedAt.Equal(at) || got.MergedInto != "x" {
		t.Errorf("meta after reopen = %+v", got)
	}
	if rec.Seqs["c1"] != 1 {
		t.Errorf("seq after reopen = %d, want 1", rec.Seqs["c1"])
	}
	chs, err := s.Changes(t.Context(), "cart-1", 0, 10)
	if err != nil || len(chs) != 1 || chs[0].Op.SKU != "mug" || !chs[0].At.Equal(at) {
		t.Errorf("Changes after reopen = %+v, %v; want the one change", chs, err)
	}
	if got, err := s.Secret(t.Context(), "key", []byte("k2")); err != nil || string(got) != string(secret) {
		t.Errorf("Secret after reopen = %q, %v; want %q", got, err, secret)
	}
	var migrated int
	if err := s.r.QueryRowContext(t.Context(), `SELECT count(*) FROM schema_migrations`).Scan(&migrated); err != nil {
		t.Fatal(err)
	}
	if names, _ := migrations.ReadDir("migrations"); migrated != len(names) {
		t.Errorf("schema_migrations has %d rows, want one per migration (%d)", migrated, len(names))
	}
}

// A file made by the first schema is upgraded when opened: its carts
// survive and can be purged.
func TestMigrateFromFirstSchema(t *testing.T) {
	path := filepath.Join(t.TempDir(), "carts.db")
	db, err := sql.Open("sqlite", path)
	if err != nil {
		t.Fatal(err)
	}
	first, err := migrations.ReadFile("migrations/0001_init.sql")
	if err != nil {
		t.Fatal(err)
	}
	old := time.Date(2024, 1, 2, 3, 4, 5, 0, time.UTC).UnixMilli()
	for _, stmt := range []string{
		`CREATE TABLE schema_migrations (name TEXT PRIMARY KEY, applied_at INTEGER NOT NULL) WITHOUT ROWID`,
		string(first),
		`INSERT INTO schema_migrations (name, applied_at) VALUES ('0001_init.sql', 0)`,
		`INSERT INTO carts (id, kind, version, state, merged_into, updated_at, created_at) VALUES
			('old', 'guest', 1, '{"id":"old","version":1,"lines":[{"key":"mug","sku":"mug","quantity":2,"details":{}}]}', '', ` + strconv.FormatInt(old, 10) + `, 0)`,
		`INSERT INTO cart_clients (cart_id, client_id, last_seq, updated_at) VALUES ('old', 'c1', 1, 0)`,
	} {
		if _, err := db.ExecContext(t.Context(), stmt); err != nil {
			t.Fatalf("set up the first schema: %v", err)
		}
	}
	if err := db.Close(); err != nil {
		t.Fatal(err)
	}

	s := openTemp(t, path)
	defer s.Close()
	var applied []string
	rows, err := s.r.QueryContext(t.Context(), `SELECT name FROM schema_migrations ORDER BY name`)
	if err != nil {
		t.Fatal(err)
	}
	for rows.Next() {
		var name string
		if err := rows.Scan(&name); err != nil {
			t.Fatal(err)
		}
		applied = append(applied, name)
	}
	rows.Close()
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

// The settings that make an acknowledgement durable are in force.
func TestPragmas(t *testing.T) {
	s := openTemp(t, filepath.Join(t.TempDir(), "carts.db"))
	defer s.Close()
	tests := []struct {
		pragma string
		want   string
	}{
		{"journal_mode", "wal"},
		{"synchronous", "2"}, // FULL
		{"foreign_keys", "1"},
		{"busy_timeout", "5000"},
	}
	for _, tt := range tests {
		var got string
		if err := s.w.QueryRowContext(t.Context(), "PRAGMA "+tt.pragma).Scan(&got); err != nil {
			t.Fatalf("PRAGMA %s: %v", tt.pragma, err)
		}
		if got != tt.want {
			t.Errorf("PRAGMA %s = %s, want %s", tt.pragma, got, tt.want)
		}
	}
	if _, err := s.r.ExecContext(t.Context(), `DELETE FROM secrets`); err == nil {
		t.Error("a write through a read connection succeeded, want it refused")
	}
}

// Several processes opening a new file at once migrate it once.
func TestConcurrentOpen(t *testing.T) {
	path := filepath.Join(t.TempDir(), "carts.db")
	const n = 4
	stores := make([]*Store, n)
	errs := make([]error, n)
	var wg sync.WaitGroup
	for i := range n {
		wg.Go(func() { stores[i], errs[i] = Open(context.Background(), path) })
	}
	wg.Wait()
	for i := range n {
		if errs[i] != nil {
			t.Errorf("Open %d: %v", i, errs[i])
			continue
		}
		defer stores[i].Close()
	}
	if t.Failed() {
		return
	}
	if err := stores[0].Mutate(t.Context(), "c", nil, func(*syncserver.Record) error { return nil }); err != nil {
		t.Fatalf("Mutate: %v", err)
	}
	if _, err := stores[n-1].Load(t.Context(), "c", nil); err != nil {
		t.Errorf("Load through another handle: %v", err)
	}
}

func TestOpenErrors(t *testing.T) {
	for _, path := range []string{"", ":memory:", "file:x.db", "x.db?mode=ro"} {
		if s, err := Open(t.Context(), path); err == nil {
			s.Close()
			t.Errorf("Open(%q): got no error", path)
		}
	}
	s, err := Open(t.Context(), filepath.Join(t.TempDir(), "x.db"), WithReaders(0), WithBusyTimeout(time.Second))
	if err != nil {
		t.Fatalf("Open with WithReaders(0): %v", err)
	}
	s.Close()
	ctx, cancel := context.WithCancel(t.Context())
	cancel()
	if s, err := Open(ctx, filepath.Join(t.TempDir(), "x.db")); !errors.Is(err, context.Canceled) {
		if err == nil {
			s.Close()
		}
		t.Errorf("Open with a canceled context: error = %v, want context.Canceled", err)
	}
}

// BenchmarkMutate measures the hot path: one acknowledged operation on an
// existing cart, durable on return.
func BenchmarkMutate(b *testing.B) {
	s := openTemp(b, filepath.Join(b.TempDir(), "carts.db"))
	defer s.Close()
	var seq uint64
	for b.Loop() {
		seq++
		err := s.Mutate(b.Context(), "bench", []string{"c"}, func(rec *syncserver.Record) error {
			op := cart.Op{Client: "c", Seq: seq, Kind: cart.KindAdd, SKU: "sku-" + strconv.Itoa(int(seq%3)), Quantity: 1}
			if _, cerr := rec.Cart.Apply(op, "c", cart.DefaultLimits); cerr != nil {
				return cerr
			}
			rec.Seqs["c"] = seq
			rec.Appended = append(rec.Appended, syncserver.Change{Version: rec.Cart.Version, Op: op, At: time.Now()})
			return nil
		})
		if err != nil {
			b.Fatal(err)
		}
	}
}

// A batch takes a cart from its memo only while no other write changed
// the row: a Merge that keeps the version (counting a new client) is seen
// by the next batch.
func TestMemoForgetsOtherWrites(t *testing.T) {
	s := openTemp(t, filepath.Join(t.TempDir(), "memo.db"))
	t.Cleanup(func() { s.Close() })
	ctx := t.Context()
	add := func(client string, seq uint64, sku string) func(*syncserver.Record) error {
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
	for _, id := range []string{"guest", "user"} {
		if err := s.Mutate(ctx, id, []string{"c1"}, add("c1", 1, "SKU-"+id)); err != nil {
			t.Fatal(err)
		}
	}
	if _, c := s.memo.Lookup("user"); c == nil {
		t.Fatal("a batch's cart is not in the memo")
	}
	if err := s.Merge(ctx, "guest", "user", func(from, into *syncserver.Record) error {
		into.Cart.Clients = 41 // a change without a new version
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	var saw int
	if err := s.Mutate(ctx, "user", []string{"c1"}, func(rec *syncserver.Record) error {
		saw = rec.Cart.Clients
		return add("c1", 2, "SKU-B")(rec)
	}); err != nil {
		t.Fatal(err)
	}
	if saw != 41 {
		t.Errorf("Mutate after the Merge saw Clients = %d, want 41", saw)
	}
}

// Another process writing the file (here a second Store on it) clears
// the memo: its write is seen even when it keeps the version.
func TestMemoSeesOtherProcessesWrites(t *testing.T) {
	path := filepath.Join(t.TempDir(), "shared.db")
	a, b := openTemp(t, path), openTemp(t, path)
	t.Cleanup(func() { a.Close(); b.Close() })
	ctx := t.Context()
	if err := a.Mutate(ctx, "cart", nil, func(rec *syncserver.Record) error {
		rec.Cart.Version++
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	if err := b.Mutate(ctx, "cart", nil, func(rec *syncserver.Record) error {
		rec.Cart.Clients = 41 // a change without a new version
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	var saw int
	if err := a.Mutate(ctx, "cart", nil, func(rec *syncserver.Record) error {
		saw = rec.Cart.Clients
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	if saw != 41 {
		t.Errorf("the first store saw Clients = %d after the second wrote 41", saw)
	}
}

// A file a newer version migrated further still opens, and the store names
// the migrations it does not know (the server logs them); the migrations
// applied at open are named too.
func TestOpenNamesMigrations(t *testing.T) {
	path := filepath.Join(t.TempDir(), "carts.db")
	s := openTemp(t, path)
	if n, a := s.UnknownMigrations(), s.AppliedMigrations(); len(n) != 0 || len(a) == 0 {
		t.Errorf("a new file: unknown %v, applied %v; want none unknown and some applied", n, a)
	}
	if _, err := s.w.ExecContext(t.Context(), `INSERT INTO schema_migrations (name, applied_at) VALUES ('9999_from_the_future.sql', 0)`); err != nil {
		t.Fatal(err)
	}
	s.Close()
	s = openTemp(t, path)
	defer s.Close()
	if n, a := s.UnknownMigrations(), s.AppliedMigrations(); !slices.Equal(n, []string{"9999_from_the_future.sql"}) || len(a) != 0 {
		t.Errorf("reopened: unknown %v, applied %v; want the newer one, none applied", n, a)
	}
}
