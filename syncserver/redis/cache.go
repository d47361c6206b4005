package redis

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"strconv"
	"sync"
	"time"

	goredis "github.com/redis/go-redis/v9"

	"github.com/cartsync/cartsync/shared/cart"
	"github.com/cartsync/cartsync/shared/logkey"
	"github.com/cartsync/cartsync/syncserver"
)

// DefaultTTL is how long a cached cart lives after its last write when
// NewCache is given no TTL.
const DefaultTTL = time.Hour

// Bounds on Redis calls. A Redis that hangs slows a read by at most
// readTimeout before it falls through to the next Store, and only until the
// cache notices and stops asking (see Cache); writes never wait on a
// request's path.
const (
	readTimeout  = 500 * time.Millisecond
	writeTimeout = time.Second
	// writeQueue bounds the cache writes waiting for Redis; past it a
	// committed cart is left dirty and repaired by a delete. writeBatch is
	// the most one pipeline takes.
	writeQueue = 4096
	writeBatch = 256
	// repairEvery is how often dirty entries are deleted while Redis
	// fails; repairBatch how many keys one delete takes.
	repairEvery = 100 * time.Millisecond
	repairBatch = 500
	// After a failed call the cache leaves Redis alone for a pause that
	// doubles from pauseMin to pauseMax while calls keep failing.
	pauseMin = 100 * time.Millisecond
	pauseMax = 5 * time.Second
	// probeTimeout bounds the PING with which the writer asks, every
	// repairEvery during a pause, whether Redis answers again while carts
	// are dirty: their repair does not wait for the pause to end.
	probeTimeout = 200 * time.Millisecond
)

// Hash fields of a cached cart.
const (
	fieldVersion = "v"  // cart version, decimal
	fieldCart    = "c"  // cart JSON, with server bookkeeping (Contribs)
	fieldMeta    = "m"  // Meta JSON
	fieldSeq     = "s:" // + client id: last seq applied for that client, decimal
	// fieldMissing, "1", marks an entry saying the cart does not exist
	// (version "0", no cart): most devices that connect never edit, and
	// their every hello would otherwise reach the store.
	fieldMissing = "x"
)

// Cache is a read-through cache in Redis in front of another Store, shared
// by every instance that uses the same Redis and prefix. A cart is one hash,
// prefix+"cart:"+cartID, with the fields v (version), c (cart JSON),
// m (meta JSON) and s:<client id> (seq), living TTL after its last write.
//
// The next Store stays the authority: Mutate, Merge and Purge run there, and
// so do the catalog and the event outbox (CatalogStore and EventStore),
// which the cache passes through untouched if the next Store has them.
// Redis is never on the path of an acknowledgement: after a commit the new
// record is queued for a background writer, and the cart is marked dirty
// in this process until the write has landed. Load answers from Redis when
// the cart is not dirty and the cached entry has a seq for every client
// asked about; otherwise it loads from the next Store and fills the cache
// (in the background too). A cart the next Store does not have is cached
// as missing (most devices that connect never edit), until a commit writes
// it.
//
// Reads never go back in time past what this instance committed: while a
// cart is dirty (its write is queued, failed or timed out; a commit's
// outcome is unknown; it expired) Load reads the next Store, never Redis.
// A dirty cart whose write failed is repaired by deleting its entry once
// Redis answers again (retried every repairEvery), and only then served
// from Redis again. A fill that raced such a delete is dropped. Other
// instances are protected while Redis hangs, since they cannot read it
// either; between Redis answering again and the first repair (at most about
// repairEvery plus two round trips: while the cache pauses after failures,
// the writer asks Redis with a PING every repairEvery whether it answers
// again, and repairs at once when it does) they may read an entry older
// than a commit this instance made while Redis hung, and see a version gap.
// Close makes a last repair attempt, of the carts whose writes were still
// queued too; an instance that dies with dirty carts leaves those entries
// until the TTL or the next write of the cart.
//
// When Redis fails (refuses, errs or times out) the cache stops asking it
// for a pause that grows while it keeps failing, serving every read from the
// next Store meanwhile, so that a Redis that hangs costs one timeout, not one
// per request. Degraded reports the state; Ping checks only the next Store,
// since the service works without Redis.
//
// An expired cart can still be served from Redis in two windows: between
// the Purge's commit and the background delete of the entry; and when
// another instance's Load that read the cart before the Purge fills the
// cache after the delete, until the TTL or the first Mutate, Merge or
// Changes on that cart. A device served such a cart learns that it expired
// at its next write.
type Cache struct {
	next   syncserver.Store
	client *goredis.Client
	prefix string
	ttl    time.Duration
	log    *slog.Logger
	reads  hashReads
	writes chan cacheWrite
	stop   chan struct{}
	done   chan struct{}
	closed sync.Once

	mu      sync.Mutex
	gen     uint64            // counts commits
	dirty   map[string]uint64 // cart -> gen of its newest commit not known to be in Redis
	cleared uint64            // dirty carts repaired by a delete, for fills that raced one
	queued  int               // writes queued or in hand
	busy    bool              // the writer is repairing
	fails   int               // Redis calls failed in a row
	pause   time.Time         // do not ask Redis before then
	lastErr error             // the last Redis failure, while fails > 0
}

