// Package storagetest is the contract suite every syncclient.Storage passes.
// It is a package of its own so that the testing package is not linked into
// the widget.
package storagetest

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"testing"

	"github.com/cartsync/cartsync/shared/cart"
	"github.com/cartsync/cartsync/shared/protocol"
	"github.com/cartsync/cartsync/shared/syncclient"
)

// TestStorage is the contract every Storage passes. open must return a new,
// empty Storage each time it is called.
func TestStorage(t *testing.T, open func() syncclient.Storage) {
	tests := []struct {
		name string
		run  func(t *testing.T, open func() syncclient.Storage)
	}{
		{"Empty", testEmpty},
		{"DeviceToken", testDeviceToken},
		{"OutboxInEnqueueOrder", testOutboxInEnqueueOrder},
		{"StoredOpIsTheBuiltOne", testStoredOpIsTheBuiltOne},
		{"SeqsNeverReused", testSeqsNeverReused},
		{"BadOpStoresNothing", testBadOpStoresNothing},
		{"ConfirmRemovesListed", testConfirmRemovesListed},
		{"RestampMovesOnlyThatCartsOps", testRestampMovesOnlyThatCartsOps},
		{"ReissueKeepsThePlaces", testReissueKeepsThePlaces},
		{"ReissueOfNoGap", testReissueOfNoGap},
		{"ConfirmKeepsNewerCart", testConfirmKeepsNewerCart},
		{"CartRoundTrip", testCartRoundTrip},
		{"ConfirmKeepsNoticesAndTotals", testConfirmKeepsNoticesAndTotals},
		{"LoadReturnsCopies", testLoadReturnsCopies},
		{"ConcurrentEnqueue", testConcurrentEnqueue},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) { tt.run(t, open) })
	}
}

// ctx is the context of every call in the suite.
var ctx = context.Background()

// mkop builds an op of kind on sku for client, at the seq it is given.
func mkop(client string, kind cart.Kind, sku string) func(uint64) cart.Op {
	return func(seq uint64) cart.Op {
		op := cart.Op{Client: client, Seq: seq, Kind: kind, SKU: sku, Base: 7}
		if kind == cart.KindAdd {
			op.Quantity = 1
			op.Options = map[string]string{"size": "m"}
			op.Details = &cart.Details{Name: "Mug", Price: 1200, Currency: "EUR"}
		}
		return op
	}
}

// enqueue stores an add by client, failing the test if it cannot.
func enqueue(t testing.TB, s syncclient.Storage, client string) cart.Op {
	t.Helper()
	op, err := s.Enqueue(ctx, client, mkop(client, cart.KindAdd, "sku-1"))
	if err != nil {
		t.Fatalf("Enqueue(%s): %v", client, err)
	}
	return op
}

// load loads s, failing the test if it cannot.
func load(t testing.TB, s syncclient.Storage) syncclient.Stored {
	t.Helper()
	st, err := s.Load(ctx)
	if err != nil {
		t.Fatalf("Load: %v", err)
	}
	return st
}

// ids lists ops as "client/seq ".
func ids(ops []cart.Op) string {
	out := ""
	for _, op := range ops {
		out += fmt.Sprintf("%s/%d ", op.Client, op.Seq)
	}
	return out
}

func testEmpty(t *testing.T, open func() syncclient.Storage) {
	st := load(t, open())
	if st.DeviceToken != "" || st.Cart != nil || len(st.Pending) != 0 {
		t.Errorf("new storage holds %+v, want nothing", st)
	}
}

func testDeviceToken(t *testing.T, open func() syncclient.Storage) {
	s := open()
	steps := []struct {
		old, new string
		want     string // returned and stored
	}{
		{"", "tok-1", "tok-1"},
		{"", "tok-2", "tok-1"}, // another tab stored one first
		{"tok-2", "", "tok-1"}, // forgetting a token that is not stored
		{"tok-1", "tok-3", "tok-3"},
		{"tok-3", "", ""},
	}
	for _, st := range steps {
		got, err := s.SwapDeviceToken(ctx, st.old, st.new)
		if err != nil {
			t.Fatalf("SwapDeviceToken(%q, %q): %v", st.old, st.new, err)
		}
		if got != st.want {
			t.Errorf("SwapDeviceToken(%q, %q) = %q, want %q", st.old, st.new, got, st.want)
		}
		if stored := load(t, s).DeviceToken; stored != st.want {
			t.Errorf("after SwapDeviceToken(%q, %q) the stored token is %q, want %q", st.old, st.new, stored, st.want)
		}
	}
}

