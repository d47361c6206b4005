package storetest

import (
	"errors"
	"fmt"
	"testing"

	"github.com/cartsync/cartsync/shared/cart"
	"github.com/cartsync/cartsync/syncserver"
)

// Contract tests of a Store's change log and loads.

func testChanges(t *testing.T, s syncserver.Store) {
	ops := []cart.Op{
		addOp("c1", 1, "sku-1", 1),
		addOp("c2", 1, "sku-2", 998),
		addOp("c2", 2, "sku-2", 5), // clamped: carries a warning
		{Client: "c1", Seq: 2, Kind: cart.KindDetails, SKU: "sku-1", Details: &cart.Details{Name: "Mug", Price: 1250, Currency: "EUR"}},
		{Client: "c1", Seq: 3, Kind: cart.KindRemove, SKU: "sku-2", Base: 3},
	}
	// 1, then 2, then 2 changes per Mutate.
	for _, batch := range [][]cart.Op{ops[:1], ops[1:3], ops[3:]} {
		mutate(t, s, "cart-log", []string{"c1", "c2"}, apply(batch...))
	}
	ref := &cart.Cart{ID: "cart-log"}
	var all []syncserver.Change
	for _, op := range ops {
		warns, cerr := ref.Apply(op, op.Client, cart.DefaultLimits)
		if cerr != nil {
			t.Fatalf("reference Apply: %v", cerr)
		}
		all = append(all, syncserver.Change{Version: ref.Version, Op: op, Warnings: warns, At: stamp(ref.Version)})
	}
	if len(all[2].Warnings) == 0 {
		t.Fatal("test setup: change 3 should carry a warning")
	}

	tests := []struct {
		since uint64
		limit int
		want  []syncserver.Change
	}{
		{0, 10, all},
		{0, 5, all},
		{0, 2, all[:2]},
		{2, 2, all[2:4]},
		{3, 100, all[3:]},
		{4, 1, all[4:]},
		{5, 10, nil},
		{9, 10, nil},
	}
	for _, tt := range tests {
		what := fmt.Sprintf("Changes(since %d, limit %d)", tt.since, tt.limit)
		checkChanges(t, what, changes(t, s, "cart-log", tt.since, tt.limit), tt.want)
	}
	checkCart(t, "Load", load(t, s, "cart-log").Cart, ref)
}

func testChangesUnknownCart(t *testing.T, s syncserver.Store) {
	for _, since := range []uint64{0, 7} {
		got, err := s.Changes(t.Context(), "cart-nobody", since, 10)
		if err != nil || len(got) != 0 {
			t.Errorf("Changes(unknown cart, %d) = %v, %v; want none, nil", since, versions(got), err)
		}
	}
}

func testChangesCompacted(t *testing.T, s syncserver.Store) {
	const total = syncserver.LogKeep + 37
	const perMutate = 150
	var seq uint64
	for seq < total {
		var ops []cart.Op
		for range perMutate {
			if seq == total {
				break
			}
			seq++
			ops = append(ops, addOp("c1", seq, fmt.Sprintf("sku-%d", seq%7), 1))
		}
		mutate(t, s, "cart-long", []string{"c1"}, apply(ops...))
	}
	oldest := uint64(total - syncserver.LogKeep + 1) // oldest version kept

	for _, since := range []uint64{0, 1, oldest - 2} {
		got, err := s.Changes(t.Context(), "cart-long", since, 10)
		if !errors.Is(err, syncserver.ErrCompacted) {
			t.Errorf("Changes(since %d) = %d changes, %v; want ErrCompacted (oldest kept %d)", since, len(got), err, oldest)
		}
	}

	tests := []struct {
		since     uint64
		limit     int
		wantFirst uint64
		wantLen   int
	}{
		{oldest - 1, 10, oldest, 10},
		{oldest - 1, syncserver.LogKeep + 10, oldest, syncserver.LogKeep},
		{oldest + 100, 5, oldest + 101, 5},
		{total - 1, 10, total, 1},
		{total, 10, 0, 0},
	}
	for _, tt := range tests {
		got := changes(t, s, "cart-long", tt.since, tt.limit)
		if len(got) != tt.wantLen {
			t.Errorf("Changes(since %d, limit %d): got %d changes, want %d", tt.since, tt.limit, len(got), tt.wantLen)
			continue
		}
		for i, ch := range got {
			if want := tt.wantFirst + uint64(i); ch.Version != want || ch.Op.Seq != want {
				t.Errorf("Changes(since %d)[%d]: version %d seq %d, want %d", tt.since, i, ch.Version, ch.Op.Seq, want)
				break
			}
		}
	}
	rec := load(t, s, "cart-long", "c1")
	if rec.Cart.Version != total || rec.Cart.Items() != total || rec.Seqs["c1"] != total {
		t.Errorf("Load: version %d, items %d, seq %d; want all %d", rec.Cart.Version, rec.Cart.Items(), rec.Seqs["c1"], total)
	}
}

