package syncserver_test

import (
	"context"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/cartsync/cartsync/shared/cart"
	"github.com/cartsync/cartsync/shared/protocol"
	"github.com/cartsync/cartsync/shared/syncclient"
	"github.com/cartsync/cartsync/syncserver"
	"github.com/cartsync/cartsync/syncserver/memstore"
)

// purgeOnLoad is a memstore whose next Load of cart, once armed, runs the
// purge right after reading the cart: the purge lands between a hello's
// load of its snapshot and its welcome.
type purgeOnLoad struct {
	*memstore.Store
	mu    sync.Mutex
	cart  string
	purge func()
}

func (s *purgeOnLoad) arm(cartID string, purge func()) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.cart, s.purge = cartID, purge
}

func (s *purgeOnLoad) Load(ctx context.Context, cartID string, clients []string) (*syncserver.Record, error) {
	rec, err := s.Store.Load(ctx, cartID, clients)
	s.mu.Lock()
	purge := s.purge
	if cartID != s.cart {
		purge = nil
	}
	if purge != nil {
		s.purge = nil
	}
	s.mu.Unlock()
	if purge != nil {
		purge()
	}
	return rec, err
}

// A guest cart purged while a hello is answered, after the hello loaded it
// and before its welcome: the connection is told cart_expired without an
// id after the welcome and the cart, as any connection on the cart is, not
// before them, where a client takes it for the hello's own answer and waits
// for a fresh cart in the welcome (which comes with the purged cart, which
// it then showed until its next edit was refused).
func TestPurgeDuringHelloToldAfterTheWelcome(t *testing.T) {
	clk := &clock{t: time.Now()}
	st := &purgeOnLoad{Store: memstore.New()}
	srv, hs := newServerWith(t, syncserver.Config{Store: st, GuestRetention: 2 * time.Hour, Now: clk.now})
	c := dial(t, hs)
	w, _ := c.hello("tab-1", "")
	c.send(&protocol.Message{Type: protocol.TypePush, ID: "p1", Ops: []cart.Op{addOp("tab-1", 1, "MUG", 1)}})
	c.expect(protocol.TypeAck)
	c.conn.CloseNow()

	clk.add(3 * time.Hour)
	st.arm(w.CartID, func() {
		if n, err := srv.Purge(context.Background(), 0); err != nil || n != 1 {
			t.Errorf("Purge = %d, %v; want the cart expired", n, err)
		}
	})
	c2 := dial(t, hs)
	c2.send(&protocol.Message{Type: protocol.TypeHello, ID: "h1", Protocol: protocol.Version, Client: "tab-2", DeviceToken: w.DeviceToken, Since: 1})
	var got []string
	for i := 0; i < 3; i++ {
		m := c2.read()
		got = append(got, m.Type+"/"+m.ID)
		if m.Type == protocol.TypeError {
			if m.Error.Code != protocol.ErrCartExpired || m.Error.Cart != w.CartID {
				t.Fatalf("error %+v, want cart_expired of %s", m.Error, w.CartID)
			}
			if i < 2 {
				t.Fatalf("messages %v: cart_expired before the hello's welcome and cart", got)
			}
		}
	}
	if want := []string{"welcome/h1", "cart/h1", "error/"}; !slices.Equal(got, want) {
		t.Fatalf("messages %v, want %v", got, want)
	}
}

// The same, with an engine: it ends on a fresh cart under a new device
// token at once, not on the purged cart until its next edit.
func TestLoginE2EPurgeDuringHello(t *testing.T) {
	clk := &clock{t: time.Now()}
	st := &purgeOnLoad{Store: memstore.New()}
	env := newWindowEnvWith(t, syncserver.Config{Store: st, Now: clk.now, GuestRetention: 2 * time.Hour})
	w := &loginE2EWatch{}
	l := &link{url: env.url}
	e := loginE2ETab(env, syncclient.NewMemStorage(), l, w)
	env.add(e, "mug")
	old := env.settle(e, "")
	l.setDown(true)
	w.waitFor(t, "offline", func(s syncclient.State) bool { return s.Status == syncclient.Offline })
	clk.add(3 * time.Hour)
	st.arm(old.Cart.ID, func() {
		if n, err := env.srv.Purge(context.Background(), 0); err != nil || n != 1 {
			t.Errorf("Purge = %d, %v; want the cart expired", n, err)
		}
	})
	l.setDown(false)
	s := w.waitFor(t, "told, on a fresh cart", func(s syncclient.State) bool {
		return s.CartExpired && s.Status == syncclient.Synced && s.Cart.ID != old.Cart.ID
	})
	if len(s.Cart.Lines) != 0 {
		t.Errorf("the fresh cart: %q, want empty", lineSummary(s.Cart))
	}
}
