package redis

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"strconv"
	"strings"
	"time"

	goredis "github.com/redis/go-redis/v9"

	"cartsync/shared/cart"
	"cartsync/syncserver"
)

// DefaultTTL is how long a cached cart lives after its last write when
// NewCache is given no TTL.
const DefaultTTL = time.Hour

// cacheTimeout bounds each cache read and write, so that a Redis that hangs
// slows a request by at most that much before it falls through to the next
// Store. Writes after a commit do not use the request's cancellation: the
// commit happened, and the cache should learn it even if the caller has gone.
const cacheTimeout = time.Second

// Hash fields of a cached cart.
const (
	fieldVersion = "v"  // cart version, decimal
	fieldCart    = "c"  // cart JSON, with server bookkeeping (Contribs)
	fieldMeta    = "m"  // Meta JSON
	fieldSeq     = "s:" // + client id: last seq applied for that client, decimal
)

// writeScript is the only way the cache is written, so that concurrent
// writers from several instances, some slower than others, never move it
// backwards: the cart, its meta and version are replaced only by a version
// at least as new as the cached one, each client's seq only rises, and the
// TTL is refreshed. Decimal numbers are compared as strings (by length,
// then digit by digit) so that uint64 values stay exact in Lua.
//
// KEYS[1]: the cart's hash. ARGV[1]: version, ARGV[2]: cart JSON,
// ARGV[3]: meta JSON, ARGV[4]: TTL in milliseconds, then pairs of seq field
// and seq. Returns 1 if the cart was written, 0 if a newer one was cached.
var writeScript = goredis.NewScript(`
local function ge(a, b)
  if #a ~= #b then return #a > #b end
  for i = 1, #a do
    local x, y = a:byte(i), b:byte(i)
    if x ~= y then return x > y end
  end
  return true
end
local key = KEYS[1]
local cur = redis.call('HGET', key, 'v')
local wrote = 0
if not cur or ge(ARGV[1], cur) then
  redis.call('HSET', key, 'v', ARGV[1], 'c', ARGV[2], 'm', ARGV[3])
  wrote = 1
end
for i = 5, #ARGV, 2 do
  local old = redis.call('HGET', key, ARGV[i])
  if not old or (ARGV[i + 1] ~= old and ge(ARGV[i + 1], old)) then
    redis.call('HSET', key, ARGV[i], ARGV[i + 1])
  end
end
redis.call('PEXPIRE', key, ARGV[4])
return wrote
`)

// Cache is a read-through cache in Redis in front of another Store, shared
// by every instance that uses the same Redis and prefix.
//
// Load answers from Redis when the cached cart has a seq for every client
// asked about, and otherwise loads from the next Store and fills the cache.
// Mutate and Merge always run on the next Store, which stays the
// authority, and write the committed records to the cache afterwards. Purge
// runs on the next Store and then deletes the entries of the carts it
// expired, so that they are no longer served; a Load, Mutate, Merge or
// Changes that the next Store answers with ErrCartExpired deletes the entry
// too. A
// cart is one hash,
// prefix+"cart:"+cartID, with the fields v (version), c (cart JSON),
// m (meta JSON) and s:<client id> (seq), living TTL after its last write.
//
// Redis failures never fail a request: Load falls through to the next
// Store and Mutate skips the cache write, after logging. A cache write that
// fails after a commit, or a commit whose outcome is unknown, is followed by
// a best-effort delete of the entry; if that fails too, Load may serve the
// older version until a newer write or the TTL replaces it, which clients
// detect as a version gap.
//
// An expired cart can still be served from Redis in two windows: between
// the Purge's commit and its delete of the entry (or, if that delete fails,
// until the TTL); and when a Load that read the cart from the next Store
// before the Purge fills the cache after the delete, until the TTL or the
// first Mutate, Merge or Changes on that cart. A device served such a cart
// learns that it expired at its next write.
type Cache struct {
	next   syncserver.Store
	client *goredis.Client
	prefix string
	ttl    time.Duration
	log    *slog.Logger
}

var _ syncserver.Store = (*Cache)(nil)

// NewCache returns a Cache in front of next, keeping carts in client under
// keys starting with prefix for ttl after their last write (DefaultTTL if
// ttl <= 0). A nil logger means slog.Default(). Close closes next but not
// client.
func NewCache(next syncserver.Store, client *goredis.Client, prefix string, ttl time.Duration, logger *slog.Logger) *Cache {
	if ttl <= 0 {
		ttl = DefaultTTL
	}
	if logger == nil {
		logger = slog.Default()
	}
	return &Cache{next: next, client: client, prefix: prefix, ttl: ttl, log: logger}
}

func (c *Cache) key(cartID string) string { return c.prefix + "cart:" + cartID }

