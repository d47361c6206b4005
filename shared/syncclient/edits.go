package syncclient

import (
	"context"
	"fmt"
	"time"

	"github.com/cartsync/cartsync/shared/cart"
)

// The shopper's edits: each is validated, stored in the outbox with its
// seq, shown at once, and sent when connected.

// Add adds qty of a product to the cart, with its display details if d is
// not nil. Like every edit, it returns once the op is stored: a *cart.Error
// if it is invalid (nothing is queued), or the storage's error.
func (e *Engine) Add(ctx context.Context, sku string, opts map[string]string, qty int, d *cart.Details) error {
	return e.edit(ctx, cart.Op{Kind: cart.KindAdd, SKU: sku, Options: opts, Quantity: qty, Details: d})
}

// AddBefore is Add that, when the cart does not have the line, puts it
// before the line with key before (cart.Op.Before): an undone removal
// puts the line back where it was. Without that line it goes last.
func (e *Engine) AddBefore(ctx context.Context, sku string, opts map[string]string, qty int, d *cart.Details, before string) error {
	return e.edit(ctx, cart.Op{Kind: cart.KindAdd, SKU: sku, Options: opts, Quantity: qty, Details: d, Before: before})
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
	lim, loaded := e.m.limits, e.m.loaded
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
	// No read of the storage between storing the op and showing it (see
	// machine.enqueued), and no input of the connection: the op belongs to
	// the cart shown now, and its client id to that cart.
	err := func() error {
		e.ioMu.Lock()
		defer e.ioMu.Unlock()
		e.mu.Lock()
		op = e.m.newOp(op)
		e.mu.Unlock()
		stored, err := e.store.Enqueue(ctx, op.Client, func(seq uint64) cart.Op {
			op.Seq = seq
			return op
		})
		if err != nil {
			return fmt.Errorf("queue %s: %w", op.Kind, err)
		}
		now := time.Now()
		e.apply(func(m *machine) {
			m.enqueued(stored)
			m.edited(now)
		})
		e.publish()
		return nil
	}()
	if err != nil {
		return err
	}
	e.notify() // after unlocking: OnChange may edit
	e.signal(e.wake)
	return nil
}

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
		n, ch := e.view.Pending-e.view.Waiting, e.changed
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
