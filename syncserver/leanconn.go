package syncserver

import (
	"bufio"
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"net"
	"net/http"
	"os"
	"sync"
	"syscall"
	"time"

	"github.com/coder/websocket"
)

// The websocket library keeps, for a connection's life, the read and write
// buffers that the HTTP server's Hijack hands it: 4 KB each, most of what
// an idle shopper's connection costs. leanHijack hands it a read buffer of
// bufio's minimum, over a connection (leanConn) that reads the socket into
// a buffer of a shared pool, held only while it has bytes the library has
// not taken yet, and a write buffer just large enough for its control
// frames: the session's messages are written by frameConn, one system call
// each. Reading takes one system call per readBuffer bytes, as before.

const (
	// readBuffer is the size of the pooled buffers the socket is read
	// into.
	readBuffer = 4 << 10
	// libReadBuffer is the size of the library's own read buffer over
	// leanConn: bufio's minimum, since leanConn buffers.
	libReadBuffer = 16
)

var readBuffers = sync.Pool{New: func() any { return new([readBuffer]byte) }}

// leanHijack is an http.ResponseWriter whose Hijack gives the library the
// connection as a leanConn, with small buffers, and keeps it in c.
type leanHijack struct {
	http.ResponseWriter
	c *leanConn // set by Hijack
}

// Unwrap lets http.ResponseController reach the wrapped writer.
func (l *leanHijack) Unwrap() http.ResponseWriter { return l.ResponseWriter }

// Hijack implements http.Hijacker.
func (l *leanHijack) Hijack() (net.Conn, *bufio.ReadWriter, error) {
	conn, brw, err := http.NewResponseController(l.ResponseWriter).Hijack()
	if err != nil {
		return nil, nil, err
	}
	lc := &leanConn{Conn: conn}
	if sc, ok := conn.(syscall.Conn); ok {
		lc.raw, _ = sc.SyscallConn() // nil on error: wait does not wait
	}
	if n := brw.Reader.Buffered(); n > 0 {
		// What the HTTP server read past the request (a client that
		// sent its first frame at once) is read first.
		b, _ := brw.Reader.Peek(n)
		lc.unread = bytes.Clone(b)
	}
	l.c = lc
	return lc, bufio.NewReadWriter(bufio.NewReaderSize(lc, libReadBuffer), bufio.NewWriterSize(lc, controlFrame)), nil
}

// leanConn is the hijacked connection as the library and the session see
// it (not the ResponseWriter, which would keep the HTTP server's buffers
// and the request). The session sets the read deadline on it instead of
// giving the library a context with a timeout, which costs a timer, a
// context and a callback for as long as the connection waits, and waits
// for the next message with wait.
type leanConn struct {
	net.Conn
	raw syscall.RawConn

	mu     sync.Mutex        // reads are the library's, one at a time; wait may look meanwhile
	unread []byte            // read from the socket, not yet by the library (first: what the HTTP server read past the request)
	pooled *[readBuffer]byte // unread's array when from readBuffers; back to the pool once read

	wmu       sync.Mutex // one frame at a time on the wire, the library's or frameConn's
	closeSent bool       // the library wrote a close frame: no data frame may follow
}

// Read implements io.Reader for the library: from what is buffered, else
// from the socket, into the caller's slice when it is large, else into a
// pooled buffer that goes back to the pool once read. A call for at most
// libReadBuffer bytes (the library's own buffer filling) gets one byte,
// which the library takes at once: its buffer never holds bytes between
// messages, so wait need not look at it (which would race with the
// library's close handshake, reading it from another goroutine).
func (c *leanConn) Read(p []byte) (int, error) {
	if len(p) == 0 {
		return 0, nil
	}
	if len(p) <= libReadBuffer {
		p = p[:1]
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if len(c.unread) == 0 {
		if len(p) >= readBuffer {
			return c.Conn.Read(p)
		}
		buf := readBuffers.Get().(*[readBuffer]byte)
		n, err := c.Conn.Read(buf[:])
		if n == 0 {
			readBuffers.Put(buf)
			return 0, err
		}
		c.pooled, c.unread = buf, buf[:n]
	}
	n := copy(p, c.unread)
	c.unread = c.unread[n:]
	if len(c.unread) == 0 && c.pooled != nil {
		readBuffers.Put(c.pooled)
		c.pooled = nil
	}
	return n, nil
}

// buffered reports whether bytes read from the socket wait in leanConn.
func (c *leanConn) buffered() bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	return len(c.unread) > 0
}

