package syncclient

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"time"

	"github.com/cartsync/cartsync/shared/cart"
	"github.com/cartsync/cartsync/shared/protocol"
)

const (
	// dialTimeout bounds one dial.
	dialTimeout = 15 * time.Second
	// maxHeld bounds the pushed carts held while a reply is awaited.
	maxHeld = 16
	// silenceBeats is how many heartbeat intervals without any message
	// make the connection count as dead.
	silenceBeats = 2.5
)

// Errors that end a connection.
var (
	errSilent         = errors.New("syncclient: nothing heard from the server for 2.5 heartbeats")
	errRequestTimeout = errors.New("syncclient: the server did not answer a request in time")
	errTokenChanged   = errors.New("syncclient: the device token changed; reconnecting with the stored one")
	errUserChanged    = errors.New("syncclient: the user changed; reconnecting")
)

// sessionError ends a connection because of a protocol error.
type sessionError struct{ e *protocol.Error }

func (s *sessionError) Error() string { return s.e.Error() }
func (s *sessionError) Unwrap() error { return s.e }

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
	attempt := 0
	for {
		if err := e.awaitLogin(ctx); err != nil {
			return err
		}
		s := newSession(e)
		err := s.run(ctx)
		if ctx.Err() != nil {
			return ctx.Err()
		}
		var se *sessionError
		if errors.As(err, &se) && permanent(se.e.Code) {
			e.log.Error("sync stopped", logCode, se.e.Code, logMessage, se.e.Message)
			return se.e
		}
		if errors.Is(err, errUserChanged) {
			e.log.Info("sync connection ended", logErr, err)
			attempt = 0
			continue
		}
		if s.progressed {
			attempt = 0
		}
		wait := redialBackoff(attempt, e.cfg.BackoffBase, e.cfg.BackoffHold, e.cfg.BackoffCap, e.cfg.Rand)
		if s.retryAfter > 0 {
			// The server asked (going away, overloaded): at least that
			// long, plus a jitter of up to half of it or BackoffBase,
			// whichever is less, so that clients told the same delay
			// do not come back together.
			jitter := min(s.retryAfter/2, e.cfg.BackoffBase)
			wait = max(wait, s.retryAfter+time.Duration(e.cfg.Rand()*float64(jitter)))
		}
		attempt++
		e.log.Info("sync connection ended", logErr, err, logWait, wait)
		e.setStatus(Offline)
		t := time.NewTimer(wait)
		select {
		case <-t.C:
		case <-e.userChanged: // a login or logout: try it now
			t.Stop()
			attempt = 0
		case <-ctx.Done():
			t.Stop()
			return ctx.Err()
		}
	}
}

