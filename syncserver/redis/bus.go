package redis

import (
	"context"
	"crypto/rand"
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	goredis "github.com/redis/go-redis/v9"

	"github.com/cartsync/cartsync/shared/logkey"
	"github.com/cartsync/cartsync/syncserver"
)

const (
	// chanSize is how many received messages go-redis buffers for the
	// dispatch goroutine. It counts messages, not bytes: go-redis reads a
	// message of any size in full. A message waits in go-redis at most a
	// minute for room before it is dropped; dispatch only calls fns that do
	// not block, so the buffer only absorbs bursts.
	chanSize = 1024
	// subscribeWait bounds how long Subscribe waits for Redis to confirm a
	// new subscription when ctx has no earlier deadline. Past it the
	// subscription stands locally and is confirmed whenever Redis answers
	// (go-redis subscribes again on reconnect); pushes from other instances
	// missed meanwhile are repaired by the clients' version gap.
	subscribeWait = time.Second
	// publishQueue bounds the payloads waiting to be published; past it a
	// Publish is dropped (at-most-once, as Pub/Sub itself is).
	publishQueue = 8192
	// publishTimeout bounds one pipeline of PUBLISHes, off the caller's
	// path; publishBatch is the most one pipeline takes.
	publishTimeout = 500 * time.Millisecond
	publishBatch   = 256
	// closeDrain bounds how long Close keeps publishing what is queued.
	closeDrain = 2 * time.Second
	// maxLost bounds the carts TakeLost names; past it, it says all.
	maxLost = 10000
	// unsubscribeTimeout bounds a SUBSCRIBE or UNSUBSCRIBE sent by the
	// subscriber goroutine.
	unsubscribeTimeout = 5 * time.Second
	// beatEvery is how often an instance publishes a heartbeat to itself
	// through Redis once it has a Pub/Sub connection; Degraded reports the
	// fan-out down when none has come back for beatStale. Publishing
	// succeeding says nothing of the subscription: it can be closed by
	// Redis (an output buffer limit, CLIENT KILL) and fail to come back
	// (an ACL that no longer allows SUBSCRIBE) while PUBLISH works.
	beatEvery = 2 * time.Second
	beatStale = 3 * beatEvery
)

// Bus is a syncserver.Bus on Redis Pub/Sub, for several server instances
// sharing one Redis.
//
// A Bus holds one Pub/Sub connection, opened on the first Subscribe. Local
// subscribers are counted per cart: the first one SUBSCRIBEs to the cart's
// channel, the last cancel UNSUBSCRIBEs. One goroutine reads the connection
// and calls the cart's local subscribers in the order Redis delivered the
// messages, so messages published on one cart from one instance, one after
// the other, arrive in that order. Subscribers share the payload slice and
// must not modify it or block; they may cancel but must not Subscribe from
// inside fn.
//
// Delivery is at most once. go-redis reconnects a broken Pub/Sub
// connection and subscribes again by itself, but messages published while
// it was down are lost for this instance: clients find out from the version
// gap and pull what they missed.
type Bus struct {
	client *goredis.Client
	prefix string
	log    *slog.Logger

	mu     sync.Mutex
	ps     *goredis.PubSub      // nil until the first Subscribe
	carts  map[string]*cartSubs // by channel
	nextID uint64
	closed bool
	done   chan struct{} // closed by Close
	read   chan struct{} // closed when the dispatch goroutine returns
	subbed chan struct{} // closed when the subscriber goroutine returns

	cmds      []subCmd      // for the subscriber goroutine
	kick      chan struct{} // wakes the subscriber goroutine
	pubs      chan publication
	published chan struct{} // closed when the publisher returns
	fails     int           // Redis calls failed in a row (publish, subscribe)
	lastErr   error
	dropped   uint64 // publications dropped on a full queue
	// losses counts the times this instance's subscriptions may have
	// missed publications: Redis failed, a subscription was made again.
	losses  atomic.Uint64
	failing atomic.Bool // the last publish failed (Losing)
	// lost are the carts whose publications from this instance were lost
	// on their way out (TakeLost), at most maxLost; past it lostAll.
	lost    map[string]bool
	lostAll bool
	lostN   atomic.Int64

	// The heartbeat through Pub/Sub, from the first Subscribe on.
	beatCh    string        // this instance's own channel
	beatEvery time.Duration // beatEvery; tests shorten it
	beatStale time.Duration
	beatSince time.Time    // when the heartbeat started
	lastBeat  atomic.Int64 // unix nanoseconds of the last one received
	repaired  time.Time    // when repair last subscribed again
	backAt    time.Time    // when Redis answered again after failing
	subFails  int          // SUBSCRIBEs failed since Redis last confirmed one
	subErr    error
	droppedAt time.Time     // when a publication was last dropped on a full queue
	quiet     atomic.Bool   // repair has subscribed again since the last heartbeat
	beaten    chan struct{} // closed when the beater returns
}