// NewCache returns a Cache in front of next, keeping carts in client under
// keys starting with prefix for ttl after their last write (DefaultTTL if
// ttl <= 0). A nil logger means slog.Default(). It starts the background
// writer; Close stops it and closes next, but not client.
func NewCache(next syncserver.Store, client *goredis.Client, prefix string, ttl time.Duration, logger *slog.Logger) *Cache {
	if ttl <= 0 {
		ttl = DefaultTTL
	}
	if logger == nil {
		logger = slog.Default()
	}
	warnContextTimeouts(client, logger)
	c := &Cache{
		next: next, client: client, prefix: prefix, ttl: ttl, log: logger,
		writes: make(chan cacheWrite, writeQueue),
		stop:   make(chan struct{}),
		done:   make(chan struct{}),
		dirty:  map[string]uint64{},
	}
	c.reads = hashReads{client: client, report: c.outcome}
	go c.run()
	return c
}

func (c *Cache) key(cartID string) string { return c.prefix + "cart:" + cartID }

// Load returns the cart from Redis if it holds everything asked for and
// is not dirty, and otherwise from the next Store, filling the cache.
func (c *Cache) Load(ctx context.Context, cartID string, clients []string) (*syncserver.Record, error) {
	asked, cleared := c.readable(cartID)
	var err error
	if asked {
		var rec *syncserver.Record
		rec, err = c.get(ctx, cartID, clients)
		if errors.Is(err, errMissing) {
			c.outcome(nil)
			return nil, syncserver.ErrCartNotFound
		}
		c.outcome(err)
		if rec != nil {
			return rec, nil
		}
		if err != nil && ctx.Err() == nil && !errors.Is(err, errDecode) && !errors.Is(err, errReadLate) {
			c.log.Warn("redis cache: load", logkey.Cart, cartID, logkey.Err, err)
		}
	}
	rec, nerr := c.next.Load(ctx, cartID, clients)
	if errors.Is(nerr, syncserver.ErrCartNotFound) && asked && err == nil {
		// Remember that it is missing, unless a repair raced the read.
		c.enqueue(cacheWrite{cartID: cartID, cleared: cleared})
	}
	if errors.Is(nerr, syncserver.ErrCartExpired) {
		// A partial entry (without the seq of a client asked about)
		// may remain from before the purge.
		c.markDirty(cartID)
	}
	if nerr != nil {
		return nil, nerr
	}
	if asked && (err == nil || errors.Is(err, errDecode)) {
		// Redis answered the read: fill, unless a repair raced it.
		c.enqueue(cacheWrite{cartID: cartID, rec: rec, cleared: cleared})
	}
	return rec, nil
}

