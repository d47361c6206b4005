package syncserver_test

import (
	"math"
	"strings"
	"testing"
	"time"

	"github.com/cartsync/cartsync/shared/cart"
	"github.com/cartsync/cartsync/syncserver"
)

// Prepare decides what a store writes: only the seqs that changed, in
// client order; the new changes encoded; the trim that keeps LogKeep; and
// it refuses what no store can hold.
func TestPrepare(t *testing.T) {
	at := time.Date(2026, 12, 2, 12, 0, 0, 0, time.UTC)
	newest := uint64(syncserver.LogKeep + 7)
	rec := &syncserver.Record{
		Cart: &cart.Cart{ID: "g_1", Version: newest, Lines: []*cart.Line{}},
		Meta: syncserver.Meta{Kind: syncserver.KindGuest, UpdatedAt: at},
		Seqs: map[string]uint64{"b": 4, "a": 2, "same": 9},
		Appended: []syncserver.Change{
			{Version: newest - 1, Op: cart.Op{Client: "a", Seq: 2, Kind: cart.KindAdd, SKU: "X", Quantity: 1}, At: at},
			{Version: newest, Op: cart.Op{Client: "b", Seq: 4, Kind: cart.KindAdd, SKU: "Y", Quantity: 1}, At: at,
				Warnings: []cart.Warning{{Code: "clamped", Message: "m"}}},
		},
	}
	ws, err := syncserver.BatchWrite{ID: "g_1", Rec: rec, Before: map[string]uint64{"a": 1, "same": 9}}.Prepare()
	if err != nil {
		t.Fatal(err)
	}
	if len(ws.Seqs) != 2 || ws.Seqs[0] != (syncserver.SeqWrite{Client: "a", Seq: 2}) || ws.Seqs[1] != (syncserver.SeqWrite{Client: "b", Seq: 4}) {
		t.Errorf("seqs %+v, want a=2 then b=4 (same unchanged)", ws.Seqs)
	}
	if ws.Version != int64(newest) || ws.Kind != syncserver.KindGuest || !ws.UpdatedAt.Equal(at) || !strings.Contains(string(ws.State), `"g_1"`) {
		t.Errorf("cart written as version %d kind %q updated %v state %s", ws.Version, ws.Kind, ws.UpdatedAt, ws.State)
	}
	if len(ws.Log) != 2 || ws.Log[0].Warnings != nil || ws.Log[1].Warnings == nil || !strings.Contains(string(ws.Log[1].Op), `"Y"`) {
		t.Errorf("log %+v", ws.Log)
	}
	if ws.TrimThrough != 7 {
		t.Errorf("trim through %d, want 7 (keeping the newest %d)", ws.TrimThrough, syncserver.LogKeep)
	}

	rec.Seqs["b"] = math.MaxInt64 + 1
	if _, err := (syncserver.BatchWrite{ID: "g_1", Rec: rec}).Prepare(); err == nil || !strings.Contains(err.Error(), "out of range") {
		t.Errorf("a seq above MaxInt64: %v, want out of range", err)
	}
	if _, err := (syncserver.BatchWrite{ID: "g_1", Rec: &syncserver.Record{}}).Prepare(); err == nil {
		t.Error("a record without a cart prepared")
	}
}