// awaitLogin waits, offline, while the engine needs a login.
func (e *Engine) awaitLogin(ctx context.Context) error {
	for {
		e.mu.Lock()
		needs := e.needsLogin
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

// session is one connection. All its fields are used by the Run goroutine
// only.
type session struct {
	e    *Engine
	ctx  context.Context
	conn Conn
	ids  int

	hb      time.Duration
	ping    *time.Ticker
	silence *time.Timer

	token     string // the device token of this connection
	helloCart string // the confirmed cart's id at hello
	withUser  bool   // hello carried a user token
	userGen   uint64 // Engine.userGen at hello
	cartID    string // from welcome
	user      string // from welcome: the user of a user cart
	guest     string // from welcome: this device's guest cart, on a user cart
	choosing  bool   // the server waits for a choose; guest ops are held
	chosen    bool   // the choose is sent, its answer awaited
	ready     bool   // the reply to hello has arrived
	live      *live  // set at welcome

	push      *inflight           // the push awaiting its ack
	syncID    string              // the hello or sync awaiting its cart
	needSync  bool                // a sync is due
	held      []*protocol.Message // pushed carts with a gap, held while a reply may close it
	maxBatch  int                 // ops per push; halved on too_large
	failures  int                 // consecutive failed pushes or syncs
	retry     *time.Timer         // armed: wait before the next push or sync
	deadline  *time.Timer         // armed while a request is in flight
	stableFor *time.Timer         // fires once the connection is stable
	resync    *time.Timer         // fires after Config.Resync without news

	progressed bool          // reset the backoff after this connection
	retryAfter time.Duration // the server asked to wait this long
}

// reqKind is the first byte of a request id: what the request was.
type reqKind byte

const (
	reqHello  reqKind = 'h'
	reqPush   reqKind = 'p'
	reqSync   reqKind = 's'
	reqChoose reqKind = 'c'
)

type inflight struct {
	id  string
	ops []protocol.OpID
}

func newSession(e *Engine) *session {
	return &session{e: e, maxBatch: protocol.MaxOpsPerPush, hb: e.cfg.Heartbeat}
}

type readResult struct {
	data []byte
	err  error
}

func (s *session) run(ctx context.Context) error {
	e := s.e
	if err := e.reload(ctx); err != nil {
		return err
	}
	dctx, cancel := context.WithTimeout(ctx, dialTimeout)
	conn, err := e.cfg.Dial(dctx)
	cancel()
	if err == nil {
		// Connecting only once a socket is open: while the network is
		// down, failed dials leave the status offline.
		e.setStatus(Connecting)
	}
	if err != nil {
		return fmt.Errorf("dial: %w", err)
	}
	ctx, cancel = context.WithCancel(ctx)
	s.ctx, s.conn = ctx, conn
	reads := make(chan readResult)
	readerDone := make(chan struct{})
	go func() {
		defer close(readerDone)
		for {
			b, err := conn.Read(ctx)
			select {
			case reads <- readResult{b, err}:
			case <-ctx.Done():
				return
			}
			if err != nil {
				return
			}
		}
	}()
	defer func() {
		if s.live != nil {
			e.update(func() {
				if e.live == s.live {
					e.live = nil
				}
			})
			close(s.live.done)
		}
		cancel()
		conn.Close()
		<-readerDone
		for _, t := range []*time.Timer{s.silence, s.retry, s.deadline, s.stableFor, s.resync} {
			if t != nil {
				t.Stop()
			}
		}
	}()

	e.mu.Lock()
	userSet, userToken, policy := e.userSet, e.userToken, e.policy
	s.userGen = e.userGen
	e.mu.Unlock()
	if !userSet && e.cfg.UserToken != nil {
		userToken = e.cfg.UserToken() // not under the lock: it may call the engine
	}
	e.mu.Lock()
	hello := &protocol.Message{
		Type: protocol.TypeHello, ID: s.newID(reqHello), Protocol: protocol.Version,
		Client: e.client, DeviceToken: e.token, Since: e.confirmed.Version,
		UserToken: userToken, Policy: policy,
	}
	s.token, s.helloCart, s.withUser = e.token, e.confirmed.ID, userToken != ""
	e.mu.Unlock()
	s.syncID = hello.ID
	if err := s.send(hello); err != nil {
		return err
	}
	s.ping = time.NewTicker(s.hb)
	defer s.ping.Stop()
	s.silence = time.NewTimer(s.silenceLimit())
	s.deadline = time.NewTimer(s.silenceLimit())

	for {
		var err error
		select {
		case <-ctx.Done():
			return ctx.Err()
		case r := <-reads:
			if r.err != nil {
				return fmt.Errorf("read: %w", r.err)
			}
			s.silence.Reset(s.silenceLimit())
			err = s.handle(r.data)
		case <-s.ping.C:
			// Also pick up ops other tabs queued and closed on.
			if err = e.reload(ctx); err == nil {
				err = s.send(&protocol.Message{Type: protocol.TypePing, T: time.Now().UnixMilli()})
			}
		case <-s.silence.C:
			return errSilent
		case <-timerC(s.deadline):
			return errRequestTimeout
		case <-timerC(s.stableFor):
			s.stableFor = nil
			s.progressed = true
		case <-timerC(s.retry):
			s.retry = nil
		case <-timerC(s.resync):
			s.resync = nil
			s.needSync = true
		case <-e.wake:
		case <-e.userChanged:
			e.mu.Lock()
			changed := e.userGen != s.userGen
			e.mu.Unlock()
			if changed {
				return errUserChanged
			}
		case r := <-timerChoose(s.live):
			var rerr error
			rerr, err = s.choose(r.policy)
			r.err <- rerr
		}
		if err == nil {
			err = s.step()
		}
		if err != nil {
			return err
		}
	}
}

func timerC(t *time.Timer) <-chan time.Time {
	if t == nil {
		return nil
	}
	return t.C
}

func timerChoose(l *live) <-chan chooseReq {
	if l == nil {
		return nil
	}
	return l.choose
}

func (s *session) silenceLimit() time.Duration {
	return time.Duration(float64(s.hb) * silenceBeats)
}

func (s *session) newID(k reqKind) string {
	s.ids++
	return string(k) + strconv.Itoa(s.ids)
}

func (s *session) send(m *protocol.Message) error {
	b, err := protocol.Encode(m)
	if err != nil {
		return fmt.Errorf("encode %s: %w", m.Type, err)
	}
	ctx, cancel := context.WithTimeout(s.ctx, s.silenceLimit())
	defer cancel()
	if err := s.conn.Write(ctx, b); err != nil {
		return fmt.Errorf("write %s: %w", m.Type, err)
	}
	return nil
}

// step does what is due after an event: a sync, the next push, the status.
func (s *session) step() error {
	e := s.e
	e.mu.Lock()
	token := e.token
	e.mu.Unlock()
	if token != s.token {
		return errTokenChanged // another tab stored another token
	}
	if !s.ready {
		return nil
	}
	if s.stableFor == nil && !s.progressed {
		// Healthy once it stays up a while after the hello reply.
		s.stableFor = time.NewTimer(e.cfg.StableAfter)
	}
	if err := e.dropGone(s.ctx); err != nil { // ops queued on a gone cart meanwhile
		return err
	}
	if s.push == nil && s.syncID == "" && len(s.held) > 0 {
		held := s.held
		s.held = nil
		for _, m := range held {
			if err := s.onCart(m); err != nil {
				return err
			}
		}
	}
	if s.needSync && s.syncID == "" && s.retry == nil {
		if err := s.sendSync(); err != nil {
			return err
		}
	}
	if s.push == nil && s.syncID == "" && s.retry == nil {
		if err := s.sendPush(); err != nil {
			return err
		}
	}
	busy := s.push != nil || s.syncID != ""
	if busy && s.deadline == nil {
		s.deadline = time.NewTimer(s.silenceLimit())
	} else if !busy && s.deadline != nil {
		s.deadline.Stop()
		s.deadline = nil
	}
	if busy || len(s.sendable()) > 0 || s.needSync {
		e.setStatus(Syncing)
	} else {
		e.setStatus(Synced)
	}
	return nil
}

// progress pushes the request deadline back: the server is answering.
func (s *session) progress() {
	if s.deadline != nil {
		s.deadline.Reset(s.silenceLimit())
	}
}

// news pushes the next resync back: the engine just heard about the cart.
func (s *session) news() {
	if d := s.e.cfg.Resync; d > 0 {
		if s.resync == nil {
			s.resync = time.NewTimer(d)
		} else {
			s.resync.Reset(d)
		}
	}
}

// canSend reports whether op may be sent on this connection: made on its
// cart, before the first sync, or (on a user cart) on this device's guest
// cart, once no choice is pending. The server refuses the batch of any
// other op; those stay in the outbox for a connection on their cart.
func (s *session) canSend(op cart.Op) bool {
	return op.Cart == "" || op.Cart == s.cartID ||
		(s.user != "" && s.guest != "" && op.Cart == s.guest && !s.choosing)
}

// sendable returns the pending ops this connection may send, in outbox
// order.
func (s *session) sendable() []cart.Op {
	e := s.e
	e.mu.Lock()
	pending := e.pending
	e.mu.Unlock()
	if s.cartID == "" {
		return nil
	}
	var out []cart.Op
	for _, op := range pending {
		if s.canSend(op) {
			out = append(out, op)
		}
	}
	return out
}

// pendingClients lists the client ids with sendable ops, in outbox order,
// at most protocol.MaxClientsPerSync.
func (s *session) pendingClients() []string {
	var out []string
	for _, op := range s.sendable() {
		if len(out) == 0 || out[len(out)-1] != op.Client {
			out = append(out, op.Client)
		}
	}
	return out[:min(len(out), protocol.MaxClientsPerSync)]
}

func (s *session) sendSync() error {
	e := s.e
	e.mu.Lock()
	since := e.confirmed.Version
	e.mu.Unlock()
	m := &protocol.Message{Type: protocol.TypeSync, ID: s.newID(reqSync), Since: since, Clients: s.pendingClients()}
	s.needSync = false
	s.syncID = m.ID
	return s.send(m)
}

func (s *session) sendPush() error {
	pending := s.sendable()
	if len(pending) == 0 {
		return nil
	}
	n := min(len(pending), s.maxBatch)
	for {
		m := &protocol.Message{Type: protocol.TypePush, Ops: pending[:n]}
		b, err := protocol.Encode(m)
		if err != nil {
			return fmt.Errorf("encode push: %w", err)
		}
		if len(b) <= protocol.MaxMessageBytes-64 { // room for the id
			break
		}
		if n == 1 {
			if err := s.dropOps(pending[:1], "the operation is too large to send"); err != nil {
				return err
			}
			return s.sendPush()
		}
		n /= 2
	}
	m := &protocol.Message{Type: protocol.TypePush, ID: s.newID(reqPush), Ops: pending[:n]}
	s.push = &inflight{id: m.ID, ops: make([]protocol.OpID, n)}
	for i, op := range pending[:n] {
		s.push.ops[i] = opID(op)
	}
	return s.send(m)
}

// handle processes one message from the server.
func (s *session) handle(data []byte) error {
	m, err := protocol.Decode(data)
	if err != nil {
		s.e.log.Warn("bad message from the server", logErr, err)
		return nil
	}
	switch m.Type {
	case protocol.TypeWelcome:
		return s.onWelcome(m)
	case protocol.TypeCart:
		return s.onCart(m)
	case protocol.TypeAck:
		return s.onAck(m)
	case protocol.TypeError:
		return s.onError(m)
	case protocol.TypeMerge:
		return s.onMerge(m)
	case protocol.TypePing:
		return s.send(&protocol.Message{Type: protocol.TypePong, ID: m.ID, T: m.T})
	case protocol.TypePong:
		return nil
	}
	s.e.log.Warn("unexpected message from the server", logType, m.Type)
	return nil
}
