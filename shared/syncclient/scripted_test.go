package syncclient

import (
	"context"
	"strings"
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
