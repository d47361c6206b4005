package syncserver

import (
	"context"
	"encoding/json"
	"slices"
	"sync"
	"time"

	"github.com/cartsync/cartsync/shared/cart"
	"github.com/cartsync/cartsync/shared/logkey"
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
	// gen counts forgets: a read that began before one does not fill the
	// cache (it may hold what the change replaced).
	gen uint64
}

// maxCatalogCache bounds the cached entries: unknown SKUs are cached too,
// and anyone can ask for any SKU.
const maxCatalogCache = 100_000

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
	return c.read(ctx, skus, false)
}

// read returns the catalog's items among skus, by SKU, from the cache
// unless fresh (past it: another instance's change whose notice has not
// arrived yet is seen), filling it with what it reads from the store.
func (c *catalog) read(ctx context.Context, skus []string, fresh bool) (map[string]cart.Item, error) {
	if c.store == nil || len(skus) == 0 {
		return nil, nil
	}
	now := c.now()
	out := map[string]cart.Item{}
	var miss []string
	c.mu.Lock()
	gen := c.gen
	for _, sku := range skus {
		e, ok := c.items[sku]
		switch {
		case fresh || !ok || now.Sub(e.at) > catalogTTL:
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
	defer c.mu.Unlock()
	fill := c.gen == gen
	if fill && len(c.items)+len(miss) > maxCatalogCache {
		for sku, e := range c.items {
			if now.Sub(e.at) > catalogTTL {
				delete(c.items, sku)
			}
		}
		if len(c.items)+len(miss) > maxCatalogCache {
			clear(c.items)
		}
	}
	for _, sku := range miss {
		it, ok := got[sku]
		if ok {
			out[sku] = it
		}
		if !fill {
			continue
		}
		if ok {
			c.items[sku] = catalogEntry{item: &it, at: now}
		} else {
			c.items[sku] = catalogEntry{at: now}
		}
	}
	return out, nil
}

// forget drops the cached items of skus.
func (c *catalog) forget(skus []string) {
	c.mu.Lock()
	c.gen++
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

// cartItems returns the catalog's items for c's lines, from the cache
// unless fresh. On a catalog-only server a line whose SKU the catalog does
// not know (deleted since it was added) counts as withdrawn: it gets the
// unavailable notice, no total, and blocks a checkout like any withdrawn
// item.
func (s *Server) cartItems(ctx context.Context, c *cart.Cart, fresh bool) (map[string]cart.Item, error) {
	items, err := s.catalog.read(ctx, cartSKUs(c), fresh)
	if err != nil || !s.cfg.CatalogOnly || s.catalog.store == nil {
		return items, err
	}
	if items == nil {
		items = map[string]cart.Item{}
	}
	for _, l := range c.Lines {
		if _, ok := items[l.SKU]; !ok {
			items[l.SKU] = cart.Item{SKU: l.SKU, Name: l.Details.Name, Sellable: false}
		}
	}
	return items, nil
}

// annotate sets c's notices and totals from the catalog (a public cart
// about to be sent). A catalog that cannot be read leaves them unset: the
// cart is still right, only not annotated.
func (s *Server) annotate(ctx context.Context, c *cart.Cart) {
	if c == nil || s.catalog.store == nil {
		return
	}
	items, err := s.cartItems(ctx, c, false)
	if err != nil {
		s.log.Warn("catalog lookup", logkey.Cart, c.ID, logkey.Err, err)
		return
	}
	c.Notices = cart.Notices(c, items)
	c.Totals = cart.Totals(c, items)
}

// catalogChanged is called on every instance when the catalog changed for
// skus: it drops them from the cache and has the notifier send every local
// connection on a cart that holds one of them the cart with its new
// notices and totals.
func (s *Server) catalogChanged(skus []string) {
	s.catalog.forget(skus)
	select {
	case s.catalogNews <- skus:
	default:
		// The notifier is behind: the carts it has yet to look at
		// get the notices on their next change or reconnect, and
		// every read in between is annotated afresh.
		s.log.Warn("catalog notices: queue full; skipped a change", logkey.SKUs, len(skus))
	}
}

// notifyCatalog runs for the server's life: for each catalog change it
// sends every local connection on a cart that holds a changed SKU the cart
// at the same version (From = Cart.Version, no By) with new notices.
func (s *Server) notifyCatalog(ctx context.Context) {
	for {
		var skus []string
		select {
		case <-ctx.Done():
			return
		case skus = <-s.catalogNews:
		}
		// Changes that queued up meanwhile go in one pass.
		for more := true; more; {
			select {
			case next := <-s.catalogNews:
				skus = append(skus, next...)
			default:
				more = false
			}
		}
		changed := make(map[string]bool, len(skus))
		for _, sku := range skus {
			changed[sku] = true
		}
		for _, id := range s.hub.cartIDs() {
			if ctx.Err() != nil {
				return
			}
			c, _, err := s.snapshot(ctx, id, nil)
			if err != nil || !slices.ContainsFunc(c.Lines, func(l *cart.Line) bool { return changed[l.SKU] }) {
				continue
			}
			s.pushCart(id, c)
		}
	}
}

// watchCatalog subscribes to the catalog channel and starts the notifier,
// both until Shutdown.
func (s *Server) watchCatalog(ctx context.Context) error {
	if s.catalog.store == nil {
		return nil
	}
	s.catalogNews = make(chan []string, 64)
	cancel, err := s.bus.Subscribe(ctx, catalogChannel, func(p []byte) {
		var skus []string
		if json.Unmarshal(p, &skus) == nil {
			s.catalogChanged(skus)
		}
	})
	if err != nil {
		return err
	}
	nctx, stop := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); s.notifyCatalog(nctx) }()
	s.stopCatalog = func() { cancel(); stop(); <-done }
	return nil
}

// announceCatalog tells every instance that skus changed. This one drops
// them from its cache before it returns, so that what it answers next
// uses the new items.
func (s *Server) announceCatalog(ctx context.Context, skus []string) {
	s.catalog.forget(skus)
	b, _ := json.Marshal(skus)
	if err := s.bus.Publish(ctx, catalogChannel, b); err != nil {
		// The others catch up within catalogTTL; this one now.
		s.log.Warn("announce catalog change", logkey.Err, err)
		s.catalogChanged(skus)
	}
}
