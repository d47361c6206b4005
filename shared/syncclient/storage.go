package syncclient

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"slices"
	"sync"

	"github.com/cartsync/cartsync/shared/cart"
	"github.com/cartsync/cartsync/shared/protocol"
)

// Storage persists what the engine must not lose: the device token, the last
// confirmed cart and the outbox of pending operations. Implementations must
// be safe for concurrent use; several engines may share one.
type Storage interface {
	// Load returns everything stored, read in one transaction so that the
	// confirmed cart and the outbox agree.
	Load(ctx context.Context) (Stored, error)

	// SwapDeviceToken stores next if the stored token is old ("" for
	// none), in one transaction, and returns the stored token after the
	// call: next, or the one another engine stored first. Tabs that start
	// at once without a token thus agree on one (and one cart), and a tab
	// that forgets a refused token cannot forget a newer one.
	SwapDeviceToken(ctx context.Context, old, next string) (string, error)

	// Enqueue allocates the next seq for client (1 for a client never seen,
	// never reused, never skipped), calls build with it and stores the op
	// it returns, all in one transaction. The op must carry that client and
	// seq. build must not call the Storage. Enqueue returns the stored op.
	// The outbox keeps each op after every op the Storage had returned
	// (by Load or Enqueue) before it was stored, across client ids: after
	// every op its maker could have shown. That is the order ops must
	// reach the server in (a tab's clear made after another tab's add
	// must not land before it). MemStorage keeps the order of Enqueue.
	Enqueue(ctx context.Context, client string, build func(seq uint64) cart.Op) (cart.Op, error)

	// Confirm, in one transaction, stores c as the confirmed cart and
	// removes the ops listed in done from the outbox. c may be nil (only
	// remove ops). A c with the same id as the stored cart and a lower
	// version is not stored; one with the same version replaces it (the
	// server sends the same version again with new notices and totals);
	// a c with another id replaces the stored cart. The cart is stored
	// whole, its Notices and Totals included. Ids not in the outbox are
	// ignored.
	Confirm(ctx context.Context, c *cart.Cart, done []protocol.OpID) error
	// Restamp, in one transaction, moves every pending op made on cart from
	// (op.Cart) to cart to, with Base 0, keeping its client and seq: a guest
	// cart merged into a user cart at a login hands its unsent ops to that
	// user cart. It is idempotent.
	Restamp(ctx context.Context, from, to string) error
	// Reissue, in one transaction, gives the pending ops of client id from
	// with a seq above expected a new identity: client id to and its next
	// seqs (as Enqueue allocates them), in outbox order, each keeping its
	// place in the outbox and all else. It returns them as stored now. It
	// is for a gap the server cannot see filled: it expects seq expected
	// of from next, and the outbox no longer has that op (the server's
	// database was restored from a backup older than ops it had
	// acknowledged, or ops were lost from the outbox), so it would refuse
	// every later op of from. If the outbox has op expected of from after
	// all, Reissue changes nothing and returns no ops. Ops of from below
	// expected were processed and stay as they are. to must be a client id
	// the Storage has given no op yet.
	Reissue(ctx context.Context, from string, expected uint64, to string) ([]cart.Op, error)
}

// Stored is the content of a Storage.
type Stored struct {
	// DeviceToken is the token the server issued, or "".
	DeviceToken string
	// Cart is the last confirmed cart, or nil.
	Cart *cart.Cart
	// Pending is the outbox of every client id, in the order Enqueue
	// describes (so each client id's ops in seq order).
	Pending []cart.Op
}

// ErrBadOp is returned by Enqueue when build returns an op whose client or
// seq is not the one allocated.
var ErrBadOp = errors.New("syncclient: op does not carry the allocated client and seq")

// ErrUsedClient is returned by Reissue when the client id to reissue ops
// under already has ops.
var ErrUsedClient = errors.New("syncclient: the client id already has ops")

// MemStorage is an in-memory Storage, safe for concurrent use. The zero
// value is empty and ready to use.
type MemStorage struct {
	mu    sync.Mutex
	token string
	cart  *cart.Cart
	ops   []cart.Op
	seqs  map[string]uint64
}

var _ Storage = (*MemStorage)(nil)

// NewMemStorage returns an empty MemStorage.
func NewMemStorage() *MemStorage { return &MemStorage{} }

