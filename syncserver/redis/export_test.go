package redis

import (
	"context"

	"cartsync/syncserver"
)

// Put writes rec to the cache the way Load and Mutate do, so tests can play
// a slow writer.
func (c *Cache) Put(ctx context.Context, cartID string, rec *syncserver.Record) {
	c.put(ctx, cartID, rec)
}
