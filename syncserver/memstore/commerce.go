package memstore

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"slices"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/cartsync/cartsync/shared/cart"
	"github.com/cartsync/cartsync/syncserver"
)

// The catalog and the event outbox (syncserver.CatalogStore and
// syncserver.EventStore), guarded by Store.mu.

var (
	_ syncserver.CatalogStore = (*Store)(nil)
	_ syncserver.EventStore   = (*Store)(nil)
)

// event is an event of the outbox with the delivery state the interface
// does not show.
type event struct {
	syncserver.Event
	leaseUntil  time.Time // zero: not leased
	deliveredAt time.Time
}

// outbox holds the events, in seq order. Seqs start at 1 and are never
// handed out twice; PruneEvents deletes events, so an event's index in
// events is not its seq: search for it.
type outbox struct {
	events []*event
	ids    map[string]*event
	// low is an index before which no event is pending, where
	// ClaimEvents starts looking.
	low int
	// last is the last seq handed out.
	last int64
}

// after returns the index of the first event with a seq greater than seq.
func (o *outbox) after(seq int64) int {
	return sort.Search(len(o.events), func(i int) bool { return o.events[i].Seq > seq })
}

// UpsertItems implements syncserver.CatalogStore. An item with an empty
// SKU fails the call, storing nothing.
func (s *Store) UpsertItems(ctx context.Context, items []cart.Item, at time.Time) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	for i := range items {
		if items[i].SKU == "" {
			return fmt.Errorf("memstore: upsert items: item %d has no SKU", i)
		}
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, it := range items {
		it = cloneItem(it)
		it.UpdatedAt = at
		s.items[it.SKU] = it
	}
	return nil
}