// The outbox is in the order ops were made across client ids (tabs of one
// device), and stays so as ops leave it and move carts: a tab's clear made
// after another tab's add must reach the server after it.
func testOutboxInEnqueueOrder(t *testing.T, open func() syncclient.Storage) {
	s := open()
	for _, c := range []string{"b", "a", "b", "a", "c", "b"} {
		enqueue(t, s, c)
	}
	if got, want := ids(load(t, s).Pending), "b/1 a/1 b/2 a/2 c/1 b/3 "; got != want {
		t.Errorf("Pending = %q, want %q (the order of Enqueue)", got, want)
	}
	if err := s.Confirm(ctx, nil, []protocol.OpID{{Client: "a", Seq: 1}, {Client: "b", Seq: 2}}); err != nil {
		t.Fatal(err)
	}
	if err := s.Restamp(ctx, "", "cart-2"); err != nil {
		t.Fatal(err)
	}
	enqueue(t, s, "a")
	if got, want := ids(load(t, s).Pending), "b/1 a/2 c/1 b/3 a/3 "; got != want {
		t.Errorf("after Confirm, Restamp and another Enqueue, Pending = %q, want %q", got, want)
	}
}

func testStoredOpIsTheBuiltOne(t *testing.T, open func() syncclient.Storage) {
	s := open()
	want := mkop("a", cart.KindAdd, "sku-1")(1)
	got := enqueue(t, s, "a")
	if !sameOp(got, want) {
		t.Errorf("Enqueue returned %+v, want %+v", got, want)
	}
	p := load(t, s).Pending
	if len(p) != 1 || !sameOp(p[0], want) {
		t.Errorf("Pending = %+v, want [%+v]", p, want)
	}
}

func testSeqsNeverReused(t *testing.T, open func() syncclient.Storage) {
	s := open()
	enqueue(t, s, "a")
	enqueue(t, s, "a")
	if err := s.Confirm(ctx, nil, []protocol.OpID{{Client: "a", Seq: 1}, {Client: "a", Seq: 2}}); err != nil {
		t.Fatalf("Confirm: %v", err)
	}
	if op := enqueue(t, s, "a"); op.Seq != 3 {
		t.Errorf("seq after removing 1 and 2 = %d, want 3", op.Seq)
	}
}

func testBadOpStoresNothing(t *testing.T, open func() syncclient.Storage) {
	s := open()
	_, err := s.Enqueue(ctx, "a", func(seq uint64) cart.Op {
		return cart.Op{Client: "a", Seq: seq + 1, Kind: cart.KindClear}
	})
	if !errors.Is(err, syncclient.ErrBadOp) {
		t.Errorf("Enqueue with a wrong seq: err = %v, want ErrBadOp", err)
	}
	_, err = s.Enqueue(ctx, "a", mkop("b", cart.KindClear, ""))
	if !errors.Is(err, syncclient.ErrBadOp) {
		t.Errorf("Enqueue with a wrong client: err = %v, want ErrBadOp", err)
	}
	if p := load(t, s).Pending; len(p) != 0 {
		t.Errorf("Pending = %q, want nothing", ids(p))
	}
	if op := enqueue(t, s, "a"); op.Seq != 1 {
		t.Errorf("seq after failed enqueues = %d, want 1", op.Seq)
	}
}

func testConfirmRemovesListed(t *testing.T, open func() syncclient.Storage) {
	s := open()
	for _, c := range []string{"a", "a", "a", "b"} {
		enqueue(t, s, c)
	}
	done := []protocol.OpID{{Client: "a", Seq: 2}, {Client: "b", Seq: 1}, {Client: "z", Seq: 9}}
	if err := s.Confirm(ctx, nil, done); err != nil {
		t.Fatalf("Confirm: %v", err)
	}
	if got, want := ids(load(t, s).Pending), "a/1 a/3 "; got != want {
		t.Errorf("Pending = %q, want %q", got, want)
	}
}

func testRestampMovesOnlyThatCartsOps(t *testing.T, open func() syncclient.Storage) {
	s := open()
	for i, c := range []string{"g1", "u1", "g1", "", "g2"} {
		_, err := s.Enqueue(ctx, "a", func(seq uint64) cart.Op {
			op := mkop("a", cart.KindAdd, fmt.Sprint("sku-", i))(seq)
			op.Cart = c
			return op
		})
		if err != nil {
			t.Fatalf("Enqueue: %v", err)
		}
	}
	for range 2 { // idempotent
		if err := s.Restamp(ctx, "g1", "u1"); err != nil {
			t.Fatalf("Restamp: %v", err)
		}
	}
	got := ""
	for _, op := range load(t, s).Pending {
		got += fmt.Sprintf("%d:%s@%d ", op.Seq, op.Cart, op.Base)
	}
	if want := "1:u1@0 2:u1@7 3:u1@0 4:@7 5:g2@7 "; got != want {
		t.Errorf("after Restamp(g1, u1) the outbox is %q, want %q", got, want)
	}
}

