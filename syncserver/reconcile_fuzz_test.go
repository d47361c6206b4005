package syncserver_test

import (
	"encoding/json"
	"fmt"
	"maps"
	"math"
	"net/http"
	"strings"
	"testing"

	"github.com/cartsync/cartsync/shared/cart"
	"github.com/cartsync/cartsync/shared/protocol"
	"github.com/cartsync/cartsync/syncserver"
)

// The ops a push is made of are picked from tables, so the fuzzer explores
// batches, seqs and orderings rather than JSON (FuzzHTTP has the bytes).
var (
	reconcileKinds = []cart.Kind{cart.KindAdd, cart.KindAdd, cart.KindSet, cart.KindRemove, cart.KindClear, cart.KindDetails, cart.KindMerge}
	reconcileSKUs  = []string{"mug", "tea", "jam", "cup", "Mug", "", "a?b"}
	reconcileOpts  = []map[string]string{nil, {"size": "L"}, {" SIZE": "L "}, {"size": "M", "fit": "slim"}, {"size": ""}, {"": "x"}}
)

// FuzzReconcile pushes batches of operations from three devices of one
// user, with duplicated, skipped and missing seqs, through POST
// /v1/cart/ops, and checks each answer against the reference model of the
// convergence test: ops up to a seq gap get one result each, in order; a
// seq already processed is a duplicate; each applied op makes exactly the
// next version; and the cart always equals the model replaying the applied
// ops in server order. A batch naming another cart is refused whole.
func FuzzReconcile(f *testing.F) {
	for _, seed := range [][]byte{
		{0, 1, 0, 0, 3, 0, 0, 1, 1, 0x12, 2, 0},                         // two adds, one with options
		{0, 0, 0, 0, 3, 0, 1, 0, 3, 0, 0, 0},                            // an add, a remove from another device
		{0, 1, 0, 0, 3, 0, 0, 0, 5, 0x40},                               // an add, then its seq again
		{0, 1, 0, 0, 3, 0, 0, 0, 5, 0x80},                               // an add, then a seq gap
		{0, 0, 0, 0, 20, 0, 2, 0, 0, 2, 8, 0, 1, 0, 2, 0, 0, 5},         // add, set by another device, then an old-base set
		{0, 2, 0, 5, 3, 0, 0, 0, 0, 0, 0, 0, 3, 0},                      // a bad sku, then adds
		{0, 2, 0, 0, 3, 0, 4, 0, 0, 0, 6, 0, 0, 0},                      // add, clear, merge
		{0, 0, 0, 0, 3, 0xc0, 0, 0, 0, 0, 0, 0},                         // no seq, then a first op
		{4, 0, 0, 0, 3, 0},                                              // another cart
		{0, 3, 0, 0, 1, 0, 0, 1, 1, 0, 0, 2, 1, 0, 0, 3, 1, 0},          // four lines, over the limit of three
		{0, 0, 0x15, 0, 0, 0, 0, 0, 0, 0, 0x10, 0, 5, 0, 5, 0, 0, 0x7f}, // details on a missing line, add, then an absurd one
	} {
		f.Add(seed)
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		lim := cart.DefaultLimits
		lim.MaxQuantity = 20
		lim.MaxLines = 3
		lim.MaxContribs = 10_000 // the model keeps full history
		e := newFuzzEnv(t, lim, 3)
		m := newModel(lim)
		userCart := syncserver.UserCartID("alice")
		version := uint64(0)
		last := map[string]uint64{} // last seq processed per client
		for b := 0; len(data) >= 2; b++ {
			devN := int(data[0]) % 3
			otherCart := data[0]&4 != 0
			n := 1 + int(data[1])%6
			data = data[2:]
			client := fmt.Sprint("c", devN)
			var ops []cart.Op
			seq := last[client] // the client's last seq so far
			for range n {
				if len(data) < 4 {
					break
				}
				op := reconcileOp(data[:4], client, seq, version)
				data = data[4:]
				seq = max(seq, op.Seq)
				ops = append(ops, op)
			}
			if otherCart && len(ops) > 0 {
				ops[len(ops)-1].Cart = "u_another"
			}
			body, _ := json.Marshal(syncserver.OpsRequest{Ops: ops})
			before := e.state()
			code, raw := e.do("POST", "/v1/cart/ops", "", e.tokens[devN], "user:alice", body)
			batch := fmt.Sprintf("batch %d from dev%d %s", b, devN, body)
			if otherCart || len(ops) == 0 {
				// A batch naming another cart is refused whole, as
				// is an empty one.
				if code != http.StatusBadRequest || e.state() != before {
					t.Fatalf("%s: %d %s; want 400 and no change", batch, code, raw)
				}
				continue
			}
			var resp syncserver.OpsResponse
			if err := json.Unmarshal(raw, &resp); err != nil || (code != http.StatusOK && code != http.StatusConflict) {
				t.Fatalf("%s: %d %s", batch, code, raw)
			}
			// Walk the batch as the rules say. A client id gets a
			// seq recorded once one of its ops was applied; within a
			// batch its seqs count from its first op.
			seqs := maps.Clone(last)
			applied := false
			i := 0
			for ; i < len(ops); i++ {
				op := ops[i]
				if op.Seq == 0 {
					checkResult(t, batch, resp.Results, i, protocol.StatusRejected, version)
					continue
				}
				l, known := seqs[op.Client]
				if known && op.Seq <= l {
					checkResult(t, batch, resp.Results, i, protocol.StatusDuplicate, version)
					continue
				}
				if known && op.Seq > l+1 {
					break // the gap stops the batch
				}
				seqs[op.Client] = op.Seq
				if i >= len(resp.Results) {
					t.Fatalf("%s: no result for op %d: %s", batch, i, raw)
				}
				switch r := resp.Results[i]; r.Status {
				case protocol.StatusApplied:
					applied = true
					version++
					checkResult(t, batch, resp.Results, i, protocol.StatusApplied, version)
					m.apply(op, fmt.Sprint("dev", devN), version)
				case protocol.StatusRejected:
					checkResult(t, batch, resp.Results, i, protocol.StatusRejected, version)
					if r.Error.Code == cart.CodeLineNotFound && m.lines[op.Key()] != nil {
						t.Fatalf("%s: op %d line_not_found, but the model has line %q", batch, i, op.Key())
					}
				default:
					t.Fatalf("%s: op %d: %+v", batch, i, r)
				}
			}
			if _, known := last[client]; known || applied {
				last[client] = seqs[client]
			}
			if len(resp.Results) != i {
				t.Fatalf("%s: %d results, want %d: %s", batch, len(resp.Results), i, raw)
			}
			if stopped := i < len(ops); stopped != (code == http.StatusConflict) || stopped != (resp.Error != nil) {
				t.Fatalf("%s: stopped at %d of %d, got %d %s", batch, i, len(ops), code, raw)
			}
			if resp.Cart == nil || resp.Cart.ID != userCart || resp.Cart.Version != version {
				t.Fatalf("%s: cart %+v, want %s at version %d", batch, resp.Cart, userCart, version)
			}
			if got, want := summarize(resp.Cart), m.summary(); got != want {
				t.Fatalf("%s: cart differs from the model:\nserver %s\nmodel  %s", batch, got, want)
			}
			for _, l := range resp.Cart.Lines {
				if l.Quantity < 1 || l.Quantity > lim.MaxQuantity || len(resp.Cart.Lines) > lim.MaxLines {
					t.Fatalf("%s: line %q quantity %d, %d lines", batch, l.Key, l.Quantity, len(resp.Cart.Lines))
				}
			}
		}
		// The change log holds every applied op once, in server order:
		// the last LogKeep of them, once there are more (it is trimmed).
		since := version - min(version, syncserver.LogKeep)
		log, err := e.store.Changes(t.Context(), userCart, since, syncserver.LogKeep)
		if err != nil || uint64(len(log)) != version-since {
			t.Fatalf("log since %d: %d changes (%v), want %d", since, len(log), err, version-since)
		}
	})
}

