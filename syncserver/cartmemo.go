package syncserver

import (
	"sync"

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
type CartMemo struct {
	mu  sync.Mutex
	max int
	m   map[string]memoEntry // guarded by mu
}

type memoEntry struct {
	stamp string
	cart  *cart.Cart
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
	if _, ok := m.m[id]; !ok && len(m.m) >= m.max {
		for k := range m.m { // any one: the map's order is random
			delete(m.m, k)
			break
		}
	}
	m.m[id] = memoEntry{stamp: stamp, cart: c}
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
