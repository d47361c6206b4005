package syncserver

import (
	"bufio"
	"bytes"
	"net"
	"net/http"
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
// with connBuffer-sized buffers, and keeps it in conn: the session sets
// its read deadline there instead of giving the library a context with a
// timeout, which costs a timer, a context and a callback for as long as
// the connection waits. Bytes the HTTP server had already read past the
// request (a client that sent its first frame at once) are read first.
type leanHijack struct {
	http.ResponseWriter
	conn net.Conn // set by Hijack
}

// Unwrap lets http.ResponseController reach the wrapped writer.
func (l *leanHijack) Unwrap() http.ResponseWriter { return l.ResponseWriter }

// Hijack implements http.Hijacker.
func (l *leanHijack) Hijack() (net.Conn, *bufio.ReadWriter, error) {
	conn, brw, err := http.NewResponseController(l.ResponseWriter).Hijack()
	if err != nil {
		return nil, nil, err
	}
	if n := brw.Reader.Buffered(); n > 0 {
		b, _ := brw.Reader.Peek(n)
		conn = &readAheadConn{Conn: conn, ahead: bytes.Clone(b)}
	}
	if err := brw.Writer.Flush(); err != nil { // nothing is buffered after the headers; to be sure
		conn.Close()
		return nil, nil, err
	}
	l.conn = conn
	return conn, bufio.NewReadWriter(bufio.NewReaderSize(conn, connBuffer), bufio.NewWriterSize(conn, connBuffer)), nil
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
