package syncserver

import (
	"maps"
	"sync"
	"time"

	"github.com/cartsync/cartsync/shared/cart"
)

// CartMemo keeps the carts a store last wrote, decoded, so that a batch
// that locks a cart whose stored row has not changed since takes the cart
// from memory instead of reading and decoding its JSON again (on a busy
// cart, the largest cost of a batch). A stamp says which row an entry was
// made from: each store picks one that changes with every write of the
// row (Postgres: a random write_id a trigger sets on every write; SQLite:
// the version, with every other write of this process forgetting the cart
// and a write by another process, seen by PRAGMA data_version, clearing
// the memo).
//
// An entry made by PutRecord holds the row's meta and the seqs of the
// clients the store wrote or read with it as well: a store may then
// decide a batch on the entry's record alone and write it on the condition
// that the row still carries the stamp (Postgres: one round trip instead
// of two; see Take).
type CartMemo struct {
	mu  sync.Mutex
	max int
	m   map[string]memoEntry // guarded by mu
}

type memoEntry struct {
	stamp string
	cart  *cart.Cart
	// Set by PutRecord only: the row's meta, and the last seqs of the
	// clients known (nil: none known, the entry has no record).
	meta Meta
	seqs map[string]uint64
	// taken: a batch is deciding on this record (Take), until Release
	// or a new entry.
	taken bool
}

// NewCartMemo returns a memo of at most max carts.
func NewCartMemo(max int) *CartMemo {
	return &CartMemo{max: max, m: make(map[string]memoEntry)}
}

// Lookup returns the cart's entry: the stamp of the row it was made from
// ("" if there is none) and the cart, which is shared: callers clone it
// before changing it.
func (m *CartMemo) Lookup(id string) (stamp string, c *cart.Cart) {
	m.mu.Lock()
	defer m.mu.Unlock()
	e := m.m[id]
	return e.stamp, e.cart
}

// Put records a copy of c as the cart of the row with the given stamp.
func (m *CartMemo) Put(id, stamp string, c *cart.Cart) {
	c = c.Clone()
	m.mu.Lock()
	defer m.mu.Unlock()
	m.put(id, memoEntry{stamp: stamp, cart: c})
}

// put sets id's entry, dropping another one if the memo is full. m.mu must
// be held.
func (m *CartMemo) put(id string, e memoEntry) {
	if _, ok := m.m[id]; !ok && len(m.m) >= m.max {
		for k := range m.m { // any one: the map's order is random
			delete(m.m, k)
			break
		}
	}
	m.m[id] = e
}

// PutRecord is Put for a record that was written as the row with the
// given stamp: the entry keeps the record's meta and seqs too. When the
// entry is the record of the row of stamp from (the row the batch read or
// checked before writing it), the seqs it knew of other clients are kept;
// otherwise only rec's. Times are kept as the store keeps them: UTC, to the
// millisecond.
func (m *CartMemo) PutRecord(id, from, stamp string, rec *Record) {
	m.putRecord(id, from, stamp, rec, false)
}

// Advance is PutRecord for a write decided on the entry of stamp from
// (Take): it puts nothing if the entry is no longer that one, since what
// replaced it was written after (the row was locked from the check to the
// commit of the write).
func (m *CartMemo) Advance(id, from, stamp string, rec *Record) {
	m.putRecord(id, from, stamp, rec, true)
}

func (m *CartMemo) putRecord(id, from, stamp string, rec *Record, advance bool) {
	c := rec.Cart.Clone()
	meta := rec.Meta
	meta.UpdatedAt, meta.AbandonedAt = storedTime(meta.UpdatedAt), storedTime(meta.AbandonedAt)
	m.mu.Lock()
	defer m.mu.Unlock()
	old, ok := m.m[id]
	chained := ok && from != "" && old.stamp == from
	if advance && !chained {
		return
	}
	seqs := make(map[string]uint64, len(rec.Seqs)+len(old.seqs))
	if chained {
		maps.Copy(seqs, old.seqs)
	}
	maps.Copy(seqs, rec.Seqs)
	m.put(id, memoEntry{stamp: stamp, cart: c, meta: meta, seqs: seqs})
}

// Take returns the record of the cart's entry with the seqs of clients,
// and the stamp of the row it was made from, if the entry was made by
// PutRecord, knows the seq of every one of clients and is not taken; and
// marks it taken until Release or a new entry (PutRecord, Put), so that
// while one batch writes the cart from its record, another one on the same
// cart locks the row and reads it instead of deciding on a record about
// to be stale. The record is as a store would load it under lock if the
// row still carried the stamp; its cart is shared (callers clone it before
// changing it).
func (m *CartMemo) Take(id string, clients []string) (stamp string, rec *Record, ok bool) {
	m.mu.Lock()
	defer m.mu.Unlock()
	e, found := m.m[id]
	if !found || e.seqs == nil || e.taken {
		return "", nil, false
	}
	seqs := make(map[string]uint64, len(clients))
	for _, c := range clients {
		seq, known := e.seqs[c]
		if !known {
			return "", nil, false
		}
		seqs[c] = seq
	}
	e.taken = true
	m.m[id] = e
	return e.stamp, &Record{Cart: e.cart, Meta: e.meta, Exists: true, Seqs: seqs}, true
}

// Release ends a Take of the entry of stamp, if it is still the cart's
// entry.
func (m *CartMemo) Release(id, stamp string) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if e, ok := m.m[id]; ok && e.stamp == stamp && e.taken {
		e.taken = false
		m.m[id] = e
	}
}

// storedTime is t as a store keeps it: UTC, to the millisecond.
func storedTime(t time.Time) time.Time {
	if t.IsZero() {
		return time.Time{}
	}
	return t.Truncate(time.Millisecond).UTC()
}

// Clear drops every entry.
func (m *CartMemo) Clear() {
	m.mu.Lock()
	defer m.mu.Unlock()
	clear(m.m)
}

// Forget drops the entries of ids.
func (m *CartMemo) Forget(ids ...string) {
	m.mu.Lock()
	defer m.mu.Unlock()
	for _, id := range ids {
		delete(m.m, id)
	}
}
