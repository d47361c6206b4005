package syncserver_test

import (
	"context"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/coder/websocket"

	"github.com/cartsync/cartsync/shared/protocol"
	"github.com/cartsync/cartsync/syncserver"
	"github.com/cartsync/cartsync/syncserver/memstore"
	"github.com/cartsync/cartsync/syncserver/storetest"
)

// Every client is told, before its connection closes, when to come back;
// the delays differ from client to client.
func TestShutdownSaysGoingAwayWithRetryDelay(t *testing.T) {
	const spread = 400 * time.Millisecond
	srv, err := syncserver.New(context.Background(), syncserver.Config{Store: memstore.New(), ShutdownSpread: spread})
	if err != nil {
		t.Fatal(err)
	}
	storetest.StopOnCleanup(t, srv)
	hs := httptest.NewServer(srv)
	t.Cleanup(hs.Close)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	var conns []*websocket.Conn
	for i := range 8 {
		c, _, err := websocket.Dial(ctx, "ws"+strings.TrimPrefix(hs.URL, "http")+"/v1/sync", nil)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { c.CloseNow() })
		hello, _ := protocol.Encode(&protocol.Message{Type: protocol.TypeHello, ID: "h1", Protocol: protocol.Version, Client: "tab" + string(rune('a'+i))})
		if err := c.Write(ctx, websocket.MessageText, hello); err != nil {
			t.Fatal(err)
		}
		for _, want := range []string{protocol.TypeWelcome, protocol.TypeCart} {
			if m := readMsg(t, ctx, c); m.Type != want {
				t.Fatalf("got %s, want %s", m.Type, want)
			}
		}
		conns = append(conns, c)
	}
	done := make(chan error, 1)
	go func() { done <- srv.Shutdown(ctx) }()
	delays := map[int]bool{}
	for _, c := range conns {
		m := readMsg(t, ctx, c)
		if m.Type != protocol.TypeError || m.Error.Code != protocol.ErrGoingAway {
			t.Fatalf("got %+v (error %+v), want a going_away error", m, m.Error)
		}
		d := time.Duration(m.Error.RetryAfterMS) * time.Millisecond
		if !m.Error.Retryable || d < syncserver.MinRetryAfter || d >= 2*spread {
			t.Errorf("going_away %+v: want retryable, with a retry delay within [%v, %v)", m.Error, syncserver.MinRetryAfter, 2*spread)
		}
		delays[m.Error.RetryAfterMS] = true
		if _, _, err := c.Read(ctx); err == nil {
			t.Error("a message after going_away, want the close")
		} else if websocket.CloseStatus(err) != websocket.StatusGoingAway {
			t.Errorf("closed with %v, want going away", err)
		}
	}
	if len(delays) < 2 {
		t.Errorf("every client was given the same delay %v, want them spread", delays)
	}
	if err := <-done; err != nil {
		t.Fatalf("Shutdown: %v", err)
	}
}

func readMsg(t testing.TB, ctx context.Context, c *websocket.Conn) *protocol.Message {
	t.Helper()
	_, b, err := c.Read(ctx)
	if err != nil {
		t.Fatalf("read: %v", err)
	}
	m, err := protocol.Decode(b)
	if err != nil {
		t.Fatalf("decode %s: %v", b, err)
	}
	return m
}

// Past MaxHellos, a hello waits for a slot, then is answered overloaded
// with a retry delay; a hello that finds a slot is welcomed.
func TestHelloGateAnswersOverloaded(t *testing.T) {
	srv, err := syncserver.New(context.Background(), syncserver.Config{Store: memstore.New(), MaxHellos: 1})
	if err != nil {
		t.Fatal(err)
	}
	storetest.StopOnCleanup(t, srv)
	syncserver.SetHelloWait(srv, 50*time.Millisecond)
	hs := httptest.NewServer(srv)
	t.Cleanup(hs.Close)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	dialHello := func(client string) *websocket.Conn {
		c, _, err := websocket.Dial(ctx, "ws"+strings.TrimPrefix(hs.URL, "http")+"/v1/sync", nil)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { c.CloseNow() })
		hello, _ := protocol.Encode(&protocol.Message{Type: protocol.TypeHello, ID: "h1", Protocol: protocol.Version, Client: client})
		if err := c.Write(ctx, websocket.MessageText, hello); err != nil {
			t.Fatal(err)
		}
		return c
	}

	release := syncserver.TakeHelloSlot(srv) // a hello in progress holds the only slot
	m := readMsg(t, ctx, dialHello("a"))
	if m.Type != protocol.TypeError || m.Error.Code != protocol.ErrOverloaded || m.ID != "h1" {
		t.Fatalf("got %+v (error %+v), want overloaded about h1", m, m.Error)
	}
	if d := time.Duration(m.Error.RetryAfterMS) * time.Millisecond; d < syncserver.HelloRetryMin || d >= syncserver.HelloRetryMax || !m.Error.Retryable {
		t.Errorf("overloaded %+v: want retryable, with a retry delay within [%v, %v)", m.Error, syncserver.HelloRetryMin, syncserver.HelloRetryMax)
	}

	release()
	if m := readMsg(t, ctx, dialHello("b")); m.Type != protocol.TypeWelcome {
		t.Fatalf("got %+v (error %+v) with a slot free, want welcome", m, m.Error)
	}
	// The welcome goes out before the hello's snapshot: the slot is given
	// back a moment after it.
	for deadline := time.Now().Add(5 * time.Second); syncserver.HellosInProgress(srv) != 0; {
		if time.Now().After(deadline) {
			t.Fatalf("%d slots held after the hello, want 0", syncserver.HellosInProgress(srv))
		}
		time.Sleep(time.Millisecond)
	}
}
