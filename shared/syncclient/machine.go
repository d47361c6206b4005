package syncclient

import (
	"errors"
	"strconv"
	"time"

	"github.com/cartsync/cartsync/shared/cart"
	"github.com/cartsync/cartsync/shared/logkey"
	"github.com/cartsync/cartsync/shared/protocol"
)

// The engine's protocol logic is a state machine, in the manner of sans-I/O
// protocol libraries: it does no I/O, starts no goroutine, reads no clock
// and takes no lock. Its inputs are method calls: a connection opened
// (start) or ended (stop), a server message (received), a timer that fired
// (fired), the storage's answers (storageRead, tokenSwapped), a local edit
// stored (enqueued), a login (setUser), the shopper's choice (choose). Its
// outputs are effects, taken with take: messages to send, storage writes
// and reads, timers to set or stop, the end of the connection. It also
// holds what the engine shows (State).
//
// The driver (Engine, run.go) owns the socket, the clock, the timers and
// the storage. It calls the machine under Engine.mu, then carries out the
// effects in order, storage ones first and under Engine.ioMu, feeding back
// what the storage answers; then it publishes the state shown (nothing is
// shown before it is stored) and sends the messages.
//
// Files: this one has the connection's loop (start, inputs, timers,
// step); requests.go the pushes and syncs; effects.go what the machine
// asks for; carts.go the server's
// carts, acks and merges; failures.go its errors; view.go what is shown
// and the in-memory copy of the storage; login.go logins.

