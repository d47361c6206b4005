package syncserver

import (
	"fmt"
	"time"

	"github.com/cartsync/cartsync/shared/cart"
	"github.com/cartsync/cartsync/shared/protocol"
)

// outcome is what reconciling one batch produced.
type outcome struct {
	results []protocol.Result
	from    uint64          // version before the batch
	by      []protocol.OpID // applied ops, one per new version
	cart    *cart.Cart      // public cart after the batch
	stop    *protocol.Error // out_of_order: the batch stopped here
}

// reconcile applies a batch of operations from one device to rec, in order,
// as the rules in SYNC-NOTES say: a seq already seen is a duplicate and
// changes nothing; a seq past the next expected one stops the batch (the
// client resends from the expected seq); otherwise the op is applied or
// rejected, and either way its seq is recorded so it never blocks the ops
// behind it.
//
// Two exceptions bound what a cart records for client ids (see
// docs/semantics.md, "Client ids per cart"). A client id new to the cart
// gets a seq recorded only once one of its ops is applied: rejected ops of
// an unknown client id cannot block anything (an unknown id may start at
// any seq), so pushes that change nothing leave nothing behind. And a cart
// records at most lim.MaxClients client ids: past that, ops of a new client
// id are rejected with too_many_clients. Client ids are never forgotten,
// so a duplicate of an applied op is always recognized.
//
// authorize, when not nil, holds each op to the storefront's catalog before
// it is applied (cart.Authorize): it may change the op (details, a clamped
// quantity) with warnings, or reject it.
func reconcile(rec *Record, by func(cart.Op) cart.Device, ops []cart.Op, lim cart.Limits, now time.Time, authorize func(*cart.Cart, cart.Op) (cart.Op, []cart.Warning, *cart.Error)) *outcome {
	out := &outcome{from: rec.Cart.Version, results: []protocol.Result{}}
	if rec.Seqs == nil {
		rec.Seqs = map[string]uint64{}
	}
	maxClients := lim.MaxClients
	if maxClients <= 0 {
		maxClients = cart.DefaultLimits.MaxClients
	}
	// fresh holds the client ids the cart had no seq for before this
	// batch, true once one of their ops was applied.
	fresh := map[string]bool{}
	for _, op := range ops {
		if rec.Seqs[op.Client] == 0 {
			fresh[op.Client] = false
		}
	}
	reject := func(op cart.Op, err *cart.Error) {
		out.results = append(out.results, protocol.Result{
			Client: op.Client, Seq: op.Seq, Status: protocol.StatusRejected, Version: rec.Cart.Version, Error: err,
		})
	}
	for _, op := range ops {
		if err := op.ValidateIdentity(); err != nil {
			// Without a valid identity the op has no seq to record.
			reject(op, err)
			continue
		}
		last, known := rec.Seqs[op.Client]
		if !known || last == 0 {
			// A client id this cart has never seen starts where it
			// is: its earlier ops went to another cart (before a
			// login, or while a login had expired).
			last = op.Seq - 1
		}
		switch {
		case op.Seq <= last:
			out.results = append(out.results, protocol.Result{
				Client: op.Client, Seq: op.Seq, Status: protocol.StatusDuplicate, Version: rec.Cart.Version,
			})
			continue
		case op.Seq > last+1:
			out.stop = protocol.Errorf(protocol.ErrOutOfOrder, "client %s: expected seq %d, got %d", op.Client, last+1, op.Seq)
			out.stop.Expected = &protocol.OpID{Client: op.Client, Seq: last + 1}
		}
		if out.stop != nil {
			break
		}
		rec.Seqs[op.Client] = op.Seq
		applied, isFresh := fresh[op.Client]
		newClient := isFresh && !applied
		if newClient && rec.Cart.Clients >= maxClients {
			reject(op, &cart.Error{Code: cart.CodeTooManyClients, Message: fmt.Sprintf(
				"this cart takes edits from at most %d client ids, and this one is new", maxClients)})
			continue
		}
		// Validated as sent, before normalizing: two option keys that
		// normalize to one ("Size" and "size") are refused, not merged
		// with a random winner. Apply normalizes the op; the log keeps
		// what was applied.
		if err := op.Validate(lim); err != nil {
			reject(op, err)
			continue
		}
		op = op.Normalized()
		var held []cart.Warning
		if authorize != nil {
			var err *cart.Error
			if op, held, err = authorize(rec.Cart, op); err != nil {
				reject(op, err)
				continue
			}
		}
		device := by(op)
		if device.ID == StorefrontDevice && op.Base == 0 {
			// The storefront's op without a base acts on the cart as it
			// is: its remove of a withdrawn item removes every shopper's
			// contribution, not none (a base of 0 has seen none).
			op.Base = rec.Cart.Version
		}
		warns, err := rec.Cart.ApplyAs(op, device, lim)
		if err != nil {
			reject(op, err)
			continue
		}
		warns = append(held, warns...)
		if newClient {
			fresh[op.Client] = true
			rec.Cart.Clients++
		}
		out.results = append(out.results, protocol.Result{
			Client: op.Client, Seq: op.Seq, Status: protocol.StatusApplied, Version: rec.Cart.Version, Warnings: warns,
		})
		out.by = append(out.by, protocol.OpID{Client: op.Client, Seq: op.Seq})
		rec.Appended = append(rec.Appended, Change{Version: rec.Cart.Version, Op: op, Warnings: warns, At: now})
	}
	// Unknown client ids none of whose ops was applied leave no seq.
	for c, applied := range fresh {
		if !applied {
			delete(rec.Seqs, c)
		}
	}
	if len(out.by) > 0 {
		rec.Meta.UpdatedAt = now
	}
	out.cart = rec.Cart.Public()
	return out
}

// opClients lists the distinct client ids of a batch, in first-seen order.
func opClients(ops []cart.Op) []string {
	var out []string
	seen := map[string]bool{}
	for _, op := range ops {
		if !seen[op.Client] {
			seen[op.Client] = true
			out = append(out, op.Client)
		}
	}
	return out
}
