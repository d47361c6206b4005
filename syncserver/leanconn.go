package syncserver

import (
	"bufio"
	"bytes"
	"errors"
	"net"
	"net/http"
	"os"
	"syscall"
)

// The websocket library keeps, for a connection's life, the read and write
// buffers that the HTTP server's Hijack hands it: 4 KB each, most of what
// an idle shopper's connection costs. leanHijack hands it smaller ones
// instead. A message that fits (every ping, ack and single-op push) still
// takes one system call each way; a larger one (a cart of many lines)
// takes one more, which is far below the cost of the op itself.

// connBuffer is the size of a connection's read and of its write buffer.
const connBuffer = 512

// leanHijack is an http.ResponseWriter whose Hijack gives the connection
// with connBuffer-sized buffers, and keeps it in c. Bytes the HTTP server
// had already read past the request (a client that sent its first frame
// at once) are read first.
type leanHijack struct {
	http.ResponseWriter
	c *leanConn // set by Hijack
}

// leanConn is what the session keeps of a hijacked connection (not the
// ResponseWriter: that would keep the HTTP server's buffers and the
// request). The session sets its read deadline on conn instead of giving
// the library a context with a timeout, which costs a timer, a context
// and a callback for as long as the connection waits, and waits for the
// next message with wait.
type leanConn struct {
	conn  net.Conn
	br    *bufio.Reader  // the library's read buffer
	ahead *readAheadConn // conn, if it starts with bytes read ahead
	raw   syscall.RawConn
}

// Unwrap lets http.ResponseController reach the wrapped writer.
func (l *leanHijack) Unwrap() http.ResponseWriter { return l.ResponseWriter }

// Hijack implements http.Hijacker.
func (l *leanHijack) Hijack() (net.Conn, *bufio.ReadWriter, error) {
	conn, brw, err := http.NewResponseController(l.ResponseWriter).Hijack()
	if err != nil {
		return nil, nil, err
	}
	lc := &leanConn{}
	if sc, ok := conn.(syscall.Conn); ok {
		lc.raw, _ = sc.SyscallConn() // nil on error: wait does not wait
	}
	if n := brw.Reader.Buffered(); n > 0 {
		b, _ := brw.Reader.Peek(n)
		lc.ahead = &readAheadConn{Conn: conn, ahead: bytes.Clone(b)}
		conn = lc.ahead
	}
	if err := brw.Writer.Flush(); err != nil { // nothing is buffered after the headers; to be sure
		conn.Close()
		return nil, nil, err
	}
	lc.conn, lc.br = conn, bufio.NewReaderSize(conn, connBuffer)
	l.c = lc
	return conn, bufio.NewReadWriter(lc.br, bufio.NewWriterSize(conn, connBuffer)), nil
}

// wait returns once the connection has something to read, without
// reading it: at once if the buffers hold some, otherwise when the socket
// is readable, its read deadline passes or it is closed. An idle
// connection's goroutine then waits a few calls deep instead of deep in
// the library's reader, and the runtime can shrink its stack. It must be
// called by the connection's reader only, between messages.
func (l *leanConn) wait() error {
	if l.raw == nil || l.br.Buffered() > 0 || (l.ahead != nil && len(l.ahead.ahead) > 0) {
		return nil
	}
	// The poller is edge-triggered: it wakes a waiter for data that
	// arrives after a read found none. So look first (hasData), and wait
	// only when there is nothing; once woken, look again.
	err := l.raw.Read(hasData)
	if errors.Is(err, os.ErrDeadlineExceeded) || errors.Is(err, net.ErrClosed) {
		return err
	}
	return nil // let the library's read find out and say what it is
}

// readAheadConn is a connection whose first reads return ahead.
type readAheadConn struct {
	net.Conn
	ahead []byte
}

func (c *readAheadConn) Read(p []byte) (int, error) {
	if len(c.ahead) > 0 {
		n := copy(p, c.ahead)
		c.ahead = c.ahead[n:]
		return n, nil
	}
	return c.Conn.Read(p)
}