const (
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

// machine is the engine's state and protocol logic. The driver guards all
// of it with Engine.mu.
type machine struct {
	cfg   Config // defaults filled in; Dial, Storage and HTTPClient unused
	log   Logger
	newID func() string // a fresh client id
	now   time.Time     // of the input being handled, from the driver

	out     []effect // effects of the inputs since the last take
	changed bool     // the shown state changed since the last take

	// The storage as last read, with the machine's own writes since.
	loaded    bool
	readAt    time.Time  // when it was last read
	token     string     // the device token
	confirmed *cart.Cart // never nil
	pending   []cart.Op  // the outbox; replaced, never modified in place

	// pushAt: no push before then (Config.PushDelay after an edit); zero
	// for no wait.
	pushAt time.Time

	// What is shown, built from the above.
	client     string // the client id of new ops
	clientCart string // the cart id client's seqs count for; "" for none yet
	limits     cart.Limits
	shown      *cart.Cart
	waiting    int
	notices    []cart.Notice    // of the shown cart (State.Notices)
	totals     map[string]int64 // of the shown cart (State.Totals)
	status     Status
	lastErr    *protocol.Error
	rejected   []protocol.Result
	warned     []protocol.Result

	// Logins, from setUser (not stored).
	userSet    bool // setUser was called: it overrides Config.UserToken
	userToken  string
	policy     cart.Policy
	userGen    uint64 // counts changes of the user
	needsLogin bool
	noUser     bool // NoUser was called: no login is coming for this page
	loggedOut  bool // setUser("") was called

	// What the latest welcome said: its cart, user and guest cart. They
	// describe the confirmed cart when sessCart is its id.
	sessCart, sessUser, sessGuest string
	sessGen                       uint64          // the userGen of the hello that welcome answered
	userCarts                     map[string]bool // carts seen as user carts
	guestTok, guestCart           string          // guestCart is device token guestTok's guest cart
	gone                          map[string]bool // carts that no longer exist for this device
	carry                         map[string]bool // those of gone known to be this device's guest carts (settleGone)
	welcomes                      uint64          // counts welcomes
	live                          uint64          // the welcome of the open connection; 0 for none

	// Notices until ackNotices.
	cartExpired bool
	cartErased  bool   // and the storefront erased its user (cart.Cart.Erased)
	toldGone    string // the cart the server told this device was gone (cart_expired)
	merge       *protocol.MergeInfo
	mergeLate   int // State.MergeLate
	// lateOps are the guest cart's adds still waiting when the merge
	// came, by op, with their quantities: those the server answers
	// applied on the user cart count in mergeLate (a duplicate was
	// applied to the guest cart before the login, and merged with it).
	lateOps   map[protocol.OpID]int
	choice    *protocol.MergeInfo
	dropped   []cart.Op
	elsewhere *LoginElsewhere

	sess *session // the open connection; nil for none
}

// session is the state of one connection.
type session struct {
	ids int // request ids used
	hb  time.Duration

	// From the hello.
	token     string // the device token of this connection
	helloCart string // the confirmed cart's id at hello
	withUser  bool   // hello carried a user token
	userGen   uint64 // machine.userGen at hello

	// From the welcome.
	cartID string
	user   string // the user of a user cart
	guest  string // this device's guest cart, on a user cart
	ready  bool   // the reply to hello has arrived

	choosing bool // the server waits for a choose; guest ops are held
	chosen   bool // the choose is sent, its answer awaited

	push     *inflight           // the push awaiting its ack
	syncID   string              // the hello or sync awaiting its cart
	needSync bool                // a sync is due
	held     []*protocol.Message // pushed carts with a gap, held while a reply may close it
	maxBatch int                 // ops per push; halved on too_large
	failures int                 // consecutive failed pushes or syncs

	// Armed timers.
	retry, deadline, stable, pushWait bool

	// Waiting for the storage: reads asked for, and a token swap with what
	// it continues (a welcome, or an unauthorized answer).
	reading     int
	othersCheck bool // once read, sync if other client ids have ops
	swapWelc    *protocol.Message
	swapMove    bool
	swapForg    *protocol.Error

	over       error         // the connection ended: the reason
	progressed bool          // start the backoff over after this connection
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

func newMachine(cfg Config, newID func() string) *machine {
	m := &machine{
		cfg:       cfg,
		log:       cfg.Logger,
		newID:     newID,
		client:    cfg.ClientID,
		confirmed: &cart.Cart{Lines: []*cart.Line{}},
		limits:    cfg.Limits,
		userCarts: map[string]bool{},
		gone:      map[string]bool{},
		carry:     map[string]bool{},
	}
	m.shown = m.confirmed
	return m
}

// take returns the effects asked for since the last take, and whether the
// shown state changed.
func (m *machine) take() ([]effect, bool) {
	out, changed := m.out, m.changed
	m.out, m.changed = nil, false
	return out, changed
}

func (m *machine) emit(e effect) { m.out = append(m.out, e) }

// active reports whether a connection is open and not ended.
func (m *machine) active() bool { return m.sess != nil && m.sess.over == nil }

// start opens a connection: the socket is open; say hello. cfgUser is the
// user token of Config.UserToken, used until setUser.
func (m *machine) start(now time.Time, cfgUser string) {
	m.now = now
	s := &session{maxBatch: protocol.MaxOpsPerPush, hb: m.cfg.Heartbeat, userGen: m.userGen}
	m.sess = s
	user := cfgUser
	if m.userSet {
		user = m.userToken
	}
	if m.status != Offline {
		// Connecting: the first connection, or the next after one that
		// ended for what the next brings (a login or logout on a live
		// connection, a new cart handed over). Once offline (a
		// connection failed or was cut) the status stays so until the
		// server answers, whatever starts the next try: a network that
		// lets sockets open and then fails them (a captive portal, a
		// restored page offline) made it flicker between offline and
		// connecting at every try.
		m.setStatus(Connecting)
	}
	hello := &protocol.Message{
		Type: protocol.TypeHello, ID: m.newReqID(reqHello), Protocol: protocol.Version,
		Client: m.client, DeviceToken: m.token, Since: m.confirmed.Version,
		UserToken: user, Policy: m.policy,
	}
	s.token, s.helloCart, s.withUser = m.token, m.confirmed.ID, user != ""
	s.syncID = hello.ID
	m.send(hello)
	m.emit(setTimer{timerPing, s.hb})
	m.emit(setTimer{timerSilence, m.silenceLimit()})
	m.emit(setTimer{timerDeadline, m.silenceLimit()})
	s.deadline = true
}

// stop ends the connection (the driver closed it) and returns what the
// next dial's backoff depends on.
func (m *machine) stop() (progressed bool, retryAfter time.Duration) {
	s := m.sess
	if s == nil {
		return false, 0
	}
	m.sess = nil
	if m.live != 0 {
		m.live = 0
		m.changed = true
	}
	if m.lateOps != nil {
		// Answered on a later connection, if ever: the merge is told
		// with what is known, rather than waiting for it.
		m.lateOps = nil
		m.changed = true
	}
	m.out = nil
	return s.progressed, s.retryAfter
}

// end ends the connection because of err.
func (m *machine) end(err error) {
	if s := m.sess; s != nil && s.over == nil {
		s.over = err
		m.emit(endConn{err})
	}
}

// endPE ends the connection because of pe, waiting at least as long as the
// server asked before the next.
func (m *machine) endPE(pe *protocol.Error) {
	if m.sess != nil {
		m.sess.retryAfter = time.Duration(pe.RetryAfterMS) * time.Millisecond
	}
	m.end(&sessionError{pe})
}

// received handles a message from the server; nil for one it could not
// read (the driver logs it), which still shows the connection alive.
func (m *machine) received(now time.Time, msg *protocol.Message) {
	m.now = now
	if !m.active() {
		return
	}
	m.emit(setTimer{timerSilence, m.silenceLimit()})
	switch {
	case msg == nil:
	case msg.Type == protocol.TypeWelcome:
		m.onWelcome(msg)
	case msg.Type == protocol.TypeCart:
		m.onCart(msg)
	case msg.Type == protocol.TypeAck:
		m.onAck(msg)
	case msg.Type == protocol.TypeError:
		m.onError(msg)
	case msg.Type == protocol.TypeMerge:
		m.onMerge(msg)
	case msg.Type == protocol.TypePing:
		m.send(&protocol.Message{Type: protocol.TypePong, ID: msg.ID, T: msg.T})
	case msg.Type == protocol.TypePong:
	default:
		m.log.Warn("unexpected message from the server", logkey.Type, msg.Type)
	}
	m.step()
}

// fired handles a timer.
func (m *machine) fired(now time.Time, t timerID) {
	m.now = now
	if !m.active() {
		return
	}
	s := m.sess
	switch t {
	case timerPing:
		// Also pick up ops other tabs queued and closed on.
		m.load()
		m.send(&protocol.Message{Type: protocol.TypePing, T: now.UnixMilli()})
	case timerSilence:
		m.end(errSilent)
	case timerDeadline:
		m.end(errRequestTimeout)
	case timerStable:
		s.stable = false
		s.progressed = true
	case timerRetry:
		s.retry = false
	case timerResync:
		s.needSync = true
	case timerPush:
		s.pushWait = false
	}
	m.step()
}

// woken: ops were queued, or the storage changed; send what is due.
func (m *machine) woken(now time.Time) {
	m.now = now
	m.step()
}

// userChanged: setUser was called. A connection of another user ends.
func (m *machine) userChanged() {
	if m.active() && m.userGen != m.sess.userGen {
		m.end(errUserChanged)
	}
}

// storageRead takes the storage's answer to a storeLoad.
func (m *machine) storageRead(now time.Time, st Stored) {
	m.now = now
	m.loadedStored(now, st)
	if s := m.sess; s != nil && s.reading > 0 {
		s.reading--
		if s.reading == 0 && s.othersCheck {
			s.othersCheck = false
			s.needSync = s.needSync || m.hasOthers()
		}
	}
	m.step()
}

// load asks the driver to read the storage (storageRead): what other tabs
// stored. The connection does nothing more until it has.
func (m *machine) load() {
	m.emit(storeLoad{})
	if m.sess != nil {
		m.sess.reading++
	}
}

func (m *machine) silenceLimit() time.Duration {
	return time.Duration(float64(m.sess.hb) * silenceBeats)
}

// writeTimeout bounds a write on the connection: its silence limit.
func (m *machine) writeTimeout() time.Duration {
	hb := m.cfg.Heartbeat
	if m.sess != nil {
		hb = m.sess.hb
	}
	return time.Duration(float64(hb) * silenceBeats)
}

func (m *machine) newReqID(k reqKind) string {
	m.sess.ids++
	return string(k) + strconv.Itoa(m.sess.ids)
}

func (m *machine) send(msg *protocol.Message) { m.emit(sendMsg{msg}) }

// step does what is due after an input: a sync, the next push, the status.
func (m *machine) step() {
	s := m.sess
	if !m.active() || s.reading > 0 || s.swapWelc != nil || s.swapForg != nil {
		return
	}
	if m.token != s.token {
		m.end(errTokenChanged) // another tab stored another token
		return
	}
	if m.userGen != s.userGen {
		// The user changed (Engine.SetUser): nothing more goes on this
		// connection, not even an op made since, which is for the next.
		m.end(errUserChanged)
		return
	}
	if !s.ready {
		return
	}
	if !s.stable && !s.progressed {
		// Healthy once it stays up a while after the hello reply.
		s.stable = true
		m.emit(setTimer{timerStable, m.cfg.StableAfter})
	}
	if m.settleGone() { // ops queued on a gone cart meanwhile
		return // again once the storage is read
	}
	if s.push == nil && s.syncID == "" && len(s.held) > 0 {
		held := s.held
		s.held = nil
		for _, msg := range held {
			m.onCart(msg)
		}
		if s.reading > 0 {
			return // again once the storage is read
		}
	}
	if s.needSync && s.syncID == "" && !s.retry {
		m.sendSync()
	}
	if s.push == nil && s.syncID == "" && !s.retry && !m.holdPush() {
		m.sendPush()
	}
	busy := s.push != nil || s.syncID != ""
	if busy && !s.deadline {
		s.deadline = true
		m.emit(setTimer{timerDeadline, m.silenceLimit()})
	} else if !busy && s.deadline {
		s.deadline = false
		m.emit(setTimer{timerDeadline, 0})
	}
	if busy || len(m.sendable()) > 0 || s.needSync {
		m.setStatus(Syncing)
	} else {
		m.setStatus(Synced)
	}
}

// edited: an edit was queued on this engine. With Config.PushDelay, its
// push waits that long for more to go with it; later edits do not push
// the time back.
func (m *machine) edited(now time.Time) {
	if m.cfg.PushDelay > 0 && m.pushAt.IsZero() {
		m.pushAt = now.Add(m.cfg.PushDelay)
	}
}

// holdPush reports whether a push must wait for Config.PushDelay after an
// edit, and arms the timer that ends the wait; once the time is up it
// forgets it.
func (m *machine) holdPush() bool {
	if m.pushAt.IsZero() {
		return false
	}
	if d := m.pushAt.Sub(m.now); d > 0 {
		if !m.sess.pushWait {
			m.sess.pushWait = true
			m.emit(setTimer{timerPush, d})
		}
		return true
	}
	m.pushAt, m.sess.pushWait = time.Time{}, false // a late fire finds nothing to end
	return false
}

// progress pushes the request deadline back: the server is answering.
func (m *machine) progress() {
	if m.sess.deadline {
		m.emit(setTimer{timerDeadline, m.silenceLimit()})
	}
}

// news pushes the next resync back: the engine just heard about the cart.
func (m *machine) news() {
	if d := m.cfg.Resync; d > 0 {
		m.emit(setTimer{timerResync, d})
	}
}

// retryLater holds pushes and syncs back for a while after the
// s.failures-th failure in a row.
func (m *machine) retryLater(pe *protocol.Error) {
	wait := backoff(m.sess.failures-1, m.cfg.BackoffBase, m.cfg.BackoffCap, m.cfg.Rand)
	if pe.RetryAfterMS > 0 {
		wait = max(wait, time.Duration(pe.RetryAfterMS)*time.Millisecond)
	}
	m.sess.retry = true
	m.emit(setTimer{timerRetry, max(wait, time.Nanosecond)})
	m.log.Info("retrying later", logkey.Code, pe.Code, logkey.RetryIn, wait.String())
}