type publication struct {
	channel string
	payload []byte
}

// cartSubs are the local subscribers of one channel. It exists from the
// SUBSCRIBE until the UNSUBSCRIBE, so at most one SUBSCRIBE per channel is
// waiting for its confirmation at any time.
type cartSubs struct {
	fns   map[uint64]func([]byte)
	ok    bool          // Redis confirmed the subscription
	ready chan struct{} // closed when ok becomes true
}

var (
	_ syncserver.Bus   = (*Bus)(nil)
	_ syncserver.Lossy = (*Bus)(nil)
)

// NewBus returns a Bus publishing on client, with channel names starting
// with prefix. A nil logger means slog.Default(). Close does not close
// client.
func NewBus(client *goredis.Client, prefix string, logger *slog.Logger) *Bus {
	if logger == nil {
		logger = slog.Default()
	}
	warnContextTimeouts(client, logger)
	b := &Bus{
		client:    client,
		prefix:    prefix,
		log:       logger,
		carts:     map[string]*cartSubs{},
		done:      make(chan struct{}),
		read:      make(chan struct{}),
		subbed:    make(chan struct{}),
		kick:      make(chan struct{}, 1),
		pubs:      make(chan publication, publishQueue),
		published: make(chan struct{}),
		beatCh:    prefix + "bus:beat:" + rand.Text(),
		beatEvery: beatEvery,
		beatStale: beatStale,
		beaten:    make(chan struct{}),
	}
	go b.publisher()
	return b
}

func (b *Bus) channel(cartID string) string { return b.prefix + "cart:" + cartID }

// outcome records how a Redis call went, for Degraded.
func (b *Bus) outcome(err error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if err == nil {
		b.answered()
		return
	}
	b.fails++
	b.lastErr = err
	b.losses.Add(1)
	b.failing.Store(true)
}

// answered records that Redis answered. b.mu is held.
func (b *Bus) answered() {
	if b.fails > 0 {
		b.backAt = time.Now() // go-redis subscribes again meanwhile
	}
	b.fails, b.lastErr = 0, nil
	b.failing.Store(false)
}

// beatQuiet is how long no heartbeat has come back, counted from the
// heartbeat's start or Redis answering again after failing if later. b.mu
// is held.
func (b *Bus) beatQuiet() time.Duration {
	last := max(b.lastBeat.Load(), b.beatSince.UnixNano(), b.backAt.UnixNano())
	return time.Since(time.Unix(0, last))
}

// Degraded reports, without waiting on Redis, whether the bus works in a
// degraded mode: Redis failing (updates reach only this instance's
// connections; other instances' clients repair by version gap), SUBSCRIBEs
// failing, publications dropped because Redis is not keeping up,
// subscriptions Redis has not confirmed, or no heartbeat back through
// Pub/Sub for beatStale. nil means healthy.
func (b *Bus) Degraded() error {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.fails > 0 {
		return fmt.Errorf("redis bus: %d calls failed in a row; last: %w", b.fails, b.lastErr)
	}
	if b.subFails > 0 {
		return fmt.Errorf("redis bus: %d subscribes failed since the last one Redis confirmed; last: %w", b.subFails, b.subErr)
	}
	if time.Since(b.droppedAt) <= b.beatStale {
		return fmt.Errorf("redis bus: %d publications dropped so far, the last %s ago: Redis is not keeping up", b.dropped, time.Since(b.droppedAt).Round(time.Second))
	}
	pending := 0
	for _, subs := range b.carts {
		if !subs.ok {
			pending++
		}
	}
	if pending > 0 {
		return fmt.Errorf("redis bus: %d subscriptions not confirmed by Redis", pending)
	}
	if b.ps != nil {
		if quiet := b.beatQuiet(); quiet > b.beatStale {
			return fmt.Errorf("redis bus: no message through Pub/Sub for %s: the subscription is down; updates from other instances do not arrive", quiet.Round(time.Second))
		}
	}
	return nil
}

// startBeatLocked subscribes to this instance's heartbeat channel and
// starts publishing to it. b.mu is held; it runs with the first Subscribe.
func (b *Bus) startBeatLocked() {
	b.beatSince = time.Now()
	b.carts[b.beatCh] = &cartSubs{
		fns: map[uint64]func([]byte){0: func([]byte) {
			b.lastBeat.Store(time.Now().UnixNano())
			if b.quiet.CompareAndSwap(true, false) {
				b.log.Info("redis bus: messages through Pub/Sub again")
			}
		}},
		ready: make(chan struct{}),
	}
	b.queueLocked(subCmd{b.beatCh, true})
	go b.beater()
}

