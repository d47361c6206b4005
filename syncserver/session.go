package syncserver

import (
	"context"
	"errors"
	"net/http"
	"os"
	"strings"
	"sync"
	"time"

	"github.com/coder/websocket"

	"github.com/cartsync/cartsync/shared/cart"
	"github.com/cartsync/cartsync/shared/logkey"
	"github.com/cartsync/cartsync/shared/protocol"
)

const (
	// helloTimeout is how long a new connection has to say hello.
	helloTimeout = 10 * time.Second
	// writeTimeout bounds one websocket write.
	writeTimeout = 10 * time.Second
	// maxBadMessages is how many bad messages in a row end a connection.
	maxBadMessages = 10
	// readLimit is where the websocket library closes the connection;
	// messages between protocol.MaxMessageBytes and this get a too_large
	// error and leave the connection open.
	readLimit = protocol.MaxServerMessageBytes
)

// session is one websocket connection.
type session struct {
	srv    *Server
	conn   *websocket.Conn
	lean   *leanConn // conn's network connection and read buffer
	ob     *outbox
	once   sync.Once   // the last error (going_away, token_expired) is queued once
	expiry *time.Timer // ends a user's access when the user token expires

	id     Identity
	client string
	joined bool

	mu         sync.Mutex
	busy       bool // processing a message
	closing    bool
	dropped    bool
	retryAfter time.Duration // told to the client when closing
	// Until the hello is answered (greet), a notice that a cart is gone
	// waits in gone: before the welcome, a client takes cart_expired for
	// the hello's own answer and expects a fresh cart in the welcome,
	// and the welcome and cart that follow would be of the cart the
	// hello loaded before the purge. nil while none is held, greeted
	// once the hello is answered: one word in every session.
	gone *[]heldGone
}

// greeted is session.gone once the hello is answered.
var greeted = &[]heldGone{}

// heldGone is a gone notice (cart_expired without an id) that waits for
// the hello's answer.
type heldGone struct {
	cartID string
	msg    []byte
}

// tellGone queues msg, the notice that cartID is gone, or holds it until
// the hello is answered (greet).
func (ss *session) tellGone(cartID string, msg []byte) {
	ss.mu.Lock()
	if ss.gone != greeted {
		if ss.gone == nil {
			ss.gone = &[]heldGone{}
		}
		*ss.gone = append(*ss.gone, heldGone{cartID, msg})
		ss.mu.Unlock()
		return
	}
	ss.mu.Unlock()
	ss.send(msg)
}

// greet marks the hello answered (its welcome and cart queued), and sends
// the gone notices held meanwhile about the cart the connection is on: a
// cart that went after the hello loaded it is told after its snapshot, as
// to any connection on it. (One about the cart of a device token the hello
// replaced was told as the hello's answer.)
func (ss *session) greet() {
	ss.mu.Lock()
	held := ss.gone
	ss.gone = greeted
	ss.mu.Unlock()
	if held == nil || held == greeted {
		return
	}
	for _, g := range *held {
		if g.cartID == ss.id.CartID {
			ss.send(g.msg)
		}
	}
}

func (s *Server) serveSync(w http.ResponseWriter, r *http.Request) {
	s.mu.Lock()
	closing := s.closing
	s.mu.Unlock()
	if closing {
		writeError(w, http.StatusServiceUnavailable, protocol.Errorf(protocol.ErrOverloaded, "server is shutting down"))
		return
	}
	if !headerHas(r.Header, "Connection", "upgrade") || !headerHas(r.Header, "Upgrade", "websocket") {
		// The library's own answer to this is plain text.
		w.Header().Set("Upgrade", "websocket")
		writeError(w, http.StatusUpgradeRequired, protocol.Errorf(protocol.ErrInvalid, "/v1/sync is the websocket endpoint: it takes a websocket upgrade (docs/protocol.md)"))
		return
	}
	if !s.originAllowed(r) {
		s.httpError(w, protocol.Errorf(protocol.ErrForbidden, "origin %q may not open the websocket", r.Header.Get("Origin")))
		return
	}
	release, perr := s.ipl.acquireConn(requestAddr(r.Context()))
	if perr != nil {
		s.httpError(w, perr)
		return
	}
	// The origin was checked above, whole; the library's check would
	// compare hosts only.
	lh := &leanHijack{ResponseWriter: w}
	conn, err := websocket.Accept(lh, r, &websocket.AcceptOptions{InsecureSkipVerify: true})
	if err != nil {
		release()
		s.log.Info("websocket accept", logkey.Err, err)
		return
	}
	conn.SetReadLimit(readLimit)
	ss := &session{srv: s, conn: conn, lean: lh.c}
	ss.ob = newOutbox(frameConn{ws: conn, lc: lh.c}, s.cfg.SendQueue, ss.slow)
	s.mu.Lock()
	if s.closing {
		s.mu.Unlock()
		release()
		conn.Close(websocket.StatusGoingAway, "server is shutting down")
		return
	}
	s.sessions[ss] = struct{}{}
	s.wg.Add(1)
	s.mu.Unlock()
	s.metrics.connections.Inc()
	// The connection is the library's now: the HTTP server's goroutine,
	// whose stack grew through the handshake, returns, and a new one
	// with a small stack reads the connection for its life. Its context
	// carries the one value the session reads, the client's address, and
	// nothing of the request's (which ends when the handler returns, and
	// would otherwise be kept, with the HTTP connection's, for the
	// connection's life). It never ends: see readLoop.
	ctx := context.WithValue(context.Background(), ctxKeyAddr{}, requestAddr(r.Context()))
	go func() {
		defer func() {
			release()
			s.metrics.connections.Dec()
			s.mu.Lock()
			delete(s.sessions, ss)
			s.mu.Unlock()
			s.wg.Done()
		}()
		ss.readLoop(ctx)
	}()
}

