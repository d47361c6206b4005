package syncclient

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"testing"

	"cartsync/shared/cart"
	"cartsync/shared/protocol"
)

// pipeEnd is one end of an in-memory Conn pair.
type pipeEnd struct {
	in   <-chan []byte
	out  chan<- []byte
	done chan struct{}
	once *sync.Once
}

var errPipeClosed = errors.New("pipe: closed")

func newPipe() (client, server *pipeEnd) {
	a, b := make(chan []byte, 256), make(chan []byte, 256)
	done, once := make(chan struct{}), &sync.Once{}
	return &pipeEnd{in: a, out: b, done: done, once: once}, &pipeEnd{in: b, out: a, done: done, once: once}
}

func (p *pipeEnd) Read(ctx context.Context) ([]byte, error) {
	select { // like a socket, deliver what was sent before the close
	case b := <-p.in:
		return b, nil
	default:
	}
	select {
	case b := <-p.in:
		return b, nil
	case <-p.done:
		return nil, errPipeClosed
	case <-ctx.Done():
		return nil, ctx.Err()
	}
}

func (p *pipeEnd) Write(ctx context.Context, b []byte) error {
	select {
	case <-p.done:
		return errPipeClosed
	default:
	}
	select {
	case p.out <- b:
		return nil
	case <-p.done:
		return errPipeClosed
	case <-ctx.Done():
		return ctx.Err()
	}
}

func (p *pipeEnd) Close() error {
	p.once.Do(func() { close(p.done) })
	return nil
}

// fakeServer speaks the server side of the protocol over pipes, with the
// server's rules (dedup by client and seq, out_of_order, rejections advance
// the seq) and switches to inject faults. One cart, one lock.
type fakeServer struct {
	t   testing.TB
	mu  sync.Mutex
	lim cart.Limits

	cart     *cart.Cart
	seqs     map[string]uint64
	sessions map[*fakeSession]bool
	tokens   int
	issued   map[string]bool

	// What was seen.
	dials   int
	hellos  []protocol.Message
	pushes  [][]protocol.OpID
	acks    [][]protocol.Result
	syncs   [][]string
	pings   int
	applied map[protocol.OpID]int // how often each op took effect

	// Faults.
	down           bool // refuse dials
	dropPublish    int  // lose the next n pushed carts
	killAfterApply int  // apply the next n pushes, then drop the connection unanswered
	outOfOrder     int  // refuse the next n pushes with out_of_order at their first op
	overloaded     int  // refuse the next n pushes with overloaded
	retryAfterMS   int  // with overloaded
	maxOps         int  // refuse larger pushes with too_large
	hideAcked      bool // leave the acked seqs out of hello replies
	refuseHellos   int  // answer the next n hellos with unauthorized
	heartbeatMS    int  // sent in welcome
}

type fakeSession struct {
	conn   Conn
	client string
	device string
	silent bool // a dead peer: reads, never answers
}

func newFakeServer(t testing.TB) *fakeServer {
	return &fakeServer{
		t: t, lim: cart.DefaultLimits,
		cart: &cart.Cart{ID: "cart-1", Lines: []*cart.Line{}},
		seqs: map[string]uint64{}, sessions: map[*fakeSession]bool{}, applied: map[protocol.OpID]int{},
		issued: map[string]bool{},
	}
}

func (f *fakeServer) dial(ctx context.Context) (Conn, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.dials++
	if f.down {
		return nil, errors.New("fake: connection refused")
	}
	c, s := newPipe()
	go f.serve(s)
	return c, nil
}

// do runs f under the server's lock.
func (f *fakeServer) do(fn func()) {
	f.mu.Lock()
	defer f.mu.Unlock()
	fn()
}

// kill drops every connection, or marks them silent.
func (f *fakeServer) kill(silent bool) {
	f.mu.Lock()
	defer f.mu.Unlock()
	for s := range f.sessions {
		if silent {
			s.silent = true
		} else {
			s.conn.Close()
		}
	}
}

// serve speaks the protocol on conn until it closes.
func (f *fakeServer) serve(conn Conn) {
	s := &fakeSession{conn: conn}
	defer func() {
		f.mu.Lock()
		delete(f.sessions, s)
		f.mu.Unlock()
		s.conn.Close()
	}()
	for {
		b, err := s.conn.Read(context.Background())
		if err != nil {
			return
		}
		f.mu.Lock()
		f.handle(s, b)
		f.mu.Unlock()
	}
}

func (f *fakeServer) send(s *fakeSession, m *protocol.Message) {
	b, err := protocol.Encode(m)
	if err != nil {
		f.t.Errorf("fake: encode: %v", err)
		return
	}
	_ = s.conn.Write(context.Background(), b)
}

func (f *fakeServer) fail(s *fakeSession, id string, e *protocol.Error) {
	f.send(s, &protocol.Message{Type: protocol.TypeError, ID: id, Error: e})
}

func (f *fakeServer) snapshot(s *fakeSession, id string, clients []string) {
	acked := map[string]uint64{}
	for _, c := range clients {
		acked[c] = f.seqs[c]
	}
	f.send(s, &protocol.Message{Type: protocol.TypeCart, ID: id, Cart: f.cart.Public(), Acked: acked})
}

