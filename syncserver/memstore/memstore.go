// Package memstore is an in-memory syncserver.Store for unit tests and
// simulations. It keeps nothing across restarts: never use it to serve.
package memstore

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"sync"

	"cartsync/shared/cart"
	"cartsync/syncserver"
)

// Store is an in-memory Store. Mutations of one cart are serialized.
type Store struct {
	mu      sync.Mutex
	carts   map[string]*entry
	secrets map[string][]byte
}

type entry struct {
	lock  chan struct{} // a one-slot semaphore held for the whole of a Mutate
	cart  []byte        // JSON of *cart.Cart; nil until first commit
	meta  syncserver.Meta
	seqs  map[string]uint64
	log   []syncserver.Change
	first uint64 // lowest version still in log, or next version if empty
}

var _ syncserver.Store = (*Store)(nil)

// New returns an empty store.
func New() *Store {
	return &Store{carts: map[string]*entry{}, secrets: map[string][]byte{}}
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

// Mutate implements syncserver.Store.
func (s *Store) Mutate(ctx context.Context, id string, clients []string, fn func(*syncserver.Record) error) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	e := s.entry(id)
	select {
	case e.lock <- struct{}{}:
	case <-ctx.Done():
		return ctx.Err()
	}
	defer func() { <-e.lock }()
	rec := &syncserver.Record{Seqs: map[string]uint64{}, Meta: e.meta, Exists: e.cart != nil}
	if e.cart != nil {
		rec.Cart = decode(e.cart)
	} else {
		rec.Cart = &cart.Cart{ID: id}
	}
	for _, c := range clients {
		rec.Seqs[c] = e.seqs[c]
	}
	if err := fn(rec); err != nil {
		return err
	}
	if rec.Cart == nil {
		return errors.New("memstore: mutate left no cart")
	}
	b, err := json.Marshal(rec.Cart)
	if err != nil {
		return err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	e.cart, e.meta = b, rec.Meta
	for c, q := range rec.Seqs {
		e.seqs[c] = q
	}
	e.log = append(e.log, rec.Appended...)
	if n := len(e.log) - syncserver.LogKeep; n > 0 {
		e.log = append([]syncserver.Change(nil), e.log[n:]...)
	}
	if len(e.log) > 0 {
		e.first = e.log[0].Version
	} else {
		e.first = rec.Cart.Version + 1
	}
	return nil
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
	rec := &syncserver.Record{Cart: decode(e.cart), Meta: e.meta, Exists: true, Seqs: map[string]uint64{}}
	for _, c := range clients {
		rec.Seqs[c] = e.seqs[c]
	}
	return rec, nil
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
