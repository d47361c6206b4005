package syncclient

import (
	"context"
	"errors"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"testing/synctest"
	"time"

	"github.com/cartsync/cartsync/shared/cart"
	"github.com/cartsync/cartsync/shared/protocol"
)

// script lets a test play the server by hand, message by message.
type script struct {
	t     testing.TB
	conns chan *pipeEnd
}

func newScript(t testing.TB) *script { return &script{t: t, conns: make(chan *pipeEnd, 8)} }

func (sc *script) dial(ctx context.Context) (Conn, error) {
	c, s := newPipe()
	sc.conns <- s
	return c, nil
}

// accept returns the server end of the next connection.
func (sc *script) accept() *peer {
	sc.t.Helper()
	select {
	case c := <-sc.conns:
		return &peer{t: sc.t, conn: c}
	case <-time.After(time.Minute):
		sc.t.Fatal("no connection within a minute")
		return nil
	}
}

type peer struct {
	t    testing.TB
	conn *pipeEnd
}

// expect reads the next message other than a ping and checks its type.
func (p *peer) expect(typ string) *protocol.Message {
	p.t.Helper()
	for {
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		b, err := p.conn.Read(ctx)
		cancel()
		if err != nil {
			p.t.Fatalf("waiting for %s: %v", typ, err)
		}
		m, err := protocol.Decode(b)
		if err != nil {
			p.t.Fatalf("the client sent %s: %v", b, err)
		}
		if m.Type == protocol.TypePing {
			continue
		}
		if m.Type != typ {
			p.t.Fatalf("the client sent %s, want %s", b, typ)
		}
		return m
	}
}

// quiet checks that the client has nothing more to say for now.
func (p *peer) quiet() {
	p.t.Helper()
	synctest.Wait()
	for {
		select {
		case b := <-p.conn.in:
			if m, err := protocol.Decode(b); err == nil && m.Type == protocol.TypePing {
				continue
			}
			p.t.Fatalf("the client sent %s, want nothing", b)
		default:
			return
		}
	}
}

// send sends m and waits, in a synctest bubble, until the engine is done
// with it.
func (p *peer) send(m *protocol.Message) {
	p.t.Helper()
	p.sendOnly(m)
	synctest.Wait()
}

// sendOnly sends m; it works outside a synctest bubble too.
func (p *peer) sendOnly(m *protocol.Message) {
	p.t.Helper()
	b, err := protocol.Encode(m)
	if err != nil {
		p.t.Fatal(err)
	}
	if err := p.conn.Write(context.Background(), b); err != nil {
		p.t.Fatal(err)
	}
}

// login answers hello with welcome and c, acking acked of the client.
func (p *peer) login(c *cart.Cart, acked uint64) *protocol.Message {
	p.t.Helper()
	h := p.expect(protocol.TypeHello)
	p.send(&protocol.Message{Type: protocol.TypeWelcome, ID: h.ID, DeviceToken: "dev-1", CartID: "cart-1"})
	p.send(&protocol.Message{Type: protocol.TypeCart, ID: h.ID, Cart: c, Acked: map[string]uint64{h.Client: acked}})
	return h
}

func cartAt(v uint64, lines ...string) *cart.Cart {
	c := &cart.Cart{ID: "cart-1", Version: v, Lines: []*cart.Line{}}
	for _, l := range lines {
		key, q, _ := strings.Cut(l, "=")
		n := 0
		for _, d := range q {
			n = n*10 + int(d-'0')
		}
		c.Lines = append(c.Lines, &cart.Line{Key: key, SKU: key, Quantity: n})
	}
	return c
}

func applied(op protocol.OpID, v uint64) protocol.Result {
	return protocol.Result{Client: op.Client, Seq: op.Seq, Status: protocol.StatusApplied, Version: v}
}

func scriptedEngine(t testing.TB, sc *script, mod func(*Config)) *Engine {
	return scriptedEngineOn(t, sc, NewMemStorage(), mod)
}

