package syncclient

import (
	"cmp"
	"context"
	"fmt"
	"slices"
	"time"

	"github.com/cartsync/cartsync/shared/cart"
	"github.com/cartsync/cartsync/shared/protocol"
)

// The shopper's edits: each is validated, stored in the outbox with its
// seq, shown at once, and sent when connected.

// Add adds qty of a product to the cart, with its display details if d is
// not nil. Like every edit, it returns once the op is stored: a *cart.Error
// if it is invalid (nothing is queued), or the storage's error.
func (e *Engine) Add(ctx context.Context, sku string, opts map[string]string, qty int, d *cart.Details) error {
	return e.edit(ctx, cart.Op{Kind: cart.KindAdd, SKU: sku, Options: opts, Quantity: qty, Details: d})
}

// SetQuantity sets a line's quantity; 0 removes the line.
func (e *Engine) SetQuantity(ctx context.Context, sku string, opts map[string]string, qty int) error {
	return e.edit(ctx, cart.Op{Kind: cart.KindSet, SKU: sku, Options: opts, Quantity: qty})
}

// Remove removes a line, as far as this device has seen it.
func (e *Engine) Remove(ctx context.Context, sku string, opts map[string]string) error {
	return e.edit(ctx, cart.Op{Kind: cart.KindRemove, SKU: sku, Options: opts})
}

// Clear removes every line, as far as this device has seen them.
func (e *Engine) Clear(ctx context.Context) error {
	return e.edit(ctx, cart.Op{Kind: cart.KindClear})
}

// SetDetails sets a line's display details.
func (e *Engine) SetDetails(ctx context.Context, sku string, opts map[string]string, d cart.Details) error {
	return e.edit(ctx, cart.Op{Kind: cart.KindDetails, SKU: sku, Options: opts, Details: &d})
}

func (e *Engine) edit(ctx context.Context, op cart.Op) error {
	e.mu.Lock()
	lim, loaded := e.limits, e.loaded
	e.mu.Unlock()
	op.Client, op.Seq = "c", 1 // Enqueue allocates the real ones
	if ce := op.Validate(lim); ce != nil {
		return ce
	}
	if !loaded {
		if err := e.reload(ctx); err != nil {
			return err
		}
	}
	// No reload between storing the op and showing it (see show).
	err := func() error {
		e.loadMu.Lock()
		defer e.loadMu.Unlock()
		// The op belongs to the cart shown now, and its client id to
		// that cart: take both at once.
		e.mu.Lock()
		op.Client, op.Cart, op.Base = e.client, e.confirmed.ID, e.confirmed.Version
		e.mu.Unlock()
		stored, err := e.store.Enqueue(ctx, op.Client, func(seq uint64) cart.Op {
			e.mu.Lock()
			op.Seq = seq
			if e.confirmed.ID == op.Cart {
				op.Base = e.confirmed.Version
			}
			e.mu.Unlock()
			return op
		})
		if err != nil {
			return fmt.Errorf("queue %s: %w", op.Kind, err)
		}
		e.show(stored)
		return nil
	}()
	if err != nil {
		return err
	}
	e.notify() // after unlocking: OnChange may edit
	select {
	case e.wake <- struct{}{}:
	default:
	}
	return nil
}

// show adds op, just stored, to the outbox shown (the caller notifies),
// without reading the storage back: an edit returns as soon as it is
// durable, which is what a storefront's add() waits for. What other tabs stored meanwhile comes with
// the next reload (their news, a ping, an answer from the server). The
// caller holds loadMu from before the op was stored: no reload can have
// read it, so it cannot have been sent, answered and taken out already
// (adding it then would show it twice), and no reload that read the
// storage before it was stored can finish after this and hide it.
func (e *Engine) show(op cart.Op) {
	e.mu.Lock()
	// The outbox is in client id, then seq order, as Storage.Load gives it.
	i, found := slices.BinarySearchFunc(e.pending, op, func(p, t cart.Op) int {
		return cmp.Or(cmp.Compare(p.Client, t.Client), cmp.Compare(p.Seq, t.Seq))
	})
	if !found {
		e.pending = slices.Insert(slices.Clip(e.pending), i, op)
	}
	e.rebuildLocked()
	e.changedLocked()
	e.mu.Unlock()
}

// confirmShown stores a confirmed cart of the cart shown (nil for none)
// and drops the answered ops, then shows that from memory, as show does
// for an edit: it holds loadMu from the write to the change in memory,
// so no reload can interleave. What other tabs changed in the storage
// (their edits, a new device token, another cart) is read at the next
// reload: their news after an edit, a ping, a hello or sync reply, or
// this confirm itself once the last read is older than memoryConfirmFor.
// It stores nothing and reports false when c is of another cart, when
// no cart was loaded yet, or when the last read is that old: the caller
// reloads.
func (e *Engine) confirmShown(ctx context.Context, c *cart.Cart, done []protocol.OpID) (bool, error) {
	shown, err := func() (bool, error) {
		e.loadMu.Lock()
		defer e.loadMu.Unlock()
		e.mu.Lock()
		id, loaded, readAt := e.confirmed.ID, e.loaded, e.readAt
		e.mu.Unlock()
		if !loaded || (c != nil && (id == "" || c.ID != id)) || time.Since(readAt) > memoryConfirmFor {
			return false, nil
		}
		if err := e.store.Confirm(ctx, c, done); err != nil {
			return false, fmt.Errorf("store confirmed cart: %w", err)
		}
		e.mu.Lock()
		defer e.mu.Unlock()
		// What the storage just did, in memory.
		if replacesStored(e.confirmed, c) {
			e.confirmed = cloneCart(c)
		}
		e.ownCartLocked() // as reload does: a client id just rotated has no cart yet
		e.pending = withoutDone(e.pending, done)
		e.rebuildLocked()
		e.changedLocked()
		return true, nil
	}()
	if shown {
		e.notify() // after unlocking: OnChange may edit
	}
	return shown, err
}

// memoryConfirmFor is how long after reading the storage a confirm is
// shown from memory; later it reads the storage back. A burst of edits and
// acks then reads it about once a second instead of at every ack.
const memoryConfirmFor = time.Second

// Flush waits until the outbox holds no ops but those waiting for another
// cart (State.Waiting): every op of the shown cart answered by the server.
// It does not send anything itself: Run must be running, and logged in if
// the shown cart is a user's.
func (e *Engine) Flush(ctx context.Context) error {
	if err := e.reload(ctx); err != nil {
		return err
	}
	for {
		e.mu.Lock()
		n, ch := len(e.pending)-e.waiting, e.changed
		e.mu.Unlock()
		if n == 0 {
			return nil
		}
		select {
		case <-ch:
		case <-ctx.Done():
			return ctx.Err()
		}
	}
}
