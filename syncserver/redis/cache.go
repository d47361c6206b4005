package redis

import (
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"strconv"
	"strings"
	"sync"
	"time"

	goredis "github.com/redis/go-redis/v9"

	"cartsync/shared/cart"
	"cartsync/syncserver"
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

// missingScript writes the missing mark, only where no entry exists, so
// that it never hides a cart. A commit's write replaces it (writeScript).
// KEYS[1]: the cart's hash. ARGV[1]: TTL in milliseconds.
var missingScript = goredis.NewScript(`
if redis.call('EXISTS', KEYS[1]) == 0 then
  redis.call('HSET', KEYS[1], 'v', '0', 'x', '1')
  redis.call('PEXPIRE', KEYS[1], ARGV[1])
end
return 0
`)

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
  redis.call('HDEL', key, 'x')
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
// by every instance that uses the same Redis and prefix. A cart is one hash,
// prefix+"cart:"+cartID, with the fields v (version), c (cart JSON),
// m (meta JSON) and s:<client id> (seq), living TTL after its last write.
//
// The next Store stays the authority: Mutate, Merge and Purge run there.
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
// repairEvery plus one round trip) they may read an entry older than a
// commit this instance made while Redis hung, and see a version gap. Close
// makes a last repair attempt; an instance that dies with dirty carts
// leaves those entries until the TTL or the next write of the cart.
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

// cacheWrite is a record for the background writer: a commit's (gen > 0)
// or a fill's (cleared is the repair count when the fill's read began; a
// nil rec marks the cart missing).
type cacheWrite struct {
	cartID  string
	rec     *syncserver.Record
	gen     uint64
	cleared uint64
}

var _ syncserver.Store = (*Cache)(nil)

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
		if err != nil && ctx.Err() == nil && !errors.Is(err, errDecode) {
			c.log.Warn("redis cache: load", logKeyCart, cartID, logKeyError, err)
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

// readable reports whether Load may ask Redis for cartID (it is not dirty
// and Redis is not paused), and the repair count a fill must find unchanged.
func (c *Cache) readable(cartID string) (bool, uint64) {
	c.mu.Lock()
	defer c.mu.Unlock()
	_, dirty := c.dirty[cartID]
	return !dirty && !time.Now().Before(c.pause), c.cleared
}

// outcome records how a Redis call went: a failure pauses the cache's use
// of Redis, for longer while failures go on; a success ends the pause.
func (c *Cache) outcome(err error) {
	if errors.Is(err, errDecode) || errors.Is(err, context.Canceled) {
		return // Redis answered, or the caller left
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if err == nil {
		if c.fails > 0 {
			c.log.Info("redis cache: answering again", "failures", c.fails)
		}
		c.fails, c.lastErr, c.pause = 0, nil, time.Time{}
		return
	}
	c.fails++
	c.lastErr = err
	c.pause = time.Now().Add(min(pauseMin<<min(c.fails-1, 10), pauseMax))
}

// markDirty keeps cartIDs out of Redis reads until their entries are
// repaired, and returns the generation of this mark.
func (c *Cache) markDirty(cartIDs ...string) uint64 {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.gen++
	for _, id := range cartIDs {
		c.dirty[id] = c.gen
	}
	return c.gen
}

// clean clears cartID's dirty mark if no newer commit set it; repaired
// counts a clearing by delete.
func (c *Cache) clean(cartID string, gen uint64, repaired bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.dirty[cartID] == gen {
		delete(c.dirty, cartID)
		if repaired {
			c.cleared++
		}
	}
}

// enqueue hands w to the background writer without waiting. A full queue
// drops it: a commit's cart then stays dirty until repaired.
func (c *Cache) enqueue(w cacheWrite) {
	c.mu.Lock()
	defer c.mu.Unlock()
	select {
	case c.writes <- w:
		c.queued++
	default:
	}
}

// committed queues the record a commit wrote, marking the cart dirty until
// it is in Redis.
func (c *Cache) committed(cartID string, rec *syncserver.Record) {
	gen := c.markDirty(cartID)
	if worthCaching(rec) {
		c.enqueue(cacheWrite{cartID: cartID, rec: rec, gen: gen})
	}
}

// run is the background writer: it writes queued records and repairs dirty
// carts, one Redis call at a time.
func (c *Cache) run() {
	defer close(c.done)
	tick := time.NewTicker(repairEvery)
	defer tick.Stop()
	batch := make([]cacheWrite, 0, writeBatch)
	for {
		select {
		case <-c.stop:
			return
		case w := <-c.writes:
			// Whatever has queued up goes in one round trip.
			batch = append(batch[:0], w)
		more:
			for len(batch) < writeBatch {
				select {
				case w := <-c.writes:
					batch = append(batch, w)
				default:
					break more
				}
			}
			c.writeBatch(batch)
			clear(batch)
		case <-tick.C:
			c.repair()
		}
	}
}

// writeBatch puts ws in Redis in one pipeline (one round trip), leaving
// out, when Redis is paused, every write (a commit's cart then stays
// dirty), and a fill whose cart became dirty or was repaired since its
// read.
func (c *Cache) writeBatch(ws []cacheWrite) {
	n := len(ws)
	defer func() {
		c.mu.Lock()
		c.queued -= n
		c.mu.Unlock()
	}()
	c.mu.Lock()
	if time.Now().Before(c.pause) {
		c.mu.Unlock()
		return
	}
	keep := ws[:0]
	for _, w := range ws {
		_, dirty := c.dirty[w.cartID]
		if w.gen == 0 && (dirty || c.cleared != w.cleared) {
			continue
		}
		keep = append(keep, w)
	}
	c.mu.Unlock()
	if len(keep) == 0 {
		return
	}
	errs, err := c.putAll(context.Background(), keep)
	c.outcome(err)
	if err != nil {
		c.log.Warn("redis cache: write", "carts", len(keep), logKeyError, err)
	}
	for i, w := range keep {
		if errs[i] == nil && w.gen > 0 {
			c.clean(w.cartID, w.gen, false)
		}
	}
}

// repair deletes the entries of dirty carts once Redis may be asked again,
// and clears them. (A write still queued for one of them lands after the
// delete, fresh; a fill queued before is dropped.)
func (c *Cache) repair() {
	c.mu.Lock()
	// While writes are on their way they clean their carts; repair only
	// when none is, or when the writer is falling behind (a full queue
	// drops writes, and must not keep their carts dirty for ever).
	behind := c.queued >= writeQueue/2
	if len(c.dirty) == 0 || time.Now().Before(c.pause) || (c.queued > 0 && !behind) {
		c.mu.Unlock()
		return
	}
	batch := make(map[string]uint64, min(len(c.dirty), repairBatch))
	for id, gen := range c.dirty {
		if len(batch) == repairBatch {
			break
		}
		batch[id] = gen
	}
	c.busy = true
	c.mu.Unlock()
	keys := make([]string, 0, len(batch))
	for id := range batch {
		keys = append(keys, c.key(id))
	}
	ctx, cancel := context.WithTimeout(context.Background(), writeTimeout)
	err := plain(c.client.Del(ctx, keys...).Err())
	cancel()
	c.outcome(err)
	c.mu.Lock()
	c.busy = false
	c.mu.Unlock()
	if err != nil {
		c.log.Warn("redis cache: repair", "carts", len(batch), logKeyError, err)
		return
	}
	for id, gen := range batch {
		c.clean(id, gen, true)
	}
}

// Degraded reports, without waiting on Redis, whether the cache works in a
// degraded mode: Redis failing (reads go to the next Store) or entries
// waiting for repair. nil means healthy.
func (c *Cache) Degraded() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	switch {
	case c.fails > 0:
		return fmt.Errorf("redis cache: %d calls failed in a row, reading the store meanwhile; last: %w", c.fails, c.lastErr)
	case len(c.dirty) > 0 && !c.busy && c.queued == 0:
		return fmt.Errorf("redis cache: %d carts waiting for repair", len(c.dirty))
	}
	return nil
}

// Dirty returns how many carts are kept out of Redis reads.
func (c *Cache) Dirty() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return len(c.dirty)
}

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
	vals, err := c.client.HMGet(ctx, c.key(cartID), fields...).Result()
	if err != nil {
		return nil, plain(err)
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

// put writes one record, as putAll does.
func (c *Cache) put(ctx context.Context, cartID string, rec *syncserver.Record) error {
	errs, err := c.putAll(ctx, []cacheWrite{{cartID: cartID, rec: rec}})
	if err != nil {
		return err
	}
	return errs[0]
}

// putAll writes the records of ws through writeScript (a nil record through
// missingScript) in one pipeline, and returns each one's error and the
// first error of a Redis call (nil if Redis answered every one).
func (c *Cache) putAll(ctx context.Context, ws []cacheWrite) ([]error, error) {
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), writeTimeout)
	defer cancel()
	errs := make([]error, len(ws))
	for attempt := range 2 { // again after loading the scripts, if Redis lost them
		pipe := c.client.Pipeline()
		cmds := make([]*goredis.Cmd, len(ws))
		for i, w := range ws {
			cmds[i], errs[i] = c.queuePut(ctx, pipe, w.cartID, w.rec)
		}
		pipe.Exec(ctx) // each command's error is read below
		noScript := false
		var first error
		for i, cmd := range cmds {
			if cmd == nil {
				continue
			}
			if err := cmd.Err(); err != nil {
				noScript = noScript || isNoScript(err)
				errs[i] = plain(err)
				first = cmp.Or(first, errs[i])
			}
		}
		if !noScript || attempt > 0 {
			return errs, first
		}
		for _, sc := range []*goredis.Script{writeScript, missingScript} {
			if err := sc.Load(ctx, c.client).Err(); err != nil {
				return errs, plain(err)
			}
		}
	}
	return errs, nil
}

