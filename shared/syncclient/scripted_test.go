package syncclient

import (
	"context"
	"errors"
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
