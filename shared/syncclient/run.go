package syncclient

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"time"

	"cartsync/shared/cart"
	"cartsync/shared/protocol"
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

func (s *session) onWelcome(m *protocol.Message) error {
	e := s.e
	moved := m.PrevCartID != "" && m.MergedInto != ""
	if moved {
		// The previous guest cart was merged into a user cart at a login
		// (in another tab, or one this device logged out of before it
		// finished): its unsent ops belong to that user cart now, and
		// are sent at the next login as that user.
		if err := e.store.Restamp(s.ctx, m.PrevCartID, m.MergedInto); err != nil {
			return fmt.Errorf("hand ops of %s to %s: %w", m.PrevCartID, m.MergedInto, err)
		}
		e.update(func() { e.userCarts[m.MergedInto] = true })
		if err := e.reload(s.ctx); err != nil {
			return err
		}
	}
	if m.DeviceToken != "" && m.DeviceToken != s.token {
		stored, err := e.store.SwapDeviceToken(s.ctx, s.token, m.DeviceToken)
		if err != nil {
			return fmt.Errorf("store device token: %w", err)
		}
		old := s.token
		e.update(func() {
			e.token = stored
			if stored == m.DeviceToken && old != "" && !moved {
				// A new token replaces one whose guest cart expired:
				// ops made on that cart can never be sent again.
				if gone := e.guestOfLocked(old, ""); gone != "" {
					e.gone[gone] = true
				}
			}
		})
		if stored != m.DeviceToken {
			// Another tab stored its token first: use that one (and
			// its cart), before anything is pushed on this one.
			return errTokenChanged
		}
		s.token = stored
		if err := e.dropGone(s.ctx); err != nil {
			return err
		}
	}
	s.cartID, s.user, s.guest = m.CartID, m.User, m.GuestCartID
	s.live = &live{choose: make(chan chooseReq), done: make(chan struct{})}
	e.update(func() {
		e.sessCart, e.sessUser, e.sessGuest = m.CartID, m.User, m.GuestCartID
		e.sessGen = s.userGen
		switch {
		case m.User == "":
			e.guestTok, e.guestCart = s.token, m.CartID
			e.choice = nil
		case m.GuestCartID != "":
			e.userCarts[m.CartID] = true
			e.guestTok, e.guestCart = s.token, m.GuestCartID
		default:
			e.userCarts[m.CartID] = true
		}
		e.live = s.live
		e.rebuildLocked()
	})
	if m.HeartbeatMS > 0 {
		s.hb = time.Duration(m.HeartbeatMS) * time.Millisecond
		s.ping.Reset(s.hb)
		s.silence.Reset(s.silenceLimit())
	}
	if m.Limits != nil && m.Limits.MaxQuantity > 0 {
		e.update(func() {
			lim := *m.Limits
			if lim.MaxContribs == 0 { // server bookkeeping, not sent
				lim.MaxContribs = e.limits.MaxContribs
			}
			e.limits = lim
			e.rebuildLocked()
		})
	}
	s.progress()
	return nil
}

// onCart handles a snapshot: the reply to hello or sync, or a push.
func (s *session) onCart(m *protocol.Message) error {
	e := s.e
	if m.Cart == nil {
		return nil
	}
	if s.cartID != "" && m.Cart.ID != s.cartID {
		e.log.Warn("cart of another cart id ignored", "cart", m.Cart.ID)
		return nil
	}
	e.mu.Lock()
	confirmed := e.confirmed
	pending := e.pending
	e.mu.Unlock()
	same := confirmed.ID == "" || confirmed.ID == m.Cart.ID

	// Pushed: with the ops it covers, or without a request id once the
	// hello is answered (a merge chosen later changes the cart by no op).
	if len(m.By) > 0 || (m.ID == "" && s.ready) {
		switch {
		case same && m.From == confirmed.Version:
			s.news()
			return s.confirm(m.Cart, m.By)
		case same && m.Cart.Version <= confirmed.Version:
			return nil
		case !s.ready || s.syncID != "" || s.push != nil:
			// The reply in flight may close the gap; look again after it.
			if len(s.held) == maxHeld {
				s.held = s.held[1:]
			}
			s.held = append(s.held, m)
			return nil
		}
		s.needSync = true
		return nil
	}

	// A reply to hello or sync.
	s.progress()
	s.news()
	s.syncID = ""
	if !s.ready {
		s.ready = true
		s.needSync = s.needSync || s.hasOthers() // learn their acked seqs before resending
		if !s.choosing {
			e.update(func() { e.choice = nil }) // resolved meanwhile
		}
	}
	var done []protocol.OpID
	for _, op := range pending {
		if !s.canSend(op) {
			continue // the seqs are this cart's
		}
		if acked, ok := m.Acked[op.Client]; ok && op.Seq <= acked {
			done = append(done, opID(op))
		}
	}
	c := m.Cart
	if same && c.Version < confirmed.Version {
		c = nil
	}
	return s.confirm(c, done)
}

