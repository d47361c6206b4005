package syncserver

import (
	"context"
	"encoding/json"
	"slices"
	"sync"
	"time"

	"cartsync/shared/cart"
	"cartsync/shared/protocol"
)

// catalogChannel is the bus channel on which an instance that changed the
// catalog names the changed SKUs to every instance. Cart ids never start
// with an underscore.
const catalogChannel = "_catalog"

// catalogTTL bounds how long an instance trusts a cached catalog item: the
// bus delivers at most once, so a missed change notice is repaired by then.
const catalogTTL = 30 * time.Second

// catalog is the storefront's catalog as the server uses it: a cache of the
// CatalogStore by SKU (unknown SKUs cached too), dropped for the SKUs any
// instance changes.
type catalog struct {
	store CatalogStore // nil: the store keeps no catalog
	now   func() time.Time

	mu    sync.Mutex
	items map[string]catalogEntry
}

type catalogEntry struct {
	item *cart.Item // nil: the catalog does not know the SKU
	at   time.Time
}

func newCatalog(st Store, now func() time.Time) *catalog {
	cs, _ := st.(CatalogStore)
	return &catalog{store: cs, now: now, items: map[string]catalogEntry{}}
}

// lookup returns the catalog's items among skus, by SKU.
func (c *catalog) lookup(ctx context.Context, skus []string) (map[string]cart.Item, error) {
	if c.store == nil || len(skus) == 0 {
		return nil, nil
	}
	now := c.now()
	out := map[string]cart.Item{}
	var miss []string
	c.mu.Lock()
	for _, sku := range skus {
		e, ok := c.items[sku]
		switch {
		case !ok || now.Sub(e.at) > catalogTTL:
			miss = append(miss, sku)
		case e.item != nil:
			out[sku] = *e.item
		}
	}
	c.mu.Unlock()
	if len(miss) == 0 {
		return out, nil
	}
	slices.Sort(miss)
	miss = slices.Compact(miss)
	got, err := c.store.Items(ctx, miss)
	if err != nil {
		return nil, err
	}
	c.mu.Lock()
	for _, sku := range miss {
		if it, ok := got[sku]; ok {
			c.items[sku] = catalogEntry{item: &it, at: now}
			out[sku] = it
		} else {
			c.items[sku] = catalogEntry{at: now}
		}
	}
	c.mu.Unlock()
	return out, nil
}

// forget drops the cached items of skus.
func (c *catalog) forget(skus []string) {
	c.mu.Lock()
	for _, sku := range skus {
		delete(c.items, sku)
	}
	c.mu.Unlock()
}

// cartSKUs lists the SKUs of a cart's lines.
func cartSKUs(c *cart.Cart) []string {
	out := make([]string, 0, len(c.Lines))
	for _, l := range c.Lines {
		out = append(out, l.SKU)
	}
	return out
}

// annotate sets c's notices and totals from the catalog (a public cart
// about to be sent). A catalog that cannot be read leaves them unset: the
// cart is still right, only not annotated.
func (s *Server) annotate(ctx context.Context, c *cart.Cart) {
	if c == nil || s.catalog.store == nil {
		return
	}
	items, err := s.catalog.lookup(ctx, cartSKUs(c))
	if err != nil {
		s.log.Warn("catalog lookup", "cart", c.ID, "err", err)
		return
	}
	c.Notices = cart.Notices(c, items)
	c.Totals = cart.Totals(c, items)
}

// catalogChanged is called on every instance when the catalog changed for
// skus: it drops them from the cache and sends every local connection on
// a cart that holds one of them the cart with its new notices and totals,
// at the same version (From = Cart.Version, no By).
func (s *Server) catalogChanged(skus []string) {
	s.catalog.forget(skus)
	changed := map[string]bool{}
	for _, sku := range skus {
		changed[sku] = true
	}
	s.hub.mu.Lock()
	carts := make([]string, 0, len(s.hub.carts))
	for id := range s.hub.carts {
		carts = append(carts, id)
	}
	s.hub.mu.Unlock()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	for _, id := range carts {
		c, _, err := s.snapshot(ctx, id, nil)
		if err != nil {
			continue
		}
		if !slices.ContainsFunc(c.Lines, func(l *cart.Line) bool { return changed[l.SKU] }) {
			continue
		}
		msg, err := protocol.Encode(&protocol.Message{Type: protocol.TypeCart, Cart: c, From: c.Version})
		if err != nil {
			continue
		}
		s.hub.deliver(id, msg)
	}
}

// watchCatalog subscribes to the catalog channel for the server's life.
func (s *Server) watchCatalog(ctx context.Context) error {
	if s.catalog.store == nil {
		return nil
	}
	cancel, err := s.bus.Subscribe(ctx, catalogChannel, func(p []byte) {
		var skus []string
		if json.Unmarshal(p, &skus) == nil {
			go s.catalogChanged(skus)
		}
	})
	if err != nil {
		return err
	}
	s.stopCatalog = cancel
	return nil
}

// announceCatalog tells every instance, this one included, that skus
// changed.
func (s *Server) announceCatalog(ctx context.Context, skus []string) {
	b, _ := json.Marshal(skus)
	if err := s.bus.Publish(ctx, catalogChannel, b); err != nil {
		// The others repair within catalogTTL; this one now.
		s.log.Warn("announce catalog change", "err", err)
		go s.catalogChanged(skus)
	}
}