// NoteNewCart remembers cartID, just issued to a new device, as missing
// (syncserver.NewCartNoter): the device's loads are then answered by Redis
// until its first commit replaces or deletes the mark. The mark is written
// before NoteNewCart returns, that is before the device has its token, so
// that no commit on the cart, on any instance, can come before it (a mark
// written later could hide a commit that leaves no entry in Redis, such as
// a login's binding of the guest cart). It lives newCartTTL at most: a
// visitor's next pages come within it, and tokens that never come back
// (bots, one-page visits) do not fill Redis for the whole cache TTL. When
// Redis does not answer in time, there is no mark and nothing else
// changes.
func (c *Cache) NoteNewCart(ctx context.Context, cartID string) {
	if asked, _ := c.readable(cartID); !asked {
		return
	}
	ctx, cancel := context.WithTimeout(ctx, readTimeout)
	defer cancel()
	ttl := max(min(c.ttl, newCartTTL).Milliseconds(), 1)
	err := plain(missingScript.Run(ctx, c.client, []string{c.key(cartID)}, ttl).Err())
	c.outcome(err)
	if err != nil && ctx.Err() == nil {
		c.log.Warn("redis cache: new cart mark", logkey.Cart, cartID, logkey.Err, err)
	}
}

// newCartTTL bounds how long a new device's missing mark lives.
const newCartTTL = time.Hour

// errMissing means the cache knows the cart does not exist.
var errMissing = errors.New("redis: cart known missing")

// errDecode means a cached entry could not be decoded.
var errDecode = errors.New("redis: undecodable cache entry")

// get reads the cart from Redis. A miss is (nil, nil).
func (c *Cache) get(ctx context.Context, cartID string, clients []string) (*syncserver.Record, error) {
	fields := make([]string, 0, 4+len(clients))
	fields = append(fields, fieldVersion, fieldCart, fieldMeta)
	for _, id := range clients {
		fields = append(fields, fieldSeq+id)
	}
	fields = append(fields, fieldMissing)
	ctx, cancel := context.WithTimeout(ctx, readTimeout)
	defer cancel()
	vals, err := c.reads.hmget(ctx, c.key(cartID), fields)
	if err != nil {
		return nil, err // already plain
	}
	if vals[len(vals)-1] == "1" {
		return nil, errMissing
	}
	vals = vals[:len(vals)-1]
	strs := make([]string, len(vals))
	for i, v := range vals {
		s, ok := v.(string)
		if !ok {
			return nil, nil // missing field: a miss
		}
		strs[i] = s
	}
	version, err := strconv.ParseUint(strs[0], 10, 64)
	if err != nil {
		return nil, fmt.Errorf("%w: version: %v", errDecode, err)
	}
	rec := &syncserver.Record{Cart: new(cart.Cart), Exists: true, Seqs: make(map[string]uint64, len(clients))}
	if err := json.Unmarshal([]byte(strs[1]), rec.Cart); err != nil {
		return nil, fmt.Errorf("%w: cart: %v", errDecode, err)
	}
	if rec.Cart.Version != version || rec.Cart.ID != cartID {
		return nil, fmt.Errorf("%w: cart %q at %d under version %d", errDecode, rec.Cart.ID, rec.Cart.Version, version)
	}
	if err := json.Unmarshal([]byte(strs[2]), &rec.Meta); err != nil {
		return nil, fmt.Errorf("%w: meta: %v", errDecode, err)
	}
	for i, id := range clients {
		seq, err := strconv.ParseUint(strs[3+i], 10, 64)
		if err != nil {
			return nil, fmt.Errorf("%w: seq of %s: %v", errDecode, id, err)
		}
		rec.Seqs[id] = seq
	}
	return rec, nil
}

// Mutate runs fn on the next Store and, once that committed, writes the
// new record to the cache.
func (c *Cache) Mutate(ctx context.Context, cartID string, clients []string, fn func(rec *syncserver.Record) error) error {
	var done *syncserver.Record // the record fn last accepted
	err := c.next.Mutate(ctx, cartID, clients, func(rec *syncserver.Record) error {
		done = nil
		if err := fn(rec); err != nil {
			return err
		}
		done = rec
		return nil
	})
	switch {
	case err != nil && (done != nil || errors.Is(err, syncserver.ErrCartExpired)):
		// fn accepted the change but the commit failed, or its
		// outcome is unknown; or the cart expired: what the cache
		// holds may be stale.
		c.markDirty(cartID)
		return err
	case err != nil:
		return err
	}
	c.committed(cartID, done)
	return nil
}