// confirm stores a confirmed cart and drops the answered ops, then reloads.
func (s *session) confirm(c *cart.Cart, done []protocol.OpID) error {
	if c == nil && len(done) == 0 {
		return nil
	}
	if err := s.e.store.Confirm(s.ctx, c, done); err != nil {
		return fmt.Errorf("store confirmed cart: %w", err)
	}
	return s.e.reload(s.ctx)
}

func (s *session) onAck(m *protocol.Message) error {
	e := s.e
	s.progress()
	s.news()
	done := make([]protocol.OpID, 0, len(m.Results))
	var maxApplied uint64
	var applied int
	var rejected []protocol.Result
	for _, r := range m.Results {
		done = append(done, protocol.OpID{Client: r.Client, Seq: r.Seq})
		switch r.Status {
		case protocol.StatusRejected:
			rejected = append(rejected, r)
			code := cart.Code("")
			if r.Error != nil {
				code = r.Error.Code
			}
			e.log.Info("op rejected", logOps, fmt.Sprintf("%s/%d", r.Client, r.Seq), logCode, code)
		case protocol.StatusApplied:
			maxApplied = max(maxApplied, r.Version)
			applied++
		}
	}
	e.mu.Lock()
	confirmed := e.confirmed
	e.mu.Unlock()
	c := m.Cart
	if c != nil && ((s.cartID != "" && c.ID != s.cartID) || (confirmed.ID == c.ID && c.Version <= confirmed.Version)) {
		c = nil
	}
	// The cart moved further than this ack's own ops: others' ops,
	// perhaps from this outbox through another tab. Learn which.
	moved := c != nil && c.ID == confirmed.ID && c.Version-confirmed.Version > uint64(applied)
	if err := s.confirm(c, done); err != nil {
		return err
	}
	if moved && s.hasOthers() {
		s.needSync = true
	}
	if len(rejected) > 0 {
		e.addRejected(rejected...)
	}
	e.mu.Lock()
	behind := maxApplied > e.confirmed.Version
	e.mu.Unlock()
	if behind {
		s.needSync = true // applied, but no cart shows it
	}

	if s.push != nil && (m.ID == "" || m.ID == s.push.id) {
		answered := make(map[protocol.OpID]bool, len(done))
		for _, id := range done {
			answered[id] = true
		}
		all := true
		for _, id := range s.push.ops {
			all = all && answered[id]
		}
		if all {
			s.push = nil
			s.failures = 0
			s.progressed = true
			s.maxBatch = min(protocol.MaxOpsPerPush, s.maxBatch*2)
			e.update(func() { e.lastErr = nil })
		}
		// Otherwise the server stopped early: its error about the rest
		// follows, and the push stays in flight until then.
	}
	return nil
}

// hasOthers reports whether the sendable ops include ones of client ids
// other than the engine's own.
func (s *session) hasOthers() bool {
	e := s.e
	e.mu.Lock()
	own := e.client
	e.mu.Unlock()
	for _, op := range s.sendable() {
		if op.Client != own {
			return true
		}
	}
	return false
}

// onMerge takes what the server says about the login merge.
func (s *session) onMerge(m *protocol.Message) error {
	mi := m.Merge
	if mi == nil {
		return nil
	}
	s.progress()
	e := s.e
	e.log.Info("login merge", "status", mi.Status, logVersion, mi.Version)
	s.choosing = mi.Status == protocol.MergeChoose
	s.chosen = false
	e.update(func() {
		e.merge = mi
		if s.choosing {
			e.choice = mi
		} else {
			e.choice = nil
		}
	})
	return nil
}

// choose sends the shopper's pick for a pending choice. rerr is for the
// caller of Choose; err ends the connection.
func (s *session) choose(policy cart.Policy) (rerr, err error) {
	e := s.e
	e.mu.Lock()
	choice := e.choice
	e.mu.Unlock()
	if !s.choosing || s.chosen || choice == nil {
		return ErrNoChoice, nil
	}
	err = s.send(&protocol.Message{Type: protocol.TypeChoose, ID: s.newID(reqChoose), Policy: policy})
	if err != nil {
		return ErrNotConnected, err
	}
	s.chosen = true
	s.progress()
	return nil, nil
}