// scriptedEngineOn is scriptedEngine on store.
func scriptedEngineOn(t testing.TB, sc *script, store Storage, mod func(*Config)) *Engine {
	e := newEngine(t, nil, store, func(c *Config) {
		c.Dial = sc.dial
		c.ClientID = "me"
		if mod != nil {
			mod(c)
		}
	})
	start(t, e)
	return e
}

// mugPushed starts a scripted engine on store, logs it in on an empty
// cart-1 and adds a mug: it returns the engine, the server's end and the
// push of the mug.
func mugPushed(t testing.TB, sc *script, store Storage) (*Engine, *peer, *protocol.Message) {
	t.Helper()
	e := scriptedEngineOn(t, sc, store, nil)
	p := sc.accept()
	p.login(cartAt(0), 0)
	must(t, e.Add(context.Background(), "mug", nil, 1, nil))
	return e, p, p.expect(protocol.TypePush)
}

// A pushed cart that seems to skip a version while our push is in flight
// is held: the ack fills the gap, and no sync is needed.
func TestGapClosedByAck(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		sc := newScript(t)
		e := scriptedEngine(t, sc, nil)
		p := sc.accept()
		p.login(cartAt(0), 0)
		must(t, e.Add(context.Background(), "mug", nil, 1, nil))
		push := p.expect(protocol.TypePush)
		mine := opID(push.Ops[0])
		other := protocol.OpID{Client: "phone", Seq: 1}
		p.send(&protocol.Message{Type: protocol.TypeCart, Cart: cartAt(2, "mug=1", "tea=1"), From: 1, By: []protocol.OpID{other}})
		if st := e.Snapshot(); st.Confirmed != 0 {
			t.Fatalf("took a cart with a gap: confirmed %d", st.Confirmed)
		}
		p.send(&protocol.Message{Type: protocol.TypeAck, ID: push.ID, Results: []protocol.Result{applied(mine, 1)}, Cart: cartAt(1, "mug=1")})
		p.quiet() // no sync
		st := e.Snapshot()
		if st.Confirmed != 2 || summary(st.Cart) != "mug=1 tea=1" || st.Pending != 0 || st.Status != Synced {
			t.Errorf("state %+v (%q), want the held cart at version 2, synced", st, summary(st.Cart))
		}
	})
}

// A gap with nothing in flight is closed with a sync naming the clients
// with pending ops.
func TestGapSync(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		sc := newScript(t)
		e := scriptedEngine(t, sc, nil)
		p := sc.accept()
		p.login(cartAt(3, "tea=1"), 0)
		p.send(&protocol.Message{Type: protocol.TypeCart, Cart: cartAt(4, "tea=2"), From: 3, By: []protocol.OpID{{Client: "phone", Seq: 5}}})
		if st := e.Snapshot(); st.Confirmed != 4 {
			t.Fatalf("confirmed %d after an in-order push, want 4", st.Confirmed)
		}
		p.send(&protocol.Message{Type: protocol.TypeCart, Cart: cartAt(4, "tea=2"), From: 3, By: []protocol.OpID{{Client: "phone", Seq: 5}}})
		p.quiet() // an old push is ignored
		p.send(&protocol.Message{Type: protocol.TypeCart, Cart: cartAt(9, "tea=7"), From: 8, By: []protocol.OpID{{Client: "phone", Seq: 10}}})
		s := p.expect(protocol.TypeSync)
		if s.Since != 4 {
			t.Errorf("sync since %d, want 4", s.Since)
		}
		p.send(&protocol.Message{Type: protocol.TypeCart, ID: s.ID, Cart: cartAt(9, "tea=7"), Acked: map[string]uint64{}})
		if st := e.Snapshot(); st.Confirmed != 9 || summary(st.Cart) != "tea=7" {
			t.Errorf("state %+v, want the synced cart at 9", st)
		}
		// A cart of another cart id is not ours.
		other := cartAt(20)
		other.ID = "cart-2"
		p.send(&protocol.Message{Type: protocol.TypeCart, Cart: other, From: 9, By: []protocol.OpID{{Client: "x", Seq: 1}}})
		if st := e.Snapshot(); st.Confirmed != 9 {
			t.Errorf("took a cart of another id: confirmed %d", st.Confirmed)
		}
	})
}

