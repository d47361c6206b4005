//go:build js && wasm

package idbstore

import (
	"cmp"
	"context"
	"encoding/json"
	"fmt"
	"slices"
	"syscall/js"

	"github.com/hack-pad/go-indexeddb/idb"

	"github.com/cartsync/cartsync/shared/cart"
	"github.com/cartsync/cartsync/shared/protocol"
	"github.com/cartsync/cartsync/shared/syncclient"
)

// Load implements syncclient.Storage: one readonly transaction over meta
// and ops.
func (s *Store) Load(ctx context.Context) (syncclient.Stored, error) {
	var (
		token, cartJSON string
		opsJSON         []string
	)
	err := s.run(ctx, func(db *idb.Database) error {
		opsJSON = opsJSON[:0]
		txn, st, err := begin(db, idb.TransactionReadOnly, storeMeta, storeOps)
		if err != nil {
			return err
		}
		meta, ops := st[0], st[1]
		if token, err = getString(ctx, txn, meta, keyToken); err != nil {
			return err
		}
		if cartJSON, err = getString(ctx, txn, meta, keyCart); err != nil {
			return err
		}
		return eachOp(ctx, txn, ops, func(_ *idb.CursorWithValue, data string) error {
			opsJSON = append(opsJSON, data)
			return nil
		})
	})
	if err != nil {
		return syncclient.Stored{}, fmt.Errorf("load: %w", err)
	}

	out := syncclient.Stored{DeviceToken: token}
	if cartJSON != "" {
		out.Cart = new(cart.Cart)
		if err := json.Unmarshal([]byte(cartJSON), out.Cart); err != nil {
			return syncclient.Stored{}, fmt.Errorf("load: decode cart: %w", err)
		}
	}
	if len(opsJSON) > 0 {
		stored := make([]storedOp, len(opsJSON))
		for i, data := range opsJSON {
			if err := json.Unmarshal([]byte(data), &stored[i]); err != nil {
				return syncclient.Stored{}, fmt.Errorf("load: decode op: %w", err)
			}
		}
		// The outbox is in the order Enqueue gave each op (see doc.go).
		// Ops stored before ops had one (order 0) come first, by key: client id,
		// then seq, compared as Go compares them (IndexedDB compares
		// strings by UTF-16 code units, which differ past U+FFFF).
		slices.SortStableFunc(stored, func(a, b storedOp) int {
			return cmp.Or(cmp.Compare(a.Order, b.Order), cmp.Compare(a.Client, b.Client), cmp.Compare(a.Seq, b.Seq))
		})
		out.Pending = make([]cart.Op, len(stored))
		for i, op := range stored {
			out.Pending[i] = op.Op
		}
		s.sawOrder(stored[len(stored)-1].Order)
	}
	return out, nil
}

// SwapDeviceToken implements syncclient.Storage: a compare-and-swap in one
// readwrite transaction over meta.
func (s *Store) SwapDeviceToken(ctx context.Context, old, next string) (string, error) {
	var stored string
	err := s.run(ctx, func(db *idb.Database) error {
		txn, st, err := begin(db, idb.TransactionReadWrite, storeMeta)
		if err != nil {
			return err
		}
		meta := st[0]
		current, err := getString(ctx, txn, meta, keyToken)
		if err != nil {
			return err
		}
		if current != old {
			stored = current // the transaction commits with no writes
			return nil
		}
		if _, err := meta.PutKey(js.ValueOf(keyToken), js.ValueOf(next)); err != nil {
			abort(txn)
			return err
		}
		if err := commit(ctx, txn); err != nil {
			return err
		}
		stored = next
		return nil
	})
	if err != nil {
		return "", fmt.Errorf("swap device token: %w", err)
	}
	return stored, nil
}

// Enqueue implements syncclient.Storage: one readwrite transaction over
// seqs and ops reads the client's counter, calls build, and puts the op
// and the counter. The op's outbox order is above every order this Store
// has read or given and above the client's last one (tabs sharing a
// client id keep its ops in seq order). The op is durable when Enqueue
// returns it.
func (s *Store) Enqueue(ctx context.Context, client string, build func(seq uint64) cart.Op) (cart.Op, error) {
	var data []byte
	var order uint64
	next := s.order.Add(1)
	err := s.run(ctx, func(db *idb.Database) error {
		txn, st, err := begin(db, idb.TransactionReadWrite, storeSeqs, storeOps)
		if err != nil {
			return err
		}
		seqs, ops := st[0], st[1]
		last, err := get(ctx, txn, seqs, client)
		if err != nil {
			return err
		}
		seq, clientOrder, err := counterOf(txn, client, last)
		if err != nil {
			return err
		}
		order = max(next, clientOrder+1)
		op := build(seq)
		if op.Client != client || op.Seq != seq {
			abort(txn)
			return fmt.Errorf("built op %s/%d for %s/%d: %w", op.Client, op.Seq, client, seq, syncclient.ErrBadOp)
		}
		if data, err = json.Marshal(storedOp{op, order}); err != nil {
			abort(txn)
			return fmt.Errorf("encode op %s/%d: %w", client, seq, err)
		}
		// From the first put on, the transaction may commit: never run it again.
		if _, err := ops.PutKey(opKey(client, seq), js.ValueOf(string(data))); err != nil {
			abort(txn)
			return maybeWritten{err}
		}
		return putCounterAndCommit(ctx, txn, seqs, client, seq, order)
	})
	if err != nil {
		return cart.Op{}, fmt.Errorf("enqueue: %w", err)
	}
	s.sawOrder(order)
	var stored storedOp // decoded, so it is the stored op and the caller's own copy
	if err := json.Unmarshal(data, &stored); err != nil {
		return cart.Op{}, fmt.Errorf("enqueue: decode op: %w", err)
	}
	return stored.Op, nil
}