// Reissue moves the ops above the expected seq to the new client id,
// numbered from 1 in their order, each in its place in the outbox; the
// ops below it and other client ids' stay. The new id's counter goes on
// after them, and it cannot be given ops twice.
func testReissueKeepsThePlaces(t *testing.T, open func() syncclient.Storage) {
	s := open()
	for _, c := range []string{"a", "a", "b", "a", "a", "c", "a"} {
		enqueue(t, s, c)
	}
	// The server expects a/3 and the outbox lost it: a/1 and a/2 it has
	// processed (a sync would show them), a/4 and a/5 it cannot take.
	if err := s.Confirm(ctx, nil, []protocol.OpID{{Client: "a", Seq: 3}}); err != nil {
		t.Fatal(err)
	}
	got, err := s.Reissue(ctx, "a", 3, "n")
	if err != nil {
		t.Fatalf("Reissue: %v", err)
	}
	if ids(got) != "n/1 n/2 " {
		t.Errorf("Reissue returned %q, want n/1 n/2", ids(got))
	}
	if len(got) == 2 && (got[0].SKU != "sku-1" || got[0].Base != 7 || got[0].Details == nil) {
		t.Errorf("a reissued op is %+v, want the op with only its client and seq changed", got[0])
	}
	if got, want := ids(load(t, s).Pending), "a/1 a/2 b/1 n/1 c/1 n/2 "; got != want {
		t.Errorf("after Reissue(a, 3, n) the outbox is %q, want %q", got, want)
	}
	if op := enqueue(t, s, "n"); op.Seq != 3 {
		t.Errorf("Enqueue on n after Reissue gave seq %d, want 3", op.Seq)
	}
	if _, err := s.Reissue(ctx, "b", 1, "n"); !errors.Is(err, syncclient.ErrUsedClient) {
		t.Errorf("Reissue to a client id with ops: %v, want ErrUsedClient", err)
	}
	if got, want := ids(load(t, s).Pending), "a/1 a/2 b/1 n/1 c/1 n/2 n/3 "; got != want {
		t.Errorf("after a refused Reissue the outbox is %q, want %q", got, want)
	}
}

// When the outbox has the expected op after all, Reissue changes nothing.
func testReissueOfNoGap(t *testing.T, open func() syncclient.Storage) {
	s := open()
	for range 3 {
		enqueue(t, s, "a")
	}
	got, err := s.Reissue(ctx, "a", 2, "n")
	if err != nil || len(got) != 0 {
		t.Errorf("Reissue with the expected op in the outbox: %q, %v; want nothing", ids(got), err)
	}
	if got, want := ids(load(t, s).Pending), "a/1 a/2 a/3 "; got != want {
		t.Errorf("the outbox is %q, want %q", got, want)
	}
	if op := enqueue(t, s, "n"); op.Seq != 1 {
		t.Errorf("Enqueue on n gave seq %d, want 1", op.Seq)
	}
}

func testConfirmKeepsNewerCart(t *testing.T, open func() syncclient.Storage) {
	tests := []struct {
		name  string
		carts []*cart.Cart
		want  string
	}{
		{"first", []*cart.Cart{{ID: "c1", Version: 3}}, "c1@3"},
		{"newer", []*cart.Cart{{ID: "c1", Version: 3}, {ID: "c1", Version: 5}}, "c1@5"},
		{"same", []*cart.Cart{{ID: "c1", Version: 3}, {ID: "c1", Version: 3}}, "c1@3"},
		{"older", []*cart.Cart{{ID: "c1", Version: 5}, {ID: "c1", Version: 3}}, "c1@5"},
		{"other cart", []*cart.Cart{{ID: "c1", Version: 5}, {ID: "c2", Version: 1}}, "c2@1"},
		{"nil keeps", []*cart.Cart{{ID: "c1", Version: 5}, nil}, "c1@5"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := open()
			for _, c := range tt.carts {
				if err := s.Confirm(ctx, c, nil); err != nil {
					t.Fatalf("Confirm: %v", err)
				}
			}
			c := load(t, s).Cart
			got := "nil"
			if c != nil {
				got = fmt.Sprintf("%s@%d", c.ID, c.Version)
			}
			if got != tt.want {
				t.Errorf("Cart = %s, want %s", got, tt.want)
			}
		})
	}
}