// A push that arrives between welcome and the hello reply is taken if it
// fits, and otherwise left to the reply.
func TestPushBeforeHelloReply(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		sc := newScript(t)
		e := scriptedEngine(t, sc, nil)
		p := sc.accept()
		h := p.expect(protocol.TypeHello)
		p.send(&protocol.Message{Type: protocol.TypeWelcome, ID: h.ID, DeviceToken: "dev-1", CartID: "cart-1"})
		p.send(&protocol.Message{Type: protocol.TypeCart, Cart: cartAt(6, "tea=1"), From: 5, By: []protocol.OpID{{Client: "phone", Seq: 1}}})
		p.send(&protocol.Message{Type: protocol.TypeCart, ID: h.ID, Cart: cartAt(6, "tea=1"), Acked: map[string]uint64{"me": 0}})
		p.quiet() // the held push fits the reply: no sync
		if st := e.Snapshot(); st.Confirmed != 6 || st.Status != Synced {
			t.Errorf("state %+v, want synced at 6", st)
		}
	})
}

// An ack for part of a batch, then out_of_order at the rest: resend the
// rest, from the expected seq.
func TestPartialAckThenOutOfOrder(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		sc := newScript(t)
		e := newEngine(t, nil, NewMemStorage(), func(c *Config) { c.Dial = sc.dial; c.ClientID = "me" })
		ctx := context.Background()
		for range 3 {
			must(t, e.Add(ctx, "mug", nil, 1, nil))
		}
		start(t, e)
		p := sc.accept()
		p.login(cartAt(0), 0)
		push := p.expect(protocol.TypePush)
		if len(push.Ops) != 3 {
			t.Fatalf("push of %d ops, want 3", len(push.Ops))
		}
		p.send(&protocol.Message{Type: protocol.TypeAck, ID: push.ID, Results: []protocol.Result{applied(opID(push.Ops[0]), 1)}, Cart: cartAt(1, "mug=1")})
		p.quiet() // waits for the error about the rest
		pe := protocol.Errorf(protocol.ErrOutOfOrder, "expected 2")
		pe.Expected = &protocol.OpID{Client: "me", Seq: 2}
		p.send(&protocol.Message{Type: protocol.TypeError, ID: push.ID, Error: pe})
		again := p.expect(protocol.TypePush)
		if len(again.Ops) != 2 || again.Ops[0].Seq != 2 {
			t.Fatalf("resent %d ops from seq %d, want 2 from seq 2", len(again.Ops), again.Ops[0].Seq)
		}
		p.send(&protocol.Message{Type: protocol.TypeAck, ID: again.ID, Results: []protocol.Result{
			applied(opID(again.Ops[0]), 2), applied(opID(again.Ops[1]), 3)}, Cart: cartAt(3, "mug=3")})
		p.quiet()
		if st := e.Snapshot(); st.Pending != 0 || st.Confirmed != 3 || summary(st.Cart) != "mug=3" || st.LastError != nil {
			t.Errorf("state %+v, want everything confirmed at 3 and no error", st)
		}
	})
}

// An error the server could not tie to a request id, while a push is in
// flight, is about that push: a too_large batch is split.
func TestErrorWithoutID(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		sc := newScript(t)
		e := newEngine(t, nil, NewMemStorage(), func(c *Config) { c.Dial = sc.dial; c.ClientID = "me" })
		ctx := context.Background()
		for range 4 {
			must(t, e.Add(ctx, "mug", nil, 1, nil))
		}
		start(t, e)
		p := sc.accept()
		p.login(cartAt(0), 0)
		p.expect(protocol.TypePush)
		p.send(&protocol.Message{Type: protocol.TypeError, Error: protocol.Errorf(protocol.ErrTooLarge, "too big")})
		half := p.expect(protocol.TypePush)
		if len(half.Ops) != 2 {
			t.Errorf("push after too_large has %d ops, want 2", len(half.Ops))
		}
		if st := e.Snapshot(); st.LastError == nil || st.LastError.Code != protocol.ErrTooLarge {
			t.Errorf("LastError = %v, want too_large", st.LastError)
		}
	})
}