// readLoop handles the client's messages one at a time until the
// connection ends.
func (ss *session) readLoop(ctx context.Context) {
	s := ss.srv
	closeStatus, closeReason := websocket.StatusGoingAway, "closing"
	defer func() {
		if ss.expiry != nil {
			ss.expiry.Stop()
		}
		if ss.joined {
			s.hub.leave(ss.id.CartID, ss)
		}
		ss.mu.Lock()
		closing := ss.closing
		ss.mu.Unlock()
		if closing {
			ss.goAway() // after the answer to the message in hand
		}
		ss.ob.finish() // everything queued, acks included, is written
		ss.conn.Close(closeStatus, closeReason)
	}()
	bad := 0
	for {
		timeout := 3 * s.cfg.Heartbeat
		if !ss.joined {
			timeout = helloTimeout
		}
		// The deadline on the network connection, not a context with
		// a timeout: ctx has no Done, so the library sets nothing up
		// for the wait (see leanConn).
		if err := ss.lean.SetReadDeadline(time.Now().Add(timeout)); err != nil {
			return
		}
		if err := ss.lean.wait(); err != nil {
			ss.readFailed(err)
			return
		}
		switch ss.stepAside(ctx) {
		case stepStop:
			return
		case stepDone:
			bad = 0
			continue
		}
		if bad++; bad >= maxBadMessages {
			s.log.Info("dropping connection sending garbage", logkey.Cart, ss.id.CartID)
			// Policy violation, not going away: the client should
			// not simply reconnect and carry on.
			closeStatus, closeReason = websocket.StatusPolicyViolation, "too many bad messages"
			// No error message with it: one without an id would be
			// taken for the answer to the client's request in flight.
			return
		}
	}
}

// headerHas reports whether one of h's values of key, read as a comma
// separated list, holds token (in any case).
func headerHas(h http.Header, key, token string) bool {
	for _, v := range h.Values(key) {
		for t := range strings.SplitSeq(v, ",") {
			if strings.EqualFold(strings.TrimSpace(t), token) {
				return true
			}
		}
	}
	return false
}

// readFailed ends a connection whose read failed.
func (ss *session) readFailed(err error) {
	if errors.Is(err, os.ErrDeadlineExceeded) {
		ss.conn.CloseNow() // silent too long: gone
	}
}

// stepEnd is how reading and handling a message ended.
type stepEnd int

const (
	stepDone stepEnd = iota // handled
	stepBad                 // not understood: counts towards maxBadMessages
	stepStop                // the connection ends
)

// stepAside reads the next message and handles it on a step worker (see
// steps), and waits for it. The reader's goroutine, which lives as long as
// the connection, only waits for the message (leanConn.wait), a few calls
// deep: its stack stays as small as that needs, instead of what the
// library's reader and the deepest message handled (a hello through the
// store) grew it to, and the runtime never shrinks a stack back that far.
// Messages are still read and handled one at a time, in order.
func (ss *session) stepAside(ctx context.Context) stepEnd {
	return ss.srv.steps.run(ctx, ss)
}

func (ss *session) step(ctx context.Context) stepEnd {
	typ, data, err := ss.conn.Read(ctx)
	if err != nil {
		ss.readFailed(err)
		return stepStop
	}
	if !ss.begin() {
		return stepStop // shutting down: the unacked message will be resent
	}
	ok := ss.handle(ctx, typ, data)
	if !ss.end() {
		return stepStop
	}
	if !ok {
		return stepBad
	}
	return stepDone
}