// fatal codes end the connection: the next one may fare better (a new
// token, a new server), after the backoff.
func fatal(code protocol.ErrorCode) bool {
	switch code {
	case protocol.ErrUnsupportedVersion, protocol.ErrHelloRequired, protocol.ErrUnauthorized,
		protocol.ErrTokenExpired, protocol.ErrForbidden, protocol.ErrGoingAway:
		return true
	}
	return false
}

// permanent codes stop Run: reconnecting cannot help. (forbidden is not
// one: a guest cart merged into a user cart by a login elsewhere gets a
// fresh guest cart at the next hello.)
func permanent(code protocol.ErrorCode) bool {
	return code == protocol.ErrUnsupportedVersion
}

func (s *session) onError(m *protocol.Message) error {
	e := s.e
	pe := m.Error
	if pe == nil {
		return nil
	}
	s.progress()
	e.log.Warn("error from the server", logCode, pe.Code, logMessage, pe.Message)
	e.update(func() { e.lastErr = pe })
	switch {
	case pe.Code == protocol.ErrTokenExpired || (pe.Code == protocol.ErrUnauthorized && s.withUser):
		// The user token is refused. (An unauthorized answer to a user
		// hello cannot say which token it refused; the device token is
		// kept, as losing it would lose the guest cart.) Do not present
		// it again: wait for SetUser.
		e.update(func() {
			if e.userGen == s.userGen {
				e.needsLogin = true
			}
		})
		return s.end(pe)
	case pe.Code == protocol.ErrUnauthorized && s.token != "":
		return s.forgetToken(pe)
	case fatal(pe.Code):
		return s.end(pe)
	case pe.Code == protocol.ErrCartExpired:
		if err := s.cartExpired(pe.Cart); err != nil {
			return err
		}
		if s.ready { // about a request: the next hello gets the fresh cart
			return s.end(pe)
		}
		return nil // at hello: the welcome with the fresh cart follows
	}

	var kind reqKind
	if m.ID != "" {
		kind = reqKind(m.ID[0])
	} else { // the server could not read the request's id
		switch {
		case !s.ready:
			kind = reqHello
		case s.push != nil:
			kind = reqPush
		case s.syncID != "":
			kind = reqSync
		}
	}
	switch kind {
	case reqHello:
		return s.end(pe)
	case reqChoose:
		s.chosen = false // the choice stands; the shopper may try again
		return nil
	case reqSync:
		if m.ID != "" && m.ID != s.syncID {
			return nil
		}
		s.syncID = ""
		s.needSync = true
		s.failures++
		s.retryLater(pe)
		return nil
	case reqPush:
		if s.push == nil || (m.ID != "" && m.ID != s.push.id) {
			return nil // about a push already settled
		}
		return s.onPushError(pe)
	}
	return nil
}

func (s *session) onPushError(pe *protocol.Error) error {
	batch := s.push.ops
	s.push = nil
	switch {
	case pe.Code == protocol.ErrOutOfOrder && pe.Expected != nil:
		if err := s.resendFrom(*pe.Expected); err != nil {
			return err
		}
		s.failures++
		if s.failures > 1 { // resend at once the first time only
			s.retryLater(pe)
		}
		return nil
	case pe.Retryable:
		s.failures++
		s.retryLater(pe)
		return nil
	case len(batch) > 1:
		// The batch as a whole was refused (too large, or a field the
		// server does not take): halve it to find the op it is about.
		s.maxBatch = max(1, len(batch)/2)
		return nil
	}
	// One op the server will never take: drop it so it cannot block the
	// ones behind it, and report it like a rejection.
	e := s.e
	e.mu.Lock()
	var ops []cart.Op
	for _, op := range e.pending {
		if opID(op) == batch[0] {
			ops = append(ops, op)
		}
	}
	e.mu.Unlock()
	return s.dropOps(ops, pe.Message)
}

// resendFrom handles out_of_order: the server expects exp.Seq next from
// exp.Client. Our ops of that client before it were processed and are
// dropped (a sync shows their effect); the push that follows starts at it.
// If the outbox starts after it, the ops in between are lost and the gap can
// never be filled: that client's ops are dropped and reported.
func (s *session) resendFrom(exp protocol.OpID) error {
	e := s.e
	var before, all []cart.Op
	for _, op := range s.sendable() {
		if op.Client == exp.Client {
			all = append(all, op)
			if op.Seq < exp.Seq {
				before = append(before, op)
			}
		}
	}
	if len(all) == 0 {
		return nil
	}
	if all[0].Seq > exp.Seq {
		e.log.Error("ops lost from the outbox; the rest of this client's ops cannot be sent",
			logOps, exp.Client, "expected", exp.Seq, "first", all[0].Seq)
		e.update(func() {
			if e.client == exp.Client {
				e.rotateLocked("the server can take no more ops of this id")
			}
		})
		return s.dropOps(all, fmt.Sprintf("lost: the server expects seq %d of client %s", exp.Seq, exp.Client))
	}
	if len(before) == 0 {
		return nil
	}
	ids := make([]protocol.OpID, len(before))
	for i, op := range before {
		ids[i] = opID(op)
	}
	s.needSync = true
	return s.confirm(nil, ids)
}