// A single op the server refuses outright is dropped and reported, so it
// cannot block the queue.
func TestPoisonOpDropped(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		sc := newScript(t)
		e := newEngine(t, nil, NewMemStorage(), func(c *Config) { c.Dial = sc.dial; c.ClientID = "me" })
		ctx := context.Background()
		must(t, e.Add(ctx, "mug", nil, 1, nil))
		start(t, e)
		p := sc.accept()
		p.login(cartAt(0), 0)
		push := p.expect(protocol.TypePush)
		p.send(&protocol.Message{Type: protocol.TypeError, ID: push.ID, Error: protocol.Errorf(protocol.ErrInvalid, "no")})
		must(t, e.Add(ctx, "tea", nil, 1, nil))
		next := p.expect(protocol.TypePush)
		if len(next.Ops) != 1 || next.Ops[0].SKU != "tea" {
			t.Errorf("next push %+v, want only the tea", next.Ops)
		}
		if rej := e.Snapshot().Rejected; len(rej) != 1 || rej[0].Seq != 1 {
			t.Errorf("Rejected = %+v, want op 1", rej)
		}
	})
}

// A retryable sync failure is retried after a while.
func TestSyncRetried(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		sc := newScript(t)
		scriptedEngine(t, sc, nil)
		p := sc.accept()
		p.login(cartAt(1), 0)
		p.send(&protocol.Message{Type: protocol.TypeCart, Cart: cartAt(5), From: 4, By: []protocol.OpID{{Client: "x", Seq: 4}}})
		s := p.expect(protocol.TypeSync)
		p.send(&protocol.Message{Type: protocol.TypeError, ID: s.ID, Error: protocol.Errorf(protocol.ErrInternal, "db down")})
		p.quiet()
		time.Sleep(time.Second)
		p.expect(protocol.TypeSync)
	})
}

// A refused hello ends the connection, is shown, and is retried after the
// backoff.
func TestUnauthorizedHello(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		srv := newFakeServer(t)
		srv.do(func() { srv.refuseHellos = 2 })
		e := newEngine(t, srv, NewMemStorage(), nil)
		start(t, e)
		waitFor(t, "the error", func() bool { return e.Snapshot().LastError != nil })
		if got := e.Snapshot().LastError.Code; got != protocol.ErrUnauthorized {
			t.Errorf("LastError %s, want unauthorized", got)
		}
		waitFor(t, "synced", func() bool { return e.Snapshot().Status == Synced })
		srv.do(func() {
			if srv.dials != 3 {
				t.Errorf("%d dials, want 3", srv.dials)
			}
		})
	})
}

// unsupported_version stops Run with the error.
func TestUnsupportedVersionStopsRun(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		sc := newScript(t)
		e := newEngine(t, nil, NewMemStorage(), func(c *Config) { c.Dial = sc.dial })
		done := make(chan error, 1)
		go func() { done <- e.Run(context.Background()) }()
		p := sc.accept()
		h := p.expect(protocol.TypeHello)
		p.send(&protocol.Message{Type: protocol.TypeError, ID: h.ID, Error: protocol.Errorf(protocol.ErrUnsupportedVersion, "too old")})
		err := <-done
		var pe *protocol.Error
		if !errors.As(err, &pe) || pe.Code != protocol.ErrUnsupportedVersion {
			t.Errorf("Run = %v, want unsupported_version", err)
		}
		if st := e.Snapshot(); st.Status != Offline || st.LastError == nil {
			t.Errorf("state %+v, want offline with the error", st)
		}
	})
}