// putCounterAndCommit ends a transaction that wrote ops: it sets client's
// counter in seqs to its last seq and the order of its last op, and
// commits. Writes were requested already, so a failure is maybeWritten.
func putCounterAndCommit(ctx context.Context, txn *idb.Transaction, seqs *idb.ObjectStore, client string, seq, order uint64) error {
	if _, err := seqs.PutKey(js.ValueOf(client), js.ValueOf([]any{float64(seq), float64(order)})); err != nil {
		abort(txn)
		return maybeWritten{err}
	}
	if err := commit(ctx, txn); err != nil {
		return maybeWritten{err}
	}
	return nil
}

// storedOp is an op as the ops store keeps it, with its place in the
// outbox across client ids (Store.order when it was stored; 0 for an op
// stored before ops had one).
type storedOp struct {
	cart.Op
	Order uint64 `json:"order,omitempty"`
}

// sawOrder raises s.order to order.
func (s *Store) sawOrder(order uint64) {
	for {
		cur := s.order.Load()
		if order <= cur || s.order.CompareAndSwap(cur, order) {
			return
		}
	}
}

// counterOf reads last, the value of client's counter in seqs: [its last
// seq, the order of its last op], a number (its last seq, as stored before
// ops had an order) or undefined (none). It returns the next seq and the
// client's last order.
func counterOf(txn *idb.Transaction, client string, last js.Value) (seq, order uint64, err error) {
	switch {
	case last.Type() == js.TypeUndefined:
		return 1, 0, nil
	case last.Type() == js.TypeNumber:
		return uint64(last.Float()) + 1, 0, nil
	case last.InstanceOf(js.Global().Get("Array")) && last.Length() == 2 &&
		last.Index(0).Type() == js.TypeNumber && last.Index(1).Type() == js.TypeNumber:
		return uint64(last.Index(0).Float()) + 1, uint64(last.Index(1).Float()), nil
	}
	abort(txn)
	return 0, 0, fmt.Errorf("the counter of %s is a %s, want [seq, order]", client, last.Type())
}

// Confirm implements syncclient.Storage: one readwrite transaction over
// meta and ops puts c, unless the stored cart is a newer version of it,
// and deletes the ops in done.
func (s *Store) Confirm(ctx context.Context, c *cart.Cart, done []protocol.OpID) error {
	if c == nil && len(done) == 0 {
		return ctx.Err()
	}
	var cartJSON js.Value
	if c != nil {
		data, err := json.Marshal(c)
		if err != nil {
			return fmt.Errorf("confirm: encode cart %s: %w", c.ID, err)
		}
		cartJSON = js.ValueOf(string(data))
	}
	keys := make([]js.Value, len(done))
	for i, id := range done {
		keys[i] = opKey(id.Client, id.Seq)
	}
	// Confirm is idempotent, so running it again after a lost connection is
	// safe even if the first run committed.
	err := s.run(ctx, func(db *idb.Database) error {
		txn, st, err := begin(db, idb.TransactionReadWrite, storeMeta, storeOps)
		if err != nil {
			return err
		}
		meta, ops := st[0], st[1]
		if c != nil {
			stored, err := getString(ctx, txn, meta, keyCart)
			if err != nil {
				return err
			}
			if replaces(c, stored) {
				if _, err := meta.PutKey(js.ValueOf(keyCart), cartJSON); err != nil {
					abort(txn)
					return err
				}
			}
		}
		for _, key := range keys {
			if _, err := ops.Delete(key); err != nil {
				abort(txn)
				return err
			}
		}
		return commit(ctx, txn)
	})
	if err != nil {
		return fmt.Errorf("confirm: %w", err)
	}
	return nil
}