// DeleteItems implements syncserver.CatalogStore.
func (s *Store) DeleteItems(ctx context.Context, skus []string) (int, error) {
	if err := ctx.Err(); err != nil {
		return 0, err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	n := 0
	for _, sku := range skus {
		if _, ok := s.items[sku]; ok {
			delete(s.items, sku)
			n++
		}
	}
	return n, nil
}

// Items implements syncserver.CatalogStore.
func (s *Store) Items(ctx context.Context, skus []string) (map[string]cart.Item, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make(map[string]cart.Item, len(skus))
	for _, sku := range skus {
		if it, ok := s.items[sku]; ok {
			out[sku] = cloneItem(it)
		}
	}
	return out, nil
}

// ListItems implements syncserver.CatalogStore.
func (s *Store) ListItems(ctx context.Context, after string, limit int) ([]cart.Item, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	var skus []string
	for sku := range s.items {
		if sku > after {
			skus = append(skus, sku)
		}
	}
	slices.Sort(skus)
	var out []cart.Item
	for _, sku := range skus[:min(max(limit, 0), len(skus))] {
		out = append(out, cloneItem(s.items[sku]))
	}
	return out, nil
}

func cloneItem(it cart.Item) cart.Item {
	if it.Stock != nil {
		n := *it.Stock
		it.Stock = &n
	}
	if it.MaxPerOrder != nil {
		n := *it.MaxPerOrder
		it.MaxPerOrder = &n
	}
	return it
}

// checkEvents reports whether the events of recs, the records of the carts
// ids, can be added: each has an id no other event has and valid JSON
// data. The caller holds Store.mu.
func (s *Store) checkEvents(recs ...*syncserver.Record) error {
	seen := map[string]bool{}
	for _, rec := range recs {
		for _, ev := range rec.Events {
			switch {
			case ev.ID == "":
				return fmt.Errorf("memstore: event %s of cart %s has no id", ev.Type, ev.CartID)
			case seen[ev.ID] || s.outbox.ids[ev.ID] != nil:
				return fmt.Errorf("memstore: event id %s used twice", ev.ID)
			case len(ev.Data) > 0 && !json.Valid(ev.Data):
				return fmt.Errorf("memstore: event %s: data is not JSON", ev.ID)
			}
			seen[ev.ID] = true
		}
	}
	return nil
}

// addEvents appends evs to the outbox as pending, for cartID unless an
// event names its cart, each coalescing first as its Coalesce asks. The
// caller holds Store.mu and has checked the events.
func (s *Store) addEvents(cartID string, evs []syncserver.Event, now time.Time) {
	o := &s.outbox
	for _, ev := range evs {
		if ev.CartID == "" {
			ev.CartID = cartID
		}
		var due time.Time // the earliest NextAt among the replaced events
		if ev.Coalesce {
			for _, old := range o.events[o.low:] {
				if old.CartID == ev.CartID && old.Type == ev.Type && old.State == syncserver.EventPending &&
					old.Attempts == 0 && !old.leaseUntil.After(now) {
					old.State = syncserver.EventCoalesced
					if due.IsZero() || old.NextAt.Before(due) {
						due = old.NextAt
					}
				}
			}
		}
		o.last++
		ev.Seq = o.last
		ev.Cursor = strconv.FormatInt(ev.Seq, 10)
		ev.Data = bytes.Clone(ev.Data)
		if len(ev.Data) == 0 {
			ev.Data = json.RawMessage("null")
		}
		if ev.State != syncserver.EventDelivered { // delivered: a server without webhooks
			ev.State = syncserver.EventPending
		}
		ev.Attempts, ev.LastError, ev.TriedSince = 0, "", time.Time{}
		if ev.NextAt.IsZero() {
			ev.NextAt = ev.At
		}
		if ev.NextAt.IsZero() {
			ev.NextAt = now
		}
		if !due.IsZero() && due.Before(ev.NextAt) {
			// A cart edited without pause still gets its event out:
			// the replacement is due when the first it replaced was.
			ev.NextAt = due
		}
		e := &event{Event: ev}
		o.events = append(o.events, e)
		o.ids[ev.ID] = e
	}
}

// view returns a copy of e for a caller.
func (e *event) view() syncserver.Event {
	ev := e.Event
	ev.Data = bytes.Clone(ev.Data)
	return ev
}

// EventsAfter implements syncserver.EventStore. The cursor is the seq, in
// decimal; one past the last seq handed out is ErrBadCursor.
func (s *Store) EventsAfter(ctx context.Context, cursor string, limit int) ([]syncserver.Event, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	var after int64
	if cursor != "" {
		n, err := strconv.ParseInt(cursor, 10, 64)
		if err != nil || strings.TrimLeft(cursor, "0123456789") != "" {
			return nil, fmt.Errorf("memstore: events after %q: %w (a seq in decimal)", cursor, syncserver.ErrBadCursor)
		}
		after = n
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if after > s.outbox.last {
		return nil, fmt.Errorf("memstore: events after %q: %w (past the last event, %d)", cursor, syncserver.ErrBadCursor, s.outbox.last)
	}
	var out []syncserver.Event
	for i := s.outbox.after(after); i < len(s.outbox.events) && len(out) < limit; i++ {
		if e := s.outbox.events[i]; e.State != syncserver.EventCoalesced {
			out = append(out, e.view())
		}
	}
	return out, nil
}

// ClaimEvents implements syncserver.EventStore. Every event's failed
// attempts follow a claim that set its TriedSince.
func (s *Store) ClaimEvents(ctx context.Context, now time.Time, lease time.Duration, limit int) ([]syncserver.Event, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	o := &s.outbox
	for o.low < len(o.events) && o.events[o.low].State != syncserver.EventPending {
		o.low++
	}
	var out []syncserver.Event
	headed := map[string]bool{} // carts with an earlier pending event
	for _, e := range o.events[o.low:] {
		if len(out) >= limit {
			break
		}
		if e.State != syncserver.EventPending || headed[e.CartID] {
			continue
		}
		headed[e.CartID] = true
		if e.NextAt.After(now) || e.leaseUntil.After(now) {
			continue
		}
		e.leaseUntil = now.Add(lease)
		if e.Attempts == 0 {
			e.TriedSince = now // a new series of attempts
		}
		out = append(out, e.view())
	}
	return out, nil
}

// find returns the event with seq, or nil. The caller holds Store.mu.
func (s *Store) find(seq int64) *event {
	o := &s.outbox
	if i := o.after(seq - 1); i < len(o.events) && o.events[i].Seq == seq {
		return o.events[i]
	}
	return nil
}

// EventDelivered implements syncserver.EventStore. An event no longer
// pending (delivered through another lease, say) is left as it is.
func (s *Store) EventDelivered(ctx context.Context, seq int64, at time.Time) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	e := s.find(seq)
	if e == nil {
		return fmt.Errorf("memstore: event %d delivered: %w", seq, syncserver.ErrEventNotFound)
	}
	if e.State == syncserver.EventPending {
		e.State, e.deliveredAt, e.leaseUntil = syncserver.EventDelivered, at, time.Time{}
	}
	return nil
}

// EventFailed implements syncserver.EventStore. An event no longer pending
// is left as it is.
func (s *Store) EventFailed(ctx context.Context, seq int64, next time.Time, lastErr string, dead bool) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	e := s.find(seq)
	if e == nil {
		return fmt.Errorf("memstore: event %d failed: %w", seq, syncserver.ErrEventNotFound)
	}
	if e.State != syncserver.EventPending {
		return nil
	}
	e.Attempts++
	e.LastError, e.NextAt, e.leaseUntil = lastErr, next, time.Time{}
	if dead {
		e.State = syncserver.EventDead
	}
	return nil
}

