package widget

import (
	"context"
	"sync"

	"github.com/cartsync/cartsync/shared/cart"
	"github.com/cartsync/cartsync/shared/protocol"
	"github.com/cartsync/cartsync/shared/syncclient"
)

// maxRemembered bounds how many ops an opIndex remembers.
const maxRemembered = 512

// opRef is what the widget remembers of a queued op: enough to name the
// item when the server refuses it.
type opRef struct {
	sku  string
	key  string
	name string // from the op's details, if any
}

// opIndex remembers the ops seen in the outbox by id, because the engine's
// rejections carry only the op id and the op is gone from the outbox by
// then. It is safe for concurrent use.
type opIndex struct {
	mu    sync.Mutex
	refs  map[protocol.OpID]opRef
	order []protocol.OpID // oldest first, for eviction
	// names are the names of the lines shown, by line key: an op made in
	// the panel (+, −) carries no details, and is named by its line's
	// name once that line is gone (an expired cart's).
	names map[string]string
}

// noteNames remembers the names of c's lines, for the ops on them.
func (x *opIndex) noteNames(c *cart.Cart) {
	if c == nil {
		return
	}
	x.mu.Lock()
	defer x.mu.Unlock()
	if x.names == nil || len(x.names) > maxRemembered {
		x.names = make(map[string]string)
	}
	for _, l := range c.Lines {
		if l.Details.Name != "" {
			x.names[l.Key] = l.Details.Name
		}
	}
}

func (x *opIndex) remember(ops ...cart.Op) {
	x.mu.Lock()
	defer x.mu.Unlock()
	if x.refs == nil {
		x.refs = make(map[protocol.OpID]opRef)
	}
	for _, op := range ops {
		id := protocol.OpID{Client: op.Client, Seq: op.Seq}
		if _, ok := x.refs[id]; ok || op.Kind == cart.KindClear {
			continue
		}
		ref := opRef{sku: op.SKU, key: op.Key()}
		if op.Details != nil {
			ref.name = op.Details.Name
		}
		if ref.name == "" {
			ref.name = x.names[ref.key]
		}
		x.refs[id] = ref
		x.order = append(x.order, id)
	}
	for len(x.order) > maxRemembered {
		delete(x.refs, x.order[0])
		x.order = x.order[1:]
	}
}

func (x *opIndex) lookup(id protocol.OpID) (opRef, bool) {
	x.mu.Lock()
	defer x.mu.Unlock()
	ref, ok := x.refs[id]
	if ok && ref.name == "" {
		// Remembered before its line was shown (the outbox read at a
		// reload comes before the first cart): named by it since.
		ref.name = x.names[ref.key]
	}
	return ref, ok
}

// recordingStorage is a Storage that remembers in an opIndex every op it
// stores or loads (the outbox holds the other tabs' ops too).
type recordingStorage struct {
	syncclient.Storage
	ops *opIndex
}

func (s recordingStorage) Load(ctx context.Context) (syncclient.Stored, error) {
	st, err := s.Storage.Load(ctx)
	if err == nil {
		s.ops.remember(st.Pending...)
	}
	return st, err
}

func (s recordingStorage) Reissue(ctx context.Context, from string, expected uint64, to string) ([]cart.Op, error) {
	ops, err := s.Storage.Reissue(ctx, from, expected, to)
	if err == nil {
		s.ops.remember(ops...)
	}
	return ops, err
}

func (s recordingStorage) Enqueue(ctx context.Context, client string, build func(seq uint64) cart.Op) (cart.Op, error) {
	op, err := s.Storage.Enqueue(ctx, client, build)
	if err == nil {
		s.ops.remember(op)
	}
	return op, err
}
