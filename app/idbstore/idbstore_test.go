//go:build js && wasm

package idbstore

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"sync"
	"sync/atomic"
	"syscall/js"
	"testing"
	"time"

	"github.com/hack-pad/go-indexeddb/idb"

	"github.com/cartsync/cartsync/shared/cart"
	"github.com/cartsync/cartsync/shared/protocol"
	"github.com/cartsync/cartsync/shared/syncclient"
	"github.com/cartsync/cartsync/shared/syncclient/storagetest"
)

// testCtx bounds a test, so that a transaction that never finishes fails
// the test instead of hanging the browser.
func testCtx(t testing.TB) context.Context {
	ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
	t.Cleanup(cancel)
	return ctx
}

var dbCount atomic.Int64

// tempDB returns the name of a database no other test uses, deleted at the
// end of the test (after the stores opened later are closed).
func tempDB(t testing.TB) string {
	t.Helper()
	name := fmt.Sprintf("idbstore-test-%d", dbCount.Add(1))
	t.Cleanup(func() {
		if err := Delete(context.Background(), name); err != nil {
			t.Errorf("Delete(%s): %v", name, err)
		}
	})
	return name
}

// openStore opens name and closes it at the end of the test.
func openStore(t testing.TB, name string) *Store {
	t.Helper()
	s, err := Open(testCtx(t), name)
	if err != nil {
		t.Fatalf("Open(%s): %v", name, err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

func clearOp(client string) func(uint64) cart.Op {
	return func(seq uint64) cart.Op { return cart.Op{Client: client, Seq: seq, Kind: cart.KindClear} }
}

func mustEnqueue(t testing.TB, s *Store, client string) cart.Op {
	t.Helper()
	op, err := s.Enqueue(testCtx(t), client, clearOp(client))
	if err != nil {
		t.Fatalf("Enqueue(%s): %v", client, err)
	}
	return op
}

func mustLoad(t testing.TB, s *Store) syncclient.Stored {
	t.Helper()
	st, err := s.Load(testCtx(t))
	if err != nil {
		t.Fatalf("Load: %v", err)
	}
	return st
}

func ids(ops []cart.Op) string {
	out := ""
	for _, op := range ops {
		out += fmt.Sprintf("%s/%d ", op.Client, op.Seq)
	}
	return out
}

func TestContract(t *testing.T) {
	storagetest.TestStorage(t, func() syncclient.Storage {
		return openStore(t, tempDB(t))
	})
}

func TestReopenKeepsEverything(t *testing.T) {
	ctx := testCtx(t)
	name := tempDB(t)
	s := openStore(t, name)
	if _, err := s.SwapDeviceToken(ctx, "", "tok-1"); err != nil {
		t.Fatalf("SwapDeviceToken: %v", err)
	}
	for _, c := range []string{"a", "a", "b"} {
		mustEnqueue(t, s, c)
	}
	confirmed := &cart.Cart{ID: "c1", Version: 2, Lines: []*cart.Line{{Key: "sku-1", SKU: "sku-1", Quantity: 3}}}
	if err := s.Confirm(ctx, confirmed, []protocol.OpID{{Client: "a", Seq: 1}}); err != nil {
		t.Fatalf("Confirm: %v", err)
	}
	if err := s.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
	if _, err := s.Load(ctx); !errors.Is(err, ErrClosed) {
		t.Errorf("Load after Close: err = %v, want ErrClosed", err)
	}

	s = openStore(t, name)
	st := mustLoad(t, s)
	if st.DeviceToken != "tok-1" {
		t.Errorf("DeviceToken = %q, want tok-1", st.DeviceToken)
	}
	if st.Cart == nil || st.Cart.ID != "c1" || st.Cart.Version != 2 || len(st.Cart.Lines) != 1 || st.Cart.Lines[0].Quantity != 3 {
		t.Errorf("Cart = %+v, want c1@2 with 3 of sku-1", st.Cart)
	}
	if got, want := ids(st.Pending), "a/2 b/1 "; got != want {
		t.Errorf("Pending = %q, want %q", got, want)
	}
	if op := mustEnqueue(t, s, "a"); op.Seq != 3 {
		t.Errorf("seq after reopening = %d, want 3", op.Seq)
	}
}

// TestTwoTabs enqueues concurrently through two connections to one
// database, as two tabs do, for a shared client id and one of each.
func TestTwoTabs(t *testing.T) {
	name := tempDB(t)
	tabs := []*Store{openStore(t, name), openStore(t, name)}
	const each = 20
	var (
		wg   sync.WaitGroup
		mu   sync.Mutex
		seqs = map[string][]uint64{} // returned by Enqueue, per client
	)
	for i, s := range tabs {
		for _, client := range []string{"shared", "shared", fmt.Sprintf("tab%d", i)} {
			wg.Go(func() {
				for range each {
					op, err := s.Enqueue(testCtx(t), client, clearOp(client))
					if err != nil {
						t.Errorf("Enqueue(%s): %v", client, err)
						return
					}
					mu.Lock()
					seqs[client] = append(seqs[client], op.Seq)
					mu.Unlock()
				}
			})
		}
	}
	wg.Wait()

	want := map[string]int{"shared": 4 * each, "tab0": each, "tab1": each}
	for client, n := range want {
		got := slices.Sorted(slices.Values(seqs[client]))
		for i, seq := range got {
			if seq != uint64(i+1) {
				t.Fatalf("%s: Enqueue returned seqs %v, want 1..%d once each", client, got, n)
			}
		}
		if len(got) != n {
			t.Errorf("%s: %d seqs returned, want %d", client, len(got), n)
		}
	}
	for i, s := range tabs {
		next := map[string]uint64{}
		for _, op := range mustLoad(t, s).Pending {
			next[op.Client]++
			if op.Seq != next[op.Client] {
				t.Fatalf("tab %d: Pending has %s/%d after %s/%d, want seqs in order without gaps", i, op.Client, op.Seq, op.Client, next[op.Client]-1)
			}
		}
		for client, n := range want {
			if next[client] != uint64(n) {
				t.Errorf("tab %d: %d pending ops of %s, want %d", i, next[client], client, n)
			}
		}
	}
}

func TestBadOp(t *testing.T) {
	tests := []struct {
		name  string
		build func(seq uint64) cart.Op
	}{
		{"next seq", func(seq uint64) cart.Op { return cart.Op{Client: "a", Seq: seq + 1, Kind: cart.KindClear} }},
		{"zero seq", func(uint64) cart.Op { return cart.Op{Client: "a", Kind: cart.KindClear} }},
		{"other client", func(seq uint64) cart.Op { return cart.Op{Client: "b", Seq: seq, Kind: cart.KindClear} }},
		{"no client", func(seq uint64) cart.Op { return cart.Op{Seq: seq, Kind: cart.KindClear} }},
	}
	name := tempDB(t)
	s := openStore(t, name)
	mustEnqueue(t, s, "a")
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			op, err := s.Enqueue(testCtx(t), "a", tt.build)
			if !errors.Is(err, syncclient.ErrBadOp) {
				t.Errorf("Enqueue = %+v, %v; want ErrBadOp", op, err)
			}
		})
	}
	// Another connection sees neither an op nor a counter moved.
	other := openStore(t, name)
	if got, want := ids(mustLoad(t, other).Pending), "a/1 "; got != want {
		t.Errorf("Pending = %q, want %q", got, want)
	}
	if op := mustEnqueue(t, other, "a"); op.Seq != 2 {
		t.Errorf("seq after the refused ops = %d, want 2", op.Seq)
	}
}

