package syncserver_test

import (
	"bufio"
	"context"
	"encoding/binary"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/cartsync/cartsync/shared/cart"
	"github.com/cartsync/cartsync/shared/protocol"
	"github.com/cartsync/cartsync/syncserver"
)

// A client may send its first frame in the same packet as the upgrade
// request: the server has read it with the request, and must still take
// it once the connection is a websocket.
func TestFrameSentWithTheUpgradeIsRead(t *testing.T) {
	_, hs := newServer(t)
	hello, _ := json.Marshal(&protocol.Message{Type: protocol.TypeHello, Protocol: protocol.Version, Client: "tab"})
	_, br := rawUpgrade(t, hs, maskedTextFrame(hello))
	if m := readServerMessage(t, br); m.Type != protocol.TypeWelcome || m.DeviceToken == "" {
		t.Fatalf("first message %+v, want a welcome with a device token", m)
	}
}

// Two messages that arrive together, the first larger than the read
// buffer, are both answered: the second is still in the socket when the
// first has been read, and the reader must not wait for more.
func TestMessagesArrivingTogetherAreBothAnswered(t *testing.T) {
	_, hs := newServer(t)
	conn, br := rawUpgrade(t, hs, nil)
	hello, _ := json.Marshal(&protocol.Message{Type: protocol.TypeHello, Protocol: protocol.Version, Client: "tab"})
	if _, err := conn.Write(maskedTextFrame(hello)); err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{protocol.TypeWelcome, protocol.TypeCart} {
		if m := readServerMessage(t, br); m.Type != want {
			t.Fatalf("got %s, want %s", m.Type, want)
		}
	}
	// Of pushes of several sizes, some end with a read of exactly the
	// rest of the push straight from the socket, leaving the ping there.
	seq := uint64(0)
	for n := 4; n <= 60; n += 4 {
		ops := make([]cart.Op, n)
		for i := range ops {
			seq++
			ops[i] = addOp("tab", seq, fmt.Sprintf("%03d-%s", seq, strings.Repeat("x", 100)), 1)
		}
		id := fmt.Sprintf("p%d", n)
		push, _ := json.Marshal(&protocol.Message{Type: protocol.TypePush, ID: id, Ops: ops})
		ping, _ := json.Marshal(&protocol.Message{Type: protocol.TypePing, ID: "k" + id, T: 1})
		if _, err := conn.Write(append(maskedTextFrame(push), maskedTextFrame(ping)...)); err != nil {
			t.Fatal(err)
		}
		acked := false
		for pong := false; !pong; {
			switch m := readServerMessage(t, br); m.Type {
			case protocol.TypeAck:
				acked = acked || m.ID == id
			case protocol.TypePong:
				if !acked {
					t.Fatalf("push of %d ops (%d bytes): pong before the ack", n, len(push))
				}
				pong = true
			}
		}
	}
}

// rawUpgrade opens a websocket to hs over a plain TCP connection, sending
// first in the same write as the upgrade request.
func rawUpgrade(t *testing.T, hs *httptest.Server, first []byte) (net.Conn, *bufio.Reader) {
	t.Helper()
	conn, err := net.DialTimeout("tcp", hs.Listener.Addr().String(), 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	_ = conn.SetDeadline(time.Now().Add(10 * time.Second))
	req := "GET /v1/sync HTTP/1.1\r\nHost: " + hs.Listener.Addr().String() + "\r\n" +
		"Upgrade: websocket\r\nConnection: Upgrade\r\n" +
		"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n"
	if _, err := conn.Write(append([]byte(req), first...)); err != nil {
		t.Fatal(err)
	}
	br := bufio.NewReader(conn)
	resp, err := http.ReadResponse(br, nil)
	if err != nil {
		t.Fatal(err)
	}
	if resp.StatusCode != http.StatusSwitchingProtocols {
		t.Fatalf("status %d, want 101", resp.StatusCode)
	}
	return conn, br
}

func readServerMessage(t *testing.T, r io.Reader) *protocol.Message {
	t.Helper()
	var m protocol.Message
	if err := json.Unmarshal(readServerFrame(t, r), &m); err != nil {
		t.Fatal(err)
	}
	return &m
}

// maskedTextFrame is a client's text frame of p (under 64 KiB).
func maskedTextFrame(p []byte) []byte {
	key := [4]byte{1, 2, 3, 4}
	f := []byte{0x81, 0x80 | 126, 0, 0}
	binary.BigEndian.PutUint16(f[2:], uint16(len(p)))
	f = append(f, key[:]...)
	for i, b := range p {
		f = append(f, b^key[i%4])
	}
	return f
}

// readServerFrame reads one unmasked, unfragmented frame's payload.
func readServerFrame(t *testing.T, r io.Reader) []byte {
	t.Helper()
	var h [2]byte
	if _, err := io.ReadFull(r, h[:]); err != nil {
		t.Fatal(err)
	}
	if h[0] != 0x81 || h[1]&0x80 != 0 {
		t.Fatalf("frame header %x, want an unmasked final text frame", h)
	}
	n := uint64(h[1] & 0x7f)
	switch n {
	case 126:
		var b [2]byte
		_, _ = io.ReadFull(r, b[:])
		n = uint64(binary.BigEndian.Uint16(b[:]))
	case 127:
		var b [8]byte
		_, _ = io.ReadFull(r, b[:])
		n = binary.BigEndian.Uint64(b[:])
	}
	p := make([]byte, n)
	if _, err := io.ReadFull(r, p); err != nil {
		t.Fatal(err)
	}
	return p
}

// Messages many times the connection's buffers go through whole both ways:
// a push of 100 ops and the cart of 100 lines that comes back.
func TestMessagesLargerThanTheBuffers(t *testing.T) {
	_, hs := newServer(t)
	c := dial(t, hs)
	c.hello("tab", "")
	ops := make([]cart.Op, protocol.MaxOpsPerPush)
	for i := range ops {
		ops[i] = addOp("tab", uint64(i+1), fmt.Sprintf("sku-%03d-%s", i, strings.Repeat("x", 100)), 1)
	}
	c.send(&protocol.Message{Type: protocol.TypePush, ID: "p1", Ops: ops})
	ack := c.expect(protocol.TypeAck)
	if len(ack.Results) != len(ops) || ack.Cart == nil || len(ack.Cart.Lines) != len(ops) {
		t.Fatalf("ack of %d results and cart %+v, want %d results and lines", len(ack.Results), ack.Cart, len(ops))
	}
	for i, r := range ack.Results {
		if r.Status != protocol.StatusApplied || r.Seq != uint64(i+1) {
			t.Fatalf("result %d: %+v, want seq %d applied", i, r, i+1)
		}
	}
	c.send(&protocol.Message{Type: protocol.TypeSync, ID: "s1"})
	got := c.expect(protocol.TypeCart)
	if got.Cart == nil || len(got.Cart.Lines) != len(ops) || got.Cart.Lines[99].SKU != ops[99].SKU {
		t.Fatalf("synced cart %+v, want the %d lines", got.Cart, len(ops))
	}
}

// A client silent for three heartbeats is disconnected: the read deadline
// on the network connection ends the wait.
func TestSilentClientIsDisconnected(t *testing.T) {
	_, hs := newServerWith(t, syncserver.Config{Heartbeat: 50 * time.Millisecond})
	c := dial(t, hs)
	c.hello("tab", "")
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	for {
		_, _, err := c.conn.Read(ctx) // the server's pings, unanswered
		if err == nil {
			continue
		}
		if ctx.Err() != nil {
			t.Fatal("the server kept a silent client's connection open")
		}
		return
	}
}