// Write is the library's: its control frames, each in one call (see
// controlFrame), never between the two writes of a frame of frameConn's.
func (c *leanConn) Write(p []byte) (int, error) {
	c.wmu.Lock()
	defer c.wmu.Unlock()
	if len(p) > 0 && p[0]&0x0f == 0x8 { // a frame's first byte: opcode 8, close
		c.closeSent = true
	}
	return c.Conn.Write(p)
}

// wait returns once the connection has something to read, without
// reading it: at once if leanConn holds some, otherwise when the socket
// is readable, its read deadline passes or it is closed. An idle
// connection's goroutine then waits a few calls deep instead of deep in
// the library's reader, and its stack stays small. It is called by the
// connection's reader between messages, when the library's own buffer is
// empty (see Read).
func (c *leanConn) wait() error {
	if c.raw == nil || c.buffered() {
		return nil
	}
	// The poller is edge-triggered: it wakes a waiter for data that
	// arrives after a read found none. So look first (hasData), and wait
	// only when there is nothing; once woken, look again.
	err := c.raw.Read(hasData)
	if errors.Is(err, os.ErrDeadlineExceeded) || errors.Is(err, net.ErrClosed) {
		return err
	}
	return nil // let the library's read find out and say what it is
}

// frameConn is the outbox's connection: it writes each message as one
// frame straight to the socket, header and payload in one system call and
// no copy, so that the library's write buffer only ever holds its own
// control frames (a close, a pong: at most controlFrame bytes, written in
// one call too, so frames never interleave on the wire). The messages are
// the outbox's alone, written one at a time; once the library has written
// a close frame (its Close, or its answer to the client's close or to a
// message over the read limit), none is written any more.
type frameConn struct {
	ws *websocket.Conn
	lc *leanConn
}

// controlFrame is the largest frame the library writes itself: a control
// frame's header and at most 125 bytes of payload.
const controlFrame = 2 + 125

// Write writes p as one unmasked, final text or binary frame, by ctx's
// deadline. It returns net.ErrClosed after the library's close frame.
func (f frameConn) Write(ctx context.Context, typ websocket.MessageType, p []byte) error {
	d, timed := ctx.Deadline()
	return f.write(d, timed, typ, p)
}

// WriteBy is Write by the deadline d, without a context (deadlineWriter).
func (f frameConn) WriteBy(d time.Time, typ websocket.MessageType, p []byte) error {
	return f.write(d, true, typ, p)
}

func (f frameConn) write(d time.Time, timed bool, typ websocket.MessageType, p []byte) error {
	var hdr [10]byte
	hdr[0] = 0x80 | byte(typ) // fin; opcode 1 (text) or 2 (binary), as websocket.MessageType numbers them
	h := hdr[:2]
	switch n := len(p); {
	case n < 126:
		hdr[1] = byte(n)
	case n <= 0xffff:
		hdr[1] = 126
		binary.BigEndian.PutUint16(hdr[2:], uint16(n))
		h = hdr[:4]
	default:
		hdr[1] = 127
		binary.BigEndian.PutUint64(hdr[2:], uint64(n))
		h = hdr[:10]
	}
	lc := f.lc
	lc.wmu.Lock()
	defer lc.wmu.Unlock()
	if lc.closeSent {
		return net.ErrClosed
	}
	if timed {
		if err := lc.SetWriteDeadline(d); err != nil {
			return err
		}
	}
	var err error
	if tcp, ok := lc.Conn.(*net.TCPConn); ok {
		bufs := net.Buffers{h, p}
		_, err = bufs.WriteTo(tcp) // one writev, no copy
	} else {
		_, err = lc.Conn.Write(append(h, p...)) // one write (TLS, a wrapped listener)
	}
	if err != nil {
		return err // the outbox closes the connection: the deadline stays
	}
	if timed {
		// The library's own writes (a pong, a close) must not meet
		// this deadline later.
		return lc.SetWriteDeadline(time.Time{})
	}
	return nil
}

func (f frameConn) Close(code websocket.StatusCode, reason string) error {
	return f.ws.Close(code, reason)
}

func (f frameConn) CloseNow() error { return f.ws.CloseNow() }