// worthCaching reports whether a committed record should be written to
// the cache. One that made nothing (a new cart still empty at version 0) is
// not: whether an empty record now exists is the next Store's business, so
// the next Load fills.
func worthCaching(rec *syncserver.Record) bool {
	return rec != nil && rec.Cart != nil && (rec.Exists || rec.Cart.Version > 0)
}

// Merge runs fn on the next Store and, once that committed, writes both
// new records to the cache.
func (c *Cache) Merge(ctx context.Context, fromID, intoID string, fn func(from, into *syncserver.Record) error) error {
	var doneFrom, doneInto *syncserver.Record // the records fn last accepted
	err := c.next.Merge(ctx, fromID, intoID, func(from, into *syncserver.Record) error {
		doneFrom, doneInto = nil, nil
		if err := fn(from, into); err != nil {
			return err
		}
		doneFrom, doneInto = from, into
		return nil
	})
	switch {
	case err != nil && (doneFrom != nil || errors.Is(err, syncserver.ErrCartExpired)):
		// As in Mutate.
		c.markDirty(fromID, intoID)
		return err
	case err != nil:
		return err
	}
	c.committed(fromID, doneFrom)
	c.committed(intoID, doneInto)
	return nil
}

// Purge runs on the next Store, then deletes the cache entries of the
// carts it expired (even if it also returned an error).
func (c *Cache) Purge(ctx context.Context, kind string, cutoff, tombstoneCutoff time.Time, limit int, settled bool) ([]string, error) {
	ids, err := c.next.Purge(ctx, kind, cutoff, tombstoneCutoff, limit, settled)
	if len(ids) > 0 {
		c.dropNow(ids...)
	}
	return ids, err
}

// Revive runs on the next Store, then deletes the cart's cache entry.
func (c *Cache) Revive(ctx context.Context, cartID, user string, now time.Time) (bool, error) {
	ok, err := c.next.Revive(ctx, cartID, user, now)
	if ok || err != nil {
		c.putNow(ctx, cartID)
	}
	return ok, err
}

// Erase runs on the next Store, then deletes the carts' cache entries.
func (c *Cache) Erase(ctx context.Context, cartID string) ([]string, error) {
	ids, err := c.next.Erase(ctx, cartID)
	c.dropNow(slices.DeleteFunc(slices.Clone(ids), func(id string) bool { return id == cartID })...)
	if slices.Contains(ids, cartID) {
		c.putNow(ctx, cartID)
	}
	return ids, err
}

// Changes reads the next Store.
func (c *Cache) Changes(ctx context.Context, cartID string, since uint64, limit int) ([]syncserver.Change, error) {
	chs, err := c.next.Changes(ctx, cartID, since, limit)
	if errors.Is(err, syncserver.ErrCartExpired) {
		c.markDirty(cartID)
	}
	return chs, err
}

// Secret reads the next Store.
func (c *Cache) Secret(ctx context.Context, name string, create []byte) ([]byte, error) {
	return c.next.Secret(ctx, name, create)
}

// Ping checks the next Store only: the service works without Redis (see
// Degraded).
func (c *Cache) Ping(ctx context.Context) error { return c.next.Ping(ctx) }

// Close stops the background writer, makes a last attempt to repair dirty
// entries (so that other instances do not read them), and closes the next
// Store. It does not close the Redis client.
func (c *Cache) Close() error {
	c.closed.Do(func() {
		close(c.stop)
		<-c.done
		c.mu.Lock()
		c.pause = time.Time{}
		// The writes still queued will never go out: their carts stay
		// dirty, and the repair below deletes their entries (it waits
		// while writes are queued).
		for drained := false; !drained; {
			select {
			case <-c.writes:
				c.queued--
			default:
				drained = true
			}
		}
		c.mu.Unlock()
		for range 3 {
			if c.Dirty() == 0 {
				break
			}
			c.repair()
		}
		if n := c.Dirty(); n > 0 {
			c.log.Error("redis cache: closing with entries not repaired; other instances may read them until the TTL or the cart's next write", logkey.Carts, n)
		}
	})
	return c.next.Close()
}