// beater publishes a heartbeat every beatEvery until Close.
func (b *Bus) beater() {
	defer close(b.beaten)
	t := time.NewTicker(b.beatEvery)
	defer t.Stop()
	for {
		select {
		case <-b.done:
			return
		case <-t.C:
		}
		select {
		case b.pubs <- publication{b.beatCh, nil}:
		default: // the queue is full: Degraded says so, and repair waits
			b.drop(b.beatCh)
		}
		b.repair()
	}
}

// repair subscribes again to every channel when no heartbeat has come back
// for beatStale although Redis takes PUBLISHes. go-redis subscribes again
// when it replaces a broken connection, but only sends the SUBSCRIBE: one
// Redis refuses leaves a working connection subscribed to nothing, for
// ever. It runs at most once per beatStale.
func (b *Bus) repair() {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.closed || b.fails > 0 || time.Since(b.droppedAt) <= b.beatStale {
		// Redis is failing as a whole (go-redis reconnects), or is too
		// slow to take the publications: more commands would not help.
		return
	}
	quiet := b.beatQuiet()
	if quiet <= b.beatStale || time.Since(b.repaired) <= b.beatStale {
		return
	}
	b.repaired = time.Now()
	b.quiet.Store(true)
	b.losses.Add(1)
	b.log.Warn("redis bus: no message through Pub/Sub; subscribing again", logkey.Waited, quiet.Round(time.Millisecond).String(), logkey.Count, len(b.carts))
	for ch := range b.carts {
		b.queueLocked(subCmd{ch, true})
	}
}

// Subscribe calls fn for every payload published on cartID until cancel is
// called. It returns once Redis has confirmed the subscription, so a
// message published after Subscribe returns reaches fn unless the
// connection breaks.
func (b *Bus) Subscribe(ctx context.Context, cartID string, fn func(payload []byte)) (cancel func(), err error) {
	ch := b.channel(cartID)

	b.mu.Lock()
	if b.closed {
		b.mu.Unlock()
		return nil, ErrClosed
	}
	if b.ps == nil {
		b.ps = b.client.Subscribe(context.Background())
		go b.dispatch(b.ps.ChannelWithSubscriptions(goredis.WithChannelSize(chanSize)))
		go b.subscriber(b.ps)
		b.startBeatLocked()
	}
	subs := b.carts[ch]
	if subs == nil {
		subs = &cartSubs{fns: map[uint64]func([]byte){}, ready: make(chan struct{})}
		b.carts[ch] = subs
		// Sent by the subscriber goroutine: a Redis that hangs never
		// holds b.mu, so it never holds up another hello.
		b.queueLocked(subCmd{ch, true})
	}
	b.nextID++
	id := b.nextID
	subs.fns[id] = fn
	ready := subs.ready
	degraded := (b.fails > 0 || b.subFails > 0) && !subs.ok
	b.mu.Unlock()

	var once sync.Once
	cancel = func() { once.Do(func() { b.cancel(ch, id) }) }

	if degraded {
		// Redis is failing: do not wait for it; the subscription is
		// confirmed when it answers again.
		return cancel, nil
	}
	timer := time.NewTimer(subscribeWait)
	defer timer.Stop()
	select {
	case <-ready:
		return cancel, nil
	case <-ctx.Done():
		cancel()
		return nil, fmt.Errorf("redis: subscribe cart %s: %w", cartID, ctx.Err())
	case <-b.done:
		cancel()
		return nil, ErrClosed
	case <-timer.C:
		// Redis is slow or away: the subscription is confirmed when it
		// answers. Meanwhile this instance's own updates still arrive.
		b.log.Warn("redis bus: subscription not confirmed yet", logkey.Channel, ch, logkey.Waited, subscribeWait.String())
		return cancel, nil
	}
}

// cancel removes subscriber id of channel ch, and UNSUBSCRIBEs when it was
// the last one and the subscription is confirmed. An unconfirmed one is
// left to confirmed, which UNSUBSCRIBEs if nobody is left by then.
func (b *Bus) cancel(ch string, id uint64) {
	b.mu.Lock()
	defer b.mu.Unlock()
	subs := b.carts[ch]
	if b.closed || subs == nil {
		return
	}
	delete(subs.fns, id)
	if len(subs.fns) == 0 && subs.ok {
		b.unsubscribe(ch)
	}
}

// unsubscribe drops channel ch. b.mu must be held.
func (b *Bus) unsubscribe(ch string) {
	delete(b.carts, ch)
	b.queueLocked(subCmd{ch, false})
}

// subCmd is a SUBSCRIBE (sub) or UNSUBSCRIBE for the subscriber goroutine.
type subCmd struct {
	channel string
	sub     bool
}

// queueLocked hands cmd to the subscriber goroutine, in order, without
// waiting. b.mu is held.
func (b *Bus) queueLocked(cmd subCmd) {
	b.cmds = append(b.cmds, cmd)
	select {
	case b.kick <- struct{}{}:
	default:
	}
}

