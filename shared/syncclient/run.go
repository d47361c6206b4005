package syncclient

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/cartsync/cartsync/shared/logkey"
	"github.com/cartsync/cartsync/shared/protocol"
)

// The driver of the connection: it dials, reads and writes the socket,
// keeps the timers, carries out the machine's effects and feeds it what
// happens.

// dialTimeout bounds one dial.
const dialTimeout = 15 * time.Second

// Run keeps the engine connected and syncing until ctx ends, redialling with
// full-jitter exponential backoff (started over after a connection that
// stayed healthy; at least as long as the server asked, with jitter), at
// once after SetUser. While the engine needs a login (State.NeedsLogin) it
// does not dial until SetUser is called. It returns ctx's error; ErrRunning if the engine is already
// running; or the *protocol.Error that makes going on pointless:
// unsupported_version (reload the page or update the app). Edits are still
// queued after Run returns.
func (e *Engine) Run(ctx context.Context) error {
	if e.cfg.Dial == nil {
		return errors.New("syncclient: Config.Dial is required to run")
	}
	if !e.running.CompareAndSwap(false, true) {
		return ErrRunning
	}
	defer e.running.Store(false)
	defer e.setStatus(Offline)
	// Connecting from the start, not from the first dial's end: an edit
	// made meanwhile is not told it was made offline. Only at the first
	// Run: one started again (the page's reconnect when the browser goes
	// offline or comes back) stays offline until the server answers.
	if !e.ran.Swap(true) {
		e.update(func(m *machine) {
			if !m.needsLogin {
				m.setStatus(Connecting)
			}
		})
	}
	attempt := 0
	var last redial // why the last connection was followed by the next at once
	for {
		if err := e.awaitLogin(ctx); err != nil {
			return err
		}
		progressed, retryAfter, err := e.connect(ctx)
		if ctx.Err() != nil {
			return ctx.Err()
		}
		var se *sessionError
		if errors.As(err, &se) && permanent(se.e.Code) {
			e.log.Error("sync stopped", logkey.Code, se.e.Code, logkey.Message, se.e.Message)
			return se.e
		}
		// A login or logout, another tab that stored its device token
		// first (two tabs logged out together, each given a new one),
		// or the server handing over a new cart (the old one expired or
		// was erased): nothing failed, so the next connection goes at
		// once (a handover after a short jitter: every device on the
		// cart is told at once), connecting if the connection was up
		// (machine.start, and the handover's error), not offline. The same
		// cause again on the very next connection, with nothing done
		// in between, waits as a failure does.
		why := redialFor(err)
		if progressed {
			last = redialNone
		}
		if errors.Is(err, errUserChanged) || (why != redialNone && why != last) {
			last = why
			e.log.Info("sync connection ended", logkey.Err, err)
			attempt = 0
			if why == redialHandover && !e.jitter(ctx) {
				return ctx.Err()
			}
			continue
		}
		last = why
		if progressed {
			attempt = 0
		}
		wait := redialBackoff(attempt, e.cfg.BackoffBase, e.cfg.BackoffHold, e.cfg.BackoffCap, e.cfg.Rand)
		if retryAfter > 0 {
			// The server asked (going away, overloaded): at least that
			// long, plus a jitter of up to half of it or BackoffBase,
			// whichever is less, so that clients told the same delay
			// do not come back together.
			jitter := min(retryAfter/2, e.cfg.BackoffBase)
			wait = max(wait, retryAfter+time.Duration(e.cfg.Rand()*float64(jitter)))
		}
		attempt++
		e.log.Info("sync connection ended", logkey.Err, err, logkey.RetryIn, wait.String())
		e.setStatus(Offline)
		t := time.NewTimer(wait)
		select {
		case <-t.C:
		case <-e.userChanged: // a login or logout: try it now (offline until answered)
			t.Stop()
			attempt = 0
		case <-ctx.Done():
			t.Stop()
			return ctx.Err()
		}
	}
}

// redial is why a connection is followed by the next at once.
type redial int

const (
	redialNone     redial = iota
	redialToken           // another tab's device token (errTokenChanged)
	redialHandover        // the fresh cart after cart_expired
)

// redialFor says whether a connection that ended on err is followed by
// the next at once, and why: it ended for what the next one brings, not
// because something failed.
func redialFor(err error) redial {
	var pe *protocol.Error
	switch {
	case errors.Is(err, errTokenChanged):
		return redialToken
	case errors.As(err, &pe) && pe.Code == protocol.ErrCartExpired:
		return redialHandover
	}
	return redialNone
}

// jitter waits up to half of BackoffBase before the hello that fetches a
// handed-over cart, so that the devices told together do not all say
// hello at the same instant. It reports false if ctx ended meanwhile.
func (e *Engine) jitter(ctx context.Context) bool {
	t := time.NewTimer(time.Duration(e.cfg.Rand() * float64(e.cfg.BackoffBase) / 2))
	defer t.Stop()
	select {
	case <-t.C:
		return true
	case <-ctx.Done():
		return false
	}
}