// begin marks the session busy; false if it is shutting down.
func (ss *session) begin() bool {
	ss.mu.Lock()
	defer ss.mu.Unlock()
	if ss.closing || ss.dropped {
		return false
	}
	ss.busy = true
	return true
}

// end marks the session idle; false if it should now stop.
func (ss *session) end() bool {
	ss.mu.Lock()
	defer ss.mu.Unlock()
	ss.busy = false
	return !ss.closing && !ss.dropped
}

// shutdown ends the session once the message in hand is answered, telling
// the client to reconnect after retryAfter.
func (ss *session) shutdown(retryAfter time.Duration) {
	ss.mu.Lock()
	ss.closing = true
	ss.retryAfter = retryAfter
	busy := ss.busy
	ss.mu.Unlock()
	if !busy {
		// Otherwise the reader says goodbye once the message in hand is
		// answered.
		ss.goAway()
	}
}

// goAway queues a going_away error with the retry delay, once, and has the
// writer close the connection after it.
func (ss *session) goAway() {
	ss.mu.Lock()
	wait := ss.retryAfter
	ss.mu.Unlock()
	e := protocol.Errorf(protocol.ErrGoingAway, "server restarting; reconnect after retry_after_ms")
	e.RetryAfterMS = int(wait / time.Millisecond)
	ss.leave("", e, websocket.StatusGoingAway, "server restarting")
}

// leave queues a last error, once per connection, and has the writer close
// the connection with status after it.
func (ss *session) leave(reqID string, e *protocol.Error, status websocket.StatusCode, reason string) {
	ss.once.Do(func() {
		ss.srv.metrics.protocolErrors.WithLabelValues(string(e.Code)).Inc()
		b, err := protocol.Encode(&protocol.Message{Type: protocol.TypeError, ID: reqID, Error: e})
		if err != nil {
			ss.srv.log.Error("encode", logkey.Type, protocol.TypeError, logkey.Err, err)
			b = nil
		}
		ss.ob.close(b, status, reason)
	})
}

// tokenExpired reports whether the user token of the connection has
// expired; if so it tells the client, as a hello with it would be told,
// and ends the connection. reqID is the message it answers, if any.
func (ss *session) tokenExpired(reqID string) bool {
	exp := ss.id.Expires
	if ss.id.User == "" || exp.IsZero() || ss.srv.now().Before(exp) {
		return false
	}
	ss.leave(reqID, protocol.Errorf(protocol.ErrTokenExpired, "user token expired: log in again"),
		websocket.StatusPolicyViolation, "user token expired")
	return true
}

// handleWait bounds the handling of one message that needs the store: a
// store or a Redis that stopped answering fails the request (internal,
// retryable, logged) instead of holding the connection, which reads nothing
// meanwhile and so cannot even notice its client is gone. A push that timed
// out may still commit; the client's resend is answered duplicate.
var handleWait = 20 * time.Second

// handle processes one message; false means it was bad.
func (ss *session) handle(ctx context.Context, typ websocket.MessageType, data []byte) bool {
	if typ != websocket.MessageText {
		ss.fail("", protocol.Errorf(protocol.ErrMalformed, "binary messages are not part of the protocol"))
		return false
	}
	m, err := protocol.Decode(data)
	if err != nil {
		// Whatever could be read of a refused message names the
		// request the error answers.
		reqID := ""
		if m != nil {
			reqID = m.ID
		}
		ss.fail(reqID, protocol.AsError(err))
		return false
	}
	if m.Type != protocol.TypePing && m.Type != protocol.TypePong {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, handleWait)
		defer cancel()
	}
	if !ss.joined {
		if m.Type != protocol.TypeHello {
			ss.fail(m.ID, protocol.Errorf(protocol.ErrHelloRequired, "the first message must be hello"))
			return false
		}
		return ss.hello(ctx, m)
	}
	if ss.tokenExpired(m.ID) {
		return true // not a bad message; the connection ends
	}
	switch m.Type {
	case protocol.TypePush:
		ss.push(ctx, m)
	case protocol.TypeSync:
		ss.sync(ctx, m)
	case protocol.TypeChoose:
		ss.choose(ctx, m)
	case protocol.TypePing:
		ss.reply(&protocol.Message{Type: protocol.TypePong, ID: m.ID, T: m.T})
	case protocol.TypePong:
		// The server sends no pings; a pong is taken quietly, as the
		// protocol lets either side answer a ping.
	case protocol.TypeHello:
		ss.fail(m.ID, protocol.Errorf(protocol.ErrHelloRequired, "hello was already said on this connection"))
		return false
	default:
		ss.fail(m.ID, protocol.Errorf(protocol.ErrInvalid, "a client does not send %q", m.Type))
		return false
	}
	return true
}