// subscriber sends the queued SUBSCRIBEs and UNSUBSCRIBEs to Redis, in
// order, until Close. A command that fails is not retried:
// go-redis keeps a subscribed channel and subscribes it again when it
// reconnects, and forgets an unsubscribed one even if the command failed.
func (b *Bus) subscriber(ps *goredis.PubSub) {
	defer close(b.subbed)
	for {
		select {
		case <-b.done:
			return
		case <-b.kick:
		}
		b.mu.Lock()
		cmds := b.cmds
		b.cmds = nil
		b.mu.Unlock()
		// Consecutive commands of one kind go as one, so that the
		// thousands of hellos of a restart cost Redis a few commands.
		for len(cmds) > 0 {
			if b.closing() {
				// Closed meanwhile: the subscriptions end with the
				// connection; what is left is not worth a warning each.
				return
			}
			sub := cmds[0].sub
			n := 1
			for n < len(cmds) && n < subBatchMax && cmds[n].sub == sub {
				n++
			}
			chs := make([]string, n)
			for i, cmd := range cmds[:n] {
				chs[i] = cmd.channel
			}
			cmds = cmds[n:]
			ctx, cancel := context.WithTimeout(context.Background(), unsubscribeTimeout)
			var err error
			if sub {
				err = ps.Subscribe(ctx, chs...)
			} else {
				err = ps.Unsubscribe(ctx, chs...)
			}
			cancel()
			if err != nil {
				if b.closing() {
					return // closed while it ran: that is why it failed
				}
				err = plain(err)
				b.log.Warn("redis bus: (un)subscribe", logkey.Channel, chs[0], logkey.Count, len(chs), logkey.Subscribe, sub, logkey.Err, err)
				// Counted apart from publishing: a PUBLISH that works
				// says nothing of whether SUBSCRIBE does.
				b.mu.Lock()
				b.subFails++
				b.subErr = err
				b.mu.Unlock()
			}
		}
	}
}

// closing reports whether Close has been called.
func (b *Bus) closing() bool {
	select {
	case <-b.done:
		return true
	default:
		return false
	}
}

// subBatchMax is the most channels one SUBSCRIBE or UNSUBSCRIBE names.
const subBatchMax = 512

// confirmed marks channel ch subscribed.
func (b *Bus) confirmed(ch string) {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.answered()
	b.subFails, b.subErr = 0, nil
	subs := b.carts[ch]
	if b.closed || subs == nil || subs.ok {
		// A resubscription after a reconnect: what was published
		// meanwhile did not come.
		b.losses.Add(1)
		return
	}
	subs.ok = true
	close(subs.ready)
	if len(subs.fns) == 0 {
		b.unsubscribe(ch)
	}
}

// dispatch reads the Pub/Sub connection until it is closed.
func (b *Bus) dispatch(msgs <-chan any) {
	defer close(b.read)
	var fns []func([]byte)
	for m := range msgs {
		switch m := m.(type) {
		case *goredis.Subscription:
			if m.Kind == "subscribe" {
				b.confirmed(m.Channel)
			}
		case *goredis.Message:
			fns = fns[:0]
			b.mu.Lock()
			if subs := b.carts[m.Channel]; subs != nil && !b.closed {
				for _, fn := range subs.fns {
					fns = append(fns, fn)
				}
			}
			b.mu.Unlock()
			if len(fns) == 0 {
				continue
			}
			payload := []byte(m.Payload)
			for _, fn := range fns {
				fn(payload)
			}
			clear(fns)
		}
	}
}

// Losses counts the times this instance's subscriptions may have missed
// publications since the bus was made (syncserver.Lossy): Redis failed, a
// subscription was made again after a reconnect or a quiet spell.
func (b *Bus) Losses() uint64 { return b.losses.Load() }

// Ping checks that Redis answers.
func (b *Bus) Ping(ctx context.Context) error {
	if err := b.client.Ping(ctx).Err(); err != nil {
		return fmt.Errorf("redis: ping: %w", plain(err))
	}
	return nil
}

// Close drops every subscription and closes the Pub/Sub connection. When it
// returns no fn is running or will be called. It does not close the client.
func (b *Bus) Close() error {
	b.mu.Lock()
	if b.closed {
		b.mu.Unlock()
		return nil
	}
	b.closed = true
	close(b.done)
	ps := b.ps
	b.carts = map[string]*cartSubs{}
	b.mu.Unlock()
	<-b.published
	if ps == nil {
		return nil
	}
	err := ps.Close()
	<-b.read
	<-b.subbed // nothing logged or called after Close
	<-b.beaten
	if err != nil {
		return fmt.Errorf("redis: close bus: %w", plain(err))
	}
	return nil
}