// awaitLogin waits, offline, while the engine needs a login.
func (e *Engine) awaitLogin(ctx context.Context) error {
	for {
		e.mu.Lock()
		needs := e.m.needsLogin
		e.mu.Unlock()
		if !needs {
			return nil
		}
		e.setStatus(Offline)
		select {
		case <-e.userChanged:
		case <-ctx.Done():
			return ctx.Err()
		}
	}
}

// conn is one connection's driver. Its fields are the Run goroutine's.
type conn struct {
	e      *Engine
	ctx    context.Context
	cancel context.CancelFunc
	sock   Conn
	reads  chan readResult
	read   chan struct{} // closed when the reader has returned
	door   *door
	ping   *time.Ticker
	timers [numTimers]*time.Timer // all but the ping
}

type readResult struct {
	data []byte
	err  error
}

// connect reads the storage, dials, and runs one connection until it ends.
// It returns what the backoff before the next depends on, and why it ended.
func (e *Engine) connect(ctx context.Context) (progressed bool, retryAfter time.Duration, err error) {
	if err := e.reload(ctx); err != nil {
		return false, 0, err
	}
	dctx, cancel := context.WithTimeout(ctx, dialTimeout)
	sock, err := e.cfg.Dial(dctx)
	cancel()
	if err != nil {
		return false, 0, fmt.Errorf("dial: %w", err)
	}
	c := e.open(ctx, sock)
	defer func() { progressed, retryAfter = c.close() }()

	// Config.UserToken is called outside the lock: it may call the engine.
	e.mu.Lock()
	userSet := e.m.userSet
	e.mu.Unlock()
	var cfgUser string
	if !userSet && e.cfg.UserToken != nil {
		cfgUser = e.cfg.UserToken()
	}
	if err := c.input(func(m *machine) { m.start(time.Now(), cfgUser) }); err != nil {
		return false, 0, err
	}
	return false, 0, c.loop() // the deferred close sets the first two
}

// open starts reading sock and opens the door for Choose.
func (e *Engine) open(ctx context.Context, sock Conn) *conn {
	ctx, cancel := context.WithCancel(ctx)
	c := &conn{
		e: e, ctx: ctx, cancel: cancel, sock: sock,
		reads: make(chan readResult),
		read:  make(chan struct{}),
		door:  &door{choose: make(chan chooseReq), done: make(chan struct{})},
	}
	go func() {
		defer close(c.read)
		for {
			b, err := sock.Read(ctx)
			select {
			case c.reads <- readResult{b, err}:
			case <-ctx.Done():
				return
			}
			if err != nil {
				return
			}
		}
	}()
	e.mu.Lock()
	e.door = c.door
	e.mu.Unlock()
	return c
}

// close ends the connection in the machine and here, and returns what the
// backoff before the next depends on.
func (c *conn) close() (progressed bool, retryAfter time.Duration) {
	e := c.e
	e.update(func(m *machine) { progressed, retryAfter = m.stop() })
	e.mu.Lock()
	e.door = nil
	e.mu.Unlock()
	close(c.door.done)
	c.cancel()
	c.sock.Close()
	<-c.read
	if c.ping != nil {
		c.ping.Stop()
	}
	for _, t := range c.timers {
		if t != nil {
			t.Stop()
		}
	}
	return progressed, retryAfter
}

// loop feeds the machine what happens until the connection must end.
func (c *conn) loop() error {
	e := c.e
	for {
		var err error
		select {
		case <-c.ctx.Done():
			return c.ctx.Err()
		case r := <-c.reads:
			if r.err != nil {
				return fmt.Errorf("read: %w", r.err)
			}
			msg, derr := protocol.DecodeServer(r.data)
			if derr != nil {
				e.log.Warn("bad message from the server", logkey.Err, derr)
				msg = nil
			}
			err = c.input(func(m *machine) { m.received(time.Now(), msg) })
		case <-tickC(c.ping):
			err = c.fired(timerPing)
		case <-timerC(c.timers[timerSilence]):
			err = c.fired(timerSilence)
		case <-timerC(c.timers[timerDeadline]):
			err = c.fired(timerDeadline)
		case <-timerC(c.timers[timerStable]):
			err = c.fired(timerStable)
		case <-timerC(c.timers[timerRetry]):
			err = c.fired(timerRetry)
		case <-timerC(c.timers[timerResync]):
			err = c.fired(timerResync)
		case <-timerC(c.timers[timerPush]):
			err = c.fired(timerPush)
		case <-e.wake:
			err = c.input(func(m *machine) { m.woken(time.Now()) })
		case <-e.userChanged:
			err = c.input((*machine).userChanged)
		case r := <-c.door.choose:
			var rerr error
			err = c.input(func(m *machine) { rerr = m.choose(time.Now(), r.policy) })
			if err != nil && rerr == nil {
				rerr = ErrNotConnected
			}
			r.err <- rerr
		}
		if err != nil {
			return err
		}
	}
}