// An ack whose cart moved further than its own ops while the outbox holds
// another tab's ops: sync to learn whether they were among them.
func TestAckMovedSyncsOthers(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		sc := newScript(t)
		store := NewMemStorage()
		e, p, push := mugPushed(t, sc, store)
		ctx := context.Background()
		// Another tab queues an op, sends it itself and closes.
		_, err := store.Enqueue(ctx, "other", func(seq uint64) cart.Op {
			return cart.Op{Client: "other", Seq: seq, Kind: cart.KindAdd, SKU: "tea", Quantity: 1}
		})
		must(t, err)
		p.send(&protocol.Message{Type: protocol.TypeAck, ID: push.ID, Results: []protocol.Result{applied(opID(push.Ops[0]), 2)}, Cart: cartAt(2, "mug=1", "tea=1")})
		s := p.expect(protocol.TypeSync)
		if !slices.Equal(s.Clients, []string{"other"}) {
			t.Errorf("sync about %v, want [other]", s.Clients)
		}
		p.send(&protocol.Message{Type: protocol.TypeCart, ID: s.ID, Cart: cartAt(2, "mug=1", "tea=1"), Acked: map[string]uint64{"other": 1}})
		p.quiet() // nothing to resend
		if st := e.Snapshot(); st.Pending != 0 || summary(st.Cart) != "mug=1 tea=1" {
			t.Errorf("state %+v, want nothing pending", st)
		}
	})
}

// loadCounter counts the storage's Loads: reads of everything stored.
type loadCounter struct {
	Storage
	loads atomic.Int64
}

func (l *loadCounter) Load(ctx context.Context) (Stored, error) {
	l.loads.Add(1)
	return l.Storage.Load(ctx)
}

// An ack of the shown cart's own edits is stored and shown without
// reading the storage back: add() made meanwhile waits for one storage
// transaction, not two. What the ack confirmed is what is shown, and
// stored. An ack long after the last read reads it back.
func TestAckShownWithoutReload(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		sc := newScript(t)
		mem := NewMemStorage()
		store := &loadCounter{Storage: mem}
		e := scriptedEngineOn(t, sc, store, nil)
		ctx := context.Background()
		p := sc.accept()
		// Both edits before the hello's reply, so that one push takes
		// them: made after it, the first may go alone.
		must(t, e.Add(ctx, "mug", nil, 1, nil))
		must(t, e.Add(ctx, "tea", nil, 2, nil))
		p.login(cartAt(0), 0)
		push := p.expect(protocol.TypePush)
		if len(push.Ops) != 2 {
			t.Fatalf("pushed %d ops, want both", len(push.Ops))
		}
		before := store.loads.Load()
		ids := make([]protocol.Result, len(push.Ops))
		for i, op := range push.Ops {
			ids[i] = applied(opID(op), uint64(i+1))
		}
		p.send(&protocol.Message{Type: protocol.TypeAck, ID: push.ID, Results: ids, Cart: cartAt(2, "mug=1", "tea=2")})
		p.quiet()
		if n := store.loads.Load() - before; n != 0 {
			t.Errorf("the ack read the storage back %d times, want 0", n)
		}
		if st := e.Snapshot(); st.Pending != 0 || st.Cart.Version != 2 || summary(st.Cart) != "mug=1 tea=2" {
			t.Errorf("shown %+v, want version 2 with nothing pending", st)
		}
		got, err := mem.Load(ctx)
		must(t, err)
		if len(got.Pending) != 0 || got.Cart.Version != 2 {
			t.Errorf("stored %d pending, version %d; want 0 and 2", len(got.Pending), got.Cart.Version)
		}

		// Once the last read is over memoryConfirmFor old, an ack reads
		// the storage back: what other tabs stored does not wait for a
		// ping.
		time.Sleep(memoryConfirmFor + time.Millisecond)
		must(t, e.Add(ctx, "cap", nil, 1, nil))
		push = p.expect(protocol.TypePush)
		before = store.loads.Load()
		p.send(&protocol.Message{Type: protocol.TypeAck, ID: push.ID, Results: []protocol.Result{applied(opID(push.Ops[0]), 3)}, Cart: cartAt(3, "mug=1", "tea=2", "cap=1")})
		p.quiet()
		if n := store.loads.Load() - before; n != 1 {
			t.Errorf("an ack %s after the last read read the storage back %d times, want 1", memoryConfirmFor, n)
		}
	})
}

