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

// MergeClient is the client id of the server's own entries in a change log
// (login merges).
const MergeClient = protocol.MergeClient

// login meets the device's guest cart with the user's cart at login, under
// policy (the server default when empty). It is one logged, atomic and
// idempotent operation: both carts are locked, the guest cart is marked
// merged (a tombstone, its lines kept), the guest cart's per-client seqs
// are carried over so that its ops replayed against the user cart are
// duplicates, and a second login with the same guest cart changes nothing.
// It returns what to tell the client (nil when there was nothing to merge)
// and the outcome to publish (nil when the user cart did not change). A
// merge that fails does not fail the login: the shopper is asked to choose.
func (s *Server) login(ctx context.Context, id Identity, policy cart.Policy) (*protocol.MergeInfo, *outcome) {
	if policy == "" {
		policy = s.cfg.DefaultPolicy
	}
	guestID := GuestCartID(id.Device)
	// Every hello of a logged-in device comes here. Most find the guest
	// cart merged already: tell that from a (cached) read, not from a
	// transaction that locks the user's cart. Merge checks again under its
	// locks, so a race with another login stays one merge.
	g, err := s.store.Load(ctx, guestID, nil)
	switch {
	case errors.Is(err, ErrCartExpired):
		return nil, nil
	case errors.Is(err, ErrCartNotFound):
		// Nothing reached the server yet, but edits made on the guest
		// cart may still be on their way (made offline, or while this
		// login was in flight): bind the guest cart to this user cart so
		// that they follow it here.
		switch err := s.bindGuest(ctx, guestID, id.CartID); {
		case err == nil:
			return nil, nil
		case !errors.Is(err, errGuestHasLines):
			s.log.Error("login bind", logkey.Guest, guestID, logkey.User, id.CartID, logkey.Err, err)
			return nil, nil
		}
		// Edits arrived in between: merge them below.
	case err == nil && g.Meta.MergedInto != "":
		info := &protocol.MergeInfo{Status: protocol.MergeAlready}
		if u, _, err := s.snapshot(ctx, id.CartID, nil); err == nil {
			info.Version = u.Version
		}
		return info, nil
	case err == nil && policy == cart.PolicyChoose && len(g.Cart.Lines) > 0:
		return s.choice(ctx, guestID, id.CartID), nil
	}
	var info *protocol.MergeInfo
	var out *outcome
	now := s.now()
	err = s.store.Merge(ctx, guestID, id.CartID, func(guest, user *Record) error {
		var err error
		info, out, err = s.mergeGuest(guest, user, guestID, id, policy, now)
		return err
	})
	if err == nil && out != nil {
		s.eventsWritten(true)
		s.annotate(ctx, out.cart)
	}
	switch {
	case errors.Is(err, errNoChange):
		return info, nil
	case errors.Is(err, ErrCartNotFound), errors.Is(err, ErrCartExpired):
		return nil, nil // no guest cart: nothing to merge
	case errors.Is(err, errChoose):
		return s.choice(ctx, guestID, id.CartID), nil
	case err != nil:
		s.log.Error("login merge", logkey.Guest, guestID, logkey.User, id.CartID, logkey.Err, err)
		return s.choice(ctx, guestID, id.CartID), nil
	}
	return info, out
}

// mergeGuest merges the guest cart guestID into the user cart of id, both locked
// (Store.Merge): the guest cart becomes a tombstone pointing at the user
// cart, the user cart takes its clients' seqs and, under policy, its lines.
// errNoChange says it was merged already; errChoose that lines arrived that
// the shopper must choose about.
func (s *Server) mergeGuest(guest, user *Record, guestID string, id Identity, policy cart.Policy, now time.Time) (info *protocol.MergeInfo, out *outcome, err error) {
	if guest.Meta.MergedInto != "" {
		return &protocol.MergeInfo{Status: protocol.MergeAlready, Version: user.Cart.Version}, nil, errNoChange
	}
	guest.Meta.MergedInto = id.CartID
	guest.Meta.UpdatedAt = now
	for c, q := range guest.Seqs {
		if q > user.Seqs[c] {
			if user.Seqs[c] == 0 {
				// A client id new to the user cart: counted
				// against its cap (never refused: dropping it
				// would apply its replays twice).
				user.Cart.Clients++
			}
			user.Seqs[c] = q
		}
	}
	if len(guest.Cart.Lines) == 0 {
		// An empty guest cart changes no policy's result: a device
		// that once had a cart and cleared it neither empties the
		// account's cart (replace) nor asks to choose.
		return nil, nil, nil
	}
	if policy == cart.PolicyChoose {
		return nil, nil, errChoose // lines arrived since the read above
	}
	if !user.Exists {
		user.Meta.Kind = KindUser
	}
	if user.Cart.User == "" {
		user.Cart.User = id.User
	}
	before := user.Cart.Version
	res, err := user.Cart.Merge(guest.Cart, policy, id.Device, s.lim)
	if err != nil {
		return nil, nil, err
	}
	// A checkout made as a guest is completed on the user cart, which
	// now holds its lines; with keep it did not take them, and the
	// checkout stays with the guest cart's (completing it there takes
	// nothing from the user's own lines).
	if policy != cart.PolicyKeep {
		user.Cart.AdoptCheckouts(guest.Cart, now)
	}
	if user.Cart.Version > before {
		user.Meta.UpdatedAt = now
		op := cart.Op{Client: MergeClient, Seq: user.Cart.Version, Kind: cart.KindMerge, Cart: guestID}
		user.Appended = append(user.Appended, Change{Version: user.Cart.Version, Op: op, Warnings: res.Warnings, At: now})
		out = &outcome{from: before, by: []protocol.OpID{{Client: op.Client, Seq: op.Seq}}, cart: user.Cart.Public()}
		if before == 0 {
			s.addEvent(user, EventCartCreated, nil)
		}
		s.addEvent(user, EventCartMerged, func(d *EventData) { d.MergedFrom = guestID })
	}
	return &protocol.MergeInfo{Status: protocol.MergeMerged, Result: &res, Version: user.Cart.Version}, out, nil
}