// TestConfirmAtomic confirms cart versions one at a time, each with the op
// it acknowledges, while another connection loads: every load sees the cart
// and the outbox of the same Confirm.
func TestConfirmAtomic(t *testing.T) {
	const n = 25
	name := tempDB(t)
	writer, reader := openStore(t, name), openStore(t, name)
	for range n {
		mustEnqueue(t, writer, "a")
	}
	var wg sync.WaitGroup
	wg.Go(func() {
		for v := uint64(1); v <= n; v++ {
			c := &cart.Cart{ID: "c1", Version: v}
			if err := writer.Confirm(testCtx(t), c, []protocol.OpID{{Client: "a", Seq: v}}); err != nil {
				t.Errorf("Confirm(v%d): %v", v, err)
				return
			}
		}
	})
	seen := map[uint64]bool{}
	for !seen[n] && !t.Failed() {
		st := mustLoad(t, reader)
		var v uint64
		if st.Cart != nil {
			v = st.Cart.Version
		}
		seen[v] = true
		want := ""
		for seq := v + 1; seq <= n; seq++ {
			want += fmt.Sprintf("a/%d ", seq)
		}
		if got := ids(st.Pending); got != want {
			t.Errorf("with the cart at v%d, Pending = %q, want %q", v, got, want)
		}
	}
	wg.Wait()
	t.Logf("the reader saw %d of %d states", len(seen), n+1)
}

