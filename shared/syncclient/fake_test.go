package syncclient

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"testing"

	"github.com/cartsync/cartsync/shared/cart"
	"github.com/cartsync/cartsync/shared/protocol"
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
// the seq; the first seq of a client new to a cart is taken as it comes)
// and switches to inject faults. One lock.
//
// Carts: every device token issued to a hello without one shares the guest
// cart "cart-1" (cart and seqs below); a device whose guest cart expired or
// was merged gets a new token and a fresh cart "cart-N". Protocol 2: the
// user token "user:NAME" logs in to the user cart "u-NAME", merging the
// device's guest cart at the hello; "expired:NAME" is an expired token;
// any other is refused.
type fakeServer struct {
	t   testing.TB
	mu  sync.Mutex
	lim cart.Limits

	cart     *cart.Cart        // cart-1
	seqs     map[string]uint64 // cart-1's
	carts    map[string]*fakeCart
	devCart  map[string]string // device token -> guest cart id
	nCarts   int
	sessions map[*fakeSession]bool
	tokens   int
	issued   map[string]bool
	policy   cart.Policy // the default login merge policy; "" is merge

	// What was seen.
	dials   int
	hellos  []protocol.Message
	pushes  [][]protocol.OpID
	acks    [][]protocol.Result
	syncs   [][]string
	pings   int
	applied map[protocol.OpID]int // how often each op took effect
	merges  []protocol.MergeInfo  // merge messages sent
	chooses []cart.Policy
	opCarts map[protocol.OpID]string // the cart each op took effect on
	sent    []cart.Op                // every op pushed, as sent

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
	expireUsers    bool // every user token has expired
}

// fakeCart is a cart with its last seq per client.
type fakeCart struct {
	c          *cart.Cart
	seqs       map[string]uint64
	mergedInto string // a guest cart merged at a login
	expired    bool   // purged for inactivity
}

type fakeSession struct {
	conn   Conn
	client string
	device string
	silent bool // a dead peer: reads, never answers

	cartID   string
	user     string
	guest    string // on a user cart: the device's guest cart
	choosing bool   // a merge waits for the client's choose
}

func newFakeServer(t testing.TB) *fakeServer {
	f := &fakeServer{
		t: t, lim: cart.DefaultLimits,
		carts: map[string]*fakeCart{}, devCart: map[string]string{},
		sessions: map[*fakeSession]bool{}, applied: map[protocol.OpID]int{},
		issued: map[string]bool{}, opCarts: map[protocol.OpID]string{},
	}
	c1 := f.newCart("cart-1")
	f.cart, f.seqs = c1.c, c1.seqs
	f.nCarts = 1
	return f
}

func (f *fakeServer) newCart(id string) *fakeCart {
	fc := &fakeCart{c: &cart.Cart{ID: id, Lines: []*cart.Line{}}, seqs: map[string]uint64{}}
	f.carts[id] = fc
	return fc
}

// issue returns a new device token for the shared guest cart, or for a
// fresh one.
func (f *fakeServer) issue(fresh bool) string {
	f.tokens++
	tok := fmt.Sprintf("dev-%d", f.tokens)
	f.issued[tok] = true
	f.devCart[tok] = "cart-1"
	if fresh {
		f.nCarts++
		id := fmt.Sprintf("cart-%d", f.nCarts)
		f.newCart(id)
		f.devCart[tok] = id
	}
	return tok
}

// expire purges a cart for inactivity.
func (f *fakeServer) expire(id string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	fc := f.carts[id]
	fc.expired = true
	fc.c.Lines = []*cart.Line{}
	clear(fc.seqs)
}

// cartOf returns a copy of the cart with the given id.
func (f *fakeServer) cartOf(id string) *cart.Cart {
	f.mu.Lock()
	defer f.mu.Unlock()
	if fc := f.carts[id]; fc != nil {
		return fc.c.Public()
	}
	return nil
}

// merge does a login merge of the session's guest cart into its user cart.
func (f *fakeServer) merge(s *fakeSession, p cart.Policy) protocol.MergeInfo {
	g, u := f.carts[s.guest], f.carts[s.cartID]
	res, err := u.c.Merge(g.c, p, s.device, f.lim)
	if err != nil {
		f.t.Errorf("fake: merge: %v", err)
	}
	g.mergedInto = s.cartID
	for c, seq := range g.seqs {
		u.seqs[c] = max(u.seqs[c], seq)
	}
	mi := protocol.MergeInfo{Status: protocol.MergeMerged, Result: &res, Version: u.c.Version}
	f.merges = append(f.merges, mi)
	return mi
}