// queuePut queues the write of rec (nil: the missing mark) on pipe.
func (c *Cache) queuePut(ctx context.Context, pipe goredis.Pipeliner, cartID string, rec *syncserver.Record) (*goredis.Cmd, error) {
	ttl := max(c.ttl.Milliseconds(), 1)
	if rec == nil { // a fill of a cart that does not exist
		return missingScript.EvalSha(ctx, pipe, []string{c.key(cartID)}, ttl), nil
	}
	if rec.Cart == nil {
		return nil, nil
	}
	cj, err := json.Marshal(rec.Cart)
	if err != nil {
		return nil, fmt.Errorf("encode cart: %w", err)
	}
	mj, err := json.Marshal(rec.Meta)
	if err != nil {
		return nil, fmt.Errorf("encode meta: %w", err)
	}
	args := make([]any, 0, 4+2*len(rec.Seqs))
	args = append(args, strconv.FormatUint(rec.Cart.Version, 10), cj, mj, ttl)
	for id, seq := range rec.Seqs {
		args = append(args, fieldSeq+id, strconv.FormatUint(seq, 10))
	}
	return writeScript.EvalSha(ctx, pipe, []string{c.key(cartID)}, args...), nil
}

// isNoScript reports whether err says Redis does not have a script (it
// restarted, or SCRIPT FLUSH).
func isNoScript(err error) bool {
	return err != nil && strings.HasPrefix(err.Error(), "NOSCRIPT")
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
func (c *Cache) Purge(ctx context.Context, kind string, cutoff, tombstoneCutoff time.Time, limit int) ([]string, error) {
	ids, err := c.next.Purge(ctx, kind, cutoff, tombstoneCutoff, limit)
	if len(ids) > 0 {
		c.markDirty(ids...) // deleted by the repair
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
		c.mu.Unlock()
		for range 3 {
			if c.Dirty() == 0 {
				break
			}
			c.repair()
		}
		if n := c.Dirty(); n > 0 {
			c.log.Error("redis cache: closing with entries not repaired; other instances may read them until the TTL or the cart's next write", "carts", n)
		}
	})
	return c.next.Close()
}