// TestReconnect closes the connection under the Store, as WebKit does when
// it drops it: transaction() then throws InvalidStateError, and each method
// reopens the database and runs again.
func TestReconnect(t *testing.T) {
	ctx := testCtx(t)
	s := openStore(t, tempDB(t))
	mustEnqueue(t, s, "a")
	steps := []struct {
		name string
		run  func() error
	}{
		{"Load", func() error {
			st, err := s.Load(ctx)
			if err == nil && ids(st.Pending) != "a/1 " {
				err = fmt.Errorf("Pending = %q, want a/1", ids(st.Pending))
			}
			return err
		}},
		{"Enqueue", func() error {
			op, err := s.Enqueue(ctx, "a", clearOp("a"))
			if err == nil && op.Seq != 2 {
				err = fmt.Errorf("seq = %d, want 2", op.Seq)
			}
			return err
		}},
		{"SwapDeviceToken", func() error {
			got, err := s.SwapDeviceToken(ctx, "", "tok")
			if err == nil && got != "tok" {
				err = fmt.Errorf("token = %q, want tok", got)
			}
			return err
		}},
		{"Confirm", func() error {
			return s.Confirm(ctx, &cart.Cart{ID: "c1", Version: 1}, []protocol.OpID{{Client: "a", Seq: 1}})
		}},
	}
	for _, step := range steps {
		t.Run(step.name, func(t *testing.T) {
			s.mu.Lock()
			lost := s.db
			s.mu.Unlock()
			if err := lost.Close(); err != nil {
				t.Fatalf("closing the connection: %v", err)
			}
			if err := step.run(); err != nil {
				t.Fatalf("%s after the connection closed: %v", step.name, err)
			}
			s.mu.Lock()
			reopened := s.db != lost
			s.mu.Unlock()
			if !reopened {
				t.Errorf("%s did not reopen the database", step.name)
			}
		})
	}
	st := mustLoad(t, s)
	if st.DeviceToken != "tok" || st.Cart == nil || st.Cart.ID != "c1" || ids(st.Pending) != "a/2 " {
		t.Errorf("stored %q, %+v, %q; want tok, c1, a/2", st.DeviceToken, st.Cart, ids(st.Pending))
	}
}

func TestConnectionLost(t *testing.T) {
	unknown := idb.NewDOMException("UnknownError")
	invalid := idb.NewDOMException("InvalidStateError")
	thrown := func(name string) error { // as idb returns what a call threw
		return fmt.Errorf("call: %w", js.Error{Value: js.Global().Get("DOMException").New("message", name)})
	}
	tests := []struct {
		name string
		err  error
		want bool
	}{
		{"nil", nil, false},
		{"other", errors.New("other"), false},
		{"bad op", fmt.Errorf("enqueue: %w", syncclient.ErrBadOp), false},
		{"server lost", fmt.Errorf("load: %w", unknown), true},
		{"server lost after writes", fmt.Errorf("enqueue: %w", maybeWritten{unknown}), false},
		{"closing at begin", fmt.Errorf("load: %w", notStarted{invalid}), true},
		{"closing at begin, wrapped later", maybeWritten{notStarted{invalid}}, false},
		{"invalid state inside", fmt.Errorf("load: %w", invalid), false},
		{"other at begin", notStarted{idb.NewDOMException("NotFoundError")}, false},
		{"thrown closing at begin", notStarted{thrown("InvalidStateError")}, true},
		{"thrown other at begin", notStarted{thrown("NotFoundError")}, false},
		{"thrown server lost", thrown("UnknownError"), true},
		{"thrown non-object", js.Error{Value: js.ValueOf("UnknownError")}, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := connectionLost(tt.err); got != tt.want {
				t.Errorf("connectionLost(%v) = %v, want %v", tt.err, got, tt.want)
			}
		})
	}
}