// A client id rotated because ops were lost (out_of_order past the outbox)
// belongs to the cart shown, and is rotated again when that cart is
// replaced: after the cart expired, the fresh cart gets ops of a new id
// from seq 1, never the old id's next seq, which the server would refuse
// as out of order (and the engine drop as lost).
func TestRotatedClientMovesToNoOtherCart(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		sc := newScript(t)
		e := newEngine(t, nil, NewMemStorage(), func(c *Config) { c.Dial = sc.dial; c.ClientID = "me" })
		ctx := context.Background()
		must(t, e.Add(ctx, "mug", nil, 1, nil))
		must(t, e.Add(ctx, "mug", nil, 1, nil))
		start(t, e)
		p := sc.accept()
		p.login(cartAt(0), 0)
		push := p.expect(protocol.TypePush)
		p.send(&protocol.Message{Type: protocol.TypeAck, ID: push.ID, Results: []protocol.Result{applied(opID(push.Ops[0]), 1)}, Cart: cartAt(1, "mug=1")})
		p.quiet()
		pe := protocol.Errorf(protocol.ErrOutOfOrder, "expected 1")
		pe.Expected = &protocol.OpID{Client: "me", Seq: 1} // me/2 can never be taken
		p.send(&protocol.Message{Type: protocol.TypeError, ID: push.ID, Error: pe})
		p.quiet()

		must(t, e.Add(ctx, "tea", nil, 1, nil))
		rotated := p.expect(protocol.TypePush)
		if len(rotated.Ops) != 1 || rotated.Ops[0].Client == "me" || rotated.Ops[0].Seq != 1 {
			t.Fatalf("after the lost op, pushed %+v, want one op of a new client id, seq 1", rotated.Ops)
		}
		p.send(&protocol.Message{Type: protocol.TypeAck, ID: rotated.ID, Results: []protocol.Result{applied(opID(rotated.Ops[0]), 2)}, Cart: cartAt(2, "mug=1", "tea=1")})
		p.quiet()

		expired := protocol.Errorf(protocol.ErrCartExpired, "purged")
		expired.Cart = "cart-1"
		p.send(&protocol.Message{Type: protocol.TypeError, Error: expired})
		must(t, e.Add(ctx, "cap", nil, 1, nil))

		p = sc.accept()
		h := p.expect(protocol.TypeHello)
		p.send(&protocol.Message{Type: protocol.TypeWelcome, ID: h.ID, DeviceToken: "dev-2", CartID: "cart-2"})
		fresh := &cart.Cart{ID: "cart-2", Lines: []*cart.Line{}}
		p.send(&protocol.Message{Type: protocol.TypeCart, ID: h.ID, Cart: fresh, Acked: map[string]uint64{}})
		next := p.expect(protocol.TypePush)
		if len(next.Ops) != 1 || next.Ops[0].SKU != "cap" || next.Ops[0].Seq != 1 || next.Ops[0].Client == rotated.Ops[0].Client {
			t.Fatalf("on the fresh cart, pushed %+v, want cap as seq 1 of a client id not used on cart-1 (%s)", next.Ops, rotated.Ops[0].Client)
		}
	})
}

// gatedConfirm is a Storage whose Confirm can be made to fail, or to wait
// until released.
type gatedConfirm struct {
	Storage
	fail    atomic.Bool
	gate    chan struct{} // when not nil, Confirm waits for it to close
	waiting chan struct{} // closed once a Confirm waits at the gate
}

