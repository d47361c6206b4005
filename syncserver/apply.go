package syncserver

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/cartsync/cartsync/shared/cart"
	"github.com/cartsync/cartsync/shared/logkey"
	"github.com/cartsync/cartsync/shared/protocol"
)

// apply reconciles a batch into the cart durably. The caller answers the
// sender, then calls publish.
func (s *Server) apply(ctx context.Context, id Identity, ops []cart.Op) (*outcome, error) {
	select {
	case s.sem <- struct{}{}:
		defer func() { <-s.sem }()
	case <-time.After(2 * time.Second):
		s.metrics.overloaded.Inc()
		e := protocol.Errorf(protocol.ErrOverloaded, "server busy, retry shortly")
		e.RetryAfterMS = 1000
		return nil, e
	case <-ctx.Done():
		return nil, ctx.Err()
	}
	guestID := ""
	if id.User != "" && id.Device != StorefrontDevice {
		// The device's guest cart: the storefront's backend has none.
		guestID = GuestCartID(id.Device)
	}
	guestChecked := false
	for i, op := range ops {
		if op.Client == MergeClient || op.Client == CheckoutClient {
			return nil, protocol.Errorf(protocol.ErrInvalid, "client id %q is the server's own; pick another", op.Client)
		}
		switch op.Cart {
		case "", id.CartID:
		case guestID:
			// Made on the guest cart before login: they follow the
			// guest cart into the user cart it was merged into, and
			// only that one (not a second account's).
			if !guestChecked {
				if err := s.followGuest(ctx, guestID, id.CartID); err != nil {
					return nil, err
				}
				guestChecked = true
			}
			// The guest's versions mean nothing in the user cart.
			ops[i].Base = 0
		default:
			return nil, protocol.Errorf(protocol.ErrInvalid, "op %s/%d was made on another cart", op.Client, op.Seq)
		}
	}
	start := time.Now()
	skus := make([]string, 0, len(ops))
	for _, op := range ops {
		switch op.Kind {
		case cart.KindAdd, cart.KindSet, cart.KindDetails:
			// Only these are held to the catalog: a remove or a
			// clear goes through even when the catalog cannot be
			// read.
			skus = append(skus, cart.NormalizeText(op.SKU))
		}
	}
	items, err := s.catalog.lookup(ctx, skus)
	if err != nil {
		if ctx.Err() != nil {
			return nil, ctx.Err()
		}
		return nil, s.failure("read the catalog", id.CartID, err)
	}
	authorize := func(c *cart.Cart, op cart.Op) (cart.Op, []cart.Warning, *cart.Error) {
		if s.catalog.store == nil {
			return op, nil, nil
		}
		var it *cart.Item
		if i, ok := items[cart.NormalizeText(op.SKU)]; ok {
			it = &i
		}
		return cart.Authorize(c, op, it, s.cfg.CatalogOnly)
	}
	var out *outcome
	err = s.store.Mutate(ctx, id.CartID, opClients(ops), func(rec *Record) error {
		if !rec.Exists {
			rec.Meta.Kind = cartKind(id.CartID)
		}
		if id.User != "" && rec.Cart.User == "" {
			rec.Cart.User = id.User
		}
		// A cart is created by its first applied op (a first batch
		// that was all rejected leaves it at version 0).
		created := rec.Cart.Version == 0
		if rec.Meta.MergedInto != "" {
			return protocol.Errorf(protocol.ErrForbidden, "this cart was merged into another at login")
		}
		out = reconcile(rec, func(op cart.Op) cart.Device {
			if guestID != "" && op.Cart == guestID {
				// Made on the guest cart the device has now: it
				// never showed what the device did under its
				// previous token (in the account, before a logout).
				return cart.Device{ID: id.Device}
			}
			return cart.Device{ID: id.Device, Link: id.Link}
		}, ops, s.lim, s.now(), authorize)
		if len(out.by) > 0 {
			if created {
				s.addEvent(rec, EventCartCreated, nil)
			}
			s.addEvent(rec, EventCartUpdated, nil)
		}
		return nil
	})
	if err != nil {
		var pe *protocol.Error
		if !errors.As(err, &pe) && ctx.Err() != nil {
			// The client went away before its batch was stored:
			// nothing was acknowledged, nothing to report.
			return nil, ctx.Err()
		}
		return nil, s.failure("store the operations", id.CartID, err)
	}
	s.metrics.pushSeconds.Observe(time.Since(start).Seconds())
	s.eventsWritten(len(out.by) > 0)
	s.annotate(ctx, out.cart)
	for _, r := range out.results {
		s.metrics.ops.WithLabelValues(r.Status).Inc()
	}
	return out, nil
}

// publish tells every connection on the cart, on every instance, about the
// versions a batch made.
func (s *Server) publish(ctx context.Context, cartID string, out *outcome) {
	s.publishAcked(ctx, cartID, out, nil)
}

// publishAcked is publish after acked, a connection of this instance, was
// sent the same cart in its ack: the push is not echoed back to it.
func (s *Server) publishAcked(ctx context.Context, cartID string, out *outcome, acked *session) {
	if len(out.by) == 0 {
		return
	}
	msg, err := protocol.Encode(&protocol.Message{Type: protocol.TypeCart, Cart: out.cart, From: out.from, By: out.by})
	if err != nil {
		s.log.Error("encode push", logkey.Cart, cartID, logkey.Err, err)
		return
	}
	if acked != nil {
		s.hub.skipEcho(cartID, acked, msg)
	}
	err = s.bus.Publish(ctx, cartID, msg)
	if err != nil {
		// Other instances' clients notice the version gap on their next
		// message, or when the bus is healthy again (watchBus).
		s.log.Warn("publish", logkey.Cart, cartID, logkey.Err, err)
	}
	if err != nil || (s.lossy != nil && s.lossy.Losing()) {
		// This instance's own connections hear of it now, whatever
		// the bus does; should the bus deliver it too, they ignore
		// the copy (same version), and acked is skipped either way.
		s.hub.deliverDirect(cartID, msg, acked)
	}
}

// snapshot loads the committed cart with the last seqs of clients; a cart
// that does not exist yet is empty at version 0.
func (s *Server) snapshot(ctx context.Context, cartID string, clients []string) (*cart.Cart, map[string]uint64, error) {
	rec, err := s.store.Load(ctx, cartID, clients)
	s.metExpired(cartID, err)
	c, seqs, err := snapshotOf(cartID, clients, rec, err)
	s.annotate(ctx, c)
	return c, seqs, err
}

// snapshotOf turns what a store's Load returned into a snapshot: the
// public cart and the seqs of clients; a cart that does not exist is empty
// at version 0, an expired one is the typed cart_expired.
func snapshotOf(cartID string, clients []string, rec *Record, err error) (*cart.Cart, map[string]uint64, error) {
	if errors.Is(err, ErrCartExpired) {
		return nil, nil, errCartExpired(cartID)
	}
	if errors.Is(err, ErrCartNotFound) {
		seqs := map[string]uint64{}
		for _, c := range clients {
			seqs[c] = 0
		}
		return &cart.Cart{ID: cartID, Lines: []*cart.Line{}}, seqs, nil
	}
	if err != nil {
		return nil, nil, fmt.Errorf("load cart %s: %w", cartID, err)
	}
	c := rec.Cart.Public()
	if c.Lines == nil {
		c.Lines = []*cart.Line{}
	}
	return c, rec.Seqs, nil
}
