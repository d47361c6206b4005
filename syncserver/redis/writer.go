package redis

import (
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	goredis "github.com/redis/go-redis/v9"

	"github.com/cartsync/cartsync/shared/logkey"
	"github.com/cartsync/cartsync/syncserver"
)

// The cache's writes: the scripts, the dirty marks that keep reads honest,
// and the background writer that copies commits to Redis and repairs what
// failed (see Cache).

// writeScript is how the cache is written (replaceScript aside), so that
// concurrent writers from several instances, some slower than others, never
// move it backwards: the cart, its meta and version are replaced only by a
// version at least as new as the cached one, each client's seq only rises,
// and the TTL is refreshed. A write below the version at which the entry's
// cart started again (field s, set by replaceScript) is of an earlier life
// of the cart, erased or started over since: nothing of it is taken, its
// seqs included. A login merge marks the guest cart merged (meta
// merged_into) without a new version, so at an equal version a meta without
// merged_into never replaces one with it: a write of the guest's last edit
// from another instance, slower than the merge's, would otherwise undo the
// mark and leave the device's ops on that guest cart refused as "the login
// merge is not finished" until the entry expires. Decimal numbers are compared as strings (by length,
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
local since = redis.call('HGET', key, 's')
if since and not ge(ARGV[1], since) then return 0 end
local cur = redis.call('HGET', key, 'v')
local wrote = 0
local newer = not cur or ge(ARGV[1], cur)
if newer and cur == ARGV[1] and not string.find(ARGV[3], '"merged_into"', 1, true) then
  local m = redis.call('HGET', key, 'm')
  newer = not (m and string.find(m, '"merged_into"', 1, true))
end
if newer then
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

// replaceScript writes a cart that starts again at a later version (erased,
// started over): the whole entry, seqs included (no client has one on it
// yet), is replaced, only by a version newer than the cached one, and
// marked started at it (field s). A write of the cart as it was, landing
// later at its older version, is refused by writeScript, its seqs with it.
//
// KEYS[1]: the cart's hash. ARGV[1]: version, ARGV[2]: cart JSON,
// ARGV[3]: meta JSON, ARGV[4]: TTL in milliseconds. Returns 1 if written.
var replaceScript = goredis.NewScript(`
local cur = redis.call('HGET', KEYS[1], 'v')
if cur and (#cur > #ARGV[1] or (#cur == #ARGV[1] and cur >= ARGV[1])) then return 0 end
redis.call('DEL', KEYS[1])
redis.call('HSET', KEYS[1], 'v', ARGV[1], 'c', ARGV[2], 'm', ARGV[3], 's', ARGV[1])
redis.call('PEXPIRE', KEYS[1], ARGV[4])
return 1
`)

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
	if errors.Is(err, errDecode) || errors.Is(err, context.Canceled) || errors.Is(err, errReadLate) || errors.Is(err, errReadFailed) {
		return // Redis answered, or the caller left, or the read's round trip reported it
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if err == nil {
		if c.fails > 0 {
			c.log.Info("redis cache: answering again", logkey.Failures, c.fails)
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
		c.log.Warn("redis cache: write", logkey.Carts, len(keep), logkey.Err, err)
	}
	for i, w := range keep {
		if errs[i] == nil && w.gen > 0 {
			c.clean(w.cartID, w.gen, false)
		}
	}
}

// answers reports whether Redis answers a PING within probeTimeout. It
// counts nothing as a failure: a Redis that still hangs keeps the pause it
// had.
func (c *Cache) answers() bool {
	ctx, cancel := context.WithTimeout(context.Background(), probeTimeout)
	defer cancel()
	return c.client.Ping(ctx).Err() == nil
}

// repair deletes the entries of dirty carts once Redis may be asked again,
// and clears them. (A write still queued for one of them lands after the
// delete, fresh; a fill queued before is dropped.)
func (c *Cache) repair() {
	c.mu.Lock()
	waiting := len(c.dirty) > 0 && time.Now().Before(c.pause)
	c.mu.Unlock()
	if waiting && c.answers() {
		// Other instances read these carts' stale entries as soon as
		// Redis answers them: repair now, not when the pause ends.
		c.outcome(nil)
	}
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
		c.log.Warn("redis cache: repair", logkey.Carts, len(batch), logkey.Err, err)
		return
	}
	for id, gen := range batch {
		c.clean(id, gen, true)
	}
}

// dropNow deletes the entries of cartIDs from Redis before it returns,
// and leaves them marked for the repair too, which deletes them again once
// the writes queued before have gone out (one of them may be of the cart
// as it was). For changes the server tells devices of at once (a purge, an
// erasure's guest carts): a device that reconnects to another instance
// reads Redis, and must not find the cart as it was. While Redis is failing
// it leaves them to the repair alone.
func (c *Cache) dropNow(cartIDs ...string) {
	if len(cartIDs) == 0 {
		return
	}
	c.markDirty(cartIDs...)
	if c.paused() {
		return
	}
	keys := make([]string, len(cartIDs))
	for i, id := range cartIDs {
		keys[i] = c.key(id)
	}
	ctx, cancel := context.WithTimeout(context.Background(), writeTimeout)
	c.outcome(plain(c.client.Del(ctx, keys...).Err()))
	cancel()
}

// paused reports whether the cache's use of Redis is paused (it failed).
func (c *Cache) paused() bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	return time.Now().Before(c.pause)
}

// encodeEntry is the cart and meta JSON of rec's cache entry.
func encodeEntry(rec *syncserver.Record) (cart, meta []byte, err error) {
	if cart, err = json.Marshal(rec.Cart); err != nil {
		return nil, nil, fmt.Errorf("encode cart: %w", err)
	}
	if meta, err = json.Marshal(rec.Meta); err != nil {
		return nil, nil, fmt.Errorf("encode meta: %w", err)
	}
	return cart, meta, nil
}

// putNow writes cartID as the next Store has it to Redis before it
// returns (or, when that fails, leaves it to the repair): for a cart that
// starts again at a later version (erased, started over), whose copy at an
// earlier version a write or a fill begun before could put in Redis late.
// Redis refuses that copy over this one, where a delete would let it stand.
func (c *Cache) putNow(ctx context.Context, cartID string) {
	gen := c.markDirty(cartID)
	if c.paused() {
		return
	}
	rec, err := c.next.Load(ctx, cartID, nil)
	if err != nil || rec.Cart == nil {
		return // expired or gone: the repair deletes the entry
	}
	cj, mj, err := encodeEntry(rec)
	if err != nil {
		return
	}
	wctx, cancel := context.WithTimeout(ctx, writeTimeout)
	err = plain(replaceScript.Run(wctx, c.client, []string{c.key(cartID)},
		strconv.FormatUint(rec.Cart.Version, 10), cj, mj, max(c.ttl.Milliseconds(), 1)).Err())
	cancel()
	c.outcome(err)
	if err == nil {
		c.clean(cartID, gen, true)
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
	cj, mj, err := encodeEntry(rec)
	if err != nil {
		return nil, err
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