func testCartRoundTrip(t *testing.T, open func() syncclient.Storage) {
	s := open()
	in := &cart.Cart{ID: "c1", Version: 4, Lines: []*cart.Line{{
		Key: "sku-1?size=m", SKU: "sku-1", Options: map[string]string{"size": "m"}, Quantity: 2,
		Details: cart.Details{Name: "Mug", Image: "/mug.png", Price: 1200, Currency: "EUR"},
	}}}
	if err := s.Confirm(ctx, in, nil); err != nil {
		t.Fatalf("Confirm: %v", err)
	}
	in.Lines[0].Quantity = 99 // the storage must have kept its own copy
	got := load(t, s).Cart
	if got == nil || len(got.Lines) != 1 {
		t.Fatalf("Cart = %+v, want one line", got)
	}
	l := got.Lines[0]
	if l.Key != "sku-1?size=m" || l.Quantity != 2 || l.Options["size"] != "m" || l.Details.Price != 1200 || l.Details.Image != "/mug.png" {
		t.Errorf("line = %+v, want the stored one", l)
	}
}

// The server sends a cart's notices and totals with it, and the same
// version again when only they changed: the stored cart is the last
// one confirmed at its version, whole.
func testConfirmKeepsNoticesAndTotals(t *testing.T, open func() syncclient.Storage) {
	s := open()
	avail := 1
	line := &cart.Line{Key: "sku-1", SKU: "sku-1", Quantity: 2, Details: cart.Details{Name: "Mug", Price: 1200, Currency: "EUR"}}
	first := &cart.Cart{ID: "c1", Version: 4, Lines: []*cart.Line{line}, Totals: map[string]int64{"EUR": 2400}}
	again := &cart.Cart{ID: "c1", Version: 4, Lines: []*cart.Line{line}, Totals: map[string]int64{"EUR": 2800},
		Notices: []cart.Notice{{Line: "sku-1", Limit: cart.Limit{Available: &avail},
			PriceChanged: &cart.PriceChange{From: 1200, To: 1400, Currency: "EUR"}}}}
	for _, c := range []*cart.Cart{first, again} {
		if err := s.Confirm(ctx, c, nil); err != nil {
			t.Fatalf("Confirm: %v", err)
		}
	}
	avail = 7 // the storage must have kept its own copy
	got := load(t, s).Cart
	if got == nil || got.Version != 4 || got.Totals["EUR"] != 2800 || len(got.Notices) != 1 {
		t.Fatalf("Cart = %+v, want version 4 with the second confirm's notices and totals", got)
	}
	n := got.Notices[0]
	if n.Line != "sku-1" || n.Available == nil || *n.Available != 1 || n.PriceChanged == nil || n.PriceChanged.To != 1400 || n.Unavailable {
		t.Errorf("notice %+v (available %v, price %+v)", n, n.Available, n.PriceChanged)
	}
}

func testLoadReturnsCopies(t *testing.T, open func() syncclient.Storage) {
	s := open()
	enqueue(t, s, "a")
	st := load(t, s)
	st.Pending[0].Options["size"] = "xl"
	st.Pending[0].Details.Name = "changed"
	st.Pending[0].Quantity = 50
	p := load(t, s).Pending[0]
	if p.Options["size"] != "m" || p.Details.Name != "Mug" || p.Quantity != 1 {
		t.Errorf("a caller's change to a loaded op reached the storage: %+v", p)
	}
}

func testConcurrentEnqueue(t *testing.T, open func() syncclient.Storage) {
	s := open()
	const workers, each = 4, 25
	var wg sync.WaitGroup
	for w := range workers {
		client := "a"
		if w%2 == 1 {
			client = "b"
		}
		wg.Go(func() {
			for range each {
				if _, err := s.Enqueue(ctx, client, mkop(client, cart.KindClear, "")); err != nil {
					t.Errorf("Enqueue: %v", err)
					return
				}
			}
		})
	}
	wg.Wait()
	next := map[string]uint64{}
	for _, op := range load(t, s).Pending {
		next[op.Client]++
		if op.Seq != next[op.Client] {
			t.Fatalf("Pending = %q, want seqs 1..%d per client in order", ids(load(t, s).Pending), workers/2*each)
		}
	}
	if next["a"] != workers/2*each || next["b"] != workers/2*each {
		t.Errorf("stored %v ops per client, want %d each", next, workers/2*each)
	}
}

func sameOp(a, b cart.Op) bool {
	if a.Client != b.Client || a.Seq != b.Seq || a.Kind != b.Kind || a.SKU != b.SKU ||
		a.Quantity != b.Quantity || a.Base != b.Base || len(a.Options) != len(b.Options) {
		return false
	}
	for k, v := range a.Options {
		if b.Options[k] != v {
			return false
		}
	}
	if (a.Details == nil) != (b.Details == nil) {
		return false
	}
	return a.Details == nil || *a.Details == *b.Details
}