// Restamp implements syncclient.Storage: one readwrite transaction over ops
// rewrites, in place, the ops made on cart from.
func (s *Store) Restamp(ctx context.Context, from, to string) error {
	err := s.run(ctx, func(db *idb.Database) error {
		txn, st, err := begin(db, idb.TransactionReadWrite, storeOps)
		if err != nil {
			return err
		}
		err = eachOp(ctx, txn, st[0], func(c *idb.CursorWithValue, data string) error {
			var op storedOp // its order goes back with it
			if err := json.Unmarshal([]byte(data), &op); err != nil {
				return fmt.Errorf("decode op: %w", err)
			}
			if op.Cart != from {
				return nil
			}
			op.Cart, op.Base = to, 0
			moved, err := json.Marshal(op)
			if err != nil {
				return fmt.Errorf("encode op %s/%d: %w", op.Client, op.Seq, err)
			}
			_, err = c.Update(js.ValueOf(string(moved)))
			return err
		})
		if err != nil {
			return err
		}
		// Restamp is idempotent: running it again after a lost
		// connection is safe even if this run committed.
		return commit(ctx, txn)
	})
	if err != nil {
		return fmt.Errorf("restamp: %w", err)
	}
	return nil
}

// Reissue implements syncclient.Storage: one readwrite transaction over
// seqs and ops moves from's ops above expected to new keys under to, each
// with its outbox order, and sets to's counter.
func (s *Store) Reissue(ctx context.Context, from string, expected uint64, to string) ([]cart.Op, error) {
	if from == to {
		return nil, fmt.Errorf("reissue %s as %s: %w", from, to, syncclient.ErrUsedClient)
	}
	var out []cart.Op
	err := s.run(ctx, func(db *idb.Database) error {
		out = out[:0]
		txn, st, err := begin(db, idb.TransactionReadWrite, storeSeqs, storeOps)
		if err != nil {
			return err
		}
		seqs, ops := st[0], st[1]
		last, err := get(ctx, txn, seqs, to)
		if err != nil {
			return err
		}
		if last.Type() != js.TypeUndefined {
			abort(txn)
			return fmt.Errorf("reissue %s as %s: %w", from, to, syncclient.ErrUsedClient)
		}
		// The ops of from, read first: the cursor's callbacks must not
		// wait on other requests.
		var moving []storedOp
		found := false
		err = eachOp(ctx, txn, ops, func(_ *idb.CursorWithValue, data string) error {
			var op storedOp
			if err := json.Unmarshal([]byte(data), &op); err != nil {
				return fmt.Errorf("decode op: %w", err)
			}
			switch {
			case op.Client != from:
			case op.Seq == expected:
				found = true
			case op.Seq > expected:
				moving = append(moving, op)
			}
			return nil
		})
		if err != nil {
			return err
		}
		if found || len(moving) == 0 {
			return commit(ctx, txn) // no writes
		}
		slices.SortStableFunc(moving, func(a, b storedOp) int {
			return cmp.Or(cmp.Compare(a.Order, b.Order), cmp.Compare(a.Seq, b.Seq))
		})
		var order uint64
		for i := range moving {
			op := &moving[i]
			if _, err := ops.Delete(opKey(op.Client, op.Seq)); err != nil {
				abort(txn)
				return maybeWritten{err}
			}
			op.Client, op.Seq = to, uint64(i+1)
			data, err := json.Marshal(op)
			if err != nil {
				abort(txn)
				return maybeWritten{fmt.Errorf("encode op %s/%d: %w", to, op.Seq, err)}
			}
			if _, err := ops.PutKey(opKey(to, op.Seq), js.ValueOf(string(data))); err != nil {
				abort(txn)
				return maybeWritten{err}
			}
			order = max(order, op.Order)
			out = append(out, op.Op)
		}
		return putCounterAndCommit(ctx, txn, seqs, to, uint64(len(moving)), order)
	})
	if err != nil {
		return nil, fmt.Errorf("reissue: %w", err)
	}
	return out, nil
}

// eachOp calls fn with every op of the ops store, in key order, inside txn;
// on an error it aborts txn. fn runs inside the success event: it must not
// block.
func eachOp(ctx context.Context, txn *idb.Transaction, ops *idb.ObjectStore, fn func(c *idb.CursorWithValue, data string) error) error {
	cursor, err := ops.OpenCursor(idb.CursorNext)
	if err != nil {
		abort(txn)
		return err
	}
	err = cursor.Iter(ctx, func(c *idb.CursorWithValue) error {
		v, err := c.Value()
		if err != nil {
			return err
		}
		if v.Type() != js.TypeString {
			return fmt.Errorf("an op is a %s, want a string", v.Type())
		}
		return fn(c, v.String())
	})
	if err == nil {
		err = ctx.Err() // idb answers nil when ctx ends first
	}
	if err != nil {
		abort(txn)
	}
	return err
}

// replaces reports whether c replaces the stored cart (JSON, "" for none):
// it does unless the stored one is a newer version of the same cart.
func replaces(c *cart.Cart, stored string) bool {
	if stored == "" {
		return true
	}
	var head struct {
		ID      string `json:"id"`
		Version uint64 `json:"version"`
	}
	if err := json.Unmarshal([]byte(stored), &head); err != nil {
		return true // unreadable: the confirmed cart is better
	}
	return head.ID != c.ID || c.Version >= head.Version
}

// opKey is the key of an op in the ops store.
func opKey(client string, seq uint64) js.Value {
	return js.ValueOf([]any{client, float64(seq)})
}
