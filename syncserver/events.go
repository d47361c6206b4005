package syncserver

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/cartsync/cartsync/shared/cart"
)

// coalesceWindow is how long a cart.updated event waits before delivery,
// so that a burst of edits to a cart becomes one call: a later update
// replaces a pending one (Event.Coalesce).
const coalesceWindow = time.Second

// EventData is the data of a cart event, as webhooks and the feed carry it.
type EventData struct {
	CartID string `json:"cart_id"`
	// Kind is guest or user; User is the user id of a user cart.
	Kind    string `json:"kind"`
	User    string `json:"user,omitempty"`
	Version uint64 `json:"version"`
	// Items is the total quantity; Lines the number of lines.
	Items int `json:"items"`
	Lines int `json:"lines"`
	// Subtotal per currency at the lines' prices.
	Subtotal map[string]int64 `json:"subtotal,omitempty"`
	// UpdatedAt is the cart's last change.
	UpdatedAt time.Time `json:"updated_at,omitzero"`
	// MergedFrom is the guest cart merged into this one (cart.merged).
	MergedFrom string `json:"merged_from,omitempty"`
	// Checkout is the checkout the event is about (checkout.*).
	Checkout *cart.Checkout `json:"checkout,omitempty"`
}

// addEvent appends an event about rec's cart, as it is now, to rec.Events;
// extra fills the type's own fields. Without an outbox it does nothing.
func (s *Server) addEvent(rec *Record, typ string, extra func(*EventData)) {
	if s.events == nil {
		return
	}
	now := s.now()
	d := EventData{CartID: rec.Cart.ID, Kind: rec.Meta.Kind, User: rec.Cart.User, Version: rec.Cart.Version,
		Items: rec.Cart.Items(), Lines: len(rec.Cart.Lines), Subtotal: rec.Cart.Subtotal(), UpdatedAt: rec.Meta.UpdatedAt}
	if len(d.Subtotal) == 0 {
		d.Subtotal = nil
	}
	if extra != nil {
		extra(&d)
	}
	if d.Checkout != nil {
		d.Checkout = d.Checkout.Shown(now)
	}
	data, err := json.Marshal(d)
	if err != nil {
		panic(fmt.Sprintf("syncserver: encode event data: %v", err)) // plain data: cannot fail
	}
	e := Event{ID: newEventID(), Type: typ, CartID: rec.Cart.ID, At: now, Data: data}
	if d.Checkout != nil {
		// A checkout's events come in the order of the cart it was made
		// on, where checkout.created is: a guest's checkout completed on
		// the user cart that took it at login is not delivered before it
		// was created. data still describes the cart it lives in.
		e.CartID = d.Checkout.CartID
	}
	if !s.cfg.Webhooks {
		// Nobody to deliver it to: the feed shows it, and it is pruned
		// after the retention like a delivered one.
		e.State = EventDelivered
	}
	if typ == EventCartUpdated {
		e.Coalesce, e.NextAt = true, now.Add(coalesceWindow)
	}
	rec.Events = append(rec.Events, e)
}

// eventsWritten wakes the deliverer after a commit that wrote events.
func (s *Server) eventsWritten(wrote bool) {
	if wrote && s.events != nil && s.cfg.EventsWritten != nil {
		s.cfg.EventsWritten()
	}
}

// abandonAfter is the idle time after which a cart of kind is abandoned;
// negative for never.
func (s *Server) abandonAfter(kind string) time.Duration {
	if d, ok := s.cfg.AbandonAfter[kind]; ok && d != 0 {
		return d
	}
	return 24 * time.Hour
}

// Abandon writes a cart.abandoned event for every cart with lines, of
// either kind, left unchanged for its abandon time and not in an open
// checkout: one per idle period (a change starts a new one). It returns how
// many it wrote. Without an outbox it does nothing.
func (s *Server) Abandon(ctx context.Context, batch int) (int, error) {
	if s.events == nil {
		return 0, nil
	}
	if batch <= 0 {
		batch = 500
	}
	total := 0
	for _, kind := range []string{KindGuest, KindUser} {
		after := s.abandonAfter(kind)
		if after < 0 {
			continue
		}
		for {
			now := s.now()
			ids, err := s.events.IdleCarts(ctx, kind, now.Add(-after), batch)
			if err != nil {
				return total, fmt.Errorf("list idle %s carts: %w", kind, err)
			}
			marked := 0
			for _, id := range ids {
				// Set by fn, which may run again (a store retrying
				// a failed batch): only its last run counts.
				var did, wrote bool
				err := s.store.Mutate(ctx, id, nil, func(rec *Record) error {
					did, wrote = false, false
					if !rec.Exists || rec.Meta.MergedInto != "" || !rec.Meta.UpdatedAt.Before(now.Add(-after)) ||
						rec.Meta.AbandonedAt.Equal(rec.Meta.UpdatedAt) {
						return errNothingToDo
					}
					if rec.Cart.OpenCheckout(now) {
						// In checkout: looked at again once that ends.
						return errNothingToDo
					}
					rec.Meta.AbandonedAt = rec.Meta.UpdatedAt
					did = true
					if len(rec.Cart.Lines) > 0 {
						s.addEvent(rec, EventCartAbandoned, nil)
						wrote = true
					}
					return nil
				})
				if err != nil && !errors.Is(err, errNothingToDo) && !errors.Is(err, ErrCartExpired) && !errors.Is(err, ErrCartNotFound) {
					return total, fmt.Errorf("abandon cart %s: %w", id, err)
				}
				if err != nil {
					continue // nothing to do, or the cart is gone
				}
				if did {
					marked++
				}
				if wrote {
					total++
				}
			}
			s.eventsWritten(total > 0)
			if len(ids) < batch || marked == 0 {
				break
			}
		}
	}
	return total, nil
}

// errNothingToDo ends a Mutate that found nothing to change, writing
// nothing.
var errNothingToDo = fmt.Errorf("syncserver: nothing to do")

// PruneEvents deletes events delivered, coalesced or dead before
// Config.EventRetention (7 days when zero; negative keeps them), in
// batches of batch, and returns how many. The feed reaches back that far.
// Without webhooks pending events go too: nobody will deliver them (an
// older version, or this one with webhooks on, wrote them pending). With
// events off it prunes what the store has all the same: the purge writes
// cart.expired whatever, and older versions wrote more.
func (s *Server) PruneEvents(ctx context.Context, batch int) (int, error) {
	es := s.events
	if es == nil {
		es, _ = s.store.(EventStore)
	}
	if es == nil || s.cfg.EventRetention < 0 {
		return 0, nil
	}
	keep := s.cfg.EventRetention
	if keep == 0 {
		keep = 7 * 24 * time.Hour
	}
	if batch <= 0 {
		batch = 1000
	}
	cutoff := s.now().Add(-keep)
	total := 0
	for {
		n, err := es.PruneEvents(ctx, cutoff, batch, !s.cfg.Webhooks)
		total += n
		if err != nil {
			return total, fmt.Errorf("prune events: %w", err)
		}
		if n < batch {
			return total, nil
		}
	}
}
