// Package memstore is an in-memory syncserver.Store for unit tests and
// simulations. It keeps nothing across restarts: never use it to serve.
package memstore

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"slices"
	"sync"
	"time"

	"github.com/cartsync/cartsync/shared/cart"
	"github.com/cartsync/cartsync/syncserver"
)

// Store is an in-memory Store, CatalogStore and EventStore. Mutations of
// one cart are serialized; a batch (a Merge is one) holds its carts, taken
// in id order.
type Store struct {
	mu      sync.Mutex
	carts   map[string]*entry
	secrets map[string][]byte
	items   map[string]cart.Item
	outbox  outbox
}

// An entry's lock is held for the whole of a batch (a Mutate, a Merge), or a Purge's
// change of the cart; the other fields change only under both the lock and
// Store.mu, so reading them needs either.
type entry struct {
	lock    chan struct{} // a one-slot semaphore
	cart    []byte        // JSON of *cart.Cart; nil until first commit
	meta    syncserver.Meta
	seqs    map[string]uint64
	log     []syncserver.Change
	first   uint64    // lowest version still in log, or next version if empty
	created time.Time // first commit
	expired time.Time // when Purge expired the cart; zero while it lives
}

var _ syncserver.Store = (*Store)(nil)

// New returns an empty store.
func New() *Store {
	return &Store{
		carts:   map[string]*entry{},
		secrets: map[string][]byte{},
		items:   map[string]cart.Item{},
		outbox:  outbox{ids: map[string]*event{}},
	}
}

func (s *Store) entry(id string) *entry {
	s.mu.Lock()
	defer s.mu.Unlock()
	e := s.carts[id]
	if e == nil {
		e = &entry{seqs: map[string]uint64{}, first: 1, lock: make(chan struct{}, 1)}
		s.carts[id] = e
	}
	return e
}