func (f *fakeServer) handle(s *fakeSession, b []byte) {
	if s.silent {
		return
	}
	m, err := protocol.Decode(b)
	if err != nil {
		f.t.Errorf("fake: the client sent a bad message %s: %v", b, err)
		f.fail(s, "", protocol.AsError(err))
		return
	}
	if s.client == "" && m.Type != protocol.TypeHello {
		f.t.Errorf("fake: %s before hello", m.Type)
		f.fail(s, m.ID, protocol.Errorf(protocol.ErrHelloRequired, "hello first"))
		return
	}
	switch m.Type {
	case protocol.TypeHello:
		f.hellos = append(f.hellos, *m)
		if f.refuseHellos > 0 {
			f.refuseHellos--
			f.fail(s, m.ID, protocol.Errorf(protocol.ErrUnauthorized, "unknown device"))
			s.conn.Close()
			return
		}
		if m.DeviceToken != "" && !f.issued[m.DeviceToken] {
			f.fail(s, m.ID, protocol.Errorf(protocol.ErrUnauthorized, "not a token of ours"))
			return
		}
		s.client, s.device = m.Client, m.DeviceToken
		issued := ""
		if s.device == "" {
			f.tokens++
			s.device = fmt.Sprintf("dev-%d", f.tokens)
			f.issued[s.device] = true
			issued = s.device
		}
		f.sessions[s] = true
		lim := f.lim
		f.send(s, &protocol.Message{Type: protocol.TypeWelcome, ID: m.ID, Protocol: protocol.Version,
			DeviceToken: issued, CartID: f.cart.ID, HeartbeatMS: f.heartbeatMS, Limits: &lim})
		clients := []string{m.Client}
		if f.hideAcked {
			clients = nil
		}
		f.snapshot(s, m.ID, clients)
	case protocol.TypeSync:
		f.syncs = append(f.syncs, m.Clients)
		clients := m.Clients
		if len(clients) == 0 {
			clients = []string{s.client}
		}
		f.snapshot(s, m.ID, clients)
	case protocol.TypePing:
		f.pings++
		f.send(s, &protocol.Message{Type: protocol.TypePong, ID: m.ID, T: m.T})
	case protocol.TypePush:
		f.push(s, m)
	default:
		f.t.Errorf("fake: unexpected %s from the client", m.Type)
	}
}

func (f *fakeServer) push(s *fakeSession, m *protocol.Message) {
	ids := make([]protocol.OpID, len(m.Ops))
	for i, op := range m.Ops {
		ids[i] = opID(op)
	}
	f.pushes = append(f.pushes, ids)
	switch {
	case f.maxOps > 0 && len(m.Ops) > f.maxOps:
		f.fail(s, m.ID, protocol.Errorf(protocol.ErrTooLarge, "at most %d ops", f.maxOps))
		return
	case f.overloaded > 0:
		f.overloaded--
		pe := protocol.Errorf(protocol.ErrOverloaded, "busy")
		pe.RetryAfterMS = f.retryAfterMS
		f.fail(s, m.ID, pe)
		return
	case f.outOfOrder > 0:
		f.outOfOrder--
		pe := protocol.Errorf(protocol.ErrOutOfOrder, "try again")
		pe.Expected = &ids[0]
		f.fail(s, m.ID, pe)
		return
	}
	from := f.cart.Version
	var results []protocol.Result
	var by []protocol.OpID
	var stop *protocol.Error
	for _, op := range m.Ops {
		last := f.seqs[op.Client]
		if op.Seq <= last {
			results = append(results, protocol.Result{Client: op.Client, Seq: op.Seq, Status: protocol.StatusDuplicate, Version: f.cart.Version})
			continue
		}
		if op.Seq > last+1 {
			stop = protocol.Errorf(protocol.ErrOutOfOrder, "expected %d", last+1)
			stop.Expected = &protocol.OpID{Client: op.Client, Seq: last + 1}
			break
		}
		f.seqs[op.Client] = op.Seq
		warns, cerr := f.cart.Apply(op, s.device, f.lim)
		if cerr != nil {
			results = append(results, protocol.Result{Client: op.Client, Seq: op.Seq, Status: protocol.StatusRejected, Version: f.cart.Version, Error: cerr})
			continue
		}
		f.applied[opID(op)]++
		by = append(by, opID(op))
		results = append(results, protocol.Result{Client: op.Client, Seq: op.Seq, Status: protocol.StatusApplied, Version: f.cart.Version, Warnings: warns})
	}
	killed := f.killAfterApply > 0
	if killed {
		f.killAfterApply--
		s.conn.Close() // before anything reaches the client
	}
	if len(by) > 0 {
		if f.dropPublish > 0 {
			f.dropPublish--
		} else {
			for other := range f.sessions {
				if !other.silent {
					f.send(other, &protocol.Message{Type: protocol.TypeCart, Cart: f.cart.Public(), From: from, By: by})
				}
			}
		}
	}
	if killed {
		return
	}
	f.acks = append(f.acks, results)
	if len(results) > 0 {
		f.send(s, &protocol.Message{Type: protocol.TypeAck, ID: m.ID, Results: results, Cart: f.cart.Public()})
	}
	if stop != nil {
		f.fail(s, m.ID, stop)
	}
}

// summary describes a cart's lines, sorted: "a=1 b?size=m=2".
func summary(c *cart.Cart) string {
	var out []string
	for _, l := range c.Lines {
		out = append(out, fmt.Sprintf("%s=%d", l.Key, l.Quantity))
	}
	slices.Sort(out)
	return strings.Join(out, " ")
}

func (f *fakeServer) summary() string {
	f.mu.Lock()
	defer f.mu.Unlock()
	return summary(f.cart)
}

// devices lists the device tokens of the open sessions.
func (f *fakeServer) devices() []string {
	f.mu.Lock()
	defer f.mu.Unlock()
	var out []string
	for s := range f.sessions {
		out = append(out, s.device)
	}
	slices.Sort(out)
	return out
}

func (f *fakeServer) version() uint64 {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.cart.Version
}