func (c *conn) fired(t timerID) error {
	return c.input(func(m *machine) { m.fired(time.Now(), t) })
}

func timerC(t *time.Timer) <-chan time.Time {
	if t == nil {
		return nil
	}
	return t.C
}

func tickC(t *time.Ticker) <-chan time.Time {
	if t == nil {
		return nil
	}
	return t.C
}

// input feeds the machine one input (f) and carries out the effects it asks
// for: the storage's first, in order and under ioMu, feeding the machine
// the storage's answers (which may ask for more); then the messages, in
// order. It returns why the connection must end, if it must.
func (c *conn) input(f func(m *machine)) error {
	e := c.e
	e.ioMu.Lock()
	effs := e.apply(f)
	var sends []*protocol.Message
	var end, ioErr error
	for i := 0; i < len(effs) && ioErr == nil; i++ {
		var then func(m *machine)
		switch ef := effs[i].(type) {
		case sendMsg:
			sends = append(sends, ef.m)
		case setTimer:
			c.setTimer(ef.t, ef.d)
		case endConn:
			end = ef.err
		case storeConfirm:
			if err := e.store.Confirm(c.ctx, ef.c, ef.done); err != nil {
				ioErr = fmt.Errorf("store confirmed cart: %w", err)
			}
		case storeRestamp:
			if err := e.store.Restamp(c.ctx, ef.from, ef.to); err != nil {
				ioErr = fmt.Errorf("hand ops of %s to %s: %w", ef.from, ef.to, err)
			}
		case storeReissue:
			if _, err := e.store.Reissue(c.ctx, ef.from, ef.expected, ef.to); err != nil {
				ioErr = fmt.Errorf("send ops of %s again as %s: %w", ef.from, ef.to, err)
			}
		case storeSwap:
			stored, err := e.store.SwapDeviceToken(c.ctx, ef.old, ef.next)
			if err != nil {
				ioErr = fmt.Errorf("store device token: %w", err)
				break
			}
			then = func(m *machine) { m.tokenSwapped(time.Now(), stored) }
		case storeLoad:
			if readLater(effs[i+1:]) {
				effs = append(effs, ef)
				break
			}
			more, err := e.read(c.ctx, (*machine).storageRead)
			effs, ioErr = append(effs, more...), err
		}
		if then != nil {
			effs = append(effs, e.apply(then)...)
		}
	}
	changed := false
	if ioErr == nil || c.storageFailed() {
		changed = e.publish()
	}
	e.ioMu.Unlock()
	if changed {
		e.notify() // after unlocking: OnChange may edit
	}
	if ioErr != nil {
		return ioErr
	}
	if len(sends) > 0 {
		e.mu.Lock()
		limit := e.m.writeTimeout()
		e.mu.Unlock()
		for _, m := range sends {
			if err := c.send(m, limit); err != nil {
				return err
			}
		}
	}
	return end
}

// storageFailed puts the machine's copy of the storage back after a write
// failed: the machine made the change when it asked for the write. It
// reads the storage again and reports whether the copy may be published.
// If the read fails too, the copy is marked stale, so that the next edit,
// Flush or connection reads it first, and it is not published meanwhile.
func (c *conn) storageFailed() bool {
	e := c.e
	if _, err := e.read(context.WithoutCancel(c.ctx), (*machine).loadedStored); err != nil {
		e.apply(func(m *machine) { m.loaded = false })
		return false
	}
	return true
}

// setTimer arms timer t to fire in d, or stops it for d = 0.
func (c *conn) setTimer(t timerID, d time.Duration) {
	if t == timerPing {
		if c.ping == nil {
			c.ping = time.NewTicker(d)
		} else {
			c.ping.Reset(d)
		}
		return
	}
	switch tm := c.timers[t]; {
	case d == 0:
		if tm != nil {
			tm.Stop()
		}
	case tm == nil:
		c.timers[t] = time.NewTimer(d)
	default:
		tm.Reset(d)
	}
}

func (c *conn) send(m *protocol.Message, limit time.Duration) error {
	b, err := protocol.Encode(m)
	if err != nil {
		return fmt.Errorf("encode %s: %w", m.Type, err)
	}
	ctx, cancel := context.WithTimeout(c.ctx, limit)
	defer cancel()
	if err := c.sock.Write(ctx, b); err != nil {
		return fmt.Errorf("write %s: %w", m.Type, err)
	}
	return nil
}