func (ss *session) push(ctx context.Context, m *protocol.Message) {
	if perr := ss.srv.ipl.allowEdits(requestAddr(ctx), len(m.Ops)); perr != nil {
		ss.fail(m.ID, perr)
		return
	}
	out, err := ss.srv.apply(ctx, ss.id, m.Ops)
	if err != nil {
		pe := protocol.AsError(err)
		if ctx.Err() != nil {
			// The store did not answer within handleWait: told and
			// logged as a load that timed out is.
			pe = ss.srv.failure("apply the push", ss.id.CartID, err)
		}
		ss.fail(m.ID, pe)
		return
	}
	if len(out.results) > 0 {
		ss.reply(&protocol.Message{Type: protocol.TypeAck, ID: m.ID, Results: out.results, Cart: out.cart})
	}
	if out.stop != nil {
		ss.fail(m.ID, out.stop)
	}
	if len(out.results) > 0 {
		ss.srv.publishAcked(ctx, ss.id.CartID, out, ss)
	} else {
		ss.srv.publish(ctx, ss.id.CartID, out)
	}
}

func (ss *session) sync(ctx context.Context, m *protocol.Message) {
	if perr := ss.srv.ipl.allowEdits(requestAddr(ctx), 1); perr != nil {
		ss.fail(m.ID, perr)
		return
	}
	clients := m.Clients
	if len(clients) == 0 {
		clients = []string{ss.client}
	}
	ss.sendSnapshot(ctx, m.ID, clients, m.Since)
}

func (ss *session) sendSnapshot(ctx context.Context, reqID string, clients []string, since uint64) {
	c, seqs, err := ss.srv.snapshot(ctx, ss.id.CartID, clients)
	ss.replySince(ctx, reqID, c, seqs, err, clients, since)
}

// replySince answers reqID with a snapshot, as replyCart does, for a
// client that has seen version since of the cart.
func (ss *session) replySince(ctx context.Context, reqID string, c *cart.Cart, seqs map[string]uint64, err error, clients []string, since uint64) {
	s := ss.srv
	if err != nil || since <= c.Version {
		ss.replyCart(reqID, c, seqs, err)
		return
	}
	// The client has seen a version this cart does not have. A cache
	// behind another instance's commit would say so too: ask the durable
	// store. Still behind, the store was restored from an older backup,
	// and the client must drop its copy, or it would go on showing it, and
	// take the same version numbers for other carts. A read of the store
	// per such request: a sync counts against the edit limit, as a push
	// does, which bounds how many one client makes.
	rec, err := s.freshStore().Load(ctx, ss.id.CartID, clients)
	c, seqs, err = snapshotOf(ss.id.CartID, clients, rec, err)
	if err != nil || since <= c.Version {
		s.annotate(ctx, c)
		ss.replyCart(reqID, c, seqs, err)
		return
	}
	// (A hello's since is of the client's confirmed cart, which may be
	// another one, such as the guest cart at a login: the client takes a
	// reset only for the cart it holds.)
	s.log.Debug("a client has seen a later version of the cart than the store holds: told to start over from it",
		logkey.Cart, ss.id.CartID, logkey.Version, c.Version, logkey.Expected, since)
	s.annotate(ctx, c)
	ss.reply(&protocol.Message{Type: protocol.TypeCart, ID: reqID, Cart: c, Acked: seqs, Reset: true})
}

// replyCart answers reqID with a snapshot, or with what went wrong.
func (ss *session) replyCart(reqID string, c *cart.Cart, seqs map[string]uint64, err error) {
	if err != nil {
		ss.fail(reqID, ss.srv.failure("load the cart", ss.id.CartID, err))
		return
	}
	ss.reply(&protocol.Message{Type: protocol.TypeCart, ID: reqID, Cart: c, Acked: seqs})
}

// fail sends an error message.
func (ss *session) fail(reqID string, e *protocol.Error) {
	ss.srv.metrics.protocolErrors.WithLabelValues(string(e.Code)).Inc()
	ss.reply(&protocol.Message{Type: protocol.TypeError, ID: reqID, Error: e})
}

func (ss *session) reply(m *protocol.Message) {
	b, err := protocol.Encode(m)
	if err != nil {
		ss.srv.log.Error("encode", logkey.Type, m.Type, logkey.Err, err)
		return
	}
	ss.send(b)
}

// send queues a message without blocking (outbox.send).
func (ss *session) send(b []byte) { ss.ob.send(b) }

// slow marks the session dropped because its queue overflowed.
func (ss *session) slow() {
	ss.mu.Lock()
	ss.dropped = true
	ss.mu.Unlock()
	ss.srv.metrics.slowConsumers.Inc()
}
