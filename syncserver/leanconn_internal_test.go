package syncserver

import (
	"bufio"
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"io"
	"net"
	"testing"
	"time"

	"github.com/coder/websocket"
)

// frameConn writes each message as one frame with the length in the form
// RFC 6455 requires for its size: 7 bits, 16 bits, or 64 bits.
func TestFrameConnLengths(t *testing.T) {
	server, client := tcpPair(t)
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

// tcpPair returns the two ends of a loopback TCP connection.
func tcpPair(t *testing.T) (server, client net.Conn) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	client, err = net.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { client.Close() })
	server, err = ln.Accept()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { server.Close() })
	return server, client
}

// A message's write deadline is not left on the socket for the library's
// own frames (a pong, a close) written later.
func TestFrameConnClearsItsWriteDeadline(t *testing.T) {
	for _, how := range []string{"Write", "WriteBy"} {
		t.Run(how, func(t *testing.T) {
			server, client := tcpPair(t)
			lc := &leanConn{Conn: server}
			deadline := time.Now().Add(50 * time.Millisecond)
			var err error
			if how == "Write" {
				ctx, cancel := context.WithDeadline(context.Background(), deadline)
				defer cancel()
				err = (frameConn{lc: lc}).Write(ctx, websocket.MessageText, []byte("{}"))
			} else {
				err = (frameConn{lc: lc}).WriteBy(deadline, websocket.MessageText, []byte("{}"))
			}
			if err != nil {
				t.Fatal(err)
			}
			time.Sleep(time.Until(deadline) + 10*time.Millisecond) // the deadline it had is past
			if _, err := lc.Write([]byte{0x8a, 0}); err != nil {   // a pong
				t.Fatalf("the library's pong after a message: %v", err)
			}
			got := make([]byte, 6)
			_ = client.SetReadDeadline(time.Now().Add(5 * time.Second))
			if _, err := io.ReadFull(client, got); err != nil || !bytes.Equal(got, []byte{0x81, 2, '{', '}', 0x8a, 0}) {
				t.Fatalf("read %x (%v), want the message and the pong", got, err)
			}
		})
	}
}

// No message is written after the library's close frame.
func TestFrameConnWritesNothingAfterTheCloseFrame(t *testing.T) {
	server, _ := tcpPair(t)
	lc := &leanConn{Conn: server}
	if _, err := lc.Write([]byte{0x88, 2, 0x03, 0xe8}); err != nil { // close, 1000
		t.Fatal(err)
	}
	err := (frameConn{lc: lc}).Write(context.Background(), websocket.MessageText, []byte("{}"))
	if !errors.Is(err, net.ErrClosed) {
		t.Fatalf("write after the close frame: %v, want net.ErrClosed", err)
	}
}

// The library's buffer over leanConn holds nothing once a message is read,
// even when the next one arrived with it: what is left waits in leanConn,
// where wait looks.
func TestLibraryBufferEmptyBetweenMessages(t *testing.T) {
	server, client := tcpPair(t)
	lc := &leanConn{Conn: server}
	frame := func(p string) []byte { return append([]byte{0x81, byte(len(p))}, p...) }
	if _, err := client.Write(append(frame("first message"), frame("second")...)); err != nil {
		t.Fatal(err)
	}
	br := bufio.NewReaderSize(lc, libReadBuffer)
	for _, want := range []string{"first message", "second"} {
		var h [2]byte
		for i := range h { // as the library reads a header
			b, err := br.ReadByte()
			if err != nil {
				t.Fatal(err)
			}
			h[i] = b
		}
		p := make([]byte, h[1]&0x7f)
		if _, err := io.ReadFull(br, p); err != nil || string(p) != want {
			t.Fatalf("payload %q (%v), want %q", p, err, want)
		}
		if n := br.Buffered(); n != 0 {
			t.Fatalf("after %q the library's buffer holds %d bytes", want, n)
		}
		if more := lc.buffered(); more != (want == "first message") {
			t.Fatalf("after %q leanConn holds bytes: %v", want, more)
		}
	}
}