// Load returns the cart from Redis if it holds everything asked for, and
// otherwise from the next Store, filling the cache.
func (c *Cache) Load(ctx context.Context, cartID string, clients []string) (*syncserver.Record, error) {
	rec, err := c.get(ctx, cartID, clients)
	if rec != nil {
		return rec, nil
	}
	if err != nil && ctx.Err() == nil {
		c.log.Warn("redis cache: load", logKeyCart, cartID, logKeyError, err)
	}
	rec, nerr := c.next.Load(ctx, cartID, clients)
	if errors.Is(nerr, syncserver.ErrCartExpired) && err == nil {
		// A partial entry (without the seq of a client asked about)
		// may remain from before the purge.
		c.invalidate(ctx, cartID)
	}
	if nerr != nil {
		return nil, nerr
	}
	if err == nil || errors.Is(err, errDecode) {
		// Redis answered the read: fill. After a Redis error, skip
		// the write rather than wait on Redis twice per request.
		c.put(ctx, cartID, rec)
	}
	return rec, nil
}

// errDecode means a cached entry could not be decoded.
var errDecode = errors.New("redis: undecodable cache entry")

// get reads the cart from Redis. A miss is (nil, nil).
func (c *Cache) get(ctx context.Context, cartID string, clients []string) (*syncserver.Record, error) {
	fields := make([]string, 0, 3+len(clients))
	fields = append(fields, fieldVersion, fieldCart, fieldMeta)
	for _, id := range clients {
		fields = append(fields, fieldSeq+id)
	}
	ctx, cancel := context.WithTimeout(ctx, cacheTimeout)
	defer cancel()
	vals, err := c.client.HMGet(ctx, c.key(cartID), fields...).Result()
	if err != nil {
		return nil, plain(err)
	}
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

// put writes rec to the cache through writeScript. Failures are logged and
// followed by a best-effort delete.
func (c *Cache) put(ctx context.Context, cartID string, rec *syncserver.Record) {
	if rec == nil || rec.Cart == nil {
		return
	}
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), cacheTimeout)
	defer cancel()
	cj, err := json.Marshal(rec.Cart)
	if err != nil {
		c.log.Error("redis cache: encode cart", logKeyCart, cartID, logKeyError, err)
		c.invalidate(ctx, cartID)
		return
	}
	mj, err := json.Marshal(rec.Meta)
	if err != nil {
		c.log.Error("redis cache: encode meta", logKeyCart, cartID, logKeyError, err)
		c.invalidate(ctx, cartID)
		return
	}
	args := make([]any, 0, 4+2*len(rec.Seqs))
	args = append(args, strconv.FormatUint(rec.Cart.Version, 10), cj, mj, max(c.ttl.Milliseconds(), 1))
	for id, seq := range rec.Seqs {
		args = append(args, fieldSeq+id, strconv.FormatUint(seq, 10))
	}
	if err := writeScript.Run(ctx, c.client, []string{c.key(cartID)}, args...).Err(); err != nil {
		c.log.Warn("redis cache: write", logKeyCart, cartID, logKeyError, plain(err))
		c.invalidate(ctx, cartID)
	}
}

// invalidate deletes the carts' entries, so that the next Load goes to the
// next Store.
func (c *Cache) invalidate(ctx context.Context, cartIDs ...string) {
	if len(cartIDs) == 0 {
		return
	}
	keys := make([]string, len(cartIDs))
	for i, id := range cartIDs {
		keys[i] = c.key(id)
	}
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), cacheTimeout)
	defer cancel()
	if err := c.client.Del(ctx, keys...).Err(); err != nil {
		c.log.Warn("redis cache: invalidate", logKeyCart, strings.Join(cartIDs, ","), logKeyError, plain(err))
	}
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
		// outcome is unknown; or the cart expired: drop what the
		// cache holds.
		c.invalidate(ctx, cartID)
		return err
	case err != nil:
		return err
	}
	if worthCaching(done) {
		c.put(ctx, cartID, done)
	}
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
		c.invalidate(ctx, fromID, intoID)
		return err
	case err != nil:
		return err
	}
	if worthCaching(doneFrom) {
		c.put(ctx, fromID, doneFrom)
	}
	if worthCaching(doneInto) {
		c.put(ctx, intoID, doneInto)
	}
	return nil
}

// Purge runs on the next Store, then deletes the cache entries of the
// carts it expired (even if it also returned an error).
func (c *Cache) Purge(ctx context.Context, kind string, cutoff, tombstoneCutoff time.Time, limit int) ([]string, error) {
	ids, err := c.next.Purge(ctx, kind, cutoff, tombstoneCutoff, limit)
	c.invalidate(ctx, ids...)
	return ids, err
}

// Changes reads the next Store.
func (c *Cache) Changes(ctx context.Context, cartID string, since uint64, limit int) ([]syncserver.Change, error) {
	chs, err := c.next.Changes(ctx, cartID, since, limit)
	if errors.Is(err, syncserver.ErrCartExpired) {
		c.invalidate(ctx, cartID)
	}
	return chs, err
}

// Secret reads the next Store.
func (c *Cache) Secret(ctx context.Context, name string, create []byte) ([]byte, error) {
	return c.next.Secret(ctx, name, create)
}

// Ping checks the next Store and Redis.
func (c *Cache) Ping(ctx context.Context) error {
	if err := c.next.Ping(ctx); err != nil {
		return err
	}
	if err := c.client.Ping(ctx).Err(); err != nil {
		return fmt.Errorf("redis: ping: %w", plain(err))
	}
	return nil
}

// Close closes the next Store. It does not close the Redis client.
func (c *Cache) Close() error { return c.next.Close() }
