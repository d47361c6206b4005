package syncserver

import (
	"context"
	"sync"
)

// MemBus is the in-process Bus: the default for a single instance.
type MemBus struct {
	mu   sync.RWMutex
	next int
	subs map[string]map[int]func([]byte)
}

var _ Bus = (*MemBus)(nil)

// NewMemBus returns an empty in-process bus.
func NewMemBus() *MemBus { return &MemBus{subs: map[string]map[int]func([]byte){}} }

// Publish calls every subscriber of cartID.
func (b *MemBus) Publish(_ context.Context, cartID string, payload []byte) error {
	b.mu.RLock()
	fns := make([]func([]byte), 0, len(b.subs[cartID]))
	for _, fn := range b.subs[cartID] {
		fns = append(fns, fn)
	}
	b.mu.RUnlock()
	for _, fn := range fns {
		fn(payload)
	}
	return nil
}

// Subscribe registers fn for cartID.
func (b *MemBus) Subscribe(_ context.Context, cartID string, fn func([]byte)) (func(), error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.next++
	id := b.next
	if b.subs[cartID] == nil {
		b.subs[cartID] = map[int]func([]byte){}
	}
	b.subs[cartID][id] = fn
	var once sync.Once
	return func() {
		once.Do(func() {
			b.mu.Lock()
			defer b.mu.Unlock()
			delete(b.subs[cartID], id)
			if len(b.subs[cartID]) == 0 {
				delete(b.subs, cartID)
			}
		})
	}, nil
}

// Ping always succeeds.
func (b *MemBus) Ping(context.Context) error { return nil }

// Close drops every subscription.
func (b *MemBus) Close() error {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.subs = map[string]map[int]func([]byte){}
	return nil
}