// TestUnavailable hides indexedDB, as some private modes do.
func TestUnavailable(t *testing.T) {
	global := js.Global()
	object := global.Get("Object")
	desc := object.Call("getOwnPropertyDescriptor", global, "indexedDB")
	hidden := object.New()
	hidden.Set("value", js.Undefined())
	hidden.Set("configurable", true)
	object.Call("defineProperty", global, "indexedDB", hidden)
	t.Cleanup(func() {
		if desc.Type() == js.TypeUndefined {
			js.Global().Get("Reflect").Call("deleteProperty", global, "indexedDB")
		} else {
			object.Call("defineProperty", global, "indexedDB", desc)
		}
		if !global.Get("indexedDB").Truthy() {
			t.Fatal("indexedDB not restored")
		}
	})

	s, err := Open(testCtx(t), "idbstore-unavailable")
	if !errors.Is(err, ErrUnavailable) {
		t.Errorf("Open without indexedDB = %v, %v; want ErrUnavailable", s, err)
	}
	if err := Delete(testCtx(t), "idbstore-unavailable"); !errors.Is(err, ErrUnavailable) {
		t.Errorf("Delete without indexedDB: err = %v, want ErrUnavailable", err)
	}
}

func TestRequestPersistence(t *testing.T) {
	persisted, err := RequestPersistence(testCtx(t))
	if err != nil {
		t.Fatalf("RequestPersistence: %v", err)
	}
	t.Logf("persisted: %v", persisted)
}

// TestOutboxOrder: an op comes after every op its tab had read, across the
// tabs sharing the database, so a tab's clear made after it showed another
// tab's add reaches the server after that add, whatever their client ids;
// an op stored before ops had an order comes first.
func TestOutboxOrder(t *testing.T) {
	name := tempDB(t)
	tab1, tab2 := openStore(t, name), openStore(t, name)
	mustEnqueue(t, tab1, "b")
	mustLoad(t, tab2) // tab2 shows b/1
	mustEnqueue(t, tab2, "a")
	mustLoad(t, tab1) // tab1 shows a/1
	mustEnqueue(t, tab1, "b")
	if got, want := ids(mustLoad(t, tab2).Pending), "b/1 a/1 b/2 "; got != want {
		t.Fatalf("Pending = %q, want %q", got, want)
	}
	// A new tab reads the outbox before it edits, as the engine does.
	tab3 := openStore(t, name)
	mustLoad(t, tab3)
	mustEnqueue(t, tab3, "a-new")
	if got, want := ids(mustLoad(t, tab3).Pending), "b/1 a/1 b/2 a-new/1 "; got != want {
		t.Fatalf("after a new tab's edit, Pending = %q, want %q", got, want)
	}
	// An op of an earlier release: no order in its JSON.
	old, err := json.Marshal(cart.Op{Client: "z", Seq: 1, Kind: cart.KindClear})
	if err != nil {
		t.Fatal(err)
	}
	err = tab1.run(testCtx(t), func(db *idb.Database) error {
		txn, st, err := begin(db, idb.TransactionReadWrite, storeOps)
		if err != nil {
			return err
		}
		if _, err := st[0].PutKey(opKey("z", 1), js.ValueOf(string(old))); err != nil {
			abort(txn)
			return err
		}
		return commit(testCtx(t), txn)
	})
	if err != nil {
		t.Fatal(err)
	}
	if got, want := ids(mustLoad(t, tab1).Pending), "z/1 b/1 a/1 b/2 a-new/1 "; got != want {
		t.Errorf("with an op stored without an order, Pending = %q, want %q", got, want)
	}
}