var errConfirmFailed = errors.New("confirm failed")

func (g *gatedConfirm) Confirm(ctx context.Context, c *cart.Cart, done []protocol.OpID) error {
	if g.gate != nil {
		close(g.waiting)
		<-g.gate
	}
	if g.fail.Load() {
		return errConfirmFailed
	}
	return g.Storage.Confirm(ctx, c, done)
}

// An ack whose storing fails shows nothing of it: the engine shows what
// is stored, the op still pending, until a connection stores the ack.
func TestFailedConfirmShowsWhatIsStored(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		sc := newScript(t)
		store := &gatedConfirm{Storage: NewMemStorage()}
		e, p, push := mugPushed(t, sc, store)
		ctx := context.Background()
		store.fail.Store(true)
		p.send(&protocol.Message{Type: protocol.TypeAck, ID: push.ID, Results: []protocol.Result{applied(opID(push.Ops[0]), 1)}, Cart: cartAt(1, "mug=1")})
		synctest.Wait()
		if st := e.Snapshot(); st.Pending != 1 || st.Confirmed != 0 {
			t.Errorf("after a failed confirm: %d pending at version %d, want 1 at 0 (what is stored)", st.Pending, st.Confirmed)
		}
		store.fail.Store(false)
		p = sc.accept() // the connection ended on the storage's error
		p.login(cartAt(1, "mug=1"), 1)
		flushCtx, cancel := context.WithTimeout(ctx, time.Minute)
		defer cancel()
		must(t, e.Flush(flushCtx))
		if st := e.Snapshot(); st.Pending != 0 || st.Confirmed != 1 {
			t.Errorf("after the next connection: %d pending at version %d, want 0 at 1", st.Pending, st.Confirmed)
		}
	})
}

// What a connection's input changed is shown only once stored, even when
// another call publishes meanwhile (AckNotices while the ack is written):
// Flush does not return, and Snapshot shows the op pending, until the ack
// is stored. (Not in a synctest bubble: AckNotices waits on a mutex, which
// synctest.Wait does not count as blocked.)
func TestNothingShownBeforeStored(t *testing.T) {
	sc := newScript(t)
	store := &gatedConfirm{Storage: NewMemStorage()}
	e := scriptedEngineOn(t, sc, store, nil)
	ctx := context.Background()
	p := sc.accept()
	h := p.expect(protocol.TypeHello)
	p.sendOnly(&protocol.Message{Type: protocol.TypeWelcome, ID: h.ID, DeviceToken: "dev-1", CartID: "cart-1"})
	p.sendOnly(&protocol.Message{Type: protocol.TypeCart, ID: h.ID, Cart: cartAt(0)})
	must(t, e.Add(ctx, "mug", nil, 1, nil))
	push := p.expect(protocol.TypePush)
	store.gate, store.waiting = make(chan struct{}), make(chan struct{})
	release := sync.OnceFunc(func() { close(store.gate) })
	t.Cleanup(release) // before the engine stops, if the test fails
	flushed := make(chan error, 1)
	go func() { flushed <- e.Flush(ctx) }()
	p.sendOnly(&protocol.Message{Type: protocol.TypeAck, ID: push.ID, Results: []protocol.Result{applied(opID(push.Ops[0]), 1)}, Cart: cartAt(1, "mug=1")})
	<-store.waiting
	acked := make(chan struct{})
	go func() { e.AckNotices(); close(acked) }()
	// Watch for a while: before the fix AckNotices published the ack at once.
	for end := time.Now().Add(200 * time.Millisecond); time.Now().Before(end); time.Sleep(time.Millisecond) {
		select {
		case err := <-flushed:
			t.Fatalf("Flush returned (%v) while the ack was being stored", err)
		default:
		}
		if st := e.Snapshot(); st.Pending != 1 {
			t.Fatalf("shown %d pending while the ack was being stored, want 1", st.Pending)
		}
	}
	release()
	must(t, <-flushed)
	<-acked
}