// loginMerge merges the guest cart at a user hello, or asks to choose.
func (f *fakeServer) loginMerge(s *fakeSession, p cart.Policy) {
	g, u := f.carts[s.guest], f.carts[s.cartID]
	if p == "" {
		p = cmp.Or(f.policy, cart.PolicyMerge)
	}
	var mi protocol.MergeInfo
	switch {
	case g == nil || g.mergedInto != "" || g.expired:
		mi = protocol.MergeInfo{Status: protocol.MergeAlready, Version: u.c.Version}
		f.merges = append(f.merges, mi)
	case p == cart.PolicyChoose && len(g.c.Lines) > 0:
		s.choosing = true
		mi = protocol.MergeInfo{Status: protocol.MergeChoose, Guest: g.c.Public(), User: u.c.Public(), Version: u.c.Version}
		f.merges = append(f.merges, mi)
	default:
		if p == cart.PolicyChoose {
			p = cart.PolicyMerge
		}
		mi = f.merge(s, p)
	}
	f.send(s, &protocol.Message{Type: protocol.TypeMerge, Merge: &mi})
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
	fc := f.carts[s.cartID]
	acked := map[string]uint64{}
	for _, c := range clients {
		acked[c] = fc.seqs[c]
	}
	f.send(s, &protocol.Message{Type: protocol.TypeCart, ID: id, Cart: fc.c.Public(), Acked: acked})
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
		user := ""
		if m.UserToken != "" {
			name, ok := strings.CutPrefix(m.UserToken, "user:")
			switch {
			case strings.HasPrefix(m.UserToken, "expired:") || (ok && f.expireUsers):
				f.fail(s, m.ID, protocol.Errorf(protocol.ErrTokenExpired, "log in again"))
				return
			case !ok || name == "":
				f.fail(s, m.ID, protocol.Errorf(protocol.ErrUnauthorized, "user token refused"))
				return
			}
			user = name
		}
		device, issued := m.DeviceToken, ""
		if device == "" {
			device = f.issue(false)
			issued = device
		}
		guest := f.carts[f.devCart[device]]
		if user == "" && (guest.expired || guest.mergedInto != "") {
			if guest.expired {
				f.fail(s, m.ID, protocol.Errorf(protocol.ErrCartExpired, "your cart expired; here is a new one"))
			}
			device = f.issue(true)
			issued = device
			guest = f.carts[f.devCart[device]]
		}
		s.client, s.device = m.Client, device
		s.cartID = guest.c.ID
		if user != "" {
			s.user, s.guest, s.cartID = user, guest.c.ID, "u-"+user
			if f.carts[s.cartID] == nil {
				f.newCart(s.cartID)
			}
		}
		f.sessions[s] = true
		lim := f.lim
		f.send(s, &protocol.Message{Type: protocol.TypeWelcome, ID: m.ID, Protocol: protocol.Version,
			DeviceToken: issued, CartID: s.cartID, User: s.user, GuestCartID: s.guest, HeartbeatMS: f.heartbeatMS, Limits: &lim})
		if user != "" {
			f.loginMerge(s, m.Policy)
		}
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
	case protocol.TypeChoose:
		f.chooses = append(f.chooses, m.Policy)
		if !s.choosing {
			f.fail(s, m.ID, protocol.Errorf(protocol.ErrInvalid, "nothing to choose"))
			return
		}
		s.choosing = false
		u := f.carts[s.cartID]
		from := u.c.Version
		mi := f.merge(s, m.Policy)
		f.send(s, &protocol.Message{Type: protocol.TypeMerge, Merge: &mi})
		for other := range f.sessions {
			if other.cartID == s.cartID && !other.silent {
				f.send(other, &protocol.Message{Type: protocol.TypeCart, Cart: u.c.Public(), From: from})
			}
		}
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
	f.sent = append(f.sent, m.Ops...)
	for _, op := range m.Ops {
		if op.Cart != "" && op.Cart != s.cartID && (s.user == "" || op.Cart != s.guest) {
			f.t.Errorf("fake: op %s/%d of cart %q sent on a connection to %q (guest %q)", op.Client, op.Seq, op.Cart, s.cartID, s.guest)
			f.fail(s, m.ID, protocol.Errorf(protocol.ErrInvalid, "op %s/%d was made on another cart", op.Client, op.Seq))
			return
		}
	}
	fc := f.carts[s.cartID]
	if fc.mergedInto != "" {
		f.fail(s, m.ID, protocol.Errorf(protocol.ErrForbidden, "this cart was merged into another at login"))
		return
	}
	if fc.expired {
		f.fail(s, m.ID, protocol.Errorf(protocol.ErrCartExpired, "this cart expired; reconnect for a fresh one"))
		return
	}
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
	c := fc.c
	from := c.Version
	var results []protocol.Result
	var by []protocol.OpID
	var stop *protocol.Error
	for _, op := range m.Ops {
		last, seen := fc.seqs[op.Client]
		if seen && op.Seq <= last {
			results = append(results, protocol.Result{Client: op.Client, Seq: op.Seq, Status: protocol.StatusDuplicate, Version: c.Version})
			continue
		}
		if seen && op.Seq > last+1 {
			stop = protocol.Errorf(protocol.ErrOutOfOrder, "expected %d", last+1)
			stop.Expected = &protocol.OpID{Client: op.Client, Seq: last + 1}
			break
		}
		fc.seqs[op.Client] = op.Seq
		if op.Cart != "" && op.Cart == s.guest {
			op.Base = 0 // the guest cart's versions mean nothing here
		}
		warns, cerr := c.Apply(op, s.device, f.lim)
		if cerr != nil {
			results = append(results, protocol.Result{Client: op.Client, Seq: op.Seq, Status: protocol.StatusRejected, Version: c.Version, Error: cerr})
			continue
		}
		f.applied[opID(op)]++
		f.opCarts[opID(op)] = c.ID
		by = append(by, opID(op))
		results = append(results, protocol.Result{Client: op.Client, Seq: op.Seq, Status: protocol.StatusApplied, Version: c.Version, Warnings: warns})
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
				if !other.silent && other.cartID == c.ID {
					f.send(other, &protocol.Message{Type: protocol.TypeCart, Cart: c.Public(), From: from, By: by})
				}
			}
		}
	}
	if killed {
		return
	}
	f.acks = append(f.acks, results)
	if len(results) > 0 {
		f.send(s, &protocol.Message{Type: protocol.TypeAck, ID: m.ID, Results: results, Cart: c.Public()})
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
