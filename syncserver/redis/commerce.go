package redis

import (
	"context"
	"fmt"
	"time"

	"github.com/cartsync/cartsync/shared/cart"
	"github.com/cartsync/cartsync/syncserver"
)

// The catalog and the event outbox pass through to the next Store: Redis
// caches neither. The events a Mutate or Merge writes are written by the
// next Store, in the transaction of the change; a change of the meta alone
// (Meta.AbandonedAt, say) or events alone still make a commit, which the
// cache writes like any other (the version stays, and the write replaces
// an entry at the same version).

var (
	_ syncserver.CatalogStore = (*Cache)(nil)
	_ syncserver.EventStore   = (*Cache)(nil)
)

// catalog returns the next Store as a CatalogStore.
func (c *Cache) catalog() (syncserver.CatalogStore, error) {
	cs, ok := c.next.(syncserver.CatalogStore)
	if !ok {
		return nil, fmt.Errorf("redis cache: the store it wraps (%T) has no catalog", c.next)
	}
	return cs, nil
}

// events returns the next Store as an EventStore.
func (c *Cache) events() (syncserver.EventStore, error) {
	es, ok := c.next.(syncserver.EventStore)
	if !ok {
		return nil, fmt.Errorf("redis cache: the store it wraps (%T) has no event outbox", c.next)
	}
	return es, nil
}

// UpsertItems runs on the next Store.
func (c *Cache) UpsertItems(ctx context.Context, items []cart.Item, at time.Time) error {
	cs, err := c.catalog()
	if err != nil {
		return err
	}
	return cs.UpsertItems(ctx, items, at)
}

// DeleteItems runs on the next Store.
func (c *Cache) DeleteItems(ctx context.Context, skus []string) (int, error) {
	cs, err := c.catalog()
	if err != nil {
		return 0, err
	}
	return cs.DeleteItems(ctx, skus)
}

// Items reads the next Store.
func (c *Cache) Items(ctx context.Context, skus []string) (map[string]cart.Item, error) {
	cs, err := c.catalog()
	if err != nil {
		return nil, err
	}
	return cs.Items(ctx, skus)
}

// ListItems reads the next Store.
func (c *Cache) ListItems(ctx context.Context, after string, limit int) ([]cart.Item, error) {
	cs, err := c.catalog()
	if err != nil {
		return nil, err
	}
	return cs.ListItems(ctx, after, limit)
}

// EventsAfter reads the next Store.
func (c *Cache) EventsAfter(ctx context.Context, cursor string, limit int) ([]syncserver.Event, error) {
	es, err := c.events()
	if err != nil {
		return nil, err
	}
	return es.EventsAfter(ctx, cursor, limit)
}

// ClaimEvents runs on the next Store.
func (c *Cache) ClaimEvents(ctx context.Context, now time.Time, lease time.Duration, limit int) ([]syncserver.Event, error) {
	es, err := c.events()
	if err != nil {
		return nil, err
	}
	return es.ClaimEvents(ctx, now, lease, limit)
}

// EventDelivered runs on the next Store.
func (c *Cache) EventDelivered(ctx context.Context, seq int64, at time.Time) error {
	es, err := c.events()
	if err != nil {
		return err
	}
	return es.EventDelivered(ctx, seq, at)
}

// EventFailed runs on the next Store.
func (c *Cache) EventFailed(ctx context.Context, seq int64, next time.Time, lastErr string, dead bool) error {
	es, err := c.events()
	if err != nil {
		return err
	}
	return es.EventFailed(ctx, seq, next, lastErr, dead)
}

// DeadEvents reads the next Store.
func (c *Cache) DeadEvents(ctx context.Context, after int64, limit int) ([]syncserver.Event, error) {
	es, err := c.events()
	if err != nil {
		return nil, err
	}
	return es.DeadEvents(ctx, after, limit)
}

// RetryEvent runs on the next Store.
func (c *Cache) RetryEvent(ctx context.Context, id string) error {
	es, err := c.events()
	if err != nil {
		return err
	}
	return es.RetryEvent(ctx, id)
}

// EventCounts reads the next Store.
func (c *Cache) EventCounts(ctx context.Context) (map[string]int64, error) {
	es, err := c.events()
	if err != nil {
		return nil, err
	}
	return es.EventCounts(ctx)
}

// PruneEvents runs on the next Store.
func (c *Cache) PruneEvents(ctx context.Context, cutoff time.Time, limit int, pending bool) (int, error) {
	es, err := c.events()
	if err != nil {
		return 0, err
	}
	return es.PruneEvents(ctx, cutoff, limit, pending)
}

// IdleCarts reads the next Store, which holds every cart's meta.
func (c *Cache) IdleCarts(ctx context.Context, kind string, cutoff time.Time, limit int) ([]string, error) {
	es, err := c.events()
	if err != nil {
		return nil, err
	}
	return es.IdleCarts(ctx, kind, cutoff, limit)
}

// Uncached returns the Store the cache reads through. Reads of what
// changes without a new cart version (checkouts, their status) go there:
// the cache keys its entries by version.
func (c *Cache) Uncached() syncserver.Store { return c.next }