// acquire takes e's lock, or gives up when ctx ends.
func (e *entry) acquire(ctx context.Context) error {
	select {
	case e.lock <- struct{}{}:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

func (e *entry) release() { <-e.lock }

// record returns the record of e, locked, with the seqs of clients.
func (e *entry) record(id string, clients []string) *syncserver.Record {
	rec := &syncserver.Record{Seqs: map[string]uint64{}, Meta: e.meta, Exists: e.cart != nil}
	if e.cart != nil {
		rec.Cart = decode(e.cart)
	} else {
		rec.Cart = &cart.Cart{ID: id}
	}
	for _, c := range clients {
		rec.Seqs[c] = e.seqs[c]
	}
	return rec
}

// Mutate implements syncserver.Store, as a batch of one
// (syncserver.MutateBatch).
func (s *Store) Mutate(ctx context.Context, id string, clients []string, fn func(*syncserver.Record) error) error {
	return syncserver.MutateBatch(ctx, s, id, clients, fn)
}

// Merge implements syncserver.Store, as a batch of its two carts
// (syncserver.MergeBatch).
func (s *Store) Merge(ctx context.Context, fromID, intoID string, fn func(from, into *syncserver.Record) error) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	return syncserver.MergeBatch(ctx, s, fromID, intoID, fn)
}

// CommitBatch implements syncserver.BatchCommitter: it holds the carts,
// taken in the order given (id order), for the whole batch.
func (s *Store) CommitBatch(ctx context.Context, carts []syncserver.BatchCart, decide func([]syncserver.BatchLoad) ([]syncserver.BatchWrite, error)) error {
	entries := make(map[string]*entry, len(carts))
	loaded := make([]syncserver.BatchLoad, len(carts))
	for i, c := range carts {
		e := s.entry(c.ID)
		if err := e.acquire(ctx); err != nil {
			return err
		}
		defer e.release()
		entries[c.ID] = e
		if !e.expired.IsZero() {
			loaded[i].Err = syncserver.ErrCartExpired
			continue
		}
		clients := c.Clients
		if c.AllClients {
			clients = append(slices.Clone(clients), slices.Collect(maps.Keys(e.seqs))...)
		}
		loaded[i].Rec = e.record(c.ID, clients)
	}
	writes, err := decide(loaded)
	if err != nil {
		return err
	}
	sets := make([]syncserver.WriteSet, len(writes))
	recs := make([]*syncserver.Record, len(writes))
	for i, w := range writes {
		if entries[w.ID] == nil {
			return fmt.Errorf("memstore: batch writes cart %s it did not load", w.ID)
		}
		if sets[i], err = w.Prepare(); err != nil {
			return fmt.Errorf("memstore: cart %s: %w", w.ID, err)
		}
		recs[i] = w.Rec
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if err := s.checkEvents(recs...); err != nil {
		return err
	}
	now := time.Now()
	for i, w := range writes {
		entries[w.ID].write(sets[i], w.Rec)
		s.addEvents(w.ID, w.Rec.Events, now)
	}
	return nil
}

// write commits ws, made from rec (its appended changes are logged as
// they are): the cart and its meta, the seqs, the log and its trim. The
// caller holds e's lock and Store.mu, and adds the events
// (Store.addEvents).
func (e *entry) write(ws syncserver.WriteSet, rec *syncserver.Record) {
	if e.cart == nil {
		e.created = time.Now()
	}
	e.cart, e.meta = ws.State, rec.Meta
	for _, sw := range ws.Seqs {
		e.seqs[sw.Client] = uint64(sw.Seq)
	}
	e.log = append(e.log, rec.Appended...)
	if ws.TrimThrough > 0 {
		e.log = slices.DeleteFunc(e.log, func(ch syncserver.Change) bool { return ch.Version <= uint64(ws.TrimThrough) })
	}
	if len(e.log) > 0 {
		e.first = e.log[0].Version
	} else {
		e.first = rec.Cart.Version + 1
	}
}

// Load implements syncserver.Store.
func (s *Store) Load(ctx context.Context, id string, clients []string) (*syncserver.Record, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	e := s.carts[id]
	if e == nil || e.cart == nil {
		return nil, syncserver.ErrCartNotFound
	}
	if !e.expired.IsZero() {
		return nil, syncserver.ErrCartExpired
	}
	return e.record(id, clients), nil
}

// Changes implements syncserver.Store.
func (s *Store) Changes(ctx context.Context, id string, since uint64, limit int) ([]syncserver.Change, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	e := s.carts[id]
	if e == nil {
		return nil, nil
	}
	if !e.expired.IsZero() {
		return nil, syncserver.ErrCartExpired
	}
	if since+1 < e.first {
		return nil, syncserver.ErrCompacted
	}
	var out []syncserver.Change
	for _, c := range e.log {
		if c.Version > since && len(out) < limit {
			out = append(out, c)
		}
	}
	return out, nil
}

// Purge implements syncserver.Store. A cart whose lock is held (by a
// Mutate, say) is skipped, and left to a later call; a limit below 1 purges
// nothing. Tombstones are stamped with time.Now(), to be compared with
// tombstoneCutoff; only tombstones of the given kind are deleted. Each cart
// expired gets its cart.expired event, stamped with the same time.
func (s *Store) Purge(ctx context.Context, kind string, cutoff, tombstoneCutoff time.Time, limit int, settled bool) ([]string, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	if limit < 1 {
		return nil, nil
	}
	stale := func(e *entry) bool {
		last := e.meta.UpdatedAt
		if last.IsZero() {
			last = e.created
		}
		return e.cart != nil && e.expired.IsZero() && e.meta.Kind == kind && last.Before(cutoff)
	}
	var expired []string
	now := time.Now()
	for _, id := range s.matching(stale) {
		if len(expired) == limit {
			break
		}
		s.withLocked(id, stale, func(e *entry) {
			v := decode(e.cart).Version
			e.cart, _ = json.Marshal(&cart.Cart{ID: id, Version: v})
			e.seqs, e.log, e.first = map[string]uint64{}, nil, v+1
			e.expired = now
			s.addEvents(id, []syncserver.Event{syncserver.ExpiredEvent(id, kind, now, settled)}, now)
			expired = append(expired, id)
		})
	}

	old := func(e *entry) bool {
		return !e.expired.IsZero() && e.meta.Kind == kind && e.expired.Before(tombstoneCutoff)
	}
	deleted := 0
	for _, id := range s.matching(old) {
		if deleted == limit {
			break
		}
		s.withLocked(id, old, func(e *entry) {
			// The entry and its lock stay, so that everyone locks
			// the same one; the cart is as if it had never been.
			e.cart, e.meta, e.seqs, e.log, e.first = nil, syncserver.Meta{}, map[string]uint64{}, nil, 1
			e.created, e.expired = time.Time{}, time.Time{}
			deleted++
		})
	}
	return expired, nil
}

// Revive implements syncserver.Store.
func (s *Store) Revive(ctx context.Context, id, user string, now time.Time) (bool, error) {
	e := s.entry(id)
	if err := e.acquire(ctx); err != nil {
		return false, err
	}
	defer e.release()
	s.mu.Lock()
	defer s.mu.Unlock()
	if e.cart == nil || e.expired.IsZero() || e.meta.Kind != syncserver.KindUser {
		return false, nil
	}
	v := decode(e.cart).Version + 1
	e.cart, _ = json.Marshal(&cart.Cart{ID: id, Version: v, Lines: []*cart.Line{}, Started: v, User: user})
	e.seqs, e.log, e.first = map[string]uint64{}, nil, v+1
	e.expired = time.Time{}
	e.meta.UpdatedAt, e.meta.AbandonedAt = now, time.Time{}
	return true, nil
}

// HasTombstones implements syncserver.TombstoneChecker.
func (s *Store) HasTombstones(ctx context.Context, kind string) (bool, error) {
	return len(s.matching(func(e *entry) bool { return !e.expired.IsZero() && e.meta.Kind == kind })) > 0, ctx.Err()
}

// Erase implements syncserver.Store: a guest cart's entry is as if it had
// never been (the entry and its lock stay, so that everyone locks the same
// one), cartID's an empty cart at the next version; their events leave the
// outbox. It holds every cart it erases, taken in id order as batches take
// them, and looks for merged guest carts again once it holds them: one a
// merge made meanwhile is taken too.
func (s *Store) Erase(ctx context.Context, cartID string) ([]string, error) {
	ours := func(e *entry) bool { return e.cart != nil && e.meta.MergedInto == cartID }
	for {
		if err := ctx.Err(); err != nil {
			return nil, err
		}
		ids := append(s.matching(ours), cartID)
		slices.Sort(ids)
		ids = slices.Compact(ids)
		held := make([]*entry, 0, len(ids))
		release := func() {
			for _, e := range held {
				e.release()
			}
		}
		for _, id := range ids {
			e := s.entry(id)
			if err := e.acquire(ctx); err != nil {
				release()
				return nil, err
			}
			held = append(held, e)
		}
		if slices.ContainsFunc(s.matching(ours), func(id string) bool { return !slices.Contains(ids, id) }) {
			release() // a merge committed meanwhile: take its guest too
			continue
		}
		var erased []string
		s.mu.Lock()
		for i, id := range ids {
			e := held[i]
			switch {
			case e.cart == nil:
			case id == cartID && untouched(decode(e.cart)):
				// Emptied by an erasure and not changed since: a retried
				// call keeps its version (its devices are told again,
				// and those that show it take no notice).
				e.seqs, e.log = map[string]uint64{}, nil
				erased = append(erased, id)
			case id == cartID:
				v := decode(e.cart).Version + 1
				e.cart, _ = json.Marshal(&cart.Cart{ID: cartID, Version: v, Lines: []*cart.Line{}, Started: v, Erased: true})
				e.seqs, e.log, e.first = map[string]uint64{}, nil, v+1
				e.expired = time.Time{}
				e.meta = syncserver.Meta{Kind: e.meta.Kind, UpdatedAt: time.Now()}
				erased = append(erased, id)
			case e.meta.MergedInto == cartID:
				e.cart, e.meta, e.seqs, e.log, e.first = nil, syncserver.Meta{}, map[string]uint64{}, nil, 1
				e.created, e.expired = time.Time{}, time.Time{}
				erased = append(erased, id)
			}
		}
		s.mu.Unlock()
		release()
		s.dropEvents(erased)
		return erased, nil
	}
}

// untouched reports whether c is a cart an erasure emptied and nothing
// changed since.
func untouched(c *cart.Cart) bool { return c.Erased && c.Started == c.Version }

// matching returns the ids of the entries for which ok holds, sorted.
func (s *Store) matching(ok func(*entry) bool) []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	var ids []string
	for id, e := range s.carts {
		if ok(e) {
			ids = append(ids, id)
		}
	}
	slices.Sort(ids)
	return ids
}

// withLocked runs fn on the entry of id, under its lock and Store.mu, if
// its lock is free and ok still holds.
func (s *Store) withLocked(id string, ok func(*entry) bool, fn func(*entry)) {
	e := s.entry(id)
	select {
	case e.lock <- struct{}{}:
	default:
		return
	}
	defer e.release()
	s.mu.Lock()
	defer s.mu.Unlock()
	if ok(e) {
		fn(e)
	}
}

// Secret implements syncserver.Store.
func (s *Store) Secret(ctx context.Context, name string, create []byte) ([]byte, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	if len(create) == 0 {
		return nil, errors.New("memstore: empty secret")
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if v, ok := s.secrets[name]; ok {
		return bytes.Clone(v), nil
	}
	s.secrets[name] = bytes.Clone(create)
	return bytes.Clone(create), nil
}

// Ping implements syncserver.Store.
func (s *Store) Ping(ctx context.Context) error { return ctx.Err() }

// Close implements syncserver.Store.
func (s *Store) Close() error { return nil }

func decode(b []byte) *cart.Cart {
	var c cart.Cart
	if err := json.Unmarshal(b, &c); err != nil {
		panic("memstore: corrupt cart: " + err.Error())
	}
	return &c
}