// bindGuest marks a guest cart that does not exist yet as merged into the
// user cart userID (an empty tombstone), so that edits made on it and sent
// after the login follow it there. It returns errGuestHasLines if the guest
// cart got lines in the meantime (the caller merges them instead).
func (s *Server) bindGuest(ctx context.Context, guestID, userID string) error {
	now := s.now()
	err := s.store.Mutate(ctx, guestID, nil, func(rec *Record) error {
		switch {
		case rec.Meta.MergedInto != "":
			return errNoChange
		case len(rec.Cart.Lines) > 0:
			return errGuestHasLines
		}
		rec.Meta.Kind = KindGuest
		rec.Meta.MergedInto = userID
		rec.Meta.UpdatedAt = now
		return nil
	})
	if errors.Is(err, errNoChange) {
		return nil
	}
	return err
}

// followGuest checks that ops made on the guest cart guestID may be applied
// to the user cart userID: the guest cart was merged into it at login, or
// never reached the server (then it is bound to userID now, as at login).
// A guest cart waiting for the shopper's choice answers a retryable error,
// so that its ops are kept and sent once the choice is made. One merged
// into another user's cart is not this connection's to follow (guestFor
// leaves it out of the welcome). An expired one answers cart_expired, as
// at a guest hello: the client drops its ops and says so, instead of
// resending a refused batch for ever. (Its ops cannot follow it: the
// expired record no longer says whose cart it was merged into.)
func (s *Server) followGuest(ctx context.Context, guestID, userID string) error {
	for range 3 {
		g, err := s.store.Load(ctx, guestID, nil)
		if err == nil && g.Meta.MergedInto != "" && g.Meta.MergedInto != userID {
			break
		}
		switch {
		case err == nil && g.Meta.MergedInto == userID:
			return nil
		case err == nil && g.Meta.MergedInto == "":
			e := protocol.Errorf(protocol.ErrOverloaded, "the login merge of the guest cart is not finished; retry")
			e.RetryAfterMS = 1000
			return e
		case errors.Is(err, ErrCartNotFound):
			if err := s.bindGuest(ctx, guestID, userID); err != nil && !errors.Is(err, errGuestHasLines) {
				return fmt.Errorf("bind guest cart %s: %w", guestID, err)
			}
			continue // read again: bound, or lines arrived
		case errors.Is(err, ErrCartExpired):
			return errCartExpired(guestID)
		case err != nil:
			return fmt.Errorf("load guest cart %s: %w", guestID, err)
		}
		break
	}
	return protocol.Errorf(protocol.ErrInvalid, "ops were made on a guest cart that was merged into another user's cart")
}

// guestFor is the welcome's guest_cart_id for a user connection of id: the
// device's guest cart, whose ops the connection takes (followGuest), or ""
// when a login of another user took it, so that a client keeps those ops
// for that user instead of sending them here to be refused. A read that
// fails names the guest cart; followGuest checks again.
func (s *Server) guestFor(ctx context.Context, id Identity) string {
	guestID := GuestCartID(id.Device)
	g, err := s.store.Load(ctx, guestID, nil)
	if err == nil && g.Meta.MergedInto != "" && g.Meta.MergedInto != id.CartID {
		return ""
	}
	return guestID
}

// Reasons a login's store transaction ends without writing.
var (
	// errGuestHasLines: a guest cart to bind got lines; merge it instead.
	errGuestHasLines = errors.New("syncserver: guest cart has lines")
	// errChoose: the guest cart got lines; the shopper must choose.
	errChoose = errors.New("syncserver: shopper must choose")
)

// errNoChange ends a Merge that has nothing to write.
var errNoChange = errors.New("syncserver: no change")

// choice shows both carts for the shopper to choose; nil when the guest
// cart is empty, gone or merged already.
func (s *Server) choice(ctx context.Context, guestID, userID string) *protocol.MergeInfo {
	g, err := s.store.Load(ctx, guestID, nil)
	if err != nil || g.Meta.MergedInto != "" || len(g.Cart.Lines) == 0 {
		return nil
	}
	u, _, err := s.snapshot(ctx, userID, nil)
	if err != nil {
		u = &cart.Cart{ID: userID, Lines: []*cart.Line{}}
	}
	return &protocol.MergeInfo{Status: protocol.MergeChoose, Guest: g.Cart.Public(), User: u, Version: u.Version}
}
