package syncserver

import (
	"bytes"
	"context"
	"encoding/binary"
	"io"
	"net"
	"testing"
	"time"

	"github.com/coder/websocket"
)

// frameConn writes each message as one frame with the length in the form
// RFC 6455 requires for its size: 7 bits, 16 bits, or 64 bits.
func TestFrameConnLengths(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	client, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer client.Close()
	server, err := ln.Accept()
	if err != nil {
		t.Fatal(err)
	}
	defer server.Close()
	fc := frameConn{lc: &leanConn{Conn: server}}
	for _, c := range []struct {
		size    int
		typ     websocket.MessageType
		lenByte byte
		ext     int
	}{
		{0, websocket.MessageText, 0, 0},
		{125, websocket.MessageText, 125, 0},
		{126, websocket.MessageBinary, 126, 2},
		{65535, websocket.MessageText, 126, 2},
		{65536, websocket.MessageText, 127, 8},
		{300_000, websocket.MessageText, 127, 8},
	} {
		p := bytes.Repeat([]byte{'a' + byte(c.size%26)}, c.size)
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		errc := make(chan error, 1)
		go func() { errc <- fc.Write(ctx, c.typ, p) }()
		_ = client.SetReadDeadline(time.Now().Add(5 * time.Second))
		hdr := make([]byte, 2+c.ext)
		if _, err := io.ReadFull(client, hdr); err != nil {
			t.Fatal(err)
		}
		if hdr[0] != 0x80|byte(c.typ) || hdr[1] != c.lenByte {
			t.Fatalf("%d bytes: header %x, want %x %x", c.size, hdr[:2], 0x80|byte(c.typ), c.lenByte)
		}
		var n uint64
		switch c.ext {
		case 0:
			n = uint64(hdr[1])
		case 2:
			n = uint64(binary.BigEndian.Uint16(hdr[2:]))
		case 8:
			n = binary.BigEndian.Uint64(hdr[2:])
		}
		got := make([]byte, n)
		if _, err := io.ReadFull(client, got); err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(got, p) {
			t.Fatalf("%d bytes: payload of %d bytes differs", c.size, n)
		}
		if err := <-errc; err != nil {
			t.Fatal(err)
		}
		cancel()
	}
}
