package syncserver

import (
	"context"
	"errors"

	"cartsync/shared/cart"
	"cartsync/shared/protocol"
)

// MergeClient is the client id of the server's own entries in a change log
// (login merges).
const MergeClient = "server:merge"

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
	if policy == cart.PolicyChoose {
		return s.choice(ctx, guestID, id.CartID), nil
	}
	// Every hello of a logged-in device comes here. Most find the guest
	// cart merged already, or never made: tell that from a (cached) read,
	// not from a transaction that locks the user's cart. Merge checks again
	// under its locks, so a race with another login stays one merge.
	if g, err := s.store.Load(ctx, guestID, nil); errors.Is(err, ErrCartNotFound) || errors.Is(err, ErrCartExpired) {
		return nil, nil
	} else if err == nil && g.Meta.MergedInto != "" {
		info := &protocol.MergeInfo{Status: protocol.MergeAlready}
		if u, _, err := s.snapshot(ctx, id.CartID, nil); err == nil {
			info.Version = u.Version
		}
		return info, nil
	}
	var info *protocol.MergeInfo
	var out *outcome
	now := s.now()
	err := s.store.Merge(ctx, guestID, id.CartID, func(guest, user *Record) error {
		info, out = nil, nil
		if guest.Meta.MergedInto != "" {
			info = &protocol.MergeInfo{Status: protocol.MergeAlready, Version: user.Cart.Version}
			return errNoChange
		}
		if !user.Exists {
			user.Meta.Kind = KindUser
		}
		before := user.Cart.Version
		res, err := user.Cart.Merge(guest.Cart, policy, id.Device, s.lim)
		if err != nil {
			return err
		}
		for c, q := range guest.Seqs {
			if q > user.Seqs[c] {
				user.Seqs[c] = q
			}
		}
		guest.Meta.MergedInto = id.CartID
		guest.Meta.UpdatedAt = now
		if user.Cart.Version > before {
			user.Meta.UpdatedAt = now
			op := cart.Op{Client: MergeClient, Seq: user.Cart.Version, Kind: cart.KindMerge, Cart: guestID}
			user.Appended = append(user.Appended, Change{Version: user.Cart.Version, Op: op, Warnings: res.Warnings, At: now})
			out = &outcome{from: before, by: []protocol.OpID{{Client: op.Client, Seq: op.Seq}}, cart: user.Cart.Public()}
		}
		if len(guest.Cart.Lines) > 0 {
			info = &protocol.MergeInfo{Status: protocol.MergeMerged, Result: &res, Version: user.Cart.Version}
		}
		return nil
	})
	switch {
	case errors.Is(err, errNoChange):
		return info, nil
	case errors.Is(err, ErrCartNotFound), errors.Is(err, ErrCartExpired):
		return nil, nil // no guest cart: nothing to merge
	case err != nil:
		s.log.Error("login merge", "guest", guestID, "user", id.CartID, "err", err)
		return s.choice(ctx, guestID, id.CartID), nil
	}
	return info, out
}

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