// DeadEvents implements syncserver.EventStore.
func (s *Store) DeadEvents(ctx context.Context, after int64, limit int) ([]syncserver.Event, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []syncserver.Event
	for i := s.outbox.after(after); i < len(s.outbox.events) && len(out) < limit; i++ {
		if e := s.outbox.events[i]; e.State == syncserver.EventDead {
			out = append(out, e.view())
		}
	}
	return out, nil
}

// RetryEvent implements syncserver.EventStore. The event keeps its last
// error.
func (s *Store) RetryEvent(ctx context.Context, id string) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	e := s.outbox.ids[id]
	if e == nil || e.State != syncserver.EventDead {
		return fmt.Errorf("memstore: retry event %s: %w", id, syncserver.ErrEventNotFound)
	}
	e.State, e.Attempts, e.NextAt, e.leaseUntil = syncserver.EventPending, 0, time.Now(), time.Time{}
	e.TriedSince = time.Time{} // the next claim starts a new series
	s.outbox.low = min(s.outbox.low, s.outbox.after(e.Seq-1))
	return nil
}

// EventCounts implements syncserver.EventStore. Every state is counted,
// at 0 if no event is in it.
func (s *Store) EventCounts(ctx context.Context) (map[string]int64, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	counts := zeroCounts()
	for _, e := range s.outbox.events {
		counts[e.State]++
	}
	return counts, nil
}

// PruneEvents implements syncserver.EventStore. A limit below 1 deletes
// nothing. A pruned event's id may be used again.
func (s *Store) PruneEvents(ctx context.Context, cutoff time.Time, limit int, pending bool) (int, error) {
	if err := ctx.Err(); err != nil || limit < 1 {
		return 0, err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	o := &s.outbox
	n, low := 0, o.low
	kept := o.events[:0] // compacted in place, in seq order
	for i, e := range o.events {
		if n == limit {
			kept = append(kept, o.events[i:]...)
			break
		}
		if (e.State == syncserver.EventPending && !pending) || !e.At.Before(cutoff) ||
			(e.State == syncserver.EventDead && !e.TriedSince.IsZero() && !e.TriedSince.Before(cutoff)) {
			kept = append(kept, e)
			continue
		}
		delete(o.ids, e.ID)
		n++
		if i < o.low {
			low-- // no event before low was pending, nor is one now
		}
	}
	clear(o.events[len(kept):])
	o.events, o.low = kept, low
	return n, nil
}

// dropEvents deletes the events of the carts ids from the outbox.
func (s *Store) dropEvents(ids []string) {
	if len(ids) == 0 {
		return
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	o := &s.outbox
	low := o.low
	kept := o.events[:0] // compacted in place, in seq order
	for i, e := range o.events {
		if !slices.Contains(ids, e.CartID) {
			kept = append(kept, e)
			continue
		}
		delete(o.ids, e.ID)
		if i < o.low {
			low-- // no event before low was pending, nor is one now
		}
	}
	clear(o.events[len(kept):])
	o.events, o.low = kept, low
}

func zeroCounts() map[string]int64 {
	return map[string]int64{
		syncserver.EventPending: 0, syncserver.EventDelivered: 0,
		syncserver.EventDead: 0, syncserver.EventCoalesced: 0,
	}
}

// IdleCarts implements syncserver.EventStore. A cart without an UpdatedAt
// is never idle.
func (s *Store) IdleCarts(ctx context.Context, kind string, cutoff time.Time, limit int) ([]string, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	idle := func(e *entry) bool {
		m := e.meta
		return e.cart != nil && e.expired.IsZero() && m.Kind == kind && m.MergedInto == "" &&
			!m.UpdatedAt.IsZero() && m.UpdatedAt.Before(cutoff) && !m.AbandonedAt.Equal(m.UpdatedAt)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	type found struct {
		id string
		at time.Time
	}
	var all []found
	for id, e := range s.carts {
		if idle(e) {
			all = append(all, found{id, e.meta.UpdatedAt})
		}
	}
	slices.SortFunc(all, func(a, b found) int {
		if c := a.at.Compare(b.at); c != 0 {
			return c
		}
		return strings.Compare(a.id, b.id)
	})
	var ids []string
	for _, f := range all[:min(max(limit, 0), len(all))] {
		ids = append(ids, f.id)
	}
	return ids, nil
}