// Load implements Storage.
func (s *MemStorage) Load(ctx context.Context) (Stored, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := Stored{DeviceToken: s.token, Cart: cloneCart(s.cart)}
	if len(s.ops) > 0 {
		out.Pending = make([]cart.Op, len(s.ops))
		for i, op := range s.ops {
			out.Pending[i] = cloneOp(op)
		}
	}
	return out, nil
}

// SwapDeviceToken implements Storage.
func (s *MemStorage) SwapDeviceToken(ctx context.Context, old, next string) (string, error) {
	if err := ctx.Err(); err != nil {
		return "", err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.token == old {
		s.token = next
	}
	return s.token, nil
}

// Enqueue implements Storage.
func (s *MemStorage) Enqueue(ctx context.Context, client string, build func(seq uint64) cart.Op) (cart.Op, error) {
	if err := ctx.Err(); err != nil {
		return cart.Op{}, err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	seq := s.seqs[client] + 1
	op := cloneOp(build(seq))
	if op.Client != client || op.Seq != seq {
		return cart.Op{}, fmt.Errorf("enqueue %s/%d: %w", client, seq, ErrBadOp)
	}
	if s.seqs == nil {
		s.seqs = map[string]uint64{}
	}
	s.seqs[client] = seq
	s.ops = append(s.ops, op)
	return cloneOp(op), nil
}

// Confirm implements Storage.
func (s *MemStorage) Confirm(ctx context.Context, c *cart.Cart, done []protocol.OpID) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if replacesStored(s.cart, c) {
		s.cart = cloneCart(c)
	}
	s.ops = withoutDone(s.ops, done)
	return nil
}

// replacesStored reports whether Storage.Confirm stores c over stored (nil
// for none): a cart is stored unless it is an older version of the stored
// one.
func replacesStored(stored, c *cart.Cart) bool {
	return c != nil && (stored == nil || stored.ID != c.ID || c.Version >= stored.Version)
}

// withoutDone returns ops without those listed in done, as a new slice
// when it drops any: callers may share ops.
func withoutDone(ops []cart.Op, done []protocol.OpID) []cart.Op {
	if len(done) == 0 {
		return ops
	}
	drop := make(map[protocol.OpID]bool, len(done))
	for _, id := range done {
		drop[id] = true
	}
	return slices.DeleteFunc(slices.Clone(ops), func(op cart.Op) bool { return drop[opID(op)] })
}

// Restamp implements Storage.
func (s *MemStorage) Restamp(ctx context.Context, from, to string) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	for i := range s.ops {
		if s.ops[i].Cart == from {
			s.ops[i].Cart, s.ops[i].Base = to, 0
		}
	}
	return nil
}

// Reissue implements Storage.
func (s *MemStorage) Reissue(ctx context.Context, from string, expected uint64, to string) ([]cart.Op, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.seqs[to] != 0 || to == from {
		return nil, fmt.Errorf("reissue %s as %s: %w", from, to, ErrUsedClient)
	}
	if slices.ContainsFunc(s.ops, func(op cart.Op) bool { return op.Client == from && op.Seq == expected }) {
		return nil, nil
	}
	var out []cart.Op
	for i := range s.ops {
		if op := &s.ops[i]; op.Client == from && op.Seq > expected {
			if s.seqs == nil {
				s.seqs = map[string]uint64{}
			}
			s.seqs[to]++
			op.Client, op.Seq = to, s.seqs[to]
			out = append(out, cloneOp(*op))
		}
	}
	return out, nil
}

// cloneCart returns a deep copy of c with its notices and totals, which
// cart.Cart.Clone leaves out.
func cloneCart(c *cart.Cart) *cart.Cart {
	if c == nil {
		return nil
	}
	out := c.Clone()
	out.Totals = maps.Clone(c.Totals)
	for _, n := range c.Notices {
		if n.PriceChanged != nil {
			pc := *n.PriceChanged
			n.PriceChanged = &pc
		}
		if n.Available != nil {
			a := *n.Available
			n.Available = &a
		}
		out.Notices = append(out.Notices, n)
	}
	return out
}

// cloneOp returns a deep copy of op.
func cloneOp(op cart.Op) cart.Op {
	if op.Options != nil {
		m := make(map[string]string, len(op.Options))
		for k, v := range op.Options {
			m[k] = v
		}
		op.Options = m
	}
	if op.Details != nil {
		d := *op.Details
		op.Details = &d
	}
	return op
}

func opID(op cart.Op) protocol.OpID { return protocol.OpID{Client: op.Client, Seq: op.Seq} }