// reconcileOp decodes four bytes into an op of client, whose last seq is
// last, with the cart at version v.
func reconcileOp(b []byte, client string, last, v uint64) cart.Op {
	op := cart.Op{
		Client:  client,
		Kind:    reconcileKinds[int(b[0]&0x0f)%len(reconcileKinds)],
		SKU:     reconcileSKUs[int(b[1]&0x0f)%len(reconcileSKUs)],
		Options: reconcileOpts[int(b[1]>>4)%len(reconcileOpts)],
	}
	switch op.Kind {
	case cart.KindAdd, cart.KindSet:
		op.Quantity = int(int8(b[2]))
		if b[2] == 0x7f {
			op.Quantity = math.MaxInt
		}
	case cart.KindClear:
		op.SKU, op.Options = "", nil
	}
	if op.Kind == cart.KindAdd || op.Kind == cart.KindDetails {
		if b[0]&0x10 != 0 {
			op.Details = &cart.Details{Name: strings.ToUpper(op.SKU), Price: 100, Currency: "EUR"}
		}
	}
	op.Base = v - min(v, uint64(b[3]&0x3f)) // how far behind the device was
	switch b[3] >> 6 {
	case 0:
		op.Seq = last + 1
	case 1:
		op.Seq = max(last, 1) // a duplicate, or the first
	case 2:
		op.Seq = last + 2 // a gap
	case 3:
		op.Seq = 0
	}
	return op
}

// checkResult checks that results[i] has the given status and version.
func checkResult(t testing.TB, batch string, results []protocol.Result, i int, status string, version uint64) {
	t.Helper()
	if i >= len(results) {
		t.Fatalf("%s: no result for op %d", batch, i)
	}
	if r := results[i]; r.Status != status || r.Version != version {
		t.Fatalf("%s: op %d: %s at version %d, want %s at %d (%+v)", batch, i, r.Status, r.Version, status, version, r.Error)
	}
}