// dropOps removes ops the server will never take and reports them as
// rejected.
func (s *session) dropOps(ops []cart.Op, why string) error {
	if len(ops) == 0 {
		return nil
	}
	e := s.e
	e.mu.Lock()
	v := e.confirmed.Version
	e.mu.Unlock()
	ids := make([]protocol.OpID, len(ops))
	results := make([]protocol.Result, len(ops))
	for i, op := range ops {
		ids[i] = opID(op)
		results[i] = protocol.Result{
			Client: op.Client, Seq: op.Seq, Status: protocol.StatusRejected, Version: v,
			Error: &cart.Error{Code: cart.CodeInvalidOp, Message: why},
		}
	}
	if err := s.confirm(nil, ids); err != nil {
		return err
	}
	e.addRejected(results...)
	return nil
}

// forgetToken handles unauthorized: the server will never take this
// connection's token, so its cart cannot be reached. Forget the token and the
// confirmed cart, and start over on a new guest cart. The outbox is kept: ops
// of client ids without history go to the new cart; the others are refused
// there as out of order and reported.
func (s *session) forgetToken(pe *protocol.Error) error {
	e := s.e
	stored, err := e.store.SwapDeviceToken(s.ctx, s.token, "")
	if err != nil {
		return fmt.Errorf("forget device token: %w", err)
	}
	if stored == "" {
		e.log.Error("device token refused; starting over on a new cart", logMessage, pe.Message)
		e.update(func() {
			if gone := e.guestOfLocked(s.token, s.helloCart); gone != "" {
				e.gone[gone] = true
			}
		})
		if err := e.store.Confirm(s.ctx, &cart.Cart{Lines: []*cart.Line{}}, nil); err != nil {
			return fmt.Errorf("forget confirmed cart: %w", err)
		}
	}
	if err := e.reload(s.ctx); err != nil {
		return err
	}
	if err := e.dropGone(s.ctx); err != nil {
		return err
	}
	return s.end(pe)
}

// cartExpired handles cart_expired: the device's guest cart was purged for
// inactivity; the welcome of the hello it answers (or of the next hello)
// brings a new device token and a fresh cart. Ops made on the purged cart
// cannot be sent anywhere: they are dropped and reported. The purged
// snapshot is forgotten at once, so that edits made before the fresh cart
// arrives go to it. On a user's connection only the notice is kept: a
// user's cart keeps its id. which is the cart the server named (protocol 2
// servers always name it); without it the engine works out which it was.
func (s *session) cartExpired(which string) error {
	e := s.e
	var wipe bool
	e.update(func() {
		e.cartExpired = true
		if s.withUser && which == "" {
			return
		}
		gone := which
		if gone == "" {
			gone = e.guestOfLocked(s.token, s.helloCart)
		}
		if gone != "" {
			e.gone[gone] = true
			wipe = e.confirmed.ID == gone
		}
	})
	if wipe {
		if err := e.store.Confirm(s.ctx, &cart.Cart{Lines: []*cart.Line{}}, nil); err != nil {
			return fmt.Errorf("forget expired cart: %w", err)
		}
	}
	if err := e.reload(s.ctx); err != nil {
		return err
	}
	return e.dropGone(s.ctx)
}

// end ends the connection because of pe, waiting at least as long as the
// server asked before the next.
func (s *session) end(pe *protocol.Error) error {
	s.retryAfter = time.Duration(pe.RetryAfterMS) * time.Millisecond
	return &sessionError{pe}
}

// retryLater holds pushes and syncs back for a while after the s.failures-th
// failure in a row.
func (s *session) retryLater(pe *protocol.Error) {
	wait := backoff(s.failures-1, s.e.cfg.BackoffBase, s.e.cfg.BackoffCap, s.e.cfg.Rand)
	if pe.RetryAfterMS > 0 {
		wait = max(wait, time.Duration(pe.RetryAfterMS)*time.Millisecond)
	}
	if s.retry != nil {
		s.retry.Stop()
	}
	s.retry = time.NewTimer(wait)
	s.e.log.Info("retrying later", logCode, pe.Code, logWait, wait)
}

func (e *Engine) addRejected(rs ...protocol.Result) {
	e.update(func() {
		e.rejected = append(e.rejected, rs...)
		if n := len(e.rejected) - maxRejected; n > 0 {
			e.rejected = slices.Clone(e.rejected[n:])
		}
	})
}
