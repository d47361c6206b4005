package syncserver

// Carts past their retention: the purge, telling the devices connected to
// them, and a user's cart starting over.

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"time"

	"github.com/cartsync/cartsync/shared/logkey"
	"github.com/cartsync/cartsync/shared/protocol"
)

// Purge expires carts past their retention, in batches of batch, until none
// is left or ctx ends: guest carts GuestRetention after their last change,
// user carts UserRetention after theirs (never, when zero). An expired cart
// leaves a tombstone, so that a device coming back is told its cart
// expired: a guest cart's is deleted about two retention periods after it
// expired, a user cart's is kept until its user comes back. It is
// resumable and idempotent, and never touches a cart changed within its
// window. It returns how many carts it
// expired.
func (s *Server) Purge(ctx context.Context, batch int) (int, error) {
	if batch <= 0 {
		batch = 500
	}
	now := s.now()
	total := 0
	for _, k := range []struct {
		kind string
		keep time.Duration
	}{{KindGuest, s.cfg.GuestRetention}, {KindUser, s.cfg.UserRetention}} {
		if k.keep <= 0 {
			continue
		}
		cutoff := now.Add(-k.keep)
		tombs := cutoff.Add(-k.keep)
		if k.kind == KindUser {
			// Kept: a user cart made anew under its user's id would
			// start again at version 1, and the versions a device of the
			// user still holds would name other contents.
			tombs = time.Time{}
		}
		for {
			ids, err := s.store.Purge(ctx, k.kind, cutoff, tombs, batch, !s.cfg.Webhooks)
			total += len(ids)
			s.tellGone(ctx, goneNotice{IDs: ids})
			if err != nil {
				return total, fmt.Errorf("purge %s carts: %w", k.kind, err)
			}
			if len(ids) < batch {
				break
			}
		}
	}
	if total > 0 {
		s.log.Info("purged expired carts", logkey.Count, total)
	}
	return total, nil
}

// goneChannel is the bus channel on which an instance that expired or
// erased carts names them to every instance, a batch in one message (a
// message per cart would flood the bus's queue in a large purge, and push
// out live updates). Cart ids never start with an underscore.
const goneChannel = "_gone"

// goneNotice names carts that are gone: expired, or erased at the
// storefront's request.
type goneNotice struct {
	IDs    []string `json:"ids"`
	Erased bool     `json:"erased,omitempty"`
}

// tellGone tells the devices connected to the carts of n, on every
// instance, that they are gone: the error a request on one would be
// answered (cart_expired), without a request's id. A device's next hello
// then finds its fresh cart (a guest's, under a new device token) or starts
// the user's over; without it, a device left open showed the gone cart's
// lines until its next edit was refused.
func (s *Server) tellGone(ctx context.Context, n goneNotice) {
	if len(n.IDs) == 0 {
		return
	}
	b, err := json.Marshal(n)
	if err == nil {
		err = s.bus.Publish(ctx, goneChannel, b)
	}
	if err != nil {
		// The others' devices learn it at their next request.
		s.log.Warn("tell the devices of gone carts", logkey.Carts, len(n.IDs), logkey.Err, err)
		s.goneHere(n)
	}
}

// goneHere tells this instance's connections on the carts of n.
func (s *Server) goneHere(n goneNotice) {
	for _, id := range n.IDs {
		if !s.hub.has(id) {
			continue
		}
		e := errCartExpired(id)
		if n.Erased {
			e = errCartErased(id)
		}
		if msg, err := protocol.Encode(&protocol.Message{Type: protocol.TypeError, Error: e}); err == nil {
			s.hub.tellGone(id, msg)
		}
	}
}

// watchGone subscribes to the gone channel until Shutdown.
func (s *Server) watchGone(ctx context.Context) error {
	cancel, err := s.bus.Subscribe(ctx, goneChannel, func(p []byte) {
		var n goneNotice
		if json.Unmarshal(p, &n) == nil {
			s.goneHere(n)
		}
	})
	if err != nil {
		return err
	}
	s.stopGone = cancel
	return nil
}

// EraseResponse answers DELETE /v1/backend/users/{user}/cart: the carts
// deleted, the user's and the guest carts merged into it (none when the
// server held none).
type EraseResponse struct {
	Erased []string `json:"erased"`
}

// serveEraseUser forgets a user, at the storefront's request: the guest
// carts merged into the user's cart go, and the user's is emptied (Store.Erase),
// with their checkouts, change logs and events. The devices connected to
// one are told it is gone (as cart_expired).
func (s *Server) serveEraseUser(w http.ResponseWriter, r *http.Request) {
	id, perr := s.backendIdentity(r)
	if perr != nil {
		s.httpError(w, perr)
		return
	}
	ids, err := s.store.Erase(r.Context(), id.CartID)
	if err != nil {
		s.httpFail(w, "erase the user's carts", id.CartID, err)
		return
	}
	s.tellGone(r.Context(), goneNotice{IDs: ids, Erased: true})
	s.log.Info("erased a user's carts", logkey.Carts, len(ids))
	writeJSON(w, http.StatusOK, EraseResponse{Erased: append([]string{}, ids...)})
}

// reviveUser gives the user of id, whose cart expired (under
// UserRetention), a new, empty cart under the same id, and reports whether
// it did: the one connection or request of that user that revived it tells
// them. A user cart's id is its user's, so the tombstone would otherwise
// refuse the user every edit until the purge deleted it, two retention
// periods later. Only the user's own requests revive their cart (never the
// storefront's). It reads the cart (from the cache) when user carts may
// have expired: with user retention on, or when the store kept a user
// tombstone at the start (retention on once, and turned off since: no
// purge deletes user tombstones). Otherwise it reads nothing.
func (s *Server) reviveUser(ctx context.Context, id Identity) bool {
	if !s.userTombs.Load() {
		return false
	}
	cartID := id.CartID
	if _, err := s.store.Load(ctx, cartID, nil); !errors.Is(err, ErrCartExpired) {
		return false
	}
	ok, err := s.store.Revive(ctx, cartID, id.User, s.now())
	if err != nil {
		s.log.Error("start an expired user cart over", logkey.Cart, cartID, logkey.Err, err)
		return false
	}
	if ok {
		s.log.Info("an expired user cart started over", logkey.Cart, cartID)
		// The user's devices still connected show the old lines: push
		// them the new cart, after the tombstone's version. One that
		// does not take it syncs at its next message.
		if c, _, err := s.snapshot(ctx, cartID, nil); err == nil && c.Version > 0 {
			msg, err := protocol.Encode(&protocol.Message{Type: protocol.TypeCart, Cart: c, From: c.Version - 1})
			if err == nil {
				err = s.bus.Publish(ctx, cartID, msg)
			}
			if err != nil {
				s.log.Warn("publish a user cart started over", logkey.Cart, cartID, logkey.Err, err)
			}
		}
	}
	return ok
}