func testLoadNotFound(t *testing.T, s syncserver.Store) {
	rec, err := s.Load(t.Context(), "cart-missing", []string{"c1"})
	if !errors.Is(err, syncserver.ErrCartNotFound) {
		t.Errorf("Load(unknown) error = %v, want ErrCartNotFound", err)
	}
	if rec != nil {
		t.Errorf("Load(unknown) record = %+v, want nil", rec)
	}
}

// The cart keeps its server bookkeeping (Contribs): a remove decided after a
// reload must give the same result as on the cart that never left memory.
func testLoadRoundTrip(t *testing.T, s syncserver.Store) {
	const id = "cart-trip"
	size := map[string]string{"Size": " L ", "color": "Red"}
	batches := [][]cart.Op{
		{
			{Client: "d1", Seq: 1, Kind: cart.KindAdd, SKU: "shirt", Options: size, Quantity: 2,
				Details: &cart.Details{Name: "Shirt", Image: "https://img.example/shirt.png", Price: 1999, Currency: "USD"}},
			addOp("d1", 2, "mug", 1),
		},
		{
			{Client: "d2", Seq: 1, Kind: cart.KindAdd, SKU: "shirt", Options: map[string]string{"color": "Red", "size": "L"}, Quantity: 3},
			{Client: "d2", Seq: 2, Kind: cart.KindSet, SKU: "mug", Quantity: 4},
			addOp("d2", 3, "sock", 6),
		},
		{
			// d1 saw version 2 only: d2's later contributions survive.
			{Client: "d1", Seq: 3, Kind: cart.KindRemove, SKU: "shirt", Options: size, Base: 2},
			{Client: "d1", Seq: 4, Kind: cart.KindClear, Base: 2},
		},
	}
	ref := &cart.Cart{ID: id}
	for i, batch := range batches {
		mutate(t, s, id, []string{"d1", "d2"}, apply(batch...))
		for _, op := range batch {
			if _, cerr := ref.Apply(op, op.Client, cart.DefaultLimits); cerr != nil {
				t.Fatalf("reference Apply: %v", cerr)
			}
		}
		if i == 1 && len(ref.Line(cart.LineKey("shirt", size)).Contribs) != 2 {
			t.Fatal("test setup: the shirt line should have two contributions")
		}
		checkCart(t, fmt.Sprintf("Load after batch %d", i+1), load(t, s, id).Cart, ref)
	}
	if ref.Items() != 13 || len(ref.Lines) != 3 {
		t.Fatalf("test setup: reference cart has %d items in %d lines, want 13 in 3", ref.Items(), len(ref.Lines))
	}

	// A cart replaced wholesale by fn (as a merge does) round-trips too.
	whole := ref.Clone()
	whole.ID = "cart-whole"
	mutate(t, s, "cart-whole", nil, func(rec *syncserver.Record) error {
		rec.Cart = whole.Clone()
		return nil
	})
	checkCart(t, "Load of replaced cart", load(t, s, "cart-whole").Cart, whole)
}
