package syncserver

import (
	"time"

	"cartsync/shared/cart"
	"cartsync/shared/protocol"
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
func reconcile(rec *Record, device string, ops []cart.Op, lim cart.Limits, now time.Time) *outcome {
	out := &outcome{from: rec.Cart.Version, results: []protocol.Result{}}
	if rec.Seqs == nil {
		rec.Seqs = map[string]uint64{}
	}
	for _, op := range ops {
		if err := op.ValidateIdentity(); err != nil {
			// Without a valid identity the op has no seq to record.
			out.results = append(out.results, protocol.Result{
				Client: op.Client, Seq: op.Seq, Status: protocol.StatusRejected, Version: rec.Cart.Version, Error: err,
			})
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
		warns, err := rec.Cart.Apply(op, device, lim)
		if err != nil {
			out.results = append(out.results, protocol.Result{
				Client: op.Client, Seq: op.Seq, Status: protocol.StatusRejected, Version: rec.Cart.Version, Error: err,
			})
			continue
		}
		out.results = append(out.results, protocol.Result{
			Client: op.Client, Seq: op.Seq, Status: protocol.StatusApplied, Version: rec.Cart.Version, Warnings: warns,
		})
		out.by = append(out.by, protocol.OpID{Client: op.Client, Seq: op.Seq})
		rec.Appended = append(rec.Appended, Change{Version: rec.Cart.Version, Op: op, Warnings: warns, At: now})
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
